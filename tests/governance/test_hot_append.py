"""A repeated check's event, made from a template (``governance.hot_append``), is byte for byte the event
``audit.services`` would make; it is written by one prepared statement on condition that the state has
not moved; and a database failure on that path is still a 503 deny.
"""

from __future__ import annotations

import json
import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import suppress
from datetime import UTC, datetime
from typing import Any

import pytest
from django.db import connection, transaction
from django.utils import timezone
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from audit import hashing, sealer
from audit.models import AuditEvent
from audit.services import Actor, PendingEvent, Target, _event
from audit.verification import verify_chain
from governance import hot_append, livestate, runtime
from governance.api.check import answer
from governance.group_commit import GroupCommit
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


# --- Concurrent checks of one process, written together (``governance.group_commit``) -----------------


def _state_version() -> int:
    with connection.cursor() as cursor:
        cursor.execute("SELECT version FROM governance_stateversion WHERE id = 1")
        return int(cursor.fetchone()[0])


@pytest.mark.django_db(transaction=True)
def test_one_statement_writes_a_batch_each_row_under_its_own_precondition(world: dict[str, Any]) -> None:
    template = hot_append.EventTemplate.of(
        actor=Actor(kind="agent", label="fetcher", id="7"),
        action="check.allow",
        target=Target(type="scope", id="res.data", label="res.data:read"),
        on_behalf_of=[{"type": "human", "id": 1, "label": "Ada"}],
        context={"decision": "allow", "reason": "allowed"},
    )
    assert template is not None
    version = _state_version()
    batch = [
        template.parameters(["fetch", "tool", "s-1", f"r-{n}", ""], version if n != 1 else version - 1)
        for n in range(3)
    ]
    assert all(params is not None for params in batch)
    connection.ensure_connection()
    assert hot_append._write(batch, hot_append.usable()) == [True, False, True]
    written = AuditEvent.objects.filter(digest__in=[params[0].decode() for params in batch])  # type: ignore[index]
    assert sorted(event.context["request_id"] for event in written) == ["r-0", "r-2"]
    for event in written:
        assert hashing.event_digest(event) == event.digest
        assert hashing.canonical(hashing.event_document(event)).decode() == event.canonical
    sealer.seal_pending()
    assert verify_chain(full=True).ok is True


@pytest.mark.django_db(transaction=True)
def test_checks_in_flight_together_are_written_by_one_statement_and_each_answer_waits_for_it(
    world: dict[str, Any], monkeypatch: pytest.MonkeyPatch, no_general_append: list[str]
) -> None:
    assert check(world, request_id="warm").outcome.allowed  # the state kept, so the checks go this way
    threads = 5
    batches: list[int] = []

    def held(batch: Any, wrapper: Any) -> list[bool]:
        if not batches:  # hold the first batch until every other check has queued behind it
            while len(group._queue) < threads - 1:
                time.sleep(0.001)
        batches.append(len(batch))
        return hot_append._write(batch, wrapper)

    group = GroupCommit(held, limit=hot_append.BATCH_LIMIT)
    monkeypatch.setattr(hot_append, "_group", group)

    def one(n: int) -> runtime.CheckResult:
        try:
            result = check(world, request_id=f"t-{n}")
            # Answered only once its event is durable: visible to another connection at once.
            assert AuditEvent.objects.filter(digest=result.decision_id).exists()
            return result
        finally:
            connection.close()

    with ThreadPoolExecutor(max_workers=threads) as pool:
        answers = list(pool.map(one, range(threads), timeout=30))
    assert batches == [1, threads - 1] and no_general_append == []
    assert all(a.outcome.allowed for a in answers)
    events = AuditEvent.objects.filter(digest__in=[a.decision_id for a in answers])
    assert sorted(e.context["request_id"] for e in events) == [f"t-{n}" for n in range(threads)]
    sealer.seal_pending()
    assert verify_chain(full=True).ok is True


@pytest.mark.django_db(transaction=True)
def test_a_revocation_while_a_batch_waits_writes_none_of_it_and_each_check_decides_again(
    world: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    assert check(world, request_id="warm").outcome.allowed
    threads = 3

    def revoked_first(batch: Any, wrapper: Any) -> list[bool]:
        if len(batch) > 1 or not revoked.is_set():
            while len(group._queue) < threads - 1 and not revoked.is_set():
                time.sleep(0.001)
            if not revoked.is_set():
                Delegation.objects.filter(pk=world["links"][1].pk).update(status="revoked", revoked_at=timezone.now())
                revoked.set()
        return hot_append._write(batch, wrapper)

    revoked = threading.Event()
    group = GroupCommit(revoked_first, limit=hot_append.BATCH_LIMIT)
    monkeypatch.setattr(hot_append, "_group", group)

    def one(n: int) -> runtime.CheckResult:
        try:
            return check(world, request_id=f"t-{n}")
        finally:
            connection.close()

    with ThreadPoolExecutor(max_workers=threads) as pool:
        answers = list(pool.map(one, range(threads), timeout=30))
    # Every check decided on the state before the revocation found it moved, wrote nothing, and decided again.
    assert not any(a.outcome.allowed for a in answers)
    assert {a.outcome.reason for a in answers} == {"delegation_revoked"}
    events = AuditEvent.objects.filter(digest__in=[a.decision_id for a in answers])
    assert sorted(e.action for e in events) == ["check.deny"] * threads
    assert not AuditEvent.objects.filter(action="check.allow", context__request_id__startswith="t-").exists()
