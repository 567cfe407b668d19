"""The expiry sweep against the plainest way to do the same work, in one run: ``expire_due`` over N due
agent grants (batches, one event per grant) against one raw
``UPDATE governance_grant SET status = 'expired' WHERE status = 'active' AND expires_at <= now()`` of the
same rows, which writes no events (goal ≥ 0.33x). The sweep's events are built by PostgreSQL (one
statement a batch: claim, events, queue entries); ``--python-events`` also sweeps with the events built in
Python (``audit_append_many``, the reference path), in the same run.

    DATABASE_URL=postgres://USER@HOST:5432/ANY_DB .venv/bin/python bench/sweep.py [--grants 1000000] [--batch 5000] [--sweepers 2] [--rounds 1] [--python-events] [--profile]

Runs in a scratch database beside DATABASE_URL's (``custos_bench_<pid>``), dropped at the end. The rows
are bulk inserted; before each measurement they are set active again and vacuumed, so every run starts
from the same freshly vacuumed table (the audit log grows by N events per sweep, as a real log would).
Each round measures the raw UPDATE, then each sweep: compare the ratios within a round (the machine is
shared; absolute rates move with its load).
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import statistics
import time

import scratch as scratch_db  # bench/scratch.py, beside this script

INSERT_GRANTS = """
INSERT INTO governance_grant (holder_agent_id, resource_id, action, valid_from, expires_at, status, source,
                              justification, granted_by, created_at, revoked_reason)
SELECT %(agents)s[1 + i %% array_length(%(agents)s, 1)], %(resource)s, 'read', now() - interval '2 days',
       now() - interval '1 hour' - i * interval '1 millisecond', 'active', 'direct', '', 'bench',
       now() - interval '2 days', ''
  FROM generate_series(1, %(n)s) AS i
"""
RAW_UPDATE = "UPDATE governance_grant SET status = 'expired' WHERE status = 'active' AND expires_at <= now()"


def vacuum() -> None:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("VACUUM ANALYZE governance_grant")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--grants", type=int, default=1_000_000, help="due agent grants (1,000,000)")
    parser.add_argument("--batch", type=int, default=0, help="sweep batch size (the service's default)")
    parser.add_argument("--profile", action="store_true", help="profile the sweep (cProfile, top 25)")
    parser.add_argument(
        "--sweepers", type=int, default=0, help="sweepers at once (threads, own connections); CUSTOS_SWEEPERS (2)"
    )
    parser.add_argument("--rounds", type=int, default=1, help="rounds of raw UPDATE then sweep(s) (1)")
    parser.add_argument(
        "--python-events", action="store_true", help="also sweep with the events built in Python (reference)"
    )
    args = parser.parse_args()
    with scratch_db.django_in_scratch():
        from django.db import connection

        from audit.models import AuditEvent
        from audit.services import Actor
        from governance import services
        from governance.models import Grant, GrantStatus
        from governance.services import sweeps

        actor = Actor.system("bench")
        owner = services.human_create(actor=actor, email="owner@example.test", name="Owner")
        resource = services.resource_create(actor=actor, name="crm.contacts", actions=("read",), owner=owner)
        agents = [
            services.agent_create(actor=actor, sponsor=owner, parent=None, name=f"agent-{i}").pk for i in range(50)
        ]
        began = time.perf_counter()
        with connection.cursor() as cursor:
            cursor.execute(INSERT_GRANTS, {"agents": agents, "resource": resource.pk, "n": args.grants})
        vacuum()
        print(f"setup: {args.grants:,} due agent grants inserted in {time.perf_counter() - began:.1f} s")
        batch = args.batch or sweeps.BATCH_SIZE
        sweepers = args.sweepers or None  # the service's default
        designs = [("events by PostgreSQL", True)] + ([("events by Python", False)] if args.python_events else [])
        ratios: dict[str, list[float]] = {name: [] for name, _ in designs}
        active = False  # the rows as inserted are active already

        def fresh() -> None:
            nonlocal active
            if not active:
                Grant.objects.update(status=GrantStatus.ACTIVE)
            vacuum()
            active = True

        for round_ in range(1, args.rounds + 1):
            fresh()
            began = time.perf_counter()
            with connection.cursor() as cursor:
                cursor.execute(RAW_UPDATE)
                raw_rows = cursor.rowcount
            raw = time.perf_counter() - began
            active = False
            assert raw_rows == args.grants, raw_rows
            print(
                f"round {round_}: raw UPDATE of {raw_rows:,} grants (no events): {raw:.2f} s = {raw_rows / raw:,.0f} rows/s"
            )

            for name, in_database in designs:
                fresh()
                events_before = AuditEvent.objects.count()
                profiler = cProfile.Profile() if args.profile else None
                began = time.perf_counter()
                if profiler:
                    profiler.enable()
                counts = services.expire_due(
                    actor=Actor.system("expiry sweep"), batch_size=batch, sweepers=sweepers, database_events=in_database
                )
                if profiler:
                    profiler.disable()
                swept = time.perf_counter() - began
                active = False
                events = AuditEvent.objects.count() - events_before
                assert counts["grants"] == args.grants == events, (counts, events)
                assert not Grant.objects.filter(status=GrantStatus.ACTIVE).exists()
                ratios[name].append(raw / swept)
                print(
                    f"round {round_}: sweep ({name}) of {counts['grants']:,} grants in batches of {batch:,} "
                    f"by {sweepers or 'default'} sweepers, with {events:,} audit events: "
                    f"{swept:.2f} s = {counts['grants'] / swept:,.0f} rows/s, ratio {raw / swept:.2f}x"
                )
                if profiler:
                    pstats.Stats(profiler).sort_stats("cumulative").print_stats(25)

        for name, found in ratios.items():
            print(
                f"{name}: ratio {', '.join(f'{r:.2f}x' for r in found)} (median {statistics.median(found):.2f}x; goal >= 0.33)"
            )


if __name__ == "__main__":
    main()
