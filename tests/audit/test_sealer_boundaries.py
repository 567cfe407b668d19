"""The sealer (audit/sealer.py) at each of its edges: what a batch seals, in which order, from which head,
how long its oldest event waited, what it refuses; and the long-running loop's turns.

Both implementations of a batch run here on PostgreSQL: the database function ``audit_seal_batch`` (what
PostgreSQL uses) and the ORM's ``_seal_batch_portable`` (what SQLite uses). Given the same pending events
they must make the same chain, seal for seal: each is the other's check.

The loop (``sealer.run``) runs in the test's thread with a clock of the test's own (``Clock``: its sleeps
are recorded and pass at once, and may act or stop the loop), so each turn is seen exactly; it closes
the connection when it stops, so those tests commit (``transaction=True``)."""

from __future__ import annotations

import datetime as dt
import logging
import os
import threading
from collections.abc import Callable, Iterator
from typing import Any

import psycopg
import pytest
import time_machine
from django.db import connection, transaction
from django.utils import timezone

from audit import checkpoints, sealer
from audit.hashing import chain_hash
from audit.models import GENESIS_HASH, AuditEvent, ChainHead, Checkpoint, Seal
from audit.services import Actor, audit_append
from tests.audit.support import bypassing_triggers, db_url, queued_ids, use_checkpoint_directory

pytestmark = pytest.mark.django_db

MISSING = "the audit chain head is missing: sealing stopped (see docs/operations.md)"


def append(n: int) -> list[AuditEvent]:
    return [audit_append(actor=Actor.system(), action="thing.happened", context={"i": i}) for i in range(n)]


def chain() -> list[tuple[int, int, str, str]]:
    return list(Seal.objects.order_by("seq").values_list("seq", "event_id", "prev_hash", "hash"))


def head() -> tuple[int, str]:
    found = ChainHead.objects.get(pk=1)
    return found.seq, found.hash


def expected_chain(events: list[AuditEvent], seq: int = 0, prev: str = GENESIS_HASH) -> list[tuple[int, int, str, str]]:
    """The chain ``audit.hashing.chain_hash`` makes of ``events`` in id order, after ``seq`` at ``prev``."""
    made = []
    for event in sorted(events, key=lambda e: e.pk):
        seq += 1
        sealed = chain_hash(seq, prev, event.digest)
        made.append((seq, event.pk, prev, sealed))
        prev = sealed
    return made


@pytest.fixture
def other_sealer() -> Iterator[psycopg.Connection[Any]]:
    """Another session holding the sealer's advisory lock, as a second sealer process would."""
    with psycopg.connect(db_url(), autocommit=True) as conn:
        conn.execute("SELECT pg_advisory_lock(%s)", [sealer.LOCK_KEY])
        yield conn


# --- One batch, each implementation ---------------------------------------------------------------------

BATCHES = {"database function": sealer.seal_batch, "portable": sealer._seal_batch_portable}


def seal_with(name: str, batch: int) -> sealer.Sealed:
    return sealer.seal_batch(batch=batch) if name == "database function" else sealer._seal_batch_portable(batch)


class Undone(Exception):
    pass


def test_both_implementations_make_the_same_chain_from_a_head_past_genesis() -> None:
    first = append(2)
    sealed = sealer.seal_batch(batch=10)
    assert (sealed.count, sealed.head_seq) == (2, 2)
    rest = append(7)
    made: dict[str, tuple[list[Any], list[Any], tuple[int, str]]] = {}
    for name in BATCHES:
        with pytest.raises(Undone), transaction.atomic():  # each from the same queue and head
            counts = [(s.count, s.head_seq) for s in (seal_with(name, 3), seal_with(name, 3), seal_with(name, 3))]
            made[name] = (counts, chain(), head())
            assert not queued_ids()
            raise Undone
    assert len(queued_ids()) == 7 and head()[0] == 2
    whole = expected_chain(first) + expected_chain(rest, *head())
    last_seq, last_hash = whole[-1][0], whole[-1][3]
    assert made["portable"] == made["database function"] == ([(3, 5), (3, 8), (1, 9)], whole, (last_seq, last_hash))


@pytest.mark.parametrize("name", BATCHES)
def test_a_batch_takes_the_oldest_ids_first_and_leaves_the_rest_queued(name: str) -> None:
    events = append(5)
    sealed = seal_with(name, 2)
    assert (sealed.count, sealed.head_seq) == (2, 2)
    assert chain() == expected_chain(events[:2])
    assert queued_ids() == [e.pk for e in events[2:]]
    sealed_at = Seal.objects.values_list("sealed_at", flat=True)
    assert set(sealed_at) == {ChainHead.objects.get().sealed_at}


@pytest.mark.parametrize("name", BATCHES)
def test_nothing_pending_seals_nothing_and_reports_the_head(name: str) -> None:
    append(3)
    sealer.seal_pending()
    assert seal_with(name, 5) == sealer.Sealed(0, 3, 0.0)
    assert head() == (3, chain()[-1][3])


