"""Run by ``test_make_run_on_sqlite``, in its own process against a SQLite file (what ``make run`` uses):
seed the demo, then open every console page and API list a demo user reaches, as each role, plain and
htmx, and take one offboarding, one leaver and one sweep. Prints a JSON list of what failed."""

from __future__ import annotations

import json
import os
import sys
import traceback

import django

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
django.setup()

from django.conf import settings  # noqa: E402
from django.contrib.auth.models import User  # noqa: E402
from django.core.management import call_command  # noqa: E402
from django.test import Client  # noqa: E402

from audit.models import AuditEvent  # noqa: E402
from audit.services import Actor  # noqa: E402
from governance import services  # noqa: E402
from governance.models import Agent, Delegation, Human, Offboarding, Resource  # noqa: E402
from reviews import services as reviews  # noqa: E402
from reviews.models import Campaign, ReviewItem  # noqa: E402


def pages() -> list[str]:
    agent = Agent.objects.filter(status="active", children__isnull=False).first()
    human = Human.objects.get(user__username="reviewer")
    item = ReviewItem.objects.filter(reviewer__user__username="reviewer", status="pending").first()
    campaign = Campaign.objects.filter(kind="campaign").first()
    # A sub-agent's denial two hops below its human, its session and a delegation on its chain.
    denial = next(e for e in AuditEvent.objects.filter(action="check.deny").order_by("-id") if len(e.on_behalf_of) >= 3)
    session, link = denial.context["session_id"], Delegation.objects.filter(parent__isnull=False).first()
    resource = Resource.objects.first()
    assert agent and item and campaign and link and resource
    custody = [
        f"/custody/{denial.digest}/",
        f"/custody/{denial.digest}/bundle.json",
        f"/sessions/{session}/",
        f"/delegations/{link.pk}/",
        "/delegations/?q=support",
        f"/resources/{resource.pk}/",
        f"/audit/?agent={agent.pk}",
        f"/audit/?human={human.pk}",
        f"/audit/?resource={resource.pk}",
        f"/audit/export.csv?agent={agent.pk}",
        f"/audit/export.json?human={human.pk}",
        f"/audit/bundle/?agent={agent.pk}",
        f"/api/v1/audit/custody/{denial.digest}/",
        f"/api/v1/audit/sessions/{session}/",
        f"/api/v1/audit/events/?human={human.pk}",
    ]
    return [
        *custody,
        "/", "/agents/", f"/agents/{agent.pk}/", f"/agents/{agent.pk}/offboard/", "/humans/", f"/humans/{human.pk}/",
        f"/humans/{human.pk}/offboard/", "/reviews/", f"/reviews/items/{item.pk}/", "/reviews/?show=all",
        "/reviews/?show=unassigned", f"/reviews/?after={'0' * 42}", "/reviews/notifications/", "/campaigns/",
        f"/campaigns/{campaign.pk}/", f"/campaigns/{campaign.pk}/report.csv", f"/campaigns/{campaign.pk}/report.json",
        "/campaigns/new/", "/delegations/", "/drift/", "/access-requests/", "/audit/", "/resources/",
        "/frameworks/", "/frameworks.json",
        f"/api/v1/agents/{agent.pk}/blast-radius/", f"/api/v1/humans/{human.pk}/blast-radius/",
        "/api/v1/campaigns/", "/api/v1/review-items/", "/api/v1/agents/", "/api/v1/delegations/",
    ]  # fmt: skip


def main() -> None:
    settings.ALLOWED_HOSTS = ["*"]
    call_command("migrate", verbosity=0)
    call_command("seed_demo", verbosity=0)
    failures: list[str] = []
    urls = pages()
    for username in ("admin", "reviewer", "auditor"):
        client = Client(raise_request_exception=False)
        client.force_login(User.objects.get(username=username))
        for url in urls:
            for headers in ({}, {"HX-Request": "true"}):
                response = client.get(url, headers=headers)
                if response.status_code >= 500:
                    failures.append(f"{username} GET {url} {headers}: {response.status_code}")
    admin = Actor.user(User.objects.get(username="admin"))
    try:
        agent = Agent.objects.filter(status="active", children__isnull=False).first()
        # The demo's morning offboardings, and this one, measured their time-to-revoke here too.
        if Offboarding.objects.filter(effective_at__isnull=False).count() < 3:
            failures.append("the demo's offboardings have no time-to-revoke on SQLite")
        services.agent_offboard(actor=admin, agent=agent, reason="sqlite smoke")
        if Offboarding.objects.get(agent=agent).effective_at is None:
            failures.append("an agent offboarded on SQLite has no time-to-revoke")
        # The offboarded agent's page and its sub-agent's, which show the offboarding that cut them.
        client = Client(raise_request_exception=False)
        client.force_login(User.objects.get(username="admin"))
        for offboarded in (agent, agent.children.first()):
            response = client.get(f"/agents/{offboarded.pk}/")
            if response.status_code >= 500:
                failures.append(f"admin GET offboarded agent {offboarded.pk}: {response.status_code}")
        leaver = Human.objects.filter(status="active", sponsored_agents__status="active", manager__isnull=False)
        services.human_offboard(actor=admin, human=leaver.filter(user__isnull=True).first(), reason="sqlite smoke")
        services.expire_due(actor=Actor.system("sqlite smoke"))
        reviews.micro_reviews_open()
        reviews.recertification_open_due()
        reviews.reviews_remind_due()
        reviews.reviews_escalate_due()
    except Exception:  # the report is the point: what broke, in full
        failures.append(traceback.format_exc())
    print(json.dumps(failures))


if __name__ == "__main__":
    sys.exit(main())
