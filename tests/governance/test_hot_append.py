"""A repeated check's event, made from a template (``governance.hot_append``), is byte for byte the event
``audit.services`` would make; it is written by one prepared statement on condition that the state has
not moved; and a database failure on that path is still a 503 deny.
"""

from __future__ import annotations

import json
import os
from contextlib import suppress
from datetime import UTC, datetime
from typing import Any

import pytest
from django.db import connection, transaction
from django.utils import timezone
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from audit import hashing
from audit.models import AuditEvent
from audit.services import Actor, PendingEvent, Target, _event
from governance import hot_append, livestate, runtime
from governance.api.check import answer
from governance.models import Delegation, Human
from tests.factories import make_chain, make_chain_tokens

# Text of every kind a request or a name may carry: quotes, backslashes, control characters, percent
# signs (the template is a %-format), the placeholders' own private-use characters, text beyond the
# Basic Multilingual Plane (the format's key order may differ there: such events take the general path).
plain_text = st.text(
    alphabet=st.one_of(
        st.characters(codec="utf-8", max_codepoint=0xFFFF, exclude_characters="\x00"),
        st.sampled_from(['"', "\\", "%", "\x1f", "\n", "\ue000", "\u2028", "é"]),
    ),
    max_size=30,
)
text = plain_text
# Now and then (one draw in ten each) appended to a label or a request value: what may not go this way.
RARE = {0: " beyond 😀 the plane", 1: " a NUL \x00 inside"}
json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**53) + 1, 2**53 - 1) | text,
    lambda children: st.lists(children, max_size=3) | st.dictionaries(text, children, max_size=3),
    max_leaves=8,
)


def reference(
    actor: Actor, target: Target, on_behalf_of: list[Any], context: dict[str, Any], when: datetime
) -> tuple[str, str, Any]:
    """What ``audit.services`` makes of the event: its canonical content, digest and context."""
    built = _event(
        PendingEvent(actor=actor, action="check.allow", target=target, context=context, on_behalf_of=on_behalf_of), when
    )
    return built.fields["canonical"], built.fields["digest"], built.fields


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@example(
    label='fetcher "the second" \\ 100%s é',
    actor_id="12345",
    target_id="res.data",
    scope="res.data:read",
    on_behalf_of=[{"type": "human", "id": 1, "label": "Ada\u2028Lovelace"}, {"type": "agent", "id": 2, "label": "%d"}],
    fixed={"decision": "allow", "credential": {"kind": "delegation_token", "jti": "x"}, "delegation_chain": [1, 2]},
    request=['read "it"\n', "tool\x1f", "%(x)s", "é€", ""],
    rare_label=9,
    rare_request=29,
    microsecond=0,
)
@given(
    label=text,
    actor_id=st.sampled_from(["", "7", "12345"]),
    target_id=text,
    scope=text,
    on_behalf_of=st.lists(st.dictionaries(text, json_values, max_size=3), max_size=3),
    fixed=st.dictionaries(text, json_values, max_size=4),
    request=st.lists(text, min_size=5, max_size=5),
    rare_label=st.integers(0, 9),
    rare_request=st.integers(0, 29),
    microsecond=st.integers(0, 999_999),
)
def test_the_template_gives_the_same_bytes_as_the_services(
    label: str,
    actor_id: str,
    target_id: str,
    scope: str,
    on_behalf_of: list[Any],
    fixed: dict[str, Any],
    request: list[Any],
    rare_label: int,
    rare_request: int,
    microsecond: int,
) -> None:
    label += RARE.get(rare_label, "")
    if rare_request < 10:  # one value in a third of the examples: not text, or text that may not go this way
        request[rare_request % 5] = [None, 7, *RARE.values()][rare_request % 4]
    actor = Actor(kind="agent", label=label * 10, id=actor_id)  # past the 200 characters the label keeps
    target = Target(type="scope", id=target_id, label=scope)
    template = hot_append.EventTemplate.of(
        actor=actor, action="check.allow", target=target, on_behalf_of=on_behalf_of, context=fixed
    )
    context = {**fixed, **dict(zip(hot_append.REQUEST_FIELDS, request, strict=True))}
    when = datetime(2026, 12, 1, 9, 30, 5, microsecond, tzinfo=UTC)
    expected_content, expected_digest, fields = reference(actor, target, on_behalf_of, context, when)
    if template is None:
        # Refused only for what may not be sent as it is: NUL (libpq's text parameters end at one) or
        # text the format might order otherwise.
        everything = expected_content + label + target_id + scope
        assert "\x00" in everything or hashing.ASTRAL.search(everything)
        return
    rendered = template.render(request, fields["nonce"], hashing.isoformat(when))
    if rendered is None:
        assert any(type(v) is not str for v in request) or hashing.ASTRAL.search(expected_content)
        return
    content, context_text = rendered
    RENDERED.append(content)
    assert content == expected_content
    assert hashing.digest_of(content.encode()) == expected_digest
    assert content.encode() == hashing.canonical(hashing.event_document(_Row(fields)))
    assert json.loads(context_text) == fields["context"]


RENDERED: list[str] = []


def test_the_property_above_compared_real_renderings() -> None:
    assert len(RENDERED) >= 50  # most generated events fit the template; the comparison ran on them


class _Row:
    """An event's columns, as ``audit.hashing.event_document`` reads them."""

    def __init__(self, fields: dict[str, Any]) -> None:
        self.__dict__.update(fields)


# --- Written to PostgreSQL ----------------------------------------------------------------------------


@pytest.fixture
def world() -> dict[str, Any]:
    chain = make_chain(depth=2)
    chain.update(make_chain_tokens(chain))
    return chain


