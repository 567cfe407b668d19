"""Recompute the hash chain and name the first event that does not fit.

The chain is read seal by seal in sequence order, each with its event: the event's content must still
give its digest, and each seal's hash must be ``chain_hash(seq, previous hash, digest)``. Then the chain
head must be the last seal, every event must be sealed or waiting in the sealer's queue (not for longer
than ``CUSTOS_AUDIT_MAX_SEAL_DELAY``), and every signed checkpoint — in the database and, above all, in
the checkpoint directory — must be believable and agree with the chain: a log that ends before a
checkpoint was truncated, one whose event at a checkpoint differs was rewritten.

In full (the nightly job, ``manage.py audit_verify``) from the first event; incrementally (the API)
from the latest checkpoint the chain still agrees with, so an HTTP request never reads the whole log.

Each event's columns must match its content too. On PostgreSQL a CHECK constraint (audit migration 0011)
makes the database refuse any row where they differ, so the walk compares them only when the catalog does
not show that constraint intact (``COLUMNS_CONSTRAINT``); that is then a problem of its own: appended to
the first bad event's, or, when no event differs, the whole result, with no first bad event
(``first_bad_seq`` None: no event is known to be bad, the guarantee over all of them is gone).
"""

from __future__ import annotations

import json
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.conf import settings
from django.db import DatabaseError, connection, transaction
from django.db.models import Exists, Max, OuterRef
from django.utils import timezone

from audit import checkpoints
from audit.column_guarantee import (  # noqa: F401 - part of verification's interface (tests, the API's problems)
    COLUMNS_CONSTRAINT,
    COLUMNS_CONSTRAINT_DEF,
    COLUMNS_FUNCTION_DEF,
    COLUMNS_PROBLEM,
)
from audit.column_guarantee import columns_guarantee as _columns_guarantee
from audit.hashing import chain_hash, digest_of, event_document
from audit.models import GENESIS_HASH, AuditEvent, ChainHead, Checkpoint, PendingSeal, Seal
from audit.services import VERIFY_ACTION

BATCH = 2000


@dataclass(frozen=True, slots=True)
class VerifyResult:
    ok: bool
    checked: int
    head_seq: int
    first_bad_seq: int | None = None
    problem: str = ""
    # Events committed but not sealed yet (within the sealing delay: not a problem).
    pending: int = 0
    # The digest of the first bad event when it has no place in the chain (unsealed).
    first_bad_event: str | None = None
    # Where verification started (0: the first event) and the checkpoints it held the chain to.
    verified_from: int = 0
    checkpoints: int = 0
    # How the events' columns were held to their content: "constraint" (PostgreSQL's CHECK constraint,
    # found intact in the catalog before and after the walk: no row compared), "compared" (row by row).
    columns: str = ""

    def as_dict(self) -> dict[str, object]:
        return {
            "ok": self.ok,
            "checked": self.checked,
            "head_seq": self.head_seq,
            "first_bad_seq": self.first_bad_seq,
            "first_bad_event": self.first_bad_event,
            "problem": self.problem,
            "pending": self.pending,
            "verified_from": self.verified_from,
            "checkpoints": self.checkpoints,
        }


@dataclass(slots=True)
class _Progress:
    checked: int = 0
    last_seq: int = 0


class _Broken(Exception):
    def __init__(self, seq: int | None, problem: str, event: str | None = None) -> None:
        super().__init__(problem)
        self.seq, self.problem, self.event = seq, problem, event


