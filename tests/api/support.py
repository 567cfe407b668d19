"""The organisation the API tests run against, and a snapshot of everything a write could change."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from django.contrib.auth.models import User
from django.utils import timezone
from rest_framework.test import APIClient

from audit.models import AuditEvent
from audit.sealer import seal_pending
from audit.services import Actor
from governance import runtime, services
from governance.models import (
    AccessRequest,
    Agent,
    AgentKey,
    ApiToken,
    Delegation,
    Grant,
    Human,
    HumanStatus,
    Resource,
)
from reviews import services as reviews
from reviews.models import Campaign, ReviewItem
from tests import factories


@dataclass
class World:
    """A small organisation: the reviewer is linked to ``mine`` and so sees what ``mine`` sponsors;
    the ``other_*`` objects belong to someone else and are outside the reviewer's view."""

    users: dict[str, User]
    tokens: dict[str, str]
    mine: Human
    left: Human
    resource: Resource
    agent: Agent
    sub_agent: Agent
    suspended_agent: Agent
    human_grant: Grant
    agent_grant: Grant
    delegation: Delegation
    leaf_delegation: Delegation  # max_depth 0: allows no sub-delegation
    key: AgentKey
    other_human: Human
    other_agent: Agent
    other_grant: Grant
    other_delegation: Delegation
    other_key: AgentKey
    access_request: AccessRequest  # by ``agent``, pending, decided by ``mine`` (the reviewer)
    # Access reviews of the reviewer's department: ``mine`` reviews by name; what acts for ``mine`` (their
    # agent's grant and delegations) is left unassigned (separation of duties, and ``mine`` is the fallback
    # too), so only an admin decides it.
    colleague: Human  # another reviewer, to hand items to
    draft_campaign: Campaign
    campaign: Campaign  # active, its items generated
    review_item: ReviewItem  # in the reviewer's queue (a grant of their report's agent)
    unassigned_item: ReviewItem  # about ``delegation``: nobody may review it but an admin

    def client(self, role: str) -> APIClient:
        """A client calling as ``role`` with a real personal API token; "anonymous" sends none."""
        client = APIClient()
        if role != "anonymous":
            client.credentials(HTTP_AUTHORIZATION=f"Bearer {self.tokens[role]}")
        return client


ROLES = ("admin", "reviewer", "auditor", "outsider", "anonymous")


def build_world() -> World:
    users = {
        "admin": factories.make_admin(),
        "reviewer": factories.make_reviewer(),
        "auditor": factories.make_auditor(),
        "outsider": factories.make_outsider(),
    }
    tokens = {role: factories.make_api_token(user) for role, user in users.items()}
    mine = factories.make_human(user=users["reviewer"], department="Ops")
    left = factories.make_human()
    services.human_set_status(actor=factories.SYSTEM, human=left, status=HumanStatus.LEFT)
    resource = factories.make_resource(owner=mine)
    human_grant = factories.make_grant(mine, resource, "read")
    factories.make_grant(mine, resource, "write")
    agent = factories.make_agent(sponsor=mine)
    sub_agent = factories.make_agent(parent=agent)
    suspended_agent = factories.make_agent(sponsor=mine)
    services.agent_suspend(actor=factories.SYSTEM, agent=suspended_agent)
    agent_grant = factories.make_grant(agent, resource, "read")
    delegation = factories.make_delegation(
        agent,
        [resource.scope("read"), resource.scope("write")],
        root_human=mine,
        max_depth=1,
        expires_in=timedelta(days=2),
    )
    leaf_delegation = factories.make_delegation(agent, [resource.scope("read")], root_human=mine, max_depth=0)
    key, secret = factories.make_key(agent)
    # One recorded decision in a session, for the custody and session endpoints.
    runtime.check(credential=secret, action="read", resource=resource.name, context={"session_id": "world-session"})

    other = factories.make_chain(depth=1)
    other_key, _ = factories.make_key(other["agents"][0])
    access_request = services.access_request_create(
        actor=Actor.agent(agent), agent=agent, scope=resource.scope("write"), justification="to file the report"
    )
    colleague = factories.make_human(user=factories.make_reviewer())
    # A report of ``mine`` whose agent ``mine`` may review (they neither sponsor it nor does it act for them).
    report = factories.make_human(manager=mine, department="Ops")
    reports_agent = factories.make_agent(sponsor=report)
    reports_grant = factories.make_grant(reports_agent, resource, "read")
    admin = factories.SYSTEM  # not the admin user: tests read the admin's own audit trail
    review_settings: dict[str, Any] = {
        "subjects": ["grant", "delegation"],
        # The reviewer's own line only: an item about another line would make its agent theirs to read.
        "filter_department": "Ops",
        "reviewer_rule": "named",
        "named_reviewer": mine,
        "fallback_reviewer": mine,
        "justification": "never",
        "bulk_risks": ["low", "medium", "high", "critical"],
    }
    draft_campaign = reviews.campaign_create(actor=admin, name="Draft review", **review_settings)
    campaign = reviews.campaign_create(actor=admin, name="Delegation review", **review_settings)
    reviews.campaign_launch(actor=admin, campaign=campaign)
    reviews.campaign_generate(campaign_id=campaign.pk)
    campaign.refresh_from_db()
    items = ReviewItem.objects.filter(campaign=campaign)
    # Sealed now, as the sealer would soon: a module's tests share this world for longer than the bound an
    # unsealed event may wait (CUSTOS_AUDIT_MAX_SEAL_DELAY), and verification rightly fails past it.
    seal_pending()
    return World(
        users=users,
        tokens=tokens,
        mine=mine,
        left=left,
        resource=resource,
        agent=agent,
        sub_agent=sub_agent,
        suspended_agent=suspended_agent,
        human_grant=human_grant,
        agent_grant=agent_grant,
        delegation=delegation,
        leaf_delegation=leaf_delegation,
        key=key,
        other_human=other["human"],
        other_agent=other["agents"][0],
        other_grant=Grant.objects.filter(holder_human=other["human"]).first(),  # type: ignore[arg-type]
        other_delegation=other["links"][0],
        other_key=other_key,
        access_request=access_request,
        colleague=colleague,
        draft_campaign=draft_campaign,
        campaign=campaign,
        review_item=items.get(grant=reports_grant),
        unassigned_item=items.get(delegation=delegation),
    )


def snapshot() -> dict[str, Any]:
    """Everything a write could change: row counts, the audit log's length, and the state of every
    revocable or suspendable row (a refused revoke adds no row but must not flip a status either)."""
    return {
        "counts": {
            model.__name__: model.objects.count()
            for model in (Human, Agent, Resource, Grant, Delegation, AgentKey, ApiToken, AccessRequest, AuditEvent)
        },
        "humans": sorted(Human.objects.values_list("id", "status")),
        "agents": sorted(Agent.objects.values_list("id", "status")),
        "grants": sorted(Grant.objects.values_list("id", "status")),
        "delegations": sorted(Delegation.objects.values_list("id", "status")),
        "keys": sorted(AgentKey.objects.values_list("id", "revoked_at", "expires_at")),
        "access_requests": sorted(AccessRequest.objects.values_list("id", "status")),
    }


def in_a_day() -> str:
    return (timezone.now() + timedelta(days=1)).isoformat()


def in_an_hour() -> str:
    return (timezone.now() + timedelta(hours=1)).isoformat()
