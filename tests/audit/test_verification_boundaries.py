"""Database verification (audit/verification.py) at each of its edges: every result is held whole (ok,
how many checked, how far good, the first bad event, the exact problem, what is pending, where it started,
how many checkpoints), so that a check moved by one, a text changed or a count off is seen.

Tampering goes through ``tests.audit.support`` as a database superuser; the constraint tying events'
columns to their content is put back and validated after it where the rows allow, so these results say
``columns="constraint"`` unless a column was changed."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import time_machine
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from audit import checkpoints, sealer, verification
from audit.hashing import chain_hash
from audit.models import GENESIS_HASH, AuditEvent, ChainHead, Seal
from audit.services import VERIFY_ACTION, Actor, audit_append
from audit.verification import COLUMNS_PROBLEM, RecordedVerification, VerifyResult, verify_chain
from tests.audit.support import UNQUEUE_SQL, bypassing_triggers, use_checkpoint_directory

pytestmark = pytest.mark.django_db

N = 8


@pytest.fixture(autouse=True)
def directory(settings: Any, tmp_path: Path) -> Path:
    return use_checkpoint_directory(settings, tmp_path)


def grow(n: int) -> list[AuditEvent]:
    made = [audit_append(actor=Actor.system(), action="thing.happened", context={"i": i}) for i in range(n)]
    sealer.seal_pending()
    return made


@pytest.fixture
def log() -> list[AuditEvent]:
    return grow(N)


def good(checked: int, head: int, **more: Any) -> VerifyResult:
    return VerifyResult(True, checked, head, columns="constraint", **more)


def bad(checked: int, head: int, seq: int | None, problem: str, **more: Any) -> VerifyResult:
    return VerifyResult(False, checked, head, seq, problem, columns=more.pop("columns", "constraint"), **more)


def tamper(*statements: tuple[str, list[Any]]) -> None:
    with bypassing_triggers() as cursor:
        for sql, params in statements:
            cursor.execute(sql, params)


def hash_at(seq: int) -> str:
    return Seal.objects.get(seq=seq).hash


# --- A sound log ----------------------------------------------------------------------------------------


def test_an_empty_log_is_sound_with_nothing_checked() -> None:
    assert verify_chain() == good(0, 0)
    assert verify_chain(full=False) == good(0, 0)


def test_a_sound_log_is_checked_whole_and_counts_what_waits(log: list[AuditEvent]) -> None:
    audit_append(actor=Actor.system(), action="waiting")
    audit_append(actor=Actor.system(), action="waiting")
    assert verify_chain() == good(N, N, pending=2)


def test_elsewhere_than_postgresql_a_sound_log_is_verified_with_every_column_compared(
    log: list[AuditEvent], monkeypatch: pytest.MonkeyPatch
) -> None:
    # What SQLite (``make run``) takes: no constraint to vouch for the columns, the portable walk compares
    # them, and that is no problem there (the vendor decides; the ORM still runs here).
    monkeypatch.setattr(connection, "vendor", "sqlite")
    assert verify_chain() == VerifyResult(True, N, N, columns="compared")


def test_a_result_as_the_api_shows_it() -> None:
    result = VerifyResult(False, 3, 4, 5, "why", pending=6, first_bad_event="ab", verified_from=7, checkpoints=8)
    assert result.as_dict() == {
        "ok": False,
        "checked": 3,
        "head_seq": 4,
        "first_bad_seq": 5,
        "first_bad_event": "ab",
        "problem": "why",
        "pending": 6,
        "verified_from": 7,
        "checkpoints": 8,
    }
    assert VerifyResult(True, 0, 0).as_dict()["first_bad_event"] is None


# --- The head and the end of the chain ------------------------------------------------------------------


def test_a_missing_chain_head_is_the_first_problem(log: list[AuditEvent]) -> None:
    tamper(("DELETE FROM audit_chainhead", []))
    assert verify_chain() == bad(0, 0, 1, "the chain head is missing (a database superuser deleted it?)")


def test_a_removed_tail_is_named_at_the_first_missing_event(log: list[AuditEvent]) -> None:
    tamper(("DELETE FROM audit_seal WHERE seq > 5", []))
    problem = f"the chain head records event #{N} but the log ends at #5 (tail removed?)"
    assert verify_chain() == bad(5, 5, 6, problem)


def test_a_head_at_another_hash_names_the_last_event(log: list[AuditEvent]) -> None:
    tamper(("UPDATE audit_chainhead SET hash = %s", ["f" * 64]))
    assert verify_chain() == bad(N, N, N, "the last event is not the one the chain head records (replaced?)")


def test_seals_past_the_head_are_named_at_the_first_beyond(log: list[AuditEvent]) -> None:
    grow(2)
    tamper(("UPDATE audit_chainhead SET seq = %s, hash = %s", [N, hash_at(N)]))  # the head put back
    assert verify_chain() == bad(N, N, N + 1, f"events up to #{N + 2} lie past the chain head at #{N}")


def test_seals_added_since_the_head_was_read_are_left_for_the_next_run(log: list[AuditEvent]) -> None:
    head = ChainHead.objects.get()
    grow(2)
    verification._nothing_past(head)  # the head moved with them: nothing to say
    tamper(("UPDATE audit_chainhead SET seq = %s, hash = %s", [N + 1, hash_at(N + 1)]))  # moved, not far enough
    with pytest.raises(verification._Broken) as broken:
        verification._nothing_past(head)
    assert (broken.value.seq, broken.value.problem) == (
        N + 2,
        f"events up to #{N + 2} lie past the chain head at #{N + 1}",
    )
    tamper(("DELETE FROM audit_chainhead", []))
    with pytest.raises(verification._Broken) as broken:
        verification._nothing_past(head)
    problem = f"events up to #{N + 2} lie past the chain head at #{N}"
    assert (broken.value.seq, broken.value.problem, str(broken.value)) == (N + 1, problem, problem)


# --- Events outside the chain ---------------------------------------------------------------------------


def test_an_event_neither_sealed_nor_queued_is_named_by_its_digest(log: list[AuditEvent]) -> None:
    stray = audit_append(actor=Actor.system(), action="dropped")
    audit_append(actor=Actor.system(), action="queued")
    tamper((UNQUEUE_SQL, [stray.pk, stray.pk]))
    problem = "an event is neither sealed nor waiting to be (its queue entry removed?)"
    assert verify_chain() == bad(N, N, None, problem, first_bad_event=stray.digest)


@pytest.fixture
def uncommitted_stray() -> AuditEvent:
    """The only event, its queue entry removed in this test's own transaction, leaving no lock another
    connection would wait on (``tamper``'s dropped constraint would). The test itself only verifies: of the
    tests a mutant reaches, mutmut runs the fastest first, and this one must fail before any hangs."""
    stray = audit_append(actor=Actor.system(), action="dropped")
    with connection.cursor() as cursor:
        cursor.execute("SET LOCAL session_replication_role = replica")
        cursor.execute(UNQUEUE_SQL, [stray.pk, stray.pk])
        cursor.execute("SET LOCAL session_replication_role = origin")
    return stray


def test_a_walk_not_split_searches_for_strays_in_the_callers_connection(uncommitted_stray: AuditEvent) -> None:
    problem = "an event is neither sealed nor waiting to be (its queue entry removed?)"
    assert verify_chain() == bad(0, 0, None, problem, first_bad_event=uncommitted_stray.digest)


def test_incrementally_a_stray_event_before_the_checkpoint_is_left_to_the_full_run(log: list[AuditEvent]) -> None:
    stray = audit_append(actor=Actor.system(), action="dropped")
    tamper((UNQUEUE_SQL, [stray.pk, stray.pk]))
    grow(2)
    checkpoints.checkpoint_now()
    assert verify_chain(full=False) == good(0, N + 2, verified_from=N + 2, checkpoints=2)
    problem = "an event is neither sealed nor waiting to be (its queue entry removed?)"
    assert verify_chain() == bad(N + 2, N + 2, None, problem, first_bad_event=stray.digest)


@pytest.mark.parametrize("vendor", ["postgresql", "sqlite"])
def test_the_stray_search_from_a_checkpoint_looks_only_past_its_event(
    vendor: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    def as_vendor(call: Any, *args: Any) -> Any:
        # Elsewhere than PostgreSQL the search is the ORM's, and events wait in the queue, not an intake
        # (the vendor decides; the ORM still runs here).
        with monkeypatch.context() as patched:
            patched.setattr(connection, "vendor", vendor)
            return call(*args)

    def stray_from(since_seq: int) -> str | None:
        return as_vendor(verification._stray, since_seq)

    def append(action: str) -> AuditEvent:
        return as_vendor(lambda: audit_append(actor=Actor.system(), action=action))

    stray = append("dropped")
    tamper((UNQUEUE_SQL, [stray.pk, stray.pk]))
    grow(2)
    append("queued")  # unsealed, but waiting: not a stray
    assert stray_from(0) == stray.digest
    assert stray_from(1) is None  # #1's event came after the stray one
    later = append("dropped later")
    tamper((UNQUEUE_SQL, [later.pk, later.pk]))
    assert stray_from(2) == later.digest
    assert stray_from(5) == stray.digest  # no seal #5: from the first event
    append("queued")
    assert stray_from(2) == later.digest  # the first stray past #2's event, not the newest event


def test_the_whole_log_stray_search_plans_for_itself_and_puts_the_callers_settings_back(log: Any) -> None:
    with connection.cursor() as cursor:
        cursor.execute("SET LOCAL max_parallel_workers_per_gather = 1")
        cursor.execute("SET LOCAL enable_hashjoin = on")
    with CaptureQueriesContext(connection) as whole:
        assert verification._stray(0) is None
    with CaptureQueriesContext(connection) as recent:
        assert verification._stray(3) is None
    with CaptureQueriesContext(connection) as unanchored:  # no seal #N+1: the whole log, planned as such
        assert verification._stray(N + 1) is None
    settings = [q["sql"] for q in whole.captured_queries if "set_config" in q["sql"]]
    assert len(settings) == 6 and not any("set_config" in q["sql"] for q in recent.captured_queries)
    assert [q["sql"] for q in unanchored.captured_queries if "set_config" in q["sql"]] == settings
    for name, value in verification._WHOLE_LOG_PLAN.items():
        assert sum(f"'{name}', '{value}', true" in sql for sql in settings) == 1
    assert sum("'max_parallel_workers_per_gather', '1', true" in sql for sql in settings) == 1
    assert sum("'enable_hashjoin', 'on', true" in sql for sql in settings) == 1
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT current_setting('enable_hashjoin'), current_setting('enable_nestloop'), "
            "current_setting('max_parallel_workers_per_gather')"
        )
        assert cursor.fetchone() == ("on", "on", "1")


def test_a_setting_set_locally_returns_what_it_was() -> None:
    with connection.cursor() as cursor:
        cursor.execute("SET LOCAL work_mem = '5MB'")
        assert verification._set_locally(cursor, "work_mem", "7MB") == "5MB"
        assert verification._set_locally(cursor, "work_mem", "5MB") == "7MB"


def test_an_event_waiting_longer_than_the_bound_is_named_the_oldest_first(log: Any, settings: Any) -> None:
    settings.CUSTOS_AUDIT_MAX_SEAL_DELAY = dt.timedelta(seconds=60)
    now = timezone.now()

    def waiting(action: str, ago: float) -> AuditEvent:
        with time_machine.travel(now - dt.timedelta(seconds=ago), tick=False):
            return audit_append(actor=Actor.system(), action=action)

    first, second = waiting("waiting", 50), waiting("waiting longer", 55)
    with time_machine.travel(now, tick=False):
        assert verify_chain() == good(N, N, pending=2)
    third = waiting("waiting longest", 70)
    problem = "an event has waited longer than 60 s to be sealed (is the sealer running?)"
    with time_machine.travel(now, tick=False):
        assert verify_chain() == bad(N, N, None, problem, first_bad_event=third.digest)
    assert first.pk < second.pk < third.pk  # the oldest by its time, not the first by id


def test_an_event_waiting_exactly_the_bound_is_still_in_time(log: Any, settings: Any, monkeypatch: Any) -> None:
    settings.CUSTOS_AUDIT_MAX_SEAL_DELAY = dt.timedelta(seconds=60)
    now = timezone.now()
    monkeypatch.setattr(verification, "timezone", SimpleNamespace(now=lambda: now))
    with time_machine.travel(now - dt.timedelta(seconds=60), tick=False):
        in_time = audit_append(actor=Actor.system(), action="waiting")
    assert verify_chain() == good(N, N, pending=1)
    with time_machine.travel(now - dt.timedelta(seconds=60, microseconds=1), tick=False):
        late = audit_append(actor=Actor.system(), action="waiting")
    assert verify_chain().first_bad_event == late.digest != in_time.digest


# --- The walk -------------------------------------------------------------------------------------------


@pytest.fixture(params=["one pass", "pieces", "python"])
def walker(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    if request.param == "python":
        monkeypatch.setattr(verification, "_walk_in_postgresql", verification._walk_in_python)
        monkeypatch.setattr(verification, "BATCH", 3)  # several batches
    if request.param == "pieces":
        monkeypatch.setattr(verification, "CHUNK", 3)
        monkeypatch.setattr(verification, "WORKERS", 1)
    return str(request.param)


def test_every_walk_checks_the_whole_chain(walker: str, log: list[AuditEvent]) -> None:
    assert verify_chain() == good(N, N)


@pytest.mark.parametrize(("deleted", "expected"), [(1, 1), (4, 4), (5, 5), (N, N)])
def test_every_walk_names_a_missing_seal_as_the_one_expected(
    walker: str, log: list[AuditEvent], deleted: int, expected: int
) -> None:
    tamper(("DELETE FROM audit_seal WHERE seq = %s", [deleted]))
    if deleted == N:
        problem = f"the chain head records event #{N} but the log ends at #{N - 1} (tail removed?)"
    else:
        problem = f"expected event #{expected} here, found #{expected + 1}"
    assert verify_chain() == bad(expected - 1, expected - 1, expected, problem)


@pytest.mark.parametrize(
    ("statement", "problem"),
    [
        ("UPDATE audit_seal SET prev_hash = %s WHERE seq = 6", "previous-hash link does not match the event before it"),
        ("UPDATE audit_seal SET hash = %s WHERE seq = 6", "content does not match its hash"),
        (
            "UPDATE audit_auditevent SET digest = %s WHERE id = (SELECT event_id FROM audit_seal WHERE seq = 6)",
            "content does not match its digest",
        ),
        (
            "DELETE FROM audit_auditevent WHERE id = (SELECT event_id FROM audit_seal WHERE seq = 6) AND %s <> ''",
            "the event this seal records is missing (deleted?)",
        ),
    ],
    ids=["link", "hash", "digest", "missing"],
)
def test_every_walk_names_each_problem_at_its_event(
    walker: str, log: list[AuditEvent], statement: str, problem: str
) -> None:
    tamper((statement, ["0" * 64]))
    assert verify_chain() == bad(5, 5, 6, problem)


def test_every_walk_from_a_checkpoint_counts_from_it(walker: str, log: list[AuditEvent]) -> None:
    checkpoints.checkpoint_now()
    grow(4)
    assert verify_chain(full=False) == good(4, N + 4, verified_from=N, checkpoints=2)
    tamper(("UPDATE audit_seal SET prev_hash = %s WHERE seq = %s", ["0" * 64, N + 3]))
    problem = "previous-hash link does not match the event before it"
    assert verify_chain(full=False) == bad(2, N + 2, N + 3, problem)
    tamper(("DELETE FROM audit_seal WHERE seq = %s", [N + 2]))
    assert verify_chain(full=False) == bad(1, N + 1, N + 2, f"expected event #{N + 2} here, found #{N + 3}")


# Not the portable walk: it asks for the range's first batch and returns on finding it empty, so a mutant
# that returns on a full batch instead loops forever here (a timeout), where other tests fail on it.
@pytest.mark.parametrize("walker", ["one pass", "pieces"], indirect=True)
def test_every_walk_of_an_empty_range_checks_nothing_and_ends_where_it_started(
    walker: str, log: list[AuditEvent]
) -> None:
    progress = verification._Progress(last_seq=N)
    assert verification._walk(progress, "the hash it started from", N, compare_columns=True) == (
        "the hash it started from"
    )
    assert progress == verification._Progress(checked=0, last_seq=N)


def test_every_walk_names_content_that_is_not_json(walker: str, log: list[AuditEvent]) -> None:
    # Content, digest and seal made to fit: PostgreSQL cannot parse it to compare the columns, Python names it.
    text = "{not json"
    digest = verification.digest_of(text.encode())
    seal = Seal.objects.get(seq=4)
    tamper(
        ("UPDATE audit_auditevent SET canonical = %s, digest = %s WHERE id = %s", [text, digest, seal.event_id]),
        ("UPDATE audit_seal SET hash = %s WHERE seq = 4", [chain_hash(4, seal.prev_hash, digest)]),
        ("UPDATE audit_seal SET prev_hash = %s WHERE seq = 5", [chain_hash(4, seal.prev_hash, digest)]),
    )
    problem = f"its recorded content is not JSON; and {COLUMNS_PROBLEM}"
    assert verify_chain() == bad(3, 3, 4, problem, columns="compared")


def test_the_portable_walk_reads_only_each_batchs_own_events(log: list[AuditEvent], monkeypatch: Any) -> None:
    # Batch after batch, never the whole log: what it reads stays proportional to the batch.
    monkeypatch.setattr(verification, "BATCH", 3)
    with CaptureQueriesContext(connection) as walked:
        assert verification._walk_in_python(verification._Progress(), GENESIS_HASH, N) == hash_at(N)
    reads = [q["sql"] for q in walked.captured_queries if 'FROM "audit_auditevent"' in q["sql"]]
    ids = [e.pk for e in log]
    batches = (ids[0:3], ids[3:6], ids[6:8])
    assert len(reads) == 3
    for sql, batch in zip(reads, batches, strict=True):
        assert f' WHERE "audit_auditevent"."id" IN ({", ".join(map(str, batch))}) ' in sql, sql


def test_the_walk_compares_no_column_while_the_constraint_vouches_for_them(log: list[AuditEvent]) -> None:
    def comparing(queries: CaptureQueriesContext) -> list[bool]:
        return ["THEN 'fields'" in q["sql"] for q in queries.captured_queries if "prev_chain" in q["sql"]]

    with CaptureQueriesContext(connection) as vouched:
        assert verify_chain() == good(N, N)
    with CaptureQueriesContext(connection) as asked:
        assert verification._check_piece(verification._Piece(0, GENESIS_HASH, N, compare_columns=True)) is None
    assert (comparing(vouched), comparing(asked)) == ([False], [True])


# --- Pieces ---------------------------------------------------------------------------------------------


def test_a_long_range_is_cut_every_chunk_from_the_hashes_in_the_log(
    log: list[AuditEvent], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(verification, "CHUNK", 3)
    piece = verification._Piece
    assert verification._pieces(0, GENESIS_HASH, 8, True) == [
        piece(0, GENESIS_HASH, 3, True),
        piece(3, hash_at(3), 6, True),
        piece(6, hash_at(6), 8, True),
    ]
    assert verification._pieces(2, "x", 7, False) == [piece(2, "x", 5, False), piece(5, hash_at(5), 7, False)]
    assert verification._pieces(2, "x", 5, False) == [piece(2, "x", 5, False)]
    assert verification._pieces(0, "x", 3, True) == [piece(0, "x", 3, True)]
    tamper(("DELETE FROM audit_seal WHERE seq = 6", []))
    assert verification._pieces(0, "x", 8, True) == [piece(0, "x", 8, True)]


def test_a_walk_is_split_only_past_a_chunk_with_more_than_one_worker(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(verification, "CHUNK", 3)
    monkeypatch.setattr(verification, "WORKERS", 2)
    assert [verification._walk_is_split(start, head) for start, head in ((0, 3), (0, 4), (2, 6), (2, 5))] == [
        False,
        True,
        True,
        False,
    ]
    monkeypatch.setattr(verification, "WORKERS", 1)
    assert verification._walk_is_split(0, 100) is False


@pytest.fixture
def uncommitted_bad_link() -> None:
    """Three events, #3's link broken in this test's own transaction, by a statement that leaves no lock
    another connection would wait on (``tamper``'s dropped constraint would): another connection sees a
    log with nothing wrong in it, indeed nothing at all."""
    grow(3)
    with connection.cursor() as cursor:
        cursor.execute("SET LOCAL session_replication_role = replica")
        cursor.execute("UPDATE audit_seal SET prev_hash = %s WHERE seq = 3", ["0" * 64])
        cursor.execute("SET LOCAL session_replication_role = origin")


@pytest.mark.parametrize(("workers", "chunk"), [(2, 50), (1, 2)], ids=["one piece", "one worker"])
def test_a_walk_needing_no_other_connection_runs_in_the_callers_and_sees_its_transaction(
    uncommitted_bad_link: None, monkeypatch: pytest.MonkeyPatch, workers: int, chunk: int
) -> None:
    # One piece, or pieces (here two) with one worker: no thread, the caller's connection and transaction.
    monkeypatch.setattr(verification, "WORKERS", workers)
    monkeypatch.setattr(verification, "CHUNK", chunk)
    progress = verification._Progress()
    with pytest.raises(verification._Broken) as broken:
        verification._walk_in_postgresql(progress, GENESIS_HASH, 3, True)
    problem = "previous-hash link does not match the event before it"
    assert (broken.value.seq, broken.value.problem, progress.checked, progress.last_seq) == (3, problem, 2, 2)


# --- Checkpoints ----------------------------------------------------------------------------------------


def test_each_checkpoint_is_held_to_in_full_and_the_latest_incrementally(log: list[AuditEvent]) -> None:
    checkpoints.checkpoint_now()
    grow(3)
    checkpoints.checkpoint_now()
    grow(1)
    assert verify_chain() == good(N + 4, N + 4, checkpoints=4)
    assert verify_chain(full=False) == good(1, N + 4, verified_from=N + 3, checkpoints=2)


def test_incrementally_only_the_latest_checkpoint_is_read_from_the_database(log: list[AuditEvent]) -> None:
    # However many were signed, the API's verification reads one row of them: it stays proportional.
    checkpoints.checkpoint_now()
    grow(3)
    checkpoints.checkpoint_now()
    with CaptureQueriesContext(connection) as ran:
        assert verify_chain(full=False) == good(0, N + 3, verified_from=N + 3, checkpoints=2)
    reads = [q["sql"] for q in ran.captured_queries if 'FROM "audit_checkpoint"' in q["sql"]]
    assert len(reads) == 1 and reads[0].endswith(' ORDER BY "audit_checkpoint"."seq" DESC LIMIT 1'), reads


def test_incrementally_the_later_of_the_directorys_and_the_databases_latest_is_the_anchor(
    log: list[AuditEvent], directory: Path
) -> None:
    checkpoints.checkpoint_now()
    grow(3)
    checkpoints.checkpoint_now()
    (directory / f"{N + 3:015d}{checkpoints.FILE_SUFFIX}").unlink()  # the directory's latest is #N
    grow(1)
    assert verify_chain(full=False) == good(1, N + 4, verified_from=N + 3, checkpoints=2)


def test_a_checkpoint_is_an_anchor_only_at_its_own_seq(log: list[AuditEvent]) -> None:
    # Signed over #5's hash but naming #3: no anchor (from the first event), and #3 is named.
    checkpoints._write_file(checkpoints._sign(3, hash_at(5), timezone.now()))
    problem = "event #3 is not the one checkpoint #3 signed (rewritten?)"
    assert verify_chain(full=False) == bad(N, N, 3, problem)


def test_an_unreadable_checkpoint_file_is_named(log: list[AuditEvent], directory: Path) -> None:
    checkpoints.checkpoint_now()
    (directory / f"zz{checkpoints.FILE_SUFFIX}").write_text("{}")
    problem = f"the checkpoint file zz{checkpoints.FILE_SUFFIX} cannot be read"
    assert verify_chain() == bad(0, 0, None, problem)


def test_a_checkpoint_of_another_log_is_named(log: list[AuditEvent], settings: Any) -> None:
    checkpoints.checkpoint_now()
    issuer = settings.CUSTOS_ISSUER
    settings.CUSTOS_ISSUER = "https://elsewhere.example"  # the copy in the directory names the old one
    assert verify_chain() == bad(0, 0, N, f"checkpoint #{N} cannot be believed: it is of another log ({issuer})")


def test_a_checkpoint_past_the_end_of_the_log_names_truncation(log: list[AuditEvent], directory: Path) -> None:
    checkpoint = checkpoints.checkpoint_now()
    assert checkpoint is not None
    tamper(
        ("DELETE FROM audit_seal WHERE seq > 5", []),
        ("UPDATE audit_chainhead SET seq = 5, hash = %s", [hash_at(5)]),
        ("DELETE FROM audit_checkpoint", []),
    )
    signed_at = checkpoints.Signed.from_json(
        json.loads(next(directory.glob(f"*{checkpoints.FILE_SUFFIX}")).read_text())
    ).signed_at
    problem = f"the log ends at #5 but checkpoint #{N}, signed {signed_at}, says it reached #{N} (truncated?)"
    assert verify_chain() == bad(5, 5, 6, problem)
    assert verify_chain(full=False) == bad(5, 5, 6, problem)


def test_an_event_other_than_the_one_a_checkpoint_signed_is_named(log: list[AuditEvent], directory: Path) -> None:
    # Genuine checkpoints of another chain in the directory (the log rewritten since, consistently):
    # the one with the lowest seq that disagrees is named, in full and incrementally.
    checkpoints.checkpoint_now()
    for seq in (3, 6):
        checkpoints._write_file(checkpoints._sign(seq, "ab" * 32, timezone.now()))
    full = verify_chain()
    assert full == bad(N, N, 3, "event #3 is not the one checkpoint #3 signed (rewritten?)")
    incremental = verify_chain(full=False)  # held to the latest, #N, which agrees
    assert incremental == good(0, N, verified_from=N, checkpoints=2)
    (directory / f"{N:015d}{checkpoints.FILE_SUFFIX}").unlink()
    checkpoints._write_file(checkpoints._sign(N, "cd" * 32, timezone.now()))
    problem = f"event #{N} is not the one checkpoint #{N} signed (rewritten?)"
    # Anchored at the database's copy of #N, which agrees: nothing walked, the directory's copy names it.
    assert verify_chain(full=False) == bad(0, N, N, problem)


# --- Recorded verifications -----------------------------------------------------------------------------


at = dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=dt.UTC)


def recorded(context: Any) -> RecordedVerification:
    event = AuditEvent(occurred_at=at, actor_label="auditor", actor_kind="user", action=VERIFY_ACTION, context=context)
    return RecordedVerification.of(event)


def test_a_recorded_verification_reads_back_as_it_was_recorded() -> None:
    found = recorded(
        {
            "ok": True,
            "checked": 5,
            "head_seq": 6,
            "first_bad_seq": 7,
            "first_bad_event": "ab",
            "problem": "why",
            "full": True,
        }
    )
    assert (found.by, found.actor_kind, found.ok, found.checked, found.head_seq) == ("auditor", "user", True, 5, 6)
    assert (found.first_bad_seq, found.first_bad_event, found.problem, found.full) == (7, "ab", "why", True)
    assert found.at == at


@pytest.mark.parametrize(
    "context",
    [
        {"ok": 1, "checked": True, "head_seq": 2.0, "first_bad_seq": "3", "first_bad_event": 4, "full": "yes"},
        {"problem": None},
        [],
        None,
    ],
)
def test_a_recorded_verification_of_unexpected_shape_reads_as_nothing_found(context: Any) -> None:
    found = recorded(context)
    assert (found.ok, found.checked, found.head_seq, found.first_bad_seq) == (False, 0, 0, None)
    assert (found.first_bad_event, found.problem, found.full) == (None, "", False)


def test_the_last_recorded_verification_is_the_latest() -> None:
    assert verification.last_recorded() is None
    for n in (1, 2):
        audit_append(actor=Actor.system(), action=VERIFY_ACTION, context={"checked": n})
        audit_append(actor=Actor.system(), action="thing.happened", context={"checked": 10 + n})
    last = verification.last_recorded()
    assert last is not None and last.checked == 2
