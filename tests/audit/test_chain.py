"""The audit log is one hash chain: appends link up, any tampering made behind the application's back
(as a database superuser) is detected and the first bad event named, and the application's own
connection cannot rewrite history at all."""

from __future__ import annotations

import datetime as dt
import decimal
import itertools
import json
import uuid
from io import StringIO
from typing import Any

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import DatabaseError, connection, transaction
from django.utils import timezone

from audit.hashing import chain_hash, content_digest, event_digest
from audit.models import GENESIS_HASH, AuditEvent, ChainHead
from audit.services import Actor, Target, audit_append
from audit.verify import VerifyResult, verify_chain
from tests.audit.support import bypassing_triggers, manage, superuser_connection

pytestmark = pytest.mark.django_db

N = 8


def append_events(n: int = N) -> list[AuditEvent]:
    return [
        audit_append(
            actor=Actor(kind="user", label=f"alice{i}", id=str(i)),
            action=f"thing.change{i % 3}",
            target=Target(type="agent", id=str(100 + i), label=f"Agent «{i}»"),
            on_behalf_of=[{"type": "human", "id": i, "label": "Zoë"}],
            context={"i": i, "note": f'line\n{i} "quoted" ✓', "nested": {"b": [1, 2.5, None, True], "a": "x"}},
        )
        for i in range(n)
    ]


@pytest.fixture
def events() -> list[AuditEvent]:
    assert ChainHead.objects.get().seq == 0, "each test starts from an empty log"
    return append_events()


def verify_command() -> str:
    out = StringIO()
    call_command("audit_verify", stdout=out)
    return out.getvalue()


def assert_broken_at(seq: int, *, problem: str) -> VerifyResult:
    result = verify_chain()
    assert not result.ok
    assert result.first_bad_seq == seq, result
    assert problem in result.problem, result
    with pytest.raises(CommandError) as caught:
        verify_command()
    assert caught.value.returncode == 1
    assert f"BROKEN at event #{seq}" in str(caught.value)
    return result


def row(seq: int) -> dict[str, Any]:
    return AuditEvent.objects.filter(seq=seq).values().get()


# --- A healthy chain -----------------------------------------------------------------------------


def test_appends_form_one_linear_chain(events: list[AuditEvent]) -> None:
    stored = list(AuditEvent.objects.order_by("seq"))
    assert [e.seq for e in stored] == list(range(1, N + 1))
    assert stored[0].prev_hash == GENESIS_HASH
    for before, after in itertools.pairwise(stored):
        assert after.prev_hash == before.hash
    assert len({e.hash for e in stored}) == N
    head = ChainHead.objects.get()
    assert (head.seq, head.hash, head.prev_hash) == (N, stored[-1].hash, stored[-2].hash)
    # What audit_append hands back is what was stored.
    assert [(e.pk, e.seq, e.hash) for e in events] == [(e.pk, e.seq, e.hash) for e in stored]


def test_each_hash_is_the_documented_computation_over_the_stored_content(events: list[AuditEvent]) -> None:
    for event in AuditEvent.objects.order_by("seq"):
        digest = event_digest(event)
        # Computed by PostgreSQL at append time, recomputed here in Python: the two must agree.
        assert event.hash == chain_hash(event.seq, event.prev_hash, digest)


def test_verify_accepts_a_healthy_chain_and_the_command_says_ok(events: list[AuditEvent]) -> None:
    result = verify_chain()
    assert (result.ok, result.checked, result.head_seq, result.first_bad_seq) == (True, N, N, None)
    assert f"audit chain OK: {N} events, head #{N}" in verify_command()


def test_an_empty_log_verifies() -> None:
    assert verify_chain().ok
    assert "audit chain OK: 0 events" in verify_command()


def test_appends_inside_a_rolled_back_transaction_leave_no_gap(events: list[AuditEvent]) -> None:
    with transaction.atomic():
        audit_append(actor=Actor.system(), action="doomed")
        transaction.set_rollback(True)
    audit_append(actor=Actor.system(), action="kept")
    assert list(AuditEvent.objects.order_by("seq").values_list("seq", flat=True)) == list(range(1, N + 2))
    assert verify_chain().ok