def verify_chain(*, full: bool = True) -> VerifyResult:
    # The head is read first and the chain verified up to it: seals added meanwhile are left for the
    # next run instead of looking like a removed tail.
    head = ChainHead.objects.filter(pk=1).first()
    progress = _Progress()
    start = 0
    guarantee = _columns_guarantee()
    compare = guarantee is None
    try:
        if head is None:
            raise _Broken(1, "the chain head is missing (a database superuser deleted it?)")
        signed = _checkpoints(full=full)
        start, prev = _anchor(signed, head.seq) if not full else (0, GENESIS_HASH)
        progress.last_seq = start
        # A walk long enough to be cut into pieces runs them in other connections; the search for
        # events neither sealed nor queued then runs beside them, in one more, instead of after them.
        beside = _walk_is_split(start, head.seq)
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="audit-verify-stray") as background:
            stray = background.submit(_stray_in_own_connection, start) if beside else None
            last_hash = _walk(progress, prev, head.seq, compare_columns=compare)
            last_seq = progress.last_seq
            if last_seq != head.seq:
                raise _Broken(
                    last_seq + 1,
                    f"the chain head records event #{head.seq} but the log ends at #{last_seq} (tail removed?)",
                )
            if last_hash != head.hash:
                raise _Broken(last_seq, "the last event is not the one the chain head records (replaced?)")
            _nothing_past(head)
            _against_checkpoints(signed, head.seq)
            pending = _unsealed(stray=stray.result() if stray is not None else _stray(start))
        if connection.vendor == "postgresql" and (guarantee is None or _columns_guarantee() != guarantee):
            raise _Broken(None, COLUMNS_PROBLEM)
    except _Broken as broken:
        problem = broken.problem
        if connection.vendor == "postgresql" and guarantee is None and problem != COLUMNS_PROBLEM:
            problem = f"{problem}; and {COLUMNS_PROBLEM}"
        # head_seq is how far the chain was found good.
        return VerifyResult(
            False,
            progress.checked,
            progress.last_seq,
            broken.seq,
            problem,
            first_bad_event=broken.event,
            columns="compared" if compare else "constraint",
        )
    return VerifyResult(
        True,
        progress.checked,
        head.seq,
        pending=pending,
        verified_from=start,
        checkpoints=len(signed),
        columns="compared" if compare else "constraint",
    )


_PROBLEMS = {
    "link": "previous-hash link does not match the event before it",
    "digest": "content does not match its digest",
    "hash": "content does not match its hash",
    "fields": "the event's fields do not match its recorded content",
    "missing": "the event this seal records is missing (deleted?)",
}

# The whole range in one pass, inside PostgreSQL: each seal against the one before it (a window over the
# seals alone, read in order from their primary key: no sort), then its event, looked up by id: its
# digest against the stored canonical bytes, the seal's hash against its inputs, and, unless the
# constraint above vouches for them, the event's columns against its canonical document. Returns the
# first seal that fails, if any. The work is proportional to the range, whatever the size of the log.
_CHECK_SQL = """
SELECT seq, prev_seq, problem FROM (
    SELECT s.seq, s.prev_seq, CASE
        WHEN s.seq <> coalesce(s.prev_seq, %(start)s) + 1 THEN 'gap'
        WHEN s.prev_hash <> coalesce(s.prev_chain, %(start_hash)s) THEN 'link'
        WHEN e.id IS NULL THEN 'missing'
        WHEN e.digest <> encode(sha256(convert_to(e.canonical, 'UTF8')), 'hex') THEN 'digest'
        WHEN s.hash <> encode(sha256(convert_to(s.seq::text || '|' || s.prev_hash || '|' || e.digest, 'UTF8')), 'hex')
            THEN 'hash'{fields}
    END AS problem
    FROM (
        SELECT seq, event_id, prev_hash, hash, lag(seq) OVER w AS prev_seq, lag(hash) OVER w AS prev_chain
        FROM audit_seal
        WHERE seq > %(start)s AND seq <= %(head)s
        WINDOW w AS (ORDER BY seq)
    ) s
    -- A lookup by primary key per seal, whatever the statistics say (OFFSET 0: never turned into a hash
    -- join over the whole log, which a fresh log's missing statistics can make the planner choose).
    -- ONLY: a sealed event is in the log proper, which the columns constraint covers, never in the intake.
    LEFT JOIN LATERAL (SELECT * FROM ONLY audit_auditevent WHERE id = s.event_id OFFSET 0) e ON true{parsed}
) checked
WHERE problem IS NOT NULL
ORDER BY seq
LIMIT 1
"""
_FIELDS_SQL = """
        WHEN NOT (
            d->>'action' = e.action AND d->'actor'->>'kind' = e.actor_kind AND d->'actor'->>'id' = e.actor_id
            AND d->'actor'->>'label' = e.actor_label AND d->'target'->>'type' = e.target_type
            AND d->'target'->>'id' = e.target_id AND d->'target'->>'label' = e.target_label
            AND d->'on_behalf_of' = e.on_behalf_of AND d->'context' = e.context
            AND (d->>'occurred_at')::timestamptz = e.occurred_at AND coalesce(d->>'nonce', '') = e.nonce
        ) THEN 'fields'"""
