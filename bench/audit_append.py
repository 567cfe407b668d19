"""Audit append rate with 1, 4, 16 and 32 writer processes, against a plain-INSERT baseline, with the
sealer running and its sealing delay measured.

    DATABASE_URL=postgres://USER@HOST:5432/ANY_DB .venv/bin/python bench/audit_append.py [--seconds 2]

Only the server of DATABASE_URL is used: the benchmark creates a scratch database beside it
(``custos_bench_<pid>``, audit tables only), runs there and drops it, so no real audit log is touched.

Each writer is a separate (forked) process with its own connection (the production settings: prepared
statements, persistent connection), and every event is its own transaction, as a service call is:

- baseline: ``INSERT`` of the same row (its stored JSON content included) into a copy of the log's
            table (``LIKE audit_auditevent INCLUDING ALL``: same columns and indexes), without the chain;
- audit:    ``audit.services.audit_append`` — canonical JSON and its digest in Python, then the
            one statement that inserts the event into the log's intake (audit migration 0013: only a
            primary key there; the sealer moves events into the log, where the constraint tying
            columns to content checks them, a batch at a time).

Both phases run in the same processes, one after the other, for the same time; the sealer
(``audit.sealer.run``, its own process) seals throughout. The figures to watch: the audit/baseline ratio
as writers are added (goal ≥ 0.8 at every count), and the delay from an event's commit to its seal
(goal p99 ≤ 1 s), read from the seals afterwards. The chain is verified at the end.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import secrets
import sys
import time
from pathlib import Path
from statistics import median
from typing import Any

import scratch as scratch_db  # bench/scratch.py, beside this script

REPO = Path(__file__).resolve().parents[1]
WRITER_COUNTS = (1, 4, 16, 32)

# The same table as the log (columns, indexes), without its triggers, sealer queue or chain, nor its CHECK
# constraint tying the columns to the content (audit migration 0011), which this baseline's rows need not
# meet: a plain INSERT.
BASELINE_TABLE = "CREATE TABLE bench_plain_event (LIKE audit_auditevent INCLUDING ALL EXCLUDING CONSTRAINTS)"

BASELINE_INSERT = """
INSERT INTO bench_plain_event (digest, canonical, nonce, occurred_at, actor_kind, actor_id, actor_label,
                               on_behalf_of, action, target_type, target_id, target_label, context)
