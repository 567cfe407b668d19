"""The support team's MCP server goes live: registered in Custos as a resource at its RFC 8707 URI, its
tools granted to the support people who sponsor the triage agents, and two of them (reading contacts
and tickets) delegated to those agents, all through the services, as an admin would in the console.

``make run`` calls ``ensure`` through ``seed_demo --mcp-url`` on every start: the first time it rolls the
server out; later, if the console's port (and so the server's) changed, it moves the registration to
the new URI; otherwise it changes nothing, so what an admin revoked in the console stays revoked.
"""

from __future__ import annotations

from datetime import timedelta

from django.contrib.auth import get_user_model
from django.db import transaction
from django.utils import timezone

from audit.services import Actor
from demo.mcp_server import DELEGATED_TOOLS, HELD_TOOLS, RESOURCE, TOOLS
from demo.people import PEOPLE_BY_KEY
from governance import services
from governance.models import Agent, AgentStatus, Human, HumanStatus, Resource, ResourceKind, Sensitivity
from governance.selectors import human_held_scopes

OWNER = "elena-petrova"  # heads support
AGENT_FAMILY = "support-triage"  # the agents that answer tickets, one per support queue
DELEGATION_DAYS = 30


def ensure(uri: str) -> str:
    """Make the demo MCP server registered at ``uri``; say what was done, in one line."""
    resource = Resource.objects.filter(name=RESOURCE).first()
    actor = _admin()
    if resource is None:
        delegated = roll_out(actor, uri)
        return (
            f"registered the support MCP server {RESOURCE} at {uri}; delegated its reading tools to {delegated} agents"
        )
    if resource.uri != uri:
        services.resource_move(actor=actor, resource=resource, uri=uri)
        return f"moved the support MCP server {RESOURCE} to {uri}"
    return f"the support MCP server {RESOURCE} is registered at {uri}"


@transaction.atomic
def roll_out(actor: Actor, uri: str) -> int:
    """Register the server, grant its tools to the triage agents' sponsors and delegate the reading
    tools to each active triage agent. Returns how many agents got a delegation."""
    owner = Human.objects.get(email=PEOPLE_BY_KEY[OWNER].email)
    resource = services.resource_create(
        actor=actor,
        name=RESOURCE,
        owner=owner,
        actions=TOOLS,
        kind=ResourceKind.MCP,
        sensitivity=Sensitivity.MEDIUM,
        description="The support team's MCP server: CRM contacts, Zendesk tickets and Slack, as tools for agents.",
        uri=uri,
    )
    agents = (
        Agent.objects.filter(
            name__startswith=AGENT_FAMILY,
            parent__isnull=True,
            status=AgentStatus.ACTIVE,
            sponsor__status=HumanStatus.ACTIVE,
        )
        .select_related("sponsor")
        .order_by("name")
    )
    delegated = 0
    for agent in agents:
        sponsor = agent.sponsor
        assert sponsor is not None
        held = human_held_scopes(sponsor)
        for tool in HELD_TOOLS:
            if f"{RESOURCE}:{tool}" not in held:
                services.grant_create(
                    actor=actor,
                    holder=sponsor,
                    resource=resource,
                    action=tool,
                    justification="Support staff use the support MCP server's tools",
                )
        services.delegation_create(
            actor=actor,
            delegate=agent,
            root_human=sponsor,
            scopes=[f"{RESOURCE}:{tool}" for tool in DELEGATED_TOOLS],
            expires_at=timezone.now() + timedelta(days=DELEGATION_DAYS),
            purpose=f"{sponsor.name} lets {agent.name} look up contacts and tickets through the support MCP server",
        )
        delegated += 1
    return delegated


def _admin() -> Actor:
    admin = get_user_model().objects.filter(username="admin").first()
    return Actor.user(admin) if admin is not None else Actor.system("demo")