_PARSED_SQL = """
    -- OFFSET 0 keeps the subquery from being inlined: the content is parsed once, not once per use of d.
    LEFT JOIN LATERAL (SELECT e.canonical::jsonb AS d OFFSET 0) parsed ON true"""
_CHECK_WITH_COLUMNS_SQL = _CHECK_SQL.format(fields=_FIELDS_SQL, parsed=_PARSED_SQL)
_CHECK_WITHOUT_COLUMNS_SQL = _CHECK_SQL.format(fields="", parsed="")


def _walk(progress: _Progress, expected_prev: str, head_seq: int, *, compare_columns: bool) -> str:
    """Verify the seals after ``progress.last_seq`` up to ``head_seq``; return the last hash. Each event's
    columns are compared with its content where ``compare_columns`` (always in the portable walk)."""
    if connection.vendor == "postgresql":
        try:
            return _walk_in_postgresql(progress, expected_prev, head_seq, compare_columns)
        except DatabaseError:
            # Content that is not even JSON, written behind the application's back: the portable
            # walk below names the event.
            pass
    return _walk_in_python(progress, expected_prev, head_seq)


# A range longer than CHUNK seals is checked as CHUNK-long pieces, up to WORKERS at once, each in its own
# connection (PostgreSQL does the work: the threads wait on it). A piece starts from the hash its first
# seal's predecessor has in the log, which is what the one statement would compare that seal with, so
# the first problem over all pieces is the one a single pass would name.
CHUNK = 50_000
WORKERS = min(8, os.cpu_count() or 1)


@dataclass(frozen=True, slots=True)
class _Piece:
    start: int  # the seal before the piece
    start_hash: str
    end: int  # its last seal
    compare_columns: bool


def _walk_in_postgresql(progress: _Progress, expected_prev: str, head_seq: int, compare_columns: bool) -> str:
    start = progress.last_seq
    pieces = _pieces(start, expected_prev, head_seq, compare_columns)
    if len(pieces) > 1 and WORKERS > 1:
        with ThreadPoolExecutor(max_workers=WORKERS, thread_name_prefix="audit-verify") as pool:
            found = list(pool.map(_check_in_own_connection, pieces))
    else:
        found = [_check_piece(piece) for piece in pieces]
    failures = [(failed, piece) for failed, piece in zip(found, pieces, strict=True) if failed is not None]
    if failures:
        (seq, prev_seq, problem), piece = min(failures, key=lambda pair: pair[0][0])
        if problem == "gap":
            expected = (prev_seq if prev_seq is not None else piece.start) + 1
            progress.checked, progress.last_seq = expected - start - 1, expected - 1
            raise _Broken(expected, f"expected event #{expected} here, found #{seq}")
        progress.checked, progress.last_seq = seq - start - 1, seq - 1
        raise _Broken(seq, _PROBLEMS[problem])
    last = Seal.objects.filter(seq__gt=start, seq__lte=head_seq).order_by("-seq").values_list("seq", "hash").first()
    if last is None:
        return expected_prev
    progress.checked, progress.last_seq = last[0] - start, last[0]
    return last[1]


def _pieces(start: int, start_hash: str, head_seq: int, compare_columns: bool) -> list[_Piece]:
    """The range cut every CHUNK seals; one piece if it is short or a seal it would start from is missing
    (the single pass then names the gap)."""
    whole = [_Piece(start, start_hash, head_seq, compare_columns)]
    bounds = list(range(start + CHUNK, head_seq, CHUNK))
    if not bounds:
        return whole
    hashes = dict(Seal.objects.filter(seq__in=bounds).values_list("seq", "hash"))
    if len(hashes) != len(bounds):
        return whole
    starts = [(start, start_hash), *((seq, hashes[seq]) for seq in bounds)]
    ends = [*bounds, head_seq]
    return [_Piece(seq, prev, end, compare_columns) for (seq, prev), end in zip(starts, ends, strict=True)]