VALUES (%s, %s, %s, %s, %s, %s, %s, %s::jsonb, %s, %s, %s, %s, %s::jsonb)
"""


def _setup_django(database_url: str) -> None:
    os.environ["DATABASE_URL"] = database_url
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    # Production settings (DEBUG off) need a key; nothing here signs anything that outlives the run.
    os.environ.setdefault("SECRET_KEY", secrets.token_urlsafe(64))
    sys.path.insert(0, str(REPO))
    import django

    django.setup()


def _event(writer: int, i: int) -> dict[str, Any]:
    # A typical service event: a few labels, an on-behalf-of chain and a small context.
    return {
        "actor_label": f"bench-writer-{writer}",
        "action": "delegation.create",
        "target": ("delegation", str(i), f"Human {writer} → agent {i}"),
        "on_behalf_of": [{"type": "human", "id": writer, "label": f"Human {writer}"}],
        "context": {"scopes": ["crm.contacts:read"], "max_depth": 1, "purpose": "weekly report", "n": i},
    }


def _worker(index: int, commands: Any, results: Any) -> None:
    # Forked from a parent that set Django up and holds no open connection: each writer opens its own.
    import json

    from django.db import connection, transaction
    from django.utils import timezone

    from audit.services import Actor, Target, audit_append

    def baseline(i: int) -> None:
        # The row the log stores for the same event, its stored content included, encoded plainly.
        e = _event(index, i)
        at = timezone.now()
        on_behalf_of, context = json.dumps(e["on_behalf_of"]), json.dumps(e["context"])
        target_type, target_id, target_label = e["target"]
        content = json.dumps(
            {"occurred_at": at.isoformat(), "actor": {"kind": "system", "id": "", "label": e["actor_label"]},
             "on_behalf_of": e["on_behalf_of"], "action": e["action"], "context": e["context"],
             "target": {"type": target_type, "id": target_id, "label": target_label}},
            sort_keys=True, separators=(",", ":"), ensure_ascii=False,
        )  # fmt: skip
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(
                BASELINE_INSERT,
                [
                    secrets.token_hex(32),
                    content,
                    secrets.token_hex(16),
                    at,
                    "system",
                    "",
                    e["actor_label"],
                    on_behalf_of,
                    e["action"],
                    target_type,
                    target_id,
                    target_label,
                    context,
                ],
            )

    def audit(i: int) -> None:
        e = _event(index, i)
        with transaction.atomic():
            audit_append(
                actor=Actor.system(e["actor_label"]),
                action=e["action"],
                target=Target(*e["target"]),
                on_behalf_of=e["on_behalf_of"],
                context=e["context"],
            )

    phases = {"baseline": baseline, "audit": audit}
    results.put(("ready", index, 0))
    while True:
        command = commands.get()
        if command[0] == "stop":
            break
        _, phase, start, seconds = command
        work = phases[phase]
        while time.time() < start:
            time.sleep(0.001)
        end = start + seconds
        done = 0
        while time.time() < end:
            work(done)
            done += 1
        results.put((phase, index, done))
    connection.close()


def _seal(stop: Any) -> None:
    """The sealer, in its own process, as in production."""
    from audit import sealer

    sealer.run(stop=stop)


def _last_event_id() -> int:
    from audit.models import AuditEvent

    return AuditEvent.objects.order_by("-id").values_list("id", flat=True).first() or 0


def _sealing_delays(*, after_id: int) -> list[float]:
    """Seconds from each event of the last phase being recorded to its seal (waiting for the last ones)."""
    from audit import sealer
    from audit.models import Seal

    deadline = time.monotonic() + 30
    while sealer.anything_queued() and time.monotonic() < deadline:
        time.sleep(0.05)
    rows = Seal.objects.filter(event_id__gt=after_id).values_list("sealed_at", "event__occurred_at")
    return [(sealed - occurred).total_seconds() for sealed, occurred in rows]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=1.5, help="length of each measured phase (default 1.5)")
    parser.add_argument("--rounds", type=int, default=2, help="rounds over all writer counts; medians reported")
    args = parser.parse_args()

    url = scratch_db.server_url()
    began = time.monotonic()
    scratch, scratch_url = scratch_db.create(url)
    # Fork (after Django is set up, with no connection open) rather than spawn: eight writers start at
    # once instead of each importing Django again.
    ctx = mp.get_context("fork")
    workers: list[Any] = []
    commands: list[Any] = []
    try:
        _setup_django(scratch_url)
        from django.core.management import call_command
        from django.db import connection

        call_command("migrate", "audit", verbosity=0)
        with connection.cursor() as cursor:
            cursor.execute(BASELINE_TABLE)
        connection.close()

        commands = [ctx.Queue() for _ in range(max(WRITER_COUNTS))]
        results = ctx.Queue()
        workers = [
            ctx.Process(target=_worker, args=(i, commands[i], results), daemon=True) for i in range(max(WRITER_COUNTS))
        ]
        for worker in workers:
            worker.start()
        for _ in workers:
            results.get(timeout=120)
        stop_sealing = ctx.Event()
        sealer_process = ctx.Process(target=_seal, args=(stop_sealing,), daemon=True)
        sealer_process.start()
        ready_after = time.monotonic() - began

        def run(phase: str, writers: int, seconds: float) -> float:
            start = time.time() + 0.2
            for i in range(writers):
                commands[i].put(("run", phase, start, seconds))
            total = sum(results.get(timeout=seconds + 60)[2] for _ in range(writers))
            return total / seconds

        # Warm up every connection (prepared statements, caches) before measuring.
        run("baseline", len(workers), 0.3)
        run("audit", len(workers), 0.3)

        # Rounds over all writer counts, baseline and audit back to back in each: on a shared machine
        # the ratio of two phases measured seconds apart is steadier than either rate.
        measured: dict[int, list[tuple[float, float]]] = {n: [] for n in WRITER_COUNTS}
        delays: dict[int, list[float]] = {n: [] for n in WRITER_COUNTS}
        for _ in range(args.rounds):
            for writers in WRITER_COUNTS:
                base = run("baseline", writers, args.seconds)
                started = _last_event_id()
                chained = run("audit", writers, args.seconds)
                measured[writers].append((base, chained))
                delays[writers] += _sealing_delays(after_id=started)

        stop_sealing.set()
        sealer_process.join(timeout=30)
        from audit import sealer
        from audit.verification import verify_chain

        sealer.seal_pending()
        result = verify_chain()
        unsealed = result.pending
        connection.close()

        audit_one = median(a for _, a in measured[1])
        print(
            f"audit append: {args.rounds} round(s) x {args.seconds:g} s per phase, one transaction per event; "
            "medians over rounds"
        )
        header = ("writers", "baseline ev/s", "audit ev/s", "audit/baseline", "audit vs 1 writer")
        print("  ".join(f"{h:>{len(h) if i else 7}}" for i, h in enumerate(header)))
        for writers in WRITER_COUNTS:
            base = median(b for b, _ in measured[writers])
            chained = median(a for _, a in measured[writers])
            ratio = median(a / b for b, a in measured[writers])
            print(f"{writers:>7}  {base:>13.0f}  {chained:>10.0f}  {ratio:>14.2f}  {chained / audit_one:>17.2f}")
        print("sealing delay (commit to seal) under each load, all rounds:")
        for writers in WRITER_COUNTS:
            ordered = sorted(delays[writers])
            if ordered:
                p50, p99 = ordered[len(ordered) // 2], ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
                print(
                    f"{writers:>7} writers  p50 {p50 * 1000:>7.1f} ms  p99 {p99 * 1000:>7.1f} ms  ({len(ordered)} events)"
                )
        print(
            f"chain after the run: {'OK' if result.ok else 'BROKEN'}, {result.checked} events verified, "
            f"{unsealed} left unsealed"
        )
        print(f"total run time {time.monotonic() - began:.1f} s (set-up {ready_after:.1f} s)")
        if not result.ok:
            sys.exit(1)
    finally:
        for command in commands:
            command.put(("stop",))
        for worker in workers:
            worker.join(timeout=10)
            if worker.is_alive():
                worker.kill()
        scratch_db.drop(url, scratch)


if __name__ == "__main__":
    main()