@pytest.mark.parametrize("name", BATCHES)
def test_a_batch_reports_how_long_its_oldest_event_waited(name: str) -> None:
    now = timezone.now()
    for ago in (10, 30, 20):  # the oldest in the middle: not the first id
        with time_machine.travel(now - dt.timedelta(seconds=ago), tick=False):
            append(1)
    sealed = seal_with(name, 5)
    elapsed = (timezone.now() - now).total_seconds()
    assert sealed.count == 3 and 30 <= sealed.oldest_waited <= 30 + elapsed + 1


@pytest.mark.parametrize("name", BATCHES)
def test_a_missing_chain_head_is_refused_and_nothing_is_taken(name: str) -> None:
    append(2)
    with bypassing_triggers() as cursor:
        cursor.execute("DELETE FROM audit_chainhead")
    with pytest.raises(sealer.HeadMissing) as refused:
        seal_with(name, 5)
    assert str(refused.value) == MISSING
    assert len(queued_ids()) == 2 and not Seal.objects.exists()


def test_while_another_sealer_holds_the_lock_a_batch_seals_nothing(other_sealer: Any) -> None:
    append(2)
    assert sealer._try_lock() is False
    assert sealer.seal_batch(batch=5) == sealer.Sealed(0, 0, 0.0)
    assert len(queued_ids()) == 2
    other_sealer.execute("SELECT pg_advisory_unlock(%s)", [sealer.LOCK_KEY])
    try:
        assert sealer._try_lock() is True
        assert sealer.seal_batch(batch=5).count == 2
    finally:
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_unlock(%s)", [sealer.LOCK_KEY])


def batches() -> list[int]:
    """How many seals each batch wrote, in order (a batch's seals share its ``sealed_at``)."""
    sizes: dict[Any, int] = {}
    for sealed_at in Seal.objects.order_by("seq").values_list("sealed_at", flat=True):
        sizes[sealed_at] = sizes.get(sealed_at, 0) + 1
    return list(sizes.values())


@pytest.mark.parametrize(
    ("pending", "batch", "sizes"),
    [(0, 2, []), (4, 2, [2, 2]), (5, 2, [2, 2, 1]), (5, 5, [5]), (3, 7, [3])],
)
def test_seal_pending_seals_everything_batch_after_batch(pending: int, batch: int, sizes: list[int]) -> None:
    events = append(pending)
    assert sealer.seal_pending(batch=batch) == pending
    assert chain() == expected_chain(events) and not queued_ids()
    assert batches() == sizes


def test_elsewhere_than_postgresql_a_batch_is_sealed_by_the_portable_path(monkeypatch: pytest.MonkeyPatch) -> None:
    # What SQLite (``make run``) takes: the vendor decides, nothing else (the ORM still runs here); there
    # events wait in the queue, not an intake.
    monkeypatch.setattr(connection, "vendor", "sqlite")
    events = append(5)
    sealed = sealer.seal_batch(batch=2)
    assert (sealed.count, sealed.head_seq) == (2, 2)
    assert sealer.seal_pending(batch=2) == 3
    monkeypatch.undo()
    assert chain() == expected_chain(events) and batches() == [2, 2, 1]


def test_elsewhere_than_postgresql_the_lock_is_taken_for_granted_and_the_name_left(
    monkeypatch: pytest.MonkeyPatch, other_sealer: Any
) -> None:
    # SQLite has one writer at a time anyway, and no advisory locks or application names to ask for.
    with connection.cursor() as cursor:
        cursor.execute("SELECT current_setting('application_name')")
        name = cursor.fetchone()[0]
    monkeypatch.setattr(connection, "vendor", "sqlite")
    assert sealer._try_lock() is True  # not asked: here PostgreSQL would say no
    sealer._name_connection()
    monkeypatch.undo()
    with connection.cursor() as cursor:
        cursor.execute("SELECT current_setting('application_name')")
        assert cursor.fetchone()[0] == name


# --- The long-running loop ------------------------------------------------------------------------------


class Stopped(Exception):
    pass


class Runaway(AssertionError):
    pass


class Clock:
    """``time`` for the sealer: a monotonic clock that moves only when the sealer sleeps; each sleep is
    recorded, then ``act(clock)`` runs (it may set ``stop`` or raise ``Stopped``). A loop that goes on far
    longer than any test lets it (it missed its stop, or spins without sleeping) fails the test."""

    LIMIT = 200

    def __init__(self, act: Callable[[Clock], None]) -> None:
        self.now = 1000.0
        self.sleeps: list[float] = []
        self.act = act
        self.reads = 0

    def monotonic(self) -> float:
        self.reads += 1
        if self.reads > self.LIMIT:
            raise Runaway(f"the loop read the clock {self.reads} times")
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        if len(self.sleeps) > self.LIMIT:
            raise Runaway(f"the loop slept {len(self.sleeps)} times")
        self.now += seconds
        self.act(self)


def run(monkeypatch: pytest.MonkeyPatch, act: Callable[[Clock], None], **kwargs: Any) -> Clock:
    clock = Clock(act)
    monkeypatch.setattr(sealer, "time", clock)
    sealer.run(**kwargs)
    return clock


def messages(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "audit.sealer"]