@pytest.mark.parametrize(
    "context",
    [
        pytest.param(
            {"when": dt.datetime(2026, 1, 2, 3, 4, 5, 678901, tzinfo=dt.UTC), "day": dt.date(2026, 1, 2)},
            id="datetimes",
        ),
        pytest.param({"amount": decimal.Decimal("12.50"), "id": uuid.UUID(int=7)}, id="decimal-uuid"),
        pytest.param({"floats": [0.1, 1.0, 3.0, 1e-7, -2.5e-300, 123456789.125]}, id="floats"),
        pytest.param({"big": 2**53 - 1, "neg": -(2**53 - 1)}, id="largest-safe-integers"),
        pytest.param({"huge": 2**63, "float_as_int": 1e16, "big_float": 1.5e300}, id="numbers-beyond-the-safe-range"),
        pytest.param({"nan": float("nan"), "inf": float("inf")}, id="non-finite-floats"),
        pytest.param(
            {"text": "émoji 🚀, tab\t, nul-free, 'quotes' \"double\" \\ backslash", "": "empty key"}, id="text"
        ),
        pytest.param({"z": 1, "a": {"y": [], "b": {}}, "m": [{"k": None}]}, id="key-order-and-empties"),
    ],
)
def test_any_context_the_services_may_write_verifies(context: dict[str, Any]) -> None:
    audit_append(actor=Actor.system(), action="edge.case", context=context)
    result = verify_chain()
    assert result.ok, result


def test_the_event_time_is_an_aware_utc_instant(events: list[AuditEvent]) -> None:
    event = AuditEvent.objects.get(seq=1)
    assert timezone.is_aware(event.occurred_at)
    assert abs(event.occurred_at - timezone.now()) < dt.timedelta(minutes=1)


# --- Tampering by a superuser who bypasses the triggers -----------------------------------------------


def test_a_changed_context_is_detected_at_that_event(events: list[AuditEvent]) -> None:
    with bypassing_triggers() as cursor:
        cursor.execute("UPDATE audit_auditevent SET context = jsonb_set(context, '{i}', '99') WHERE seq = 4")
    assert_broken_at(4, problem="content does not match its hash")


def test_a_changed_action_is_detected_at_that_event(events: list[AuditEvent]) -> None:
    with bypassing_triggers() as cursor:
        cursor.execute("UPDATE audit_auditevent SET action = 'nothing.happened' WHERE seq = 2")
    assert_broken_at(2, problem="content does not match its hash")


@pytest.mark.parametrize("column", ["occurred_at", "actor_label", "actor_id", "target_id", "on_behalf_of"])
def test_a_change_to_any_recorded_field_is_detected(events: list[AuditEvent], column: str) -> None:
    new_value = {
        "occurred_at": "occurred_at + interval '1 second'",
        "actor_label": "'mallory'",
        "actor_id": "'666'",
        "target_id": "'999'",
        "on_behalf_of": "'[]'::jsonb",
    }[column]
    with bypassing_triggers() as cursor:
        cursor.execute(f"UPDATE audit_auditevent SET {column} = {new_value} WHERE seq = 5")
    assert_broken_at(5, problem="content does not match its hash")


def test_a_changed_event_whose_hash_was_recomputed_breaks_the_next_link(events: list[AuditEvent]) -> None:
    event = AuditEvent.objects.get(seq=3)
    forged_context = {**event.context, "i": 1000}
    digest = content_digest(
        occurred_at=event.occurred_at,
        actor_kind=event.actor_kind,
        actor_id=event.actor_id,
        actor_label=event.actor_label,
        on_behalf_of=event.on_behalf_of,
        action=event.action,
        target_type=event.target_type,
        target_id=event.target_id,
        target_label=event.target_label,
        context=forged_context,
    )
    with bypassing_triggers() as cursor:
        cursor.execute(
            "UPDATE audit_auditevent SET context = %s::jsonb, hash = %s WHERE seq = 3",
            [json.dumps(forged_context), chain_hash(3, event.prev_hash, digest)],
        )
    assert_broken_at(4, problem="previous-hash link does not match")


def test_a_deleted_event_in_the_middle_is_detected(events: list[AuditEvent]) -> None:
    with bypassing_triggers() as cursor:
        cursor.execute("DELETE FROM audit_auditevent WHERE seq = 5")
    result = assert_broken_at(6, problem="expected event #5 here, found #6")
    assert result.checked == 4


