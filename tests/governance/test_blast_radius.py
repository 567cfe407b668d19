"""Blast radius (SPEC §8): what an agent, or the agents acting for a human, can exercise now, weighted by
sensitivity, with the exposure window; at a constant number of queries; as the viewer may see it."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
import time_machine
from django.contrib.auth.models import User
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from governance import services
from governance.blast import agent_blast_radius, human_blast_radius, picture
from governance.models import Agent, Human, Resource
from tests.factories import (
    SYSTEM,
    make_admin,
    make_agent,
    make_api_token,
    make_delegation,
    make_grant,
    make_human,
    make_key,
    make_resource,
    make_reviewer,
)

pytestmark = pytest.mark.django_db


def _tree() -> dict[str, Any]:
    """A reviewer's agent with two sub-agents: one they sponsor (visible), one of another line (hidden).

    top ── grant crm:read (low), delegation ledger:write (critical) from its sponsor
    ├─ seen  ── grant mail:read (medium)
    └─ hidden ── grant vault:read (high)   sponsored by someone outside the reviewer's view
    """
    reviewer = make_reviewer()
    sponsor = make_human(user=reviewer)
    stranger = make_human()
    crm = make_resource("crm.contacts", sensitivity="low")
    mail = make_resource("mail.outbox", sensitivity="medium")
    vault = make_resource("vault.secrets", sensitivity="high")
    ledger = make_resource("ledger.entries", sensitivity="critical")
    top = make_agent(sponsor=sponsor, name="top-agent")
    seen = make_agent(parent=top, name="seen-sub")
    hidden = make_agent(parent=top, sponsor=stranger, name="hidden-sub")
    make_grant(top, crm, "read", expires_at=timezone.now() + timedelta(days=3))
    make_grant(seen, mail, "read", expires_at=timezone.now() + timedelta(days=2))
    make_grant(hidden, vault, "read", expires_at=timezone.now() + timedelta(days=5))
    make_grant(sponsor, ledger, "write")
    link = make_delegation(top, [ledger.scope("write")], root_human=sponsor, expires_in=timedelta(days=1))
    return {
        "reviewer": reviewer,
        "sponsor": sponsor,
        "top": top,
        "seen": seen,
        "hidden": hidden,
        "link": link,
        "resources": (crm, mail, vault, ledger),
    }


def test_an_agents_blast_radius_counts_its_own_and_its_sub_agents_scopes_weighted_by_sensitivity() -> None:
    t = _tree()

    blast = agent_blast_radius(t["top"])

    assert {s.scope for s in blast.scopes} == {
        "crm.contacts:read",
        "mail.outbox:read",
        "vault.secrets:read",
        "ledger.entries:write",
    }
    assert blast.score == 1 + 3 + 9 + 27
    assert blast.scopes[0].scope == "ledger.entries:write"  # most sensitive first
    assert blast.by_sensitivity == {"low": 1, "medium": 1, "high": 1, "critical": 1}
    # The longest-lived thing in force: the hidden sub-agent's five-day grant.
    assert timedelta(days=4, hours=23) < blast.exposure_window <= timedelta(days=5)


def test_a_reviewer_sees_the_figures_of_what_they_may_see_and_never_a_hidden_sub_agents_name() -> None:
    t = _tree()

    blast = agent_blast_radius(t["top"], viewer=t["reviewer"])

    assert {a.name for a in blast.agents} == {"top-agent", "seen-sub"}
    assert "vault.secrets:read" not in {s.scope for s in blast.scopes}
    assert blast.score == 1 + 3 + 27
    drawn = picture(blast)
    assert {n.label for n in drawn.agents} == {"top-agent", "seen-sub"}
    assert {n.label for n in drawn.resources} == {"crm.contacts", "mail.outbox", "ledger.entries"}


def test_a_reviewers_page_and_api_show_counts_without_the_hidden_sub_agent() -> None:
    t = _tree()
    client = Client()
    client.force_login(t["reviewer"])

    page = client.get(reverse("console:agent", args=[t["top"].pk])).content.decode()
    api = Client(headers={"Authorization": f"Bearer {make_api_token(t['reviewer'])}"})
    body = api.get(f"/api/v1/agents/{t['top'].pk}/blast-radius/").json()

    assert "hidden-sub" not in page and "vault.secrets" not in page
    assert 'id="blast-radius"' in page and "<svg" in page and "seen-sub" in page
    assert body["score"] == 31 and body["scope_count"] == 3
    assert {a["name"] for a in body["agents"]} == {"top-agent", "seen-sub"}
    assert "hidden-sub" not in str(body)
    # The hidden agent's own figure is a 404, as its page.
    assert api.get(f"/api/v1/agents/{t['hidden'].pk}/blast-radius/").status_code == 404


def test_suspended_sub_agents_and_revoked_or_unheld_delegations_count_nothing() -> None:
    t = _tree()
    services.agent_suspend(actor=SYSTEM, agent=t["hidden"], reason="test")
    ledger_grant = t["sponsor"].grants.get()
    services.grant_revoke(actor=SYSTEM, grant=ledger_grant, reason="no longer needed")

    blast = agent_blast_radius(t["top"])

    # The link is still in force, but its root human no longer holds the scope: the check refuses it.
    assert {s.scope for s in blast.scopes} == {"crm.contacts:read", "mail.outbox:read"}
    assert blast.score == 4


def test_a_humans_blast_radius_covers_the_agents_acting_for_them() -> None:
    t = _tree()
    other = make_agent(sponsor=make_human(), name="other-line")
    mail = Resource.objects.get(name="mail.outbox")
    make_grant(t["sponsor"], mail, "read")
    make_delegation(other, [mail.scope("read")], root_human=t["sponsor"])

    blast = human_blast_radius(t["sponsor"])

    assert {a.name for a in blast.agents} == {"top-agent", "seen-sub", "hidden-sub", "other-line"}
    assert blast.score == 1 + 3 + 9 + 27
    assert next(s for s in blast.scopes if s.scope == "mail.outbox:read").agents == 2


def test_the_exposure_window_is_the_longest_remaining_key_token_delegation_or_grant() -> None:
    human = make_human()
    resource = make_resource(sensitivity="high")
    make_grant(human, resource, "read")
    agent = make_agent(sponsor=human)
    make_delegation(agent, [resource.scope("read")], root_human=human, expires_in=timedelta(hours=6))
    key, _secret = make_key(agent, expires_at=timezone.now() + timedelta(days=20))

    assert agent_blast_radius(agent).exposure_window > timedelta(days=19)
    services.agentkey_revoke(actor=SYSTEM, key=key, reason="done")
    window = agent_blast_radius(agent).exposure_window
    assert timedelta(hours=5) < window <= timedelta(hours=6)
    with time_machine.travel(timezone.now() + timedelta(hours=7)):
        after = agent_blast_radius(agent)
    assert after.exposure_window == timedelta(0) and after.scopes == ()


def _deep_tree(levels: int, width: int) -> Agent:
    human = make_human()
    resources = [make_resource(sensitivity=level) for level in ("low", "medium", "high", "critical")]
    for resource in resources:
        make_grant(human, resource, "read")
    top = make_agent(sponsor=human)
    link = make_delegation(top, [r.scope("read") for r in resources], root_human=human, max_depth=levels)
    frontier = [(top, link)]
    for level in range(levels):
        below = []
        for parent, parent_link in frontier:
            for i in range(width):
                child = make_agent(parent=parent)
                make_grant(child, resources[(level + i) % 4], "read")
                make_key(child)
                child_link = make_delegation(
                    child,
                    list(parent_link.scopes),
                    parent=parent_link,
                    max_depth=levels - level - 1,
                    expires_in=timedelta(hours=20 - level),
                )
                below.append((child, child_link))
        frontier = below
    return top


def test_the_blast_radius_costs_the_same_number_of_queries_for_a_bigger_tree(
    django_assert_num_queries: Any, settings: Any
) -> None:
    settings.CUSTOS_DELEGATION_MAX_DEPTH = 4
    small, big = _deep_tree(1, 1), _deep_tree(3, 3)
    admin = make_admin()

    with django_assert_num_queries(7):
        agent_blast_radius(small)
    with django_assert_num_queries(7):
        figures = agent_blast_radius(big)
    assert len(figures.agents) == 1 + 3 + 9 + 27
    # A human's adds one query (the agents acting for them), whatever their number.
    human = Human.objects.get(pk=big.sponsor_id)
    with django_assert_num_queries(8):
        human_blast_radius(human)
    assert len(agent_blast_radius(big, viewer=admin).agents) == 40


def test_the_human_blast_radius_endpoint_answers_404_outside_the_view(reviewer_user: User) -> None:
    t = _tree()
    api = Client(headers={"Authorization": f"Bearer {make_api_token(t['reviewer'])}"})

    mine = api.get(f"/api/v1/humans/{t['sponsor'].pk}/blast-radius/")
    other = api.get(f"/api/v1/humans/{make_human().pk}/blast-radius/")

    assert mine.status_code == 200 and mine.json()["scope_count"] == 3
    assert other.status_code == 404