def _check_piece(piece: _Piece) -> tuple[int, int | None, str] | None:
    with transaction.atomic(), connection.cursor() as cursor:
        statement = _CHECK_WITH_COLUMNS_SQL if piece.compare_columns else _CHECK_WITHOUT_COLUMNS_SQL
        cursor.execute(statement, {"start": piece.start, "start_hash": piece.start_hash, "head": piece.end})
        return cursor.fetchone()


def _check_in_own_connection(piece: _Piece) -> tuple[int, int | None, str] | None:
    try:
        return _check_piece(piece)
    finally:
        connection.close()  # this thread's: the pool's threads end with the walk


def _walk_in_python(progress: _Progress, expected_prev: str, head_seq: int, compare_columns: bool = True) -> str:
    """The same checks, seal by seal, where the database cannot do them (SQLite) or gave up; the columns
    always compared (``compare_columns`` is taken for the same signature as the walk in PostgreSQL)."""
    while True:
        batch = list(Seal.objects.filter(seq__gt=progress.last_seq, seq__lte=head_seq).order_by("seq")[:BATCH])
        if not batch:
            return expected_prev
        events = AuditEvent.objects.in_bulk([seal.event_id for seal in batch])
        for seal in batch:
            if seal.seq != progress.last_seq + 1:
                raise _Broken(progress.last_seq + 1, f"expected event #{progress.last_seq + 1} here, found #{seal.seq}")
            if seal.prev_hash != expected_prev:
                raise _Broken(seal.seq, _PROBLEMS["link"])
            event = events.get(seal.event_id)
            if event is None:
                raise _Broken(seal.seq, _PROBLEMS["missing"])
            if digest_of(event.canonical.encode()) != event.digest:
                raise _Broken(seal.seq, _PROBLEMS["digest"])
            if chain_hash(seal.seq, seal.prev_hash, event.digest) != seal.hash:
                raise _Broken(seal.seq, _PROBLEMS["hash"])
            try:
                recorded = json.loads(event.canonical)
            except ValueError:
                raise _Broken(seal.seq, "its recorded content is not JSON") from None
            if recorded != json.loads(json.dumps(event_document(event))):
                raise _Broken(seal.seq, _PROBLEMS["fields"])
            progress.checked += 1
            expected_prev = seal.hash
            progress.last_seq = seal.seq


def _nothing_past(head: ChainHead) -> None:
    # Seals past the head read above were either added since (each moved the head on, and is visible
    # only once committed with it) or written behind the head's back. Read them before the head again.
    beyond = Seal.objects.filter(seq__gt=head.seq).aggregate(last=Max("seq"))["last"]
    if beyond is not None:
        head_now = ChainHead.objects.filter(pk=1).first()
        at = head_now.seq if head_now is not None else head.seq
        if head_now is None or beyond > head_now.seq:
            raise _Broken(at + 1, f"events up to #{beyond} lie past the chain head at #{at}")


def _checkpoints(*, full: bool) -> list[checkpoints.Signed]:
    """The checkpoints to hold the chain to, each believable: in full, every one; incrementally, the
    latest of the directory's and of the database's."""
    external, unreadable = checkpoints.external_checkpoints()
    if unreadable:
        raise _Broken(None, f"the checkpoint file {unreadable[0]} cannot be read")
    stored = [checkpoints.Signed.of(c) for c in Checkpoint.objects.order_by("seq")] if full else []
    if not full:
        latest = Checkpoint.objects.order_by("-seq").first()
        stored = [checkpoints.Signed.of(latest)] if latest is not None else []
        external = external[-1:]
    trusted = checkpoints.trusted_keys()
    for signed in (*external, *stored):
        problem = signed.signature_problem(trusted)
        if signed.log != settings.CUSTOS_ISSUER:
            problem = f"it is of another log ({signed.log})"
        if problem:
            raise _Broken(signed.seq, f"checkpoint #{signed.seq} cannot be believed: {problem}")
    return [*external, *stored]