def test_a_deleted_first_event_is_detected() -> None:
    append_events(3)
    with bypassing_triggers() as cursor:
        cursor.execute("DELETE FROM audit_auditevent WHERE seq = 1")
    assert_broken_at(2, problem="expected event #1 here")


def test_a_forged_event_spliced_in_by_renumbering_is_detected(events: list[AuditEvent]) -> None:
    before = AuditEvent.objects.get(seq=4)
    forged = {
        "occurred_at": before.occurred_at + dt.timedelta(milliseconds=1),
        "actor_kind": "system",
        "actor_id": "",
        "actor_label": "system",
        "on_behalf_of": [],
        "action": "grant.create",
        "target_type": "grant",
        "target_id": "31337",
        "target_label": "mallory → everything",
        "context": {"scope": "vault:read"},
    }
    forged_hash = chain_hash(5, before.hash, content_digest(**forged))  # a hash that fits where it sits
    with bypassing_triggers() as cursor:
        # Make room at #5 (two steps, so the unique index on seq never sees a duplicate), then splice.
        cursor.execute("UPDATE audit_auditevent SET seq = seq + 1000000 WHERE seq >= 5")
        cursor.execute("UPDATE audit_auditevent SET seq = seq - 999999 WHERE seq > 1000000")
        cursor.execute(
            """INSERT INTO audit_auditevent (seq, occurred_at, actor_kind, actor_id, actor_label, on_behalf_of,
                   action, target_type, target_id, target_label, context, prev_hash, hash)
               VALUES (5, %s, %s, %s, %s, %s::jsonb, %s, %s, %s, %s, %s::jsonb, %s, %s)""",
            [
                forged["occurred_at"],
                forged["actor_kind"],
                forged["actor_id"],
                forged["actor_label"],
                json.dumps(forged["on_behalf_of"]),
                forged["action"],
                forged["target_type"],
                forged["target_id"],
                forged["target_label"],
                json.dumps(forged["context"]),
                before.hash,
                forged_hash,
            ],
        )
    assert AuditEvent.objects.count() == N + 1
    # The forgery itself is self-consistent; the genuine event after it no longer links to its predecessor.
    assert_broken_at(6, problem="previous-hash link does not match")


@pytest.mark.parametrize(("first", "second"), [(3, 6), (6, 7), (1, N)])
def test_reordered_events_are_detected(events: list[AuditEvent], first: int, second: int) -> None:
    with bypassing_triggers() as cursor:
        cursor.execute("UPDATE audit_auditevent SET seq = 1000000 WHERE seq = %s", [first])
        cursor.execute("UPDATE audit_auditevent SET seq = %s WHERE seq = %s", [first, second])
        cursor.execute("UPDATE audit_auditevent SET seq = %s WHERE seq = 1000000", [second])
    assert_broken_at(first, problem="previous-hash link does not match")


def test_a_removed_tail_is_detected_through_the_chain_head(events: list[AuditEvent]) -> None:
    with bypassing_triggers() as cursor:
        cursor.execute("DELETE FROM audit_auditevent WHERE seq > 5")
    result = assert_broken_at(6, problem="tail removed")
    assert (result.checked, result.head_seq) == (5, 5)


def test_events_appended_behind_the_heads_back_are_detected(events: list[AuditEvent]) -> None:
    last = AuditEvent.objects.get(seq=N)
    extra = {
        "occurred_at": last.occurred_at,
        "actor_kind": "system",
        "actor_id": "",
        "actor_label": "system",
        "on_behalf_of": [],
        "action": "cover.up",
        "target_type": "",
        "target_id": "",
        "target_label": "",
        "context": {},
    }
    with bypassing_triggers() as cursor:
        cursor.execute(
            """INSERT INTO audit_auditevent (seq, occurred_at, actor_kind, actor_id, actor_label, on_behalf_of,
                   action, target_type, target_id, target_label, context, prev_hash, hash)
               VALUES (%s, %s, 'system', '', 'system', '[]'::jsonb, 'cover.up', '', '', '', '{}'::jsonb, %s, %s)""",
            [N + 1, last.occurred_at, last.hash, chain_hash(N + 1, last.hash, content_digest(**extra))],
        )
    assert_broken_at(N + 1, problem="chain head")


