"""A small organisation for review tests: who reviews whom, and access worth reviewing."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from audit.services import Actor
from governance.models import Agent, AgentKey, Delegation, Grant, Human, Resource
from reviews import services
from reviews.models import Campaign, ReviewItem
from tests import factories


@dataclass
class Org:
    admin: Any
    manager_user: Any
    sponsor_user: Any
    fallback_user: Any
    other_user: Any
    manager: Human
    sponsor: Human
    fallback: Human
    other: Human
    resource: Resource
    agent: Agent
    sub_agent: Agent
    grant: Grant
    delegation: Delegation
    key: AgentKey
    key_secret: str


def linked_human(user: Any, **kwargs: Any) -> Human:
    return factories.make_human(user=user, **kwargs)


def make_org() -> Org:
    """Mia manages Sam; Sam sponsors ``agent`` (with a sub-agent) and delegates to it; Fay is the
    fallback reviewer; Otto is another reviewer with no part in any of it."""
    admin = factories.make_admin()
    manager_user, sponsor_user, fallback_user, other_user = (factories.make_reviewer() for _ in range(4))
    manager = linked_human(manager_user, name="Mia Manager")
    sponsor = linked_human(sponsor_user, name="Sam Sponsor", manager=manager)
    fallback = linked_human(fallback_user, name="Fay Fallback")
    other = linked_human(other_user, name="Otto Other")
    resource = factories.make_resource(name="crm.contacts", sensitivity="high")
    factories.make_grant(sponsor, resource, "read")
    agent = factories.make_agent(sponsor=sponsor, name="crm-helper")
    sub_agent = factories.make_agent(parent=agent, sponsor=sponsor, name="crm-helper-sub")
    grant = factories.make_grant(agent, resource, "read")
    delegation = factories.make_delegation(agent, ["crm.contacts:read"], root_human=sponsor, max_depth=1)
    key, secret = factories.make_key(agent)
    return Org(
        admin, manager_user, sponsor_user, fallback_user, other_user, manager, sponsor, fallback, other,
        resource, agent, sub_agent, grant, delegation, key, secret,
    )  # fmt: skip


def launch(org: Org, **settings: Any) -> Campaign:
    """Create, launch and generate (synchronously) a campaign; by default the sponsor's manager reviews
    the agent's grants, delegations and keys."""
    values: dict[str, Any] = {
        "name": "Quarterly agent access",
        "subjects": ["grant", "delegation", "key"],
        "reviewer_rule": "sponsor_manager",
        "fallback_reviewer": org.fallback,
        **settings,
    }
    actor = Actor.user(org.admin)
    campaign = services.campaign_create(actor=actor, **values)
    services.campaign_launch(actor=actor, campaign=campaign)
    services.campaign_generate(campaign_id=campaign.pk)
    campaign.refresh_from_db()
    return campaign


def item(campaign: Campaign, subject_key: str) -> ReviewItem:
    return ReviewItem.objects.select_related("reviewer").get(campaign=campaign, subject_key=subject_key)
