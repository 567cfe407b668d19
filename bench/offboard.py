"""Offboarding a 2,047-agent tree (a full binary tree, ten levels below its top, each agent with a key
and a grant), against one audited change (``agent_suspend`` of a lone agent with a key), in one run:

- end to end: ``agent_offboard`` from the call to its return — preview, locks, the set-based revocation,
  one audit event per object, the commit and its confirmation (goal ≤ 1 s);
- time until the revocation is effective: from the moment the change has committed (the service returned)
  to the first refused ``governance.runtime.check`` of a credential it cut (a deep sub-agent's key, whose
  state this process kept from an allowed check just before), for the offboarding and for the single
  suspension (goal ≤ 2x: a bulk change is honoured as fast as a single one);
- for reference, the offboarding's recorded time-to-revoke (``effective_at - requested_at``).

    DATABASE_URL=postgres://USER@HOST:5432/ANY_DB .venv/bin/python bench/offboard.py [--rounds 5]

Runs in a scratch database beside DATABASE_URL's (``custos_bench_<pid>``), dropped at the end.
"""

from __future__ import annotations

import argparse
import statistics
import time
from datetime import timedelta
from typing import Any

import scratch as scratch_db  # bench/scratch.py, beside this script

LEVELS = 10  # below the top: 2^11 - 1 = 2,047 agents


def build_tree(sponsor: Any, resource: Any, tag: str) -> tuple[Any, str]:
    """The tree, a key and a grant for each agent, written in bulk (set-up, not measured); its top
    agent and the secret of the key of one agent at the bottom."""
    from django.utils import timezone

    from governance import credentials
    from governance.models import Agent, AgentKey, Grant

    now = timezone.now()
    levels = [[Agent.objects.create(name=f"{tag}-top", sponsor=sponsor)]]
    for depth in range(1, LEVELS + 1):
        rows = [
            Agent(name=f"{tag}-{depth}-{i}", sponsor=sponsor, parent=parent, depth=depth)
            for i, parent in enumerate(p for p in levels[-1] for _ in (0, 1))
        ]
        levels.append(Agent.objects.bulk_create(rows))
    everyone = [a for level in levels for a in level]
    issued = {a.pk: credentials.generate("ck") for a in everyone}
    AgentKey.objects.bulk_create(
        AgentKey(
            agent=a,
            prefix=issued[a.pk].prefix,
            hashed=issued[a.pk].hashed,
            created_by="bench",
            expires_at=now + timedelta(days=1),
        )
        for a in everyone
    )
    Grant.objects.bulk_create(
        Grant(holder_agent=a, resource=resource, action="read", expires_at=now + timedelta(days=1), granted_by="b")
        for a in everyone
    )
    return levels[0][0], issued[levels[-1][-1].pk].full


def refused_after(credential: str, resource: str, began: float) -> float:
    """Seconds from ``began`` to the first refused check of ``credential``."""
    from governance import runtime

    while True:
        result = runtime.check(credential=credential, action="read", resource=resource, context={})
        if not result.outcome.allowed:
            return time.perf_counter() - began


def allowed(credential: str, resource: str) -> bool:
    from governance import runtime

    return runtime.check(credential=credential, action="read", resource=resource, context={}).outcome.allowed


def offboard_round(sponsor: Any, resource: Any, n: int) -> tuple[float, float, int, int]:
    from audit.services import Actor
    from governance import services

    top, deep_key = build_tree(sponsor, resource, f"tree{n}")
    assert allowed(deep_key, resource.name)  # and its state kept by this process
    began = time.perf_counter()
    plan = services.agent_offboard(actor=Actor.system("bench"), agent=top, reason="bench")  # commits
    returned = time.perf_counter()
    effective = refused_after(deep_key, resource.name, returned)
    total = returned - began
    assert plan.offboarding is not None and plan.offboarding.time_to_revoke_ms is not None
    return total, effective, plan.offboarding.time_to_revoke_ms, plan.counts()["agents"]


def suspend_round(sponsor: Any, resource: Any) -> tuple[float, float]:
    from audit.services import Actor
    from governance import services

    agent = services.agent_create(actor=Actor.system("bench"), name="lone", sponsor=sponsor)
    services.grant_create(
        actor=Actor.system("bench"),
        holder=agent,
        resource=resource,
        action="read",
        expires_at=time_in(days=1),
    )
    _key, secret = services.agentkey_create(actor=Actor.system("bench"), agent=agent)
    assert allowed(secret, resource.name)
    began = time.perf_counter()
    services.agent_suspend(actor=Actor.system("bench"), agent=agent, reason="bench")  # commits
    returned = time.perf_counter()
    return returned - began, refused_after(secret, resource.name, returned)


def time_in(**delta: Any) -> Any:
    from django.utils import timezone

    return timezone.now() + timedelta(**delta)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=5, help="offboardings (each of a fresh tree) and suspensions")
    args = parser.parse_args()
    with scratch_db.django_in_scratch(DEBUG="false", CUSTOS_MANIFEST_STATIC="false"):
        from audit.services import Actor
        from governance import services
        from governance.models import Human, Resource

        sponsor = Human.objects.create(email="s@bench.test", name="Sam Sponsor")
        resource = Resource.objects.create(name="ledger.data", owner=sponsor, actions=["read"])
        services.grant_create(actor=Actor.system("bench"), holder=sponsor, resource=resource, action="read")
        offboards = [offboard_round(sponsor, resource, n) for n in range(args.rounds)]
        suspends = [suspend_round(sponsor, resource) for _ in range(args.rounds)]
        agents = offboards[0][3]
        total = statistics.median(o[0] for o in offboards)
        effective = statistics.median(o[1] for o in offboards)
        recorded = statistics.median(o[2] for o in offboards)
        single_total = statistics.median(s[0] for s in suspends)
        single_effective = statistics.median(s[1] for s in suspends)
        print(
            f"offboarding {agents:,} agents (each with a key and a grant), median of {args.rounds}: "
            f"{total * 1000:.0f} ms end to end (goal <= 1000 ms); recorded time-to-revoke {recorded} ms"
        )
        print(
            f"commit -> first refused check: offboarding {effective * 1000:.2f} ms, one agent_suspend "
            f"{single_effective * 1000:.2f} ms; ratio {effective / single_effective:.2f}x (goal <= 2) "
            f"[agent_suspend itself: {single_total * 1000:.1f} ms]"
        )


if __name__ == "__main__":
    main()
