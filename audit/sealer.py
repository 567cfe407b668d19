"""The sealer: gives pending events their place in the chain, in batches, one sealer at a time.

A batch is one transaction: take up to ``batch`` queued events (removing them from the queue), in the
order they became visible (event id, within what this transaction sees), chain each to the one before
(``audit.hashing.chain_hash``), write their seals and move the chain head; on PostgreSQL all in one
call of the database function ``audit_seal_batch`` (migrations 0009 and 0013), which takes the events
from the intake writers insert into, moves them into the log proper (where the constraint tying each
event's columns to its content checks them) and sets aside in ``audit_rejected`` any it cannot seal;
in Python elsewhere. A sealer
killed mid-batch leaves nothing behind (the transaction rolls back: no gap, no duplicate); the next
batch starts where the head says.

One at a time across every machine, by the database: the batch holds the chain head's row lock, and on
PostgreSQL a sealer first takes an advisory lock (``pg_try_advisory_lock``), so a second sealer started
by mistake stands by and seals nothing until the first is gone (its connection closes, the lock goes).

A missing chain head is refused, never recreated: that would let a truncated log start over.
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass
from datetime import datetime

from django.conf import settings
from django.db import DataError, IntegrityError, connection, transaction
from django.db.models import QuerySet
from django.db.models.expressions import RawSQL
from django.utils import timezone

from audit.hashing import chain_hash
from audit.models import AuditEvent, ChainHead, PendingSeal, Seal

log = logging.getLogger(__name__)

# An arbitrary constant naming the sealer's advisory lock ("custos" in ASCII).
LOCK_KEY = 0x637573746F73
BATCH = 2000


class HeadMissing(RuntimeError):
    """The chain head row is gone: only a database superuser can do that. Sealing stops until an
    operator restores it (and verification fails meanwhile)."""


@dataclass(frozen=True, slots=True)
class Sealed:
    count: int
    head_seq: int
    oldest_waited: float = 0.0  # seconds the oldest event of the batch waited to be sealed


def _try_lock() -> bool:
    """The sealer's session lock, held while ``run`` seals (each batch also takes it for its transaction,
    inside ``audit_seal_batch``)."""
    if connection.vendor != "postgresql":
        return True  # SQLite: one writer at a time anyway (IMMEDIATE transactions), and one sealer in make run
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_try_advisory_lock(%s)", [LOCK_KEY])
        row = cursor.fetchone()
    return bool(row and row[0])


def _take(batch: int) -> list[tuple[int, str, datetime]]:
    """Remove up to ``batch`` events from the queue and return them, oldest id first."""
    taken = list(PendingSeal.objects.order_by("event_id").values_list("event_id", "digest", "occurred_at")[:batch])
    PendingSeal.objects.filter(event_id__in=[row[0] for row in taken]).delete()
    return taken


# The intake's oldest rows (up to a number), judged and moved by the database function the batch function
# calls (migration 0013): into the log, or set aside in audit_rejected. The moved events, oldest id first.
_MOVE_FROM_INTAKE = "SELECT event_id, digest, occurred_at FROM audit_move_intake(%(room)s, %(at)s, %(judge)s)"


def _move_from_intake(room: int, at: datetime) -> list[tuple[int, str, datetime]]:
    """As the batch function does: the move as it is, the log checking each row; if it refuses one (or
    one's content is not JSON), the same rows again, what cannot be sealed set aside first."""
    try:
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(_MOVE_FROM_INTAKE, {"room": room, "at": at, "judge": False})
            return list(cursor.fetchall())
    except (DataError, IntegrityError):
        with connection.cursor() as cursor:
            cursor.execute("SELECT audit_reject_unparsable(%s, %s)", [room, at])
            (set_aside,) = cursor.fetchone()
            cursor.execute(_MOVE_FROM_INTAKE, {"room": room - set_aside, "at": at, "judge": True})
            return list(cursor.fetchall())


def seal_batch(*, batch: int = BATCH) -> Sealed:
    """Seal up to ``batch`` pending events. Returns how many (0 when none are pending, or when another
    sealer holds the lock: the process holding it takes its own lock again here, others cannot).

    On PostgreSQL in one call (``audit_seal_batch``, migration 0009: the same steps, one round trip);
    elsewhere in Python (``_seal_batch_portable``)."""
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT * FROM audit_seal_batch(%s, %s)", [LOCK_KEY, batch])
            row = cursor.fetchone()
        assert row is not None
        count, head_seq, waited = row
        if head_seq is None:
            raise HeadMissing("the audit chain head is missing: sealing stopped (see docs/operations.md)")
        return Sealed(count, head_seq, waited)
    return _seal_batch_portable(batch)


def _seal_batch_portable(batch: int) -> Sealed:
    """``seal_batch`` through the ORM, step by step as ``audit_seal_batch`` does (where the database has
    no such function: SQLite). Works on PostgreSQL too (the intake's move by the same statement as the
    function's), where the tests hold the two to the same chain."""
    with transaction.atomic():
        head = ChainHead.objects.select_for_update().filter(pk=1).first()
        if head is None:
            raise HeadMissing("the audit chain head is missing: sealing stopped (see docs/operations.md)")
        taken = _take(batch)
        now = timezone.now()
        if len(taken) < batch and connection.vendor == "postgresql":  # then the intake, as the function does
            taken += _move_from_intake(batch - len(taken), now)
        if not taken:
            return Sealed(0, head.seq)
        seq, prev = head.seq, head.hash
        seals = []
        for event_id, digest, _occurred in taken:
            seq += 1
            sealed_hash = chain_hash(seq, prev, digest)
            seals.append(Seal(seq=seq, event_id=event_id, prev_hash=prev, hash=sealed_hash, sealed_at=now))
            prev = sealed_hash
        Seal.objects.bulk_create(seals)
        ChainHead.objects.filter(pk=1).update(seq=seq, hash=prev, sealed_at=now)
        waited = max((now - occurred).total_seconds() for _, _, occurred in taken)
        return Sealed(len(seals), seq, waited)


def anything_queued() -> bool:
    """Whether any event waits for its seal: in the queue, or (PostgreSQL) in the intake."""
    if connection.vendor != "postgresql":
        return PendingSeal.objects.exists()
    with connection.cursor() as cursor:
        cursor.execute(QUEUED_SQL)
        row = cursor.fetchone()
    return bool(row and row[0])


QUEUED_SQL = "SELECT EXISTS (SELECT FROM audit_intake) OR EXISTS (SELECT FROM audit_pendingseal)"


def waiting_for_seal(events: QuerySet[AuditEvent]) -> bool:
    """Whether any of ``events`` is queued for its seal (in the queue, or in the intake on PostgreSQL).
    An event neither sealed nor queued waits for nothing: verification names it."""
    if PendingSeal.objects.filter(event_id__in=events.values("id")).exists():
        return True
    if connection.vendor != "postgresql":
        return False
    return events.filter(id__in=RawSQL("SELECT id FROM audit_intake", ())).exists()


def seal_pending(*, batch: int = BATCH) -> int:
    """Seal everything pending now, batch after batch; returns how many were sealed. For tests, the
    ``audit_seal --once`` command and the demo's seeding."""
    total = 0
    while True:
        sealed = seal_batch(batch=batch)
        total += sealed.count
        if sealed.count < batch:
            return total


def _name_connection() -> None:
    """Show the sealer as such in ``pg_stat_activity`` (and ``pg_locks`` joined to it)."""
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT set_config('application_name', %s, false)", [f"custos-sealer-{os.getpid()}"])


def run(*, idle_seconds: float | None = None, stop: object | None = None) -> None:
    """The sealer process (``manage.py audit_seal``): hold the sealer's lock and seal continuously,
    polling the queue every ``idle_seconds`` when it is empty, and sign a checkpoint every
    ``CUSTOS_AUDIT_CHECKPOINT_INTERVAL`` after verifying what is new. A second one waits as a standby.

    The chain is the sealer's alone: seals, head and checkpoints. Its database role needs nothing else
    (``manage.py audit_db_roles``)."""
    from audit.checkpoints import checkpoint_if_sound  # the checkpoints need the verifier, which needs us

    idle = settings.CUSTOS_AUDIT_SEAL_INTERVAL.total_seconds() if idle_seconds is None else idle_seconds
    every = settings.CUSTOS_AUDIT_CHECKPOINT_INTERVAL.total_seconds()
    standby_logged = False
    while not getattr(stop, "is_set", lambda: False)():
        _name_connection()
        if not _try_lock():
            if not standby_logged:
                log.info("another sealer holds the lock; standing by")
                standby_logged = True
            connection.close()
            time.sleep(max(idle, 1.0))
            continue
        log.info("sealing")
        next_checkpoint = time.monotonic() + every
        try:
            while not getattr(stop, "is_set", lambda: False)():
                # A read first: an idle sealer takes no lock (on SQLite, no write lock) every interval.
                drained = not anything_queued() or seal_batch(batch=BATCH).count < BATCH
                if time.monotonic() >= next_checkpoint:  # also under constant load, never idle
                    checkpoint_if_sound()
                    next_checkpoint = time.monotonic() + every
                if drained:
                    # Until the next batch, let events gather: a batch's fixed cost is paid once for all of
                    # them, not for each trickle of a few. A full batch means more wait: seal on at once.
                    time.sleep(idle)
        finally:
            connection.close()  # releases the session lock