def check(world: dict[str, Any], **context: str) -> runtime.CheckResult:
    return runtime.check(
        credential=world["tokens"][-1], action="read", resource=world["resource"].name, context=context
    )


@pytest.fixture
def no_general_append(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Records each conditional append that went through ``audit.services`` instead."""
    taken: list[str] = []
    original = runtime.audit_append_if

    def counted(*args: Any, **kwargs: Any) -> Any:
        taken.append(kwargs["action"])
        return original(*args, **kwargs)

    monkeypatch.setattr(runtime, "audit_append_if", counted)
    return taken


@pytest.mark.django_db(transaction=True)
def test_repeated_checks_are_recorded_by_the_template_and_verify(
    world: dict[str, Any], no_general_append: list[str]
) -> None:
    assert livestate.enabled() and hot_append.usable()
    answers = [check(world, intent=f"fetch page {n}", request_id=f"r-{n}", tool='say "hi" \\ 100%') for n in range(4)]
    assert no_general_append == []
    assert all(a.outcome.allowed for a in answers)
    for a in answers:
        event = AuditEvent.objects.get(digest=a.decision_id)
        assert hashing.event_digest(event) == event.digest
        assert hashing.canonical(hashing.event_document(event)).decode() == event.canonical
        assert event.action == "check.allow" and event.actor_label == world["agents"][-1].name
    assert AuditEvent.objects.get(digest=answers[2].decision_id).context["request_id"] == "r-2"
    assert len({a.decision_id for a in answers}) == 4


@pytest.mark.django_db(transaction=True)
def test_a_revocation_between_two_checks_is_honoured_and_nothing_stale_is_written(
    world: dict[str, Any], no_general_append: list[str]
) -> None:
    assert check(world).outcome.allowed
    allowed = AuditEvent.objects.filter(action="check.allow").count()
    Delegation.objects.filter(pk=world["links"][1].pk).update(status="revoked", revoked_at=timezone.now())
    denied = check(world, request_id="after")
    assert not denied.outcome.allowed
    assert AuditEvent.objects.filter(action="check.allow").count() == allowed
    event = AuditEvent.objects.get(digest=denied.decision_id)
    assert event.action == "check.deny" and event.context["request_id"] == "after"
    assert hashing.event_digest(event) == event.digest


@pytest.mark.django_db(transaction=True)
def test_a_statement_deallocated_behind_its_back_is_prepared_again(world: dict[str, Any]) -> None:
    assert check(world).outcome.allowed
    with connection.cursor() as cursor:
        cursor.execute("DEALLOCATE ALL")
    again = check(world, request_id="again")
    assert again.outcome.allowed
    assert AuditEvent.objects.get(digest=again.decision_id).context["request_id"] == "again"


@pytest.mark.django_db(transaction=True)
def test_a_broken_connection_is_a_503_deny_and_the_next_check_reconnects(world: dict[str, Any]) -> None:
    data = {"action": "read", "resource": world["resource"].name}
    bearer = f"Bearer {world['tokens'][-1]}"
    assert answer(data, bearer, "10.0.0.1")[0] == 200
    connection.connection.pgconn.finish()  # the server gone, as the check sees it
    status, body, headers = answer(data, bearer, "10.0.0.1")
    assert (status, body["decision"], headers) == (503, "deny", {"Retry-After": "1"})
    assert connection.errors_occurred
    connection.close_if_unusable_or_obsolete()  # what request_finished does
    status, body, _ = answer(data, bearer, "10.0.0.1")
    assert (status, body["decision"]) == (200, "allow")
    assert AuditEvent.objects.filter(digest=body["decision_id"]).exists()


@pytest.mark.django_db(transaction=True)
def test_inside_a_transaction_the_services_record_it_even_after_psycopg_deallocated_everything(
    world: dict[str, Any], no_general_append: list[str]
) -> None:
    assert check(world).outcome.allowed and no_general_append == []
    with transaction.atomic():
        with suppress(LookupError), transaction.atomic():
            AuditEvent.objects.count()  # prepared by psycopg, so that its rollback makes it DEALLOCATE ALL
            raise LookupError
        AuditEvent.objects.count()
        inside = check(world, request_id="inside")
    assert no_general_append == ["check.allow"]
    assert AuditEvent.objects.get(digest=inside.decision_id).context["request_id"] == "inside"
    after = check(world, request_id="after")
    assert no_general_append == ["check.allow"]
    assert AuditEvent.objects.get(digest=after.decision_id).context["request_id"] == "after"


@pytest.mark.django_db(transaction=True)
def test_the_answer_encoded_once_is_the_answer_encoded_each_time(world: dict[str, Any]) -> None:
    Human.objects.filter(pk=world["human"].pk).update(name='Ada "é" \\ Lovelace 100%')
    livestate.live.forget()
    for n in range(3):
        body = check(world, request_id=f"r{n}").as_response()
        assert isinstance(body, runtime.EncodedAnswer)
        assert body.json == json.dumps(dict(body), ensure_ascii=False, separators=(",", ":")).encode()
        assert body["subject"]["label"] == 'Ada "é" \\ Lovelace 100%'


def test_a_forked_worker_never_hands_out_its_parents_nonces() -> None:
    hot_append._random.token_hex()  # the parent's buffer filled before the fork, as a preloaded app's could be
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.write(write, hot_append._random.token_hex().encode())
        os._exit(0)
    os.close(write)
    os.waitpid(pid, 0)
    child = os.read(read, 64).decode()
    os.close(read)
    assert len(child) == 32 and child != hot_append._random.token_hex()
