"""Events built by PostgreSQL (the expiry sweep's, one statement a batch) are the events audit.hashing would
build: each one's canonical text and digest equal what audit.hashing computes from its fields, its
document equals the Python path's for the same row (nonce and time aside), and the chain they are
sealed into verifies. With awkward values: labels with quotes, backslashes, control characters, emoji
and other non-ASCII text, ids of every length (beyond 2^53 too), expiries with and without
microseconds."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from django.db import connection, transaction
from django.utils import timezone

from audit import sealer, verification
from audit.hashing import SqlCanonical, canonical, content_document, event_digest, event_document
from audit.models import AuditEvent
from audit.services import Actor
from governance import services
from governance.models import Delegation, DelegationStatus, Grant
from tests.audit.support import bypassing_triggers
from tests.factories import make_agent, make_human, make_resource

pytestmark = pytest.mark.django_db

if connection.vendor != "postgresql":  # pragma: no cover - the suite runs on PostgreSQL
    pytest.skip("events built by PostgreSQL", allow_module_level=True)

AWKWARD = 'Zoë "the sweeper" \\ back\\slash \x01\x08\x0c\x1f\n\r\t\x7f \u2028\u2029 漢字 😀 \ue000 %s {}'
ACTORS = [
    Actor.system("expiry sweep"),
    Actor(kind="user", label=AWKWARD, id="1234567890"),
    Actor(kind="agent", label="😀" * 250, id="7"),  # cut to 200 characters, as every append does
]
BIG = 2**53  # beyond what RFC 8785 writes as a number

NOW = timezone.now().replace(microsecond=0)
EXPIRIES = [
    NOW - timedelta(hours=1),  # no microseconds: isoformat() writes none
    NOW - timedelta(hours=1, microseconds=-1),
    NOW - timedelta(minutes=5, microseconds=500_000),
    NOW - timedelta(seconds=1, microseconds=999_999),
    datetime(1999, 12, 31, 23, 59, 59, tzinfo=UTC),
    datetime(999, 1, 2, 3, 4, 5, 120, tzinfo=UTC),  # a four-digit year with a leading zero
]


@pytest.fixture
def rows() -> dict[str, Any]:
    """Due grants with ids of different lengths and every kind of expiry; due delegations with a cascade
    below them (one link beyond 2^53), and a link left active under an expired one."""
    human, resource = make_human(), make_resource()
    agent = make_agent(sponsor=human)
    grant_ids = [3, 42, 98_765, 12_345_678_901, BIG + 5, 9_223_372_036_854_775_807]
    Grant.objects.bulk_create(
        Grant(
            id=pk,
            holder_agent=agent,
            resource=resource,
            action="read",
            valid_from=EXPIRIES[i % len(EXPIRIES)] - timedelta(days=2),
            expires_at=EXPIRIES[i % len(EXPIRIES)],
            granted_by="tests",
        )
        for i, pk in enumerate(grant_ids)
    )

    def link(pk: int, parent: int | None, expires_at: datetime, status: str = DelegationStatus.ACTIVE) -> int:
        Delegation.objects.create(
            id=pk,
            parent_id=parent,
            root_human=human,
            delegate=agent,
            purpose="sweep test",
            scopes=[resource.scope("read")],
            depth=0 if parent is None else 1,
            max_depth=3,
            expires_at=expires_at,
            created_at=min(expires_at, NOW) - timedelta(days=2),
            created_by="tests",
            status=status,
        )
        return pk

    later = NOW + timedelta(days=1, microseconds=7)
    # A due root; its child (beyond 2^53) and grandchild are not due themselves and go with it.
    link(5, None, EXPIRIES[1])
    link(BIG + 1, 5, later)
    link(77, BIG + 1, EXPIRIES[0] + timedelta(days=2))
    # A due root beyond 2^53 whose child names it (as text: beyond what JSON numbers hold exactly).
    link(BIG + 10, None, EXPIRIES[2])
    link(88, BIG + 10, later)
    # A link left active under an expired one.
    link(600, None, EXPIRIES[3], status=DelegationStatus.EXPIRED)
    link(12_345, 600, later)
    return {
        "grants": grant_ids,
        "delegations": {5: None, BIG + 1: 5, 77: 5, BIG + 10: None, 88: BIG + 10, 12_345: 600},
    }


def documents_without_nonce_and_time() -> dict[tuple[str, str], dict[str, Any]]:
    found = {}
    for event in AuditEvent.objects.filter(action__in=("grant.expire", "delegation.expire")):
        document = event_document(event)
        del document["nonce"], document["occurred_at"]
        found[event.action, event.target_id] = document
    return found


@pytest.mark.parametrize("walker", ["postgresql", "python"])
@pytest.mark.parametrize("actor", ACTORS, ids=["system", "awkward-user", "long-emoji-agent"])
def test_each_event_is_the_one_audit_hashing_builds_and_the_chain_verifies(
    rows: dict[str, Any], actor: Actor, walker: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The reference: the Python path over the same rows, rolled back.
    with pytest.raises(RuntimeError), transaction.atomic():
        assert services.expire_due(actor=actor, batch_size=2, database_events=False) == {"grants": 6, "delegations": 6}
        reference = documents_without_nonce_and_time()
        raise RuntimeError("roll back")
    assert len(reference) == 12

    assert services.expire_due(actor=actor, batch_size=2) == {"grants": 6, "delegations": 6}

    events = list(AuditEvent.objects.filter(action__in=("grant.expire", "delegation.expire")))
    assert len(events) == 12
    for event in events:
        assert event.canonical == canonical(event_document(event)).decode(), event.canonical
        assert event.digest == event_digest(event)
        assert re.fullmatch("[0-9a-f]{32}", event.nonce)
        assert event.actor_label == actor.label[:200] and event.actor_id == actor.id
    assert documents_without_nonce_and_time() == reference
    # What the reference says, spelt out for a few rows.
    by_target = {(e.action, e.target_id): e for e in events}
    assert by_target["grant.expire", "42"].context == {"expires_at": EXPIRIES[1].isoformat()}
    assert "." not in by_target["grant.expire", "3"].context["expires_at"]
    assert by_target["grant.expire", str(2**63 - 1)].context == {"expires_at": "0999-01-02T03:04:05.000120+00:00"}
    cascade = {int(e.target_id): e.context["cascade_from"] for e in events if e.action == "delegation.expire"}
    assert cascade == {5: None, BIG + 1: 5, 77: 5, BIG + 10: None, 88: str(BIG + 10), 12_345: 600}
    assert len({e.nonce for e in events}) == 12

    if walker == "python":
        monkeypatch.setattr(verification, "_walk_in_postgresql", verification._walk_in_python)
    sealer.seal_pending()
    result = verification.verify_chain()
    assert result.ok and result.pending == 0, result
    assert result.checked >= 12


def test_a_changed_byte_in_an_event_built_by_the_database_is_found(rows: dict[str, Any]) -> None:
    """The test above can fail: the verifier does read these events."""
    services.expire_due(actor=ACTORS[1], batch_size=100)
    sealer.seal_pending()
    assert verification.verify_chain().ok
    with bypassing_triggers() as cursor:
        cursor.execute(
            "UPDATE audit_auditevent SET context = jsonb_set(context, '{expires_at}', %s) "
            "WHERE action = 'grant.expire' AND target_id = '42'",
            ['"2000-01-01T00:00:00+00:00"'],
        )
    result = verification.verify_chain()
    assert not result.ok and result.problem.startswith(verification._PROBLEMS["fields"]), result


@pytest.mark.parametrize(
    "value",
    [
        AWKWARD,
        "".join(chr(i) for i in range(1, 0x80)),
        "\u00e9\u20ac\u2028\u2029\ufeff\U0001f600\U0010ffff\x80\x9f\ud7ff\ue000\uffff",
        "",
    ],
)
def test_postgresql_writes_a_string_as_rfc_8785_does(value: str) -> None:
    """``SqlCanonical``'s promise for ``to_json(text)``: PostgreSQL escapes exactly what RFC 8785 escapes
    (quote, backslash, control characters; lower-case hex) and writes every other character as it is.
    The sweep does not need it (its values are ASCII digits, timestamps and hex), other writers may."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT to_json(%s::text)::text", [value])
        (written,) = cursor.fetchone()
    assert written.encode() == canonical(value)