def test_content_that_cannot_even_be_canonicalised_is_named_not_a_crash(events: list[AuditEvent]) -> None:
    # An integer beyond what RFC 8785 can encode exactly, written behind the application's back.
    with bypassing_triggers() as cursor:
        cursor.execute(
            """UPDATE audit_auditevent SET context = '{"i": 123456789012345678901234567890}' WHERE seq = 3"""
        )
    assert_broken_at(3, problem="")


# --- The application's own connection cannot rewrite history ---------------------------------------------


@pytest.fixture
def one_event(events: list[AuditEvent]) -> AuditEvent:
    return AuditEvent.objects.get(seq=3)


def refused_by_the_database(attempt: Any, verb: str) -> None:
    with pytest.raises(DatabaseError, match=f"append-only: {verb} refused"), transaction.atomic():
        attempt()


def assert_untouched(event: AuditEvent) -> None:
    # The failed statement was rolled back to its savepoint: the outer transaction still works and the
    # row is exactly as appended.
    assert AuditEvent.objects.filter(pk=event.pk).values("seq", "action", "context", "hash").get() == {
        "seq": event.seq,
        "action": event.action,
        "context": event.context,
        "hash": event.hash,
    }
    assert AuditEvent.objects.count() == N
    assert verify_chain().ok


def raw(sql: str) -> Any:
    def run() -> None:
        with connection.cursor() as cursor:
            cursor.execute(sql)

    return run


@pytest.mark.parametrize(
    ("sql", "verb"),
    [
        ("UPDATE audit_auditevent SET action = 'rewritten' WHERE seq = 3", "UPDATE"),
        ("UPDATE audit_auditevent SET context = '{}'::jsonb", "UPDATE"),
        ("DELETE FROM audit_auditevent WHERE seq = 3", "DELETE"),
        ("DELETE FROM audit_auditevent", "DELETE"),
        ("TRUNCATE audit_auditevent", "TRUNCATE"),
        ("TRUNCATE audit_auditevent CASCADE", "TRUNCATE"),
    ],
)
def test_raw_sql_through_the_applications_connection_is_refused(one_event: AuditEvent, sql: str, verb: str) -> None:
    refused_by_the_database(raw(sql), verb)
    assert_untouched(one_event)


def test_the_orm_cannot_update_or_delete_events(one_event: AuditEvent) -> None:
    refused_by_the_database(lambda: AuditEvent.objects.filter(seq=3).update(action="rewritten"), "UPDATE")
    refused_by_the_database(lambda: AuditEvent.objects.filter(seq__gte=1).delete(), "DELETE")
    refused_by_the_database(lambda: AuditEvent.objects.get(seq=3).delete(), "DELETE")

    def resave() -> None:
        event = AuditEvent.objects.get(seq=3)
        event.action = "rewritten"
        event.save()

    refused_by_the_database(resave, "UPDATE")
    assert_untouched(one_event)


def test_the_chain_head_cannot_be_deleted_or_truncated(one_event: AuditEvent) -> None:
    refused_by_the_database(lambda: ChainHead.objects.all().delete(), "DELETE")
    refused_by_the_database(raw("TRUNCATE audit_chainhead"), "TRUNCATE")
    assert ChainHead.objects.get().seq == N
    assert_untouched(one_event)


# --- The command as operators run it, against committed tampering ---------------------------------------------


@pytest.mark.django_db(transaction=True)
@pytest.mark.slow
def test_manage_py_audit_verify_exits_zero_on_a_good_log_and_one_after_tampering() -> None:
    append_events(5)  # autocommit: each append is committed, visible to other processes

    healthy = manage("audit_verify")
    assert healthy.returncode == 0, healthy.stderr
    assert "audit chain OK: 5 events, head #5" in healthy.stdout

    # The application's own (autocommit) connection is refused as well ...
    with pytest.raises(DatabaseError, match="append-only"), connection.cursor() as cursor:
        cursor.execute("UPDATE audit_auditevent SET action = 'rewritten' WHERE seq = 3")
    assert verify_chain().ok
    # ... whereas a superuser on another connection can tamper and commit, and is caught.
    with superuser_connection() as conn:
        conn.execute("DELETE FROM audit_auditevent WHERE seq = 3")

    broken = manage("audit_verify")
    assert broken.returncode == 1, broken.stdout
    assert "BROKEN at event #4" in broken.stderr
    assert "expected event #3 here" in broken.stderr
    assert "OK" not in broken.stdout