def _anchor(signed: list[checkpoints.Signed], head_seq: int) -> tuple[int, str]:
    """Where incremental verification starts: the latest checkpoint at or below the head whose event
    the chain still has, at the hash it signed (else the first event)."""
    for candidate in sorted(signed, key=lambda s: s.seq, reverse=True):
        if candidate.seq <= head_seq and Seal.objects.filter(seq=candidate.seq, hash=candidate.hash).exists():
            return candidate.seq, candidate.hash
    return 0, GENESIS_HASH


def _against_checkpoints(signed: list[checkpoints.Signed], head_seq: int) -> None:
    if not signed:
        return
    latest = max(signed, key=lambda s: s.seq)
    if latest.seq > head_seq:
        raise _Broken(
            head_seq + 1,
            f"the log ends at #{head_seq} but checkpoint #{latest.seq}, signed {latest.signed_at}, says it reached "
            f"#{latest.seq} (truncated?)",
        )
    hashes = dict(Seal.objects.filter(seq__in={s.seq for s in signed}).values_list("seq", "hash"))
    for checkpoint in sorted(signed, key=lambda s: s.seq):
        if hashes.get(checkpoint.seq) != checkpoint.hash:
            raise _Broken(
                checkpoint.seq,
                f"event #{checkpoint.seq} is not the one checkpoint #{checkpoint.seq} signed (rewritten?)",
            )


def _walk_is_split(start: int, head_seq: int) -> bool:
    return connection.vendor == "postgresql" and WORKERS > 1 and head_seq - start > CHUNK


# The first event (from ``after``) with neither a seal nor a queue entry. From the first event (a full
# run) both sides are read whole, so the statement is a merge anti-join of three index-only scans in id
# order, about 0.6 µs per event in one process; left to itself the planner chose a parallel hash
# anti-join over a sequential scan of the whole events table (its wide rows) in three processes, at a
# million events 1.3-2.1 s of wall time after the walk, with a backend CPU 0.7 s higher per run.
# From a checkpoint only a few recent events are looked at: there one index probe each is cheaper, and
# the planner is left to find it (a merge join would read every seal's index entry).
_STRAY_SQL = """
SELECT digest FROM ONLY audit_auditevent WHERE id = (
    SELECT e.id FROM ONLY audit_auditevent e
    WHERE e.id > %(after)s
      AND NOT EXISTS (SELECT FROM audit_seal s WHERE s.event_id = e.id)
      AND NOT EXISTS (SELECT FROM audit_pendingseal q WHERE q.event_id = e.id)
    ORDER BY e.id
    LIMIT 1
)
"""
_WHOLE_LOG_PLAN = {"enable_hashjoin": "off", "enable_nestloop": "off", "max_parallel_workers_per_gather": "0"}


def _stray(since_seq: int) -> str | None:
    """The digest of the first event neither sealed nor waiting to be. From a checkpoint, only events
    recorded since the one it sealed last are looked at (the full run looks at all): the check stays
    proportional to what is new."""
    after = 0
    if since_seq:
        after = Seal.objects.filter(seq=since_seq).values_list("event_id", flat=True).first() or 0
    if connection.vendor != "postgresql":
        stray = (
            AuditEvent.objects.filter(id__gt=after)
            .filter(
                ~Exists(Seal.objects.filter(event_id=OuterRef("pk"))),
                ~Exists(PendingSeal.objects.filter(event_id=OuterRef("pk"))),
            )
            .order_by("id")
            .values_list("digest", flat=True)
            .first()
        )
        return stray
    plan = _WHOLE_LOG_PLAN if not after else {}
    with transaction.atomic(), connection.cursor() as cursor:
        # Set for this statement only, then put back: a caller's transaction keeps its own settings.
        previous = {name: _set_locally(cursor, name, value) for name, value in plan.items()}
        try:
            cursor.execute(_STRAY_SQL, {"after": after})
            row = cursor.fetchone()
        finally:
            for name, value in previous.items():
                _set_locally(cursor, name, value)
    return row[0] if row is not None else None