@pytest.fixture
def stop() -> threading.Event:
    return threading.Event()


@pytest.fixture(autouse=True)
def _info(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="audit.sealer")


@pytest.mark.django_db(transaction=True)
def test_the_loop_seals_full_batches_at_once_and_sleeps_only_when_drained(
    monkeypatch: pytest.MonkeyPatch, stop: threading.Event, caplog: pytest.LogCaptureFixture
) -> None:
    events = append(5)
    monkeypatch.setattr(sealer, "BATCH", 2)
    seen: list[tuple[int, str]] = []

    def act(clock: Clock) -> None:
        with connection.cursor() as cursor:
            cursor.execute("SELECT current_setting('application_name')")
            seen.append((len(queued_ids()), cursor.fetchone()[0]))
        stop.set()

    clock = run(monkeypatch, act, idle_seconds=0.25, stop=stop)
    assert connection.connection is None  # closed: the session lock goes with it
    assert clock.sleeps == [0.25]  # 2 and 2 sealed at once, 1 left: drained
    assert seen == [(0, f"custos-sealer-{os.getpid()}")]
    assert chain() == expected_chain(events) and batches() == [2, 2, 1]
    assert messages(caplog) == ["sealing"]


@pytest.mark.django_db(transaction=True)
def test_an_idle_loop_polls_at_the_configured_interval(
    monkeypatch: pytest.MonkeyPatch, stop: threading.Event, settings: Any
) -> None:
    settings.CUSTOS_AUDIT_SEAL_INTERVAL = dt.timedelta(seconds=0.75)
    clock = run(monkeypatch, lambda c: stop.set() if len(c.sleeps) == 3 else None, stop=stop)
    assert clock.sleeps == [0.75, 0.75, 0.75]
    assert not Seal.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_without_a_stop_the_loop_runs_until_it_fails_and_still_closes_its_connection(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    events = append(3)

    def act(clock: Clock) -> None:
        if len(clock.sleeps) == 2:
            raise Stopped

    with pytest.raises(Stopped):
        run(monkeypatch, act, idle_seconds=0.5)
    assert connection.connection is None
    assert chain() == expected_chain(events)


@pytest.mark.django_db(transaction=True)
def test_a_loop_told_to_stop_before_it_starts_does_nothing(
    monkeypatch: pytest.MonkeyPatch, stop: threading.Event, caplog: pytest.LogCaptureFixture
) -> None:
    append(2)
    stop.set()
    clock = run(monkeypatch, lambda c: None, idle_seconds=0.5, stop=stop)
    assert clock.sleeps == [] and messages(caplog) == []
    assert len(queued_ids()) == 2


@pytest.mark.django_db(transaction=True)
def test_the_loop_signs_a_checkpoint_every_interval_counted_from_when_it_started_sealing(
    monkeypatch: pytest.MonkeyPatch, stop: threading.Event, settings: Any, tmp_path: Any
) -> None:
    use_checkpoint_directory(settings, tmp_path)
    settings.CUSTOS_AUDIT_CHECKPOINT_INTERVAL = dt.timedelta(seconds=12)
    signed_at: list[float] = []
    real = checkpoints.checkpoint_if_sound

    def recorded() -> Any:
        signed_at.append(clock_of[0].now)
        return real()

    monkeypatch.setattr(checkpoints, "checkpoint_if_sound", recorded)
    clock_of: list[Clock] = []

    def act(clock: Clock) -> None:
        clock_of[:] = [clock]
        append(1)  # something new for each checkpoint to sign
        if len(clock.sleeps) == 7:
            stop.set()

    append(1)
    clock = run(monkeypatch, act, idle_seconds=4, stop=stop)
    # Sealing from 1000: due at 1012, signed on the turn at 1012 itself, next due (and signed) at 1024.
    assert clock.sleeps == [4] * 7 and signed_at == [1012.0, 1024.0]
    assert list(Checkpoint.objects.order_by("seq").values_list("seq", flat=True)) == [4, 7]


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize(("idle", "standby"), [(0.25, 1.0), (3.0, 3.0)])
def test_a_second_sealer_stands_by_until_the_lock_is_free_saying_so_once(
    monkeypatch: pytest.MonkeyPatch,
    stop: threading.Event,
    caplog: pytest.LogCaptureFixture,
    other_sealer: Any,
    idle: float,
    standby: float,
) -> None:
    events = append(2)
    closed: list[bool] = []

    def act(clock: Clock) -> None:
        closed.append(connection.connection is None)
        if len(clock.sleeps) == 3:  # the first sealer goes
            assert len(queued_ids()) == 2
            other_sealer.execute("SELECT pg_advisory_unlock(%s)", [sealer.LOCK_KEY])
        if len(clock.sleeps) == 4:
            stop.set()

    clock = run(monkeypatch, act, idle_seconds=idle, stop=stop)
    assert clock.sleeps == [standby, standby, standby, idle]
    assert closed == [True, True, True, False]  # standing by, it holds no connection open
    assert messages(caplog) == ["another sealer holds the lock; standing by", "sealing"]
    assert chain() == expected_chain(events)
