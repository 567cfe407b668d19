"""The audit log's batch paths, each against the plainest way to do the same work, in one run:

- bulk append: ``audit_append_many`` of N events (one statement) against ``COPY`` of the same rows into
  a table shaped like the log (goal ≥ 0.3x);
- the sealer alone: sealing a backlog of N events (goal ≥ 20,000 events/s);
- verification: ``verify_chain(full=True)`` over M events against raw SHA-256 in Python over the same
  bytes (each event's canonical content and its seal's input, already in memory) (goal ≥ 0.3x).

    DATABASE_URL=postgres://USER@HOST:5432/ANY_DB .venv/bin/python bench/audit_bulk.py [--events 100000] [--verify-events 1000000]
        [--verify-only] [--database NAME]

Runs in a scratch database beside DATABASE_URL's (``custos_bench_<pid>``), dropped at the end.
``--verify-only`` skips the bulk append and sealer measurements (the log is still grown to
``--verify-events``). ``--database NAME`` uses that database instead and keeps it, so verification can
be timed again without growing a million events each time: it is created and migrated if missing, and
grown only up to ``--verify-events``.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import os
import secrets
import sys
import threading
import time
from pathlib import Path
from typing import Any

import scratch as scratch_db  # bench/scratch.py, beside this script

REPO = Path(__file__).resolve().parents[1]

# The log's columns, defaults and indexes, not its CHECK constraint tying the columns to the content
# (audit migration 0011): the baseline is a plain COPY, what it was before that constraint, so the
# ratio shows what the constraint costs the bulk append.
PLAIN_TABLE = """
CREATE TABLE bench_plain_event (LIKE audit_auditevent INCLUDING ALL EXCLUDING CONSTRAINTS);
"""
COLUMNS = (
    "digest", "canonical", "nonce", "occurred_at", "actor_kind", "actor_id", "actor_label", "on_behalf_of",
    "action", "target_type", "target_id", "target_label", "context",
)  # fmt: skip


def _events(n: int, start: int = 0) -> list[Any]:
    from audit.services import Actor, PendingEvent, Target

    return [
        PendingEvent(
            actor=Actor(kind="agent", label=f"agent-{i % 50}", id=str(i % 50)),
            action="check.allow",
            target=Target(type="scope", id="crm.contacts", label="crm.contacts:read"),
            on_behalf_of=[{"type": "human", "id": i % 7, "label": f"Human {i % 7}"}],
            context={"reason": "allowed", "scope": "crm.contacts:read", "intent": "answer ticket", "n": i},
        )
        for i in range(start, start + n)
    ]


def bulk_against_copy(n: int) -> tuple[float, float]:
    from django.db import connection

    from audit.services import audit_append_many

    batch = _events(n)
    began = time.perf_counter()
    written = audit_append_many(batch)
    bulk = time.perf_counter() - began
    # COPY of the very rows just written (with fresh digests, for the unique index), as text.
    rows = io.StringIO()
    for event in written:
        values = [getattr(event, c) for c in COLUMNS]
        values[0] = secrets.token_hex(32)
        cells = [
            json.dumps(v) if c in ("on_behalf_of", "context") else str(v) for c, v in zip(COLUMNS, values, strict=True)
        ]
        rows.write(
            "\t".join(cell.replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n") for cell in cells) + "\n"
        )
    data = rows.getvalue()
    began = time.perf_counter()
    with (
        connection.cursor() as cursor,
        cursor.copy(f"COPY bench_plain_event ({', '.join(COLUMNS)}) FROM STDIN") as copy,
    ):
        copy.write(data)
    plain = time.perf_counter() - began
    return bulk, plain


def _cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (0 if it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class BackendCpu:
    """CPU time spent by the PostgreSQL backends serving one database while ``with`` runs: sampled from
    ``/proc`` every few milliseconds from another connection (to the maintenance database, so it is not
    counted), since the verification's backends end with it. Zero if the server is not on this host."""

    def __init__(self, url: str, database: str) -> None:
        self.url, self.database = url, database
        self.seen: dict[int, tuple[float, float]] = {}  # pid: (CPU when first seen, latest)
        self._stop = threading.Event()

    def _sample(self, conn: Any) -> None:
        for (pid,) in conn.execute("SELECT pid FROM pg_stat_activity WHERE datname = %s", [self.database]):
            now = _cpu_seconds(pid)
            first, latest = self.seen.get(pid, (now, now))
            self.seen[pid] = (first, max(latest, now))

    def _run(self, conn: Any) -> None:
        while not self._stop.wait(0.02):
            self._sample(conn)

    def __enter__(self) -> BackendCpu:
        import psycopg

        self._conn = psycopg.connect(scratch_db.with_database(self.url, "postgres"), autocommit=True)
        self._sample(self._conn)
        self._thread = threading.Thread(target=self._run, args=(self._conn,), daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self._sample(self._conn)
        self._conn.close()

    @property
    def seconds(self) -> float:
        return sum(latest - first for first, latest in self.seen.values())


def grow(target: int) -> None:
    """Append and seal events until the log holds ``target`` sealed events."""
    from audit import sealer
    from audit.models import Seal
    from audit.services import audit_append_many

    remaining = target - Seal.objects.count()
    while remaining > 0:
        chunk = min(remaining, 50_000)
        audit_append_many(_events(chunk, start=remaining))
        sealer.seal_pending(batch=5_000)
        remaining -= chunk


def verify_against_raw(url: str, database: str) -> bool:
    """Time ``verify_chain(full=True)`` (wall and CPU: this process's and the database backends') against
    raw SHA-256 in Python over the same bytes; print the figures, return whether the chain verified."""
    from django.db import connection

    from audit.models import Seal
    from audit.verification import verify_chain

    total = Seal.objects.count()
    connection.close()  # so the backends counted are the verification's own
    mine = os.times()
    with BackendCpu(url, database) as backends:
        began = time.perf_counter()
        result = verify_chain(full=True)
        verify_seconds = time.perf_counter() - began
    after = os.times()
    own_cpu = (after.user + after.system + after.children_user + after.children_system) - (
        mine.user + mine.system + mine.children_user + mine.children_system
    )
    # The same bytes, hashed by Python with nothing else to do: each event's recorded content and its
    # seal's input, already in memory.
    inputs = [
        (canonical.encode(), f"{seq}|{prev}|{digest}".encode())
        for seq, prev, digest, canonical in Seal.objects.order_by("seq")
        .values_list("seq", "prev_hash", "event__digest", "event__canonical")
        .iterator(chunk_size=20_000)
    ]
    cpu_began = time.process_time()
    began = time.perf_counter()
    for content, seal_input in inputs:
        hashlib.sha256(content).hexdigest()
        hashlib.sha256(seal_input).hexdigest()
    raw_seconds = time.perf_counter() - began
    raw_cpu = time.process_time() - cpu_began
    print(
        f"verification of {total:,} events: {verify_seconds:.2f} s ({'OK' if result.ok else 'BROKEN'}, "
        f"{result.checked:,} checked, columns: {result.columns}; CPU: {own_cpu:.2f} s this process and its children, "
        f"{backends.seconds:.2f} s PostgreSQL backends); raw SHA-256 over the same bytes: {raw_seconds:.2f} s "
        f"({raw_cpu:.2f} s CPU); ratio {raw_seconds / verify_seconds:.2f}x (goal >= 0.3)"
    )
    if not result.ok:
        print(f"  first bad event #{result.first_bad_seq}: {result.problem}")
    return result.ok


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=100_000, help="bulk append and sealer backlog (100,000)")
    parser.add_argument("--verify-events", type=int, default=1_000_000, help="events verified (1,000,000)")
    parser.add_argument("--verify-only", action="store_true", help="only grow the log and time verification")
    parser.add_argument("--database", help="use (create if missing) and keep this database, not a scratch one")
    args = parser.parse_args()
    url = scratch_db.server_url()
    if args.database:
        scratch, scratch_url = args.database, scratch_db.with_database(url, args.database)
        import psycopg

        with psycopg.connect(scratch_db.with_database(url, "postgres"), autocommit=True) as admin:
            if not admin.execute("SELECT 1 FROM pg_database WHERE datname = %s", [scratch]).fetchone():
                admin.execute(f'CREATE DATABASE "{scratch}"')
    else:
        scratch, scratch_url = scratch_db.create(url)
    ok = True
    try:
        os.environ["DATABASE_URL"] = scratch_url
        os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
        os.environ.setdefault("SECRET_KEY", secrets.token_urlsafe(64))
        sys.path.insert(0, str(REPO))
        import django

        django.setup()
        from django.core.management import call_command
        from django.db import connection

        from audit import sealer
        from audit.models import AuditEvent

        call_command("migrate", "audit", verbosity=0)
        if not args.verify_only:
            with connection.cursor() as cursor:
                cursor.execute("DROP TABLE IF EXISTS bench_plain_event")
                cursor.execute(PLAIN_TABLE)

            # Warm up (prepared statements, caches), then the measured bulk append against COPY.
            bulk_against_copy(1_000)
            bulk, plain = bulk_against_copy(args.events)
            print(
                f"bulk append of {args.events:,} events: {bulk:.2f} s ({args.events / bulk:,.0f}/s); "
                f"COPY of the same rows: {plain:.2f} s; ratio {plain / bulk:.2f}x (goal >= 0.3)"
            )

            backlog = AuditEvent.objects.count()
            began = time.perf_counter()
            sealed = sealer.seal_pending()
            seconds = time.perf_counter() - began
            print(
                f"sealer alone: {sealed:,} events in {seconds:.2f} s = {sealed / seconds:,.0f} events/s "
                f"(backlog {backlog:,}; goal >= 20,000/s)"
            )

        grow(args.verify_events)
        with connection.cursor() as cursor:
            cursor.execute("VACUUM ANALYZE audit_auditevent")
            cursor.execute("VACUUM ANALYZE audit_seal")
        ok = verify_against_raw(url, scratch)
        connection.close()
    finally:
        if not args.database:
            scratch_db.drop(url, scratch)
    if not ok:
        sys.exit(1)


if __name__ == "__main__":
    main()