def test_sql_canonical_fills_in_the_values_where_the_placeholders_are() -> None:
    moment = datetime(2026, 12, 1, 3, 4, 5, tzinfo=UTC)
    sql = SqlCanonical()
    document = content_document(
        occurred_at=moment,
        actor_kind="user",
        actor_id="1",
        actor_label=AWKWARD,
        on_behalf_of=[{"type": "human", "id": 3}],
        action="thing.do",
        target_type="grant",
        target_id=sql.value("'\"' || 4 || '\"'"),
        target_label="a % b",
        context={"z": sql.value("to_json('Zoë \"x\"\n'::text)::text"), "a": sql.value("'12'")},
        nonce="ab" * 16,
    )
    expression, params = sql.sql(document)
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT {expression}", params)
        (text,) = cursor.fetchone()
    expected = content_document(
        occurred_at=moment,
        actor_kind="user",
        actor_id="1",
        actor_label=AWKWARD,
        on_behalf_of=[{"type": "human", "id": 3}],
        action="thing.do",
        target_type="grant",
        target_id="4",
        target_label="a % b",
        context={"z": 'Zoë "x"\n', "a": 12},
        nonce="ab" * 16,
    )
    assert text.encode() == canonical(expected)

    unused = SqlCanonical()
    unused.value("1")
    with pytest.raises(ValueError, match="once"):
        unused.sql({"a": "no placeholder here"})
