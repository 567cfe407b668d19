"""Launching a large campaign, against the plainest way to write the same rows, in one run:

- launch: ``campaign_generate`` of a campaign over N agents' grants — every item routed (separation of
  duties included), advised from recorded use, weighed, inserted, each with its audit event — against
  a raw ``INSERT … SELECT`` of the same N rows (constant routing and advice) into a table shaped like the
  items table, indexes included (goal ≥ 0.1x);
- the review queue: server time of the queue page at its first item and at item N (keyset: the marker
  of the row before), for a reviewer with all N items (goal ≤ 1.5x).

    DATABASE_URL=postgres://USER@HOST:5432/ANY_DB .venv/bin/python bench/reviews_launch.py [--items 100000]

Runs in a scratch database beside DATABASE_URL's (``custos_bench_<pid>``), dropped at the end.
"""

from __future__ import annotations

import argparse
import secrets
import statistics
import time
from datetime import timedelta
from typing import Any

import scratch as scratch_db  # bench/scratch.py, beside this script

GRANTS_PER_AGENT = 50

RAW_TABLE = "CREATE TABLE bench_plain_item (LIKE reviews_reviewitem INCLUDING ALL)"
RAW_INSERT = """
INSERT INTO bench_plain_item (
    campaign_id, kind, subject_key, agent_id, grant_id, label, scopes, reviewer_id, routing, risk, risk_score,
    blast_radius, queue_key, recommendation, recommendation_reason, created_at, due_at, reminders_sent, status,
    decided_by, justification, bulk, applied
)
SELECT %(campaign)s, 'grant', 'grant:' || g.id, g.holder_agent_id, g.id, a.name || ' → ' || r.name || ':' || g.action,
       jsonb_build_array(r.name || ':' || g.action), %(reviewer)s, 'the named reviewer', 'medium', 0, 0,
       lpad(g.id::text, 42, '0'), '', '',
       now(), now() + interval '14 days', 0, 'pending', '', '', false, ''
FROM governance_grant g JOIN governance_agent a ON a.id = g.holder_agent_id JOIN governance_resource r ON r.id = g.resource_id
"""


def build_org(items: int) -> dict[str, Any]:
    """Humans, agents and ``items`` agent grants, written directly (this is set-up, not measured)."""
    from django.contrib.auth.models import Group, User
    from django.utils import timezone

    from governance.models import Agent, Grant, Human, Resource

    now = timezone.now()
    reviewer_user = User.objects.create_user("bench-reviewer", password=secrets.token_urlsafe(16))
    reviewer_user.groups.add(Group.objects.get(name="reviewer"))
    admin = User.objects.create_user("bench-admin", password=secrets.token_urlsafe(16), is_superuser=True)
    reviewer = Human.objects.create(email="rev@bench.test", name="Rita Reviewer", user=reviewer_user)
    fallback_user = User.objects.create_user("bench-fallback", password=secrets.token_urlsafe(16))
    fallback_user.groups.add(Group.objects.get(name="reviewer"))
    fallback = Human.objects.create(email="fb@bench.test", name="Fred Fallback", user=fallback_user)
    sponsors = Human.objects.bulk_create(
        [Human(email=f"s{i}@bench.test", name=f"Sponsor {i}", department=f"Dept {i % 10}") for i in range(200)]
    )
    resources = Resource.objects.bulk_create(
        [
            Resource(name=f"res{i}.data", owner=sponsors[i % 200], actions=["read"], sensitivity="medium")
            for i in range(GRANTS_PER_AGENT)
        ]
    )
    agents = Agent.objects.bulk_create(
        [Agent(name=f"agent-{i}", sponsor=sponsors[i % 200]) for i in range(items // GRANTS_PER_AGENT)]
    )
    grants = [
        Grant(holder_agent=agent, resource=resource, action="read", expires_at=now + timedelta(days=30), granted_by="b")
        for agent in agents
        for resource in resources
    ]
    Grant.objects.bulk_create(grants, batch_size=5000)
    return {"admin": admin, "reviewer": reviewer, "reviewer_user": reviewer_user, "fallback": fallback}


def launch(org: dict[str, Any]) -> tuple[float, int, Any]:
    from audit.services import Actor
    from reviews import services

    actor = Actor.user(org["admin"])
    campaign = services.campaign_create(
        actor=actor,
        name="Everything",
        subjects=["grant"],
        reviewer_rule="named",
        named_reviewer=org["reviewer"],
        fallback_reviewer=org["fallback"],
    )
    services.campaign_launch(actor=actor, campaign=campaign)
    began = time.perf_counter()
    opened = services.campaign_generate(campaign_id=campaign.pk)
    return time.perf_counter() - began, opened, campaign


def raw_insert(campaign: Any, reviewer: Any) -> float:
    from django.db import connection, transaction

    with connection.cursor() as cursor:
        cursor.execute(RAW_TABLE)
    began = time.perf_counter()
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(RAW_INSERT, {"campaign": campaign.pk, "reviewer": reviewer.pk})
    return time.perf_counter() - began


def queue_times(user: Any, rounds: int) -> tuple[float, float, int]:
    """Median server time of the first queue page and of the page at the last item."""
    from django.test import Client

    from console.paging import PAGE_SIZE
    from reviews import selectors
    from reviews.models import ReviewItem

    client = Client()
    client.force_login(user)
    items = list(ReviewItem.objects.pending().assigned_to(user))  # the model's ordering is the queue's
    # The page that ends with the queue's last item, a full page like the first.
    marker = selectors.encode_marker(items[-(PAGE_SIZE + 1)])
    first, deep = [], []
    for _ in range(rounds):
        for times, query in ((first, ""), (deep, f"?after={marker}")):
            began = time.perf_counter()
            response = client.get(f"/reviews/{query}", headers={"host": "localhost"})
            times.append(time.perf_counter() - began)
            assert response.status_code == 200, response.status_code
    return statistics.median(first), statistics.median(deep), len(items)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--items", type=int, default=100_000, help="items in the campaign (100,000)")
    parser.add_argument("--rounds", type=int, default=30, help="queue page requests per position (30)")
    args = parser.parse_args()
    # DEBUG off as in production; plain HTTP to the test client (no redirect to https), nothing collected.
    with scratch_db.django_in_scratch(DEBUG="false", CUSTOS_SECURE="false", CUSTOS_MANIFEST_STATIC="false"):
        from django.conf import settings
        from django.db import connection

        settings.ALLOWED_HOSTS = ["*"]
        org = build_org(args.items)
        seconds, opened, campaign = launch(org)
        plain = raw_insert(campaign, org["reviewer"])
        with connection.cursor() as cursor:
            cursor.execute("ANALYZE")  # what autovacuum does after a bulk load
        print(
            f"launch of {opened:,} items with their audit events: {seconds:.2f} s ({opened / seconds:,.0f} items/s); "
            f"raw INSERT … SELECT of the same rows: {plain:.2f} s; ratio {plain / seconds:.2f}x (goal >= 0.1)"
        )
        first, deep, total = queue_times(org["reviewer_user"], args.rounds)
        print(
            f"queue page (median of {args.rounds}): first item {first * 1000:.1f} ms; item {total:,} "
            f"{deep * 1000:.1f} ms; ratio {deep / first:.2f}x (goal <= 1.5)"
        )


if __name__ == "__main__":
    main()
