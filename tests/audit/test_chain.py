"""The audit log is one hash chain: appends are sealed into it in order, any tampering made behind the
application's back (as a database superuser) is detected and the first bad event named, and the
application's own connection cannot rewrite history at all."""

from __future__ import annotations

import datetime as dt
import decimal
import itertools
import json
import uuid
from io import StringIO
from typing import Any

import pytest
import rfc8785
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import DatabaseError, connection, transaction
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from audit import sealer, verification
from audit.hashing import canonical, chain_hash, content_document, digest_of, event_digest, event_document
from audit.models import GENESIS_HASH, AuditEvent, ChainHead, Seal
from audit.services import Actor, PendingEvent, Target, audit_append, audit_append_many
from audit.verification import VerifyResult, verify_chain
from tests.audit.support import bypassing_triggers, held_back, make_stray, manage, queued_ids, superuser_connection

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


@pytest.fixture(params=["postgresql", "postgresql-pieces", "python"])
def walker(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Verification walks the chain inside PostgreSQL (a long log in pieces of ``CHUNK`` seals: here 3,
    one after the other in the test's connection), or seal by seal in Python (SQLite, or content
    PostgreSQL cannot parse): every tampering case runs through each, and each must name it alike."""
    if request.param == "python":
        monkeypatch.setattr(verification, "_walk_in_postgresql", verification._walk_in_python)
    if request.param == "postgresql-pieces":
        monkeypatch.setattr(verification, "CHUNK", 3)
        monkeypatch.setattr(verification, "WORKERS", 1)
    return str(request.param)


@pytest.fixture
def events(walker: str) -> list[AuditEvent]:
    assert ChainHead.objects.get().seq == 0, "each test starts from an empty log"
    appended = append_events()
    assert sealer.seal_pending() == N
    return appended


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


def event_at(seq: int) -> AuditEvent:
    return Seal.objects.select_related("event").get(seq=seq).event


# --- A healthy chain -----------------------------------------------------------------------------


def test_appends_are_sealed_into_one_linear_chain_in_order(events: list[AuditEvent]) -> None:
    seals = list(Seal.objects.order_by("seq"))
    assert [s.seq for s in seals] == list(range(1, N + 1))
    assert [s.event_id for s in seals] == [e.pk for e in events]
    assert seals[0].prev_hash == GENESIS_HASH
    for before, after in itertools.pairwise(seals):
        assert after.prev_hash == before.hash
    assert len({s.hash for s in seals}) == N
    head = ChainHead.objects.get()
    assert (head.seq, head.hash) == (N, seals[-1].hash)
    assert not queued_ids()


def test_each_digest_and_hash_is_the_documented_computation_over_the_stored_content(events: list[AuditEvent]) -> None:
    for seal in Seal.objects.select_related("event").order_by("seq"):
        event = seal.event
        assert event.canonical.encode() == canonical(event_document(event)) == rfc8785.dumps(event_document(event))
        assert event.digest == event_digest(event) == digest_of(event.canonical.encode()) and len(event.nonce) == 32
        assert seal.hash == chain_hash(seal.seq, seal.prev_hash, event.digest)
    # What audit_append hands back is what was stored, and its id is known before sealing.
    assert [(e.pk, e.digest) for e in events] == list(AuditEvent.objects.order_by("id").values_list("id", "digest"))


def test_two_identical_events_in_the_same_instant_have_distinct_ids() -> None:
    same = PendingEvent(actor=Actor.system(), action="check.allow", context={"request_id": ""})
    first, second = audit_append_many([same, same])
    assert first.occurred_at == second.occurred_at
    assert first.digest != second.digest


def test_an_event_is_recorded_at_once_and_sealed_later() -> None:
    event = audit_append(actor=Actor.system(), action="recorded")
    stored = AuditEvent.objects.select_related("seal").get(digest=event.digest)
    assert stored.seq is None and queued_ids() == [event.pk]
    result = verify_chain()
    assert (result.ok, result.checked, result.pending) == (True, 0, 1)
    sealer.seal_pending()
    assert AuditEvent.objects.select_related("seal").get(pk=event.pk).seq == 1
    assert verify_chain().pending == 0


def test_verify_accepts_a_healthy_chain_and_the_command_says_ok(events: list[AuditEvent]) -> None:
    result = verify_chain()
    assert (result.ok, result.checked, result.head_seq, result.first_bad_seq) == (True, N, N, None)
    assert f"audit chain OK: {N} events, head #{N}" in verify_command()


def test_an_empty_log_verifies() -> None:
    assert verify_chain().ok
    assert "audit chain OK: 0 events" in verify_command()


def test_a_change_rolled_back_leaves_no_event_and_no_gap(events: list[AuditEvent]) -> None:
    with transaction.atomic():
        doomed = audit_append(actor=Actor.system(), action="doomed")
        transaction.set_rollback(True)
    audit_append(actor=Actor.system(), action="kept")
    assert not AuditEvent.objects.filter(digest=doomed.digest).exists()
    assert sealer.seal_pending() == 1
    assert list(Seal.objects.order_by("seq").values_list("seq", flat=True)) == list(range(1, N + 2))
    assert verify_chain().ok


def test_a_bulk_append_is_a_constant_number_of_statements_and_seals_in_its_order() -> None:
    def statements(n: int) -> list[str]:
        batch = [PendingEvent(actor=Actor.system(), action="bulk", context={"i": i}) for i in range(n)]
        with CaptureQueriesContext(connection) as queries:
            audit_append_many(batch)
        return [q["sql"].split()[0] for q in queries if not q["sql"].startswith(("SAVEPOINT", "RELEASE SAVEPOINT"))]

    # The ids, then the events into the intake: two statements for five events or five hundred.
    assert statements(5) == statements(500) == ["SELECT", "COPY"]
    written = list(AuditEvent.objects.order_by("id"))
    assert [e.context["i"] for e in written] == [*range(5), *range(500)]
    assert sealer.seal_pending(batch=200) == 505
    sealed = Seal.objects.select_related("event").order_by("seq")
    assert [s.event.context["i"] for s in sealed] == [*range(5), *range(500)]
    assert verify_chain().ok


def test_an_empty_bulk_append_writes_nothing() -> None:
    with CaptureQueriesContext(connection) as queries:
        assert audit_append_many([]) == []
    assert len(queries) == 0


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
        pytest.param({"huge": [-(2**53)], "ok": 1}, id="an-integer-beyond-the-safe-range-alone"),
        pytest.param({"nan": float("nan"), "inf": float("inf")}, id="non-finite-floats"),
        pytest.param(
            {"text": "émoji 🚀, tab\t, nul-free, 'quotes' \"double\" \\ backslash", "": "empty key"}, id="text"
        ),
        pytest.param({"z": 1, "a": {"y": [], "b": {}}, "m": [{"k": None}]}, id="key-order-and-empties"),
    ],
)
def test_any_context_the_services_may_write_verifies(context: dict[str, Any]) -> None:
    event = audit_append(actor=Actor.system(), action="edge.case", context=context)
    sealer.seal_pending()
    result = verify_chain()
    assert result.ok and result.checked == 1, result
    # What is stored is RFC 8785 exactly, so that any outside verifier encoding the document gets the
    # same bytes: I-JSON numbers only, ECMAScript's number format.
    stored = AuditEvent.objects.get(pk=event.pk).canonical
    assert stored.encode() == rfc8785.dumps(json.loads(stored))


def test_the_event_time_is_an_aware_utc_instant(events: list[AuditEvent]) -> None:
    event = event_at(1)
    assert timezone.is_aware(event.occurred_at)
    assert abs(event.occurred_at - timezone.now()) < dt.timedelta(minutes=1)


# --- The sealer ---------------------------------------------------------------------------------------


def test_an_event_committed_late_is_sealed_after_those_already_sealed(events: list[AuditEvent]) -> None:
    # Sealed in the order events became visible: a later id sealed first is fine, the chain stays whole.
    late, _early = audit_append_many(
        [PendingEvent(actor=Actor.system(), action="late"), PendingEvent(actor=Actor.system(), action="early")]
    )
    with held_back(late):  # as if its transaction had not committed yet
        assert sealer.seal_pending() == 1
    assert sealer.seal_pending() == 1
    assert [event_at(N + 1).action, event_at(N + 2).action] == ["early", "late"]
    assert verify_chain().ok


def test_an_unsealed_event_older_than_the_bound_fails_verification(settings: Any) -> None:
    audit_append(actor=Actor.system(), action="waiting")
    assert verify_chain().ok
    settings.CUSTOS_AUDIT_MAX_SEAL_DELAY = dt.timedelta(microseconds=1)
    result = verify_chain()
    assert not result.ok and "waited longer than" in result.problem
    assert result.first_bad_event == AuditEvent.objects.get().digest


def test_an_event_that_is_neither_sealed_nor_queued_fails_verification(events: list[AuditEvent]) -> None:
    stray = audit_append(actor=Actor.system(), action="dropped")
    make_stray(stray)
    result = verify_chain()
    assert not result.ok and "neither sealed nor waiting" in result.problem
    assert result.first_bad_event == stray.digest


def test_a_missing_chain_head_is_a_failure_and_stops_the_sealer(events: list[AuditEvent]) -> None:
    # What a probe did as a database superuser: the head row deleted. Verification used to say OK.
    with bypassing_triggers() as cursor:
        cursor.execute("DELETE FROM audit_chainhead")
    result = verify_chain()
    assert not result.ok and "chain head is missing" in result.problem
    audit_append(actor=Actor.system(), action="still recorded")  # writers don't need the head
    with pytest.raises(sealer.HeadMissing, match="chain head is missing"):
        sealer.seal_pending()
    with pytest.raises(CommandError, match="BROKEN"):
        verify_command()


# --- Tampering by a superuser who bypasses the triggers -----------------------------------------------


def update_event(seq: int, assignment: str, params: list[Any] | None = None) -> None:
    with bypassing_triggers() as cursor:
        cursor.execute(
            f"UPDATE audit_auditevent SET {assignment} WHERE id = (SELECT event_id FROM audit_seal WHERE seq = %s)",
            [*(params or []), seq],
        )


def test_a_changed_context_is_detected_at_that_event(events: list[AuditEvent]) -> None:
    update_event(4, "context = jsonb_set(context, '{i}', '99')")
    assert_broken_at(4, problem="fields do not match its recorded content")


def test_a_changed_action_is_detected_at_that_event(events: list[AuditEvent]) -> None:
    update_event(2, "action = 'nothing.happened'")
    assert_broken_at(2, problem="fields do not match its recorded content")


def test_changed_recorded_content_is_detected_at_that_event(events: list[AuditEvent]) -> None:
    update_event(6, "canonical = replace(canonical, 'alice5', 'mallory')")
    assert_broken_at(6, problem="content does not match its digest")


@pytest.mark.parametrize("column", ["occurred_at", "actor_label", "actor_id", "target_id", "on_behalf_of", "nonce"])
def test_a_change_to_any_recorded_field_is_detected(events: list[AuditEvent], column: str) -> None:
    new_value = {
        "occurred_at": "occurred_at + interval '1 second'",
        "actor_label": "'mallory'",
        "actor_id": "'666'",
        "target_id": "'999'",
        "on_behalf_of": "'[]'::jsonb",
        "nonce": "'0123456789abcdef0123456789abcdef'",
    }[column]
    update_event(5, f"{column} = {new_value}")
    assert_broken_at(5, problem="fields do not match its recorded content")


def _forged(event: AuditEvent, context: dict[str, Any]) -> tuple[str, str]:
    """The canonical content and digest an event with ``context`` would have had: a consistent forgery."""
    document = {**event_document(event), "context": context}
    content = canonical(document)
    return content.decode(), digest_of(content)


def test_a_changed_event_with_recomputed_content_and_digest_no_longer_fits_its_seal(events: list[AuditEvent]) -> None:
    event = event_at(3)
    forged = {**event.context, "i": 1000}
    content, digest = _forged(event, forged)
    update_event(3, "context = %s::jsonb, canonical = %s, digest = %s", [json.dumps(forged), content, digest])
    assert_broken_at(3, problem="content does not match its hash")


def test_a_changed_event_whose_seal_was_recomputed_too_breaks_the_next_link(events: list[AuditEvent]) -> None:
    event, seal = event_at(3), Seal.objects.get(seq=3)
    forged = {**event.context, "i": 1000}
    content, digest = _forged(event, forged)
    update_event(3, "context = %s::jsonb, canonical = %s, digest = %s", [json.dumps(forged), content, digest])
    with bypassing_triggers() as cursor:
        cursor.execute("UPDATE audit_seal SET hash = %s WHERE seq = 3", [chain_hash(3, seal.prev_hash, digest)])
    assert_broken_at(4, problem="previous-hash link does not match")


def test_a_digest_changed_alone_is_detected(events: list[AuditEvent]) -> None:
    update_event(7, "digest = %s", ["0" * 64])
    assert_broken_at(7, problem="content does not match its digest")


def test_a_deleted_seal_in_the_middle_is_detected(events: list[AuditEvent]) -> None:
    with bypassing_triggers() as cursor:
        cursor.execute("DELETE FROM audit_seal WHERE seq = 5")
    result = assert_broken_at(5, problem="expected event #5 here, found #6")
    assert result.checked == 4


def test_a_deleted_event_and_its_seal_are_detected(events: list[AuditEvent]) -> None:
    victim = event_at(1)
    with bypassing_triggers() as cursor:
        cursor.execute("DELETE FROM audit_seal WHERE seq = 1")
        cursor.execute("DELETE FROM audit_auditevent WHERE id = %s", [victim.pk])
    assert_broken_at(1, problem="expected event #1 here")


def test_an_event_deleted_under_its_seal_is_detected(events: list[AuditEvent]) -> None:
    with bypassing_triggers() as cursor:
        cursor.execute("DELETE FROM audit_auditevent WHERE id = %s", [event_at(5).pk])
    assert_broken_at(5, problem="the event this seal records is missing")


def test_a_forged_event_spliced_in_by_renumbering_is_detected(events: list[AuditEvent]) -> None:
    before = Seal.objects.get(seq=4)
    forged = {
        "occurred_at": event_at(4).occurred_at + dt.timedelta(milliseconds=1),
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
    content = canonical(content_document(**forged))
    digest = digest_of(content)
    with bypassing_triggers() as cursor:
        cursor.execute(
            """INSERT INTO audit_auditevent (digest, canonical, nonce, occurred_at, actor_kind, actor_id, actor_label,
                   on_behalf_of, action, target_type, target_id, target_label, context)
               VALUES (%s, %s, '', %s, %s, %s, %s, %s::jsonb, %s, %s, %s, %s, %s::jsonb) RETURNING id""",
            [
                digest,
                content.decode(),
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
            ],
        )
        forged_id = cursor.fetchone()[0]
        # Make room at #5 (two steps, so the primary key never sees a duplicate), then splice a seal that
        # fits where it sits.
        cursor.execute("UPDATE audit_seal SET seq = seq + 1000000 WHERE seq >= 5")
        cursor.execute("UPDATE audit_seal SET seq = seq - 999999 WHERE seq > 1000000")
        cursor.execute(
            "INSERT INTO audit_seal (seq, event_id, prev_hash, hash, sealed_at) VALUES (5, %s, %s, %s, now())",
            [forged_id, before.hash, chain_hash(5, before.hash, digest)],
        )
    # The forgery itself is self-consistent; the genuine event after it no longer links to its predecessor.
    assert_broken_at(6, problem="previous-hash link does not match")


@pytest.mark.parametrize(("first", "second"), [(3, 6), (6, 7), (1, N)])
def test_reordered_events_are_detected(events: list[AuditEvent], first: int, second: int) -> None:
    with bypassing_triggers() as cursor:
        cursor.execute("UPDATE audit_seal SET seq = 1000000 WHERE seq = %s", [first])
        cursor.execute("UPDATE audit_seal SET seq = %s WHERE seq = %s", [first, second])
        cursor.execute("UPDATE audit_seal SET seq = %s WHERE seq = 1000000", [second])
    assert_broken_at(first, problem="previous-hash link does not match")


def test_a_removed_tail_is_detected_through_the_chain_head(events: list[AuditEvent]) -> None:
    with bypassing_triggers() as cursor:
        cursor.execute("DELETE FROM audit_seal WHERE seq > 5")
    result = assert_broken_at(6, problem="tail removed")
    assert (result.checked, result.head_seq) == (5, 5)


def test_events_sealed_behind_the_heads_back_are_detected(events: list[AuditEvent]) -> None:
    last = Seal.objects.get(seq=N)
    extra = audit_append(actor=Actor.system(), action="cover.up")
    with bypassing_triggers() as cursor:
        cursor.execute("DELETE FROM audit_pendingseal WHERE event_id = %s", [extra.pk])
        cursor.execute(
            "INSERT INTO audit_seal (seq, event_id, prev_hash, hash, sealed_at) VALUES (%s, %s, %s, %s, now())",
            [N + 1, extra.pk, last.hash, chain_hash(N + 1, last.hash, extra.digest)],
        )
    assert_broken_at(N + 1, problem="past the chain head")


def test_content_that_cannot_even_be_canonicalised_is_named_not_a_crash(events: list[AuditEvent]) -> None:
    # An integer beyond what RFC 8785 can encode exactly, written behind the application's back.
    update_event(3, """context = '{"i": 123456789012345678901234567890}'""")
    assert_broken_at(3, problem="fields do not match")


def test_recorded_content_that_is_not_even_json_is_named_not_a_crash(events: list[AuditEvent]) -> None:
    update_event(5, "canonical = '{not json', digest = encode(sha256('{not json'), 'hex')")
    assert_broken_at(5, problem="content does not match its hash")


# --- The application's own connection cannot rewrite history ---------------------------------------------


@pytest.fixture
def one_event(events: list[AuditEvent]) -> AuditEvent:
    # Check the seals' foreign keys now rather than at the test's (never reached) commit: PostgreSQL
    # refuses a TRUNCATE while such checks are pending, before our trigger could say why.
    with connection.cursor() as cursor:
        cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
    return event_at(3)


def refused_by_the_database(attempt: Any, verb: str) -> None:
    with pytest.raises(DatabaseError, match=f"append-only: {verb} refused"), transaction.atomic():
        attempt()


def assert_untouched(event: AuditEvent) -> None:
    # The failed statement was rolled back to its savepoint: the outer transaction still works and the
    # rows are exactly as appended and sealed.
    assert AuditEvent.objects.filter(pk=event.pk).values("action", "context", "digest").get() == {
        "action": event.action,
        "context": event.context,
        "digest": event.digest,
    }
    assert AuditEvent.objects.count() == N and Seal.objects.count() == N
    assert verify_chain().ok


def raw(sql: str) -> Any:
    def run() -> None:
        with connection.cursor() as cursor:
            cursor.execute(sql)

    return run


@pytest.mark.parametrize(
    ("sql", "verb"),
    [
        (
            "UPDATE audit_auditevent SET action = 'rewritten' WHERE id = (SELECT event_id FROM audit_seal WHERE seq = 3)",
            "UPDATE",
        ),
        ("UPDATE audit_auditevent SET context = '{}'::jsonb", "UPDATE"),
        ("DELETE FROM audit_auditevent WHERE id = (SELECT event_id FROM audit_seal WHERE seq = 3)", "DELETE"),
        ("TRUNCATE audit_auditevent CASCADE", "TRUNCATE"),
        ("UPDATE audit_seal SET hash = 'x' WHERE seq = 3", "UPDATE"),
        ("DELETE FROM audit_seal WHERE seq > 5", "DELETE"),
        ("DELETE FROM audit_seal", "DELETE"),
        ("TRUNCATE audit_seal", "TRUNCATE"),
    ],
)
def test_raw_sql_through_the_applications_connection_is_refused(one_event: AuditEvent, sql: str, verb: str) -> None:
    refused_by_the_database(raw(sql), verb)
    assert_untouched(one_event)


def test_the_orm_cannot_update_or_delete_events_or_seals(one_event: AuditEvent) -> None:
    refused_by_the_database(lambda: AuditEvent.objects.filter(pk=one_event.pk).update(action="rewritten"), "UPDATE")
    refused_by_the_database(lambda: Seal.objects.filter(seq=3).update(prev_hash="x"), "UPDATE")
    refused_by_the_database(lambda: Seal.objects.filter(seq__gte=1).delete(), "DELETE")

    def resave() -> None:
        event = AuditEvent.objects.get(pk=one_event.pk)
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
    sealed = manage("audit_seal", "--once")
    assert sealed.returncode == 0 and "sealed 5 events" in sealed.stdout, sealed.stderr

    healthy = manage("audit_verify")
    assert healthy.returncode == 0, healthy.stderr
    assert "audit chain OK: 5 events, head #5" in healthy.stdout

    # The application's own (autocommit) connection is refused as well ...
    with pytest.raises(DatabaseError, match="append-only"), connection.cursor() as cursor:
        cursor.execute("DELETE FROM audit_seal WHERE seq = 3")
    assert verify_chain().ok
    # ... whereas a superuser on another connection can tamper and commit, and is caught.
    with superuser_connection() as conn:
        conn.execute("DELETE FROM audit_seal WHERE seq = 3")

    broken = manage("audit_verify")
    assert broken.returncode == 1, broken.stdout
    assert "BROKEN at event #3" in broken.stderr
    assert "expected event #3 here, found #4" in broken.stderr
    assert "OK" not in broken.stdout


@pytest.mark.django_db(transaction=True)
def test_a_long_log_is_verified_in_pieces_at_once_each_in_its_own_connection(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(verification, "CHUNK", 4)
    monkeypatch.setattr(verification, "WORKERS", 3)
    append_events(14)
    assert sealer.seal_pending() == 14
    threads: set[str] = set()
    check = verification._check_piece

    def noted(piece: Any) -> Any:
        import threading

        threads.add(threading.current_thread().name)
        return check(piece)

    monkeypatch.setattr(verification, "_check_piece", noted)
    result = verify_chain()
    assert result.ok and result.checked == 14 and result.head_seq == 14
    assert len(threads) > 1 and all(name.startswith("audit-verify") for name in threads)
    with superuser_connection() as tamper:
        for seq, assignment in ((10, "action = 'nothing.happened'"), (7, "actor_label = 'mallory'")):
            tamper.execute(
                f"UPDATE audit_auditevent SET {assignment} WHERE id = (SELECT event_id FROM audit_seal WHERE seq = %s)",
                [seq],
            )
    result = verify_chain()
    assert (result.ok, result.first_bad_seq, result.checked) == (False, 7, 6)
    assert result.problem == f"the event's fields do not match its recorded content; and {verification.COLUMNS_PROBLEM}"
    assert result.columns == "compared"