def _set_locally(cursor: Any, name: str, value: str) -> str:
    """Set a planner setting for the rest of the transaction; return what it was."""
    cursor.execute("SELECT current_setting(%s), set_config(%s, %s, true)", [name, name, value])
    return str(cursor.fetchone()[0])


def _stray_in_own_connection(since_seq: int) -> str | None:
    try:
        return _stray(since_seq)
    finally:
        connection.close()  # this thread's


def _unsealed(*, stray: str | None) -> int:
    """Every event not sealed must be waiting in the queue (``stray``: the first that is not, found by
    ``_stray``), and not for longer than the bound."""
    if stray is not None:
        raise _Broken(None, "an event is neither sealed nor waiting to be (its queue entry removed?)", stray)
    rejected = _rejected()
    if rejected is not None:
        digest, reason = rejected
        raise _Broken(None, f"an event was recorded that cannot be sealed: {reason}", digest)
    pending = PendingSeal.objects.order_by("occurred_at")
    oldest = pending.values_list("digest", "occurred_at").first()
    count = pending.count()
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute(_INTAKE_SQL)
            intake_count, intake_digest, intake_at = cursor.fetchone()
        count += intake_count
        if intake_at is not None and (oldest is None or intake_at < oldest[1]):
            oldest = (intake_digest, intake_at)
    bound = settings.CUSTOS_AUDIT_MAX_SEAL_DELAY
    if oldest is not None and timezone.now() - oldest[1] > bound:
        raise _Broken(
            None,
            f"an event has waited longer than {int(bound.total_seconds())} s to be sealed (is the sealer running?)",
            oldest[0],
        )
    return count


# What the intake holds (audit migration 0013): how many, and the oldest by its time (the intake is small:
# what was written since the sealer's last batch).
_INTAKE_SQL = """
SELECT (SELECT count(*) FROM audit_intake), o.digest, o.occurred_at
FROM (SELECT 1) one LEFT JOIN LATERAL (
    SELECT digest, occurred_at FROM audit_intake ORDER BY occurred_at, id LIMIT 1
) o ON true
"""


def _rejected() -> tuple[str, str] | None:
    """The first event the sealer set aside (``audit_rejected``): its digest and why."""
    if connection.vendor != "postgresql":
        return None
    with connection.cursor() as cursor:
        cursor.execute("SELECT digest, reason FROM audit_rejected ORDER BY event_id LIMIT 1")
        row = cursor.fetchone()
    return (str(row[0]), str(row[1])) if row is not None else None


@dataclass(frozen=True, slots=True)
class RecordedVerification:
    """A verification as the log recorded it (``audit.services.audit_verification_record``)."""

    at: datetime
    by: str
    actor_kind: str
    ok: bool
    checked: int
    head_seq: int
    first_bad_seq: int | None
    first_bad_event: str | None
    problem: str
    full: bool

    @classmethod
    def of(cls, event: AuditEvent) -> RecordedVerification:
        found = event.context if isinstance(event.context, dict) else {}

        def number(name: str) -> int | None:
            value = found.get(name)
            return value if type(value) is int else None

        return cls(
            at=event.occurred_at,
            by=event.actor_label,
            actor_kind=event.actor_kind,
            ok=found.get("ok") is True,
            checked=number("checked") or 0,
            head_seq=number("head_seq") or 0,
            first_bad_seq=number("first_bad_seq"),
            first_bad_event=found.get("first_bad_event") if isinstance(found.get("first_bad_event"), str) else None,
            problem=str(found.get("problem") or ""),
            full=found.get("full") is True,
        )


def last_recorded() -> RecordedVerification | None:
    """The latest recorded verification: one query, by the indexed action column."""
    event = AuditEvent.objects.filter(action=VERIFY_ACTION).order_by("-id").first()
    return RecordedVerification.of(event) if event is not None else None
