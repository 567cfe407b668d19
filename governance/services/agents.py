"""Agents and sub-agents: registration, updates, suspension (cascading down) and reactivation."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from audit.services import Actor, Target, audit_append
from console.errors import Conflict, ValidationFailed
from governance.models import (
    Agent,
    AgentStatus,
    Human,
    HumanStatus,
    RiskTier,
)
from governance.selectors import (
    agent_descendant_ids,
)
from governance.services._rules import (
    human_ref,
    require_choice,
    require_text,
)


@transaction.atomic
def agent_create(
    *,
    actor: Actor,
    name: str,
    sponsor: Human | None = None,
    purpose: str = "",
    parent: Agent | None = None,
    risk_tier: str = RiskTier.MEDIUM,
) -> Agent:
    """Register an agent, or a sub-agent when ``parent`` is given (its sponsor defaults to the
    parent's: the human accountable for an agent is accountable for what it spawns)."""
    name = require_text(name, "name", max_length=120, label="Name")
    require_choice(risk_tier, RiskTier, "risk_tier")
    depth = 0
    if parent is not None:
        parent = Agent.objects.select_for_update().get(pk=parent.pk)
        if parent.status != AgentStatus.ACTIVE:
            raise ValidationFailed(
                f"Parent agent {parent.name} is {parent.status}; only active agents get sub-agents.",
                code="parent_inactive",
                field="parent",
            )
        depth = parent.depth + 1
        if depth > settings.CUSTOS_DELEGATION_MAX_DEPTH:
            raise ValidationFailed(
                f"Sub-agents may nest at most {settings.CUSTOS_DELEGATION_MAX_DEPTH} levels.",
                code="agent_depth_exceeded",
                field="parent",
            )
        sponsor = sponsor or parent.sponsor
    if sponsor is None:
        raise ValidationFailed(
            "Every agent needs a sponsor: the human accountable for it.", code="required", field="sponsor"
        )
    if sponsor.status != HumanStatus.ACTIVE:
        raise ValidationFailed(
            f"Sponsor {sponsor.name} is {sponsor.status}; choose an active human.",
            code="sponsor_inactive",
            field="sponsor",
        )
    agent = Agent.objects.create(
        name=name, purpose=purpose.strip(), sponsor=sponsor, parent=parent, depth=depth, risk_tier=risk_tier
    )
    audit_append(
        actor=actor,
        action="agent.create",
        target=Target.of(agent),
        on_behalf_of=[human_ref(sponsor)],
        context={
            "sponsor": sponsor.pk,
            "parent": parent.pk if parent else None,
            "risk_tier": risk_tier,
            "purpose": agent.purpose,
        },
    )
    return agent


@transaction.atomic
def agent_update(
    *,
    actor: Actor,
    agent: Agent,
    name: str | None = None,
    purpose: str | None = None,
    risk_tier: str | None = None,
    sponsor: Human | None = None,
) -> Agent:
    agent = Agent.objects.select_for_update().get(pk=agent.pk)
    changes: dict[str, list[Any]] = {}
    if name is not None:
        name = require_text(name, "name", max_length=120, label="Name")
        if name != agent.name:
            changes["name"] = [agent.name, name]
            agent.name = name
    if purpose is not None and purpose.strip() != agent.purpose:
        changes["purpose"] = [agent.purpose, purpose.strip()]
        agent.purpose = purpose.strip()
    if risk_tier is not None and risk_tier != agent.risk_tier:
        require_choice(risk_tier, RiskTier, "risk_tier")
        changes["risk_tier"] = [agent.risk_tier, risk_tier]
        agent.risk_tier = risk_tier
    if sponsor is not None and sponsor.pk != agent.sponsor_id:
        if sponsor.status != HumanStatus.ACTIVE:
            raise ValidationFailed(
                f"Sponsor {sponsor.name} is {sponsor.status}.", code="sponsor_inactive", field="sponsor"
            )
        changes["sponsor"] = [agent.sponsor_id, sponsor.pk]
        agent.sponsor = sponsor
    if not changes:
        return agent
    agent.updated_at = timezone.now()
    agent.save()
    audit_append(actor=actor, action="agent.update", target=Target.of(agent), context={"changes": changes})
    return agent


@transaction.atomic
def agent_suspend(*, actor: Actor, agent: Agent, reason: str = "") -> Agent:
    """Suspend an agent and every active sub-agent below it (one event each): what an agent spawned
    must not keep acting, with its own key or a delegation of its own, while the agent is stopped.
    Reactivation is one agent at a time, from the top down."""
    suspended = _agent_set_status(actor=actor, agent=agent, status=AgentStatus.SUSPENDED, reason=reason)
    below = Agent.objects.filter(pk__in=agent_descendant_ids(suspended), status=AgentStatus.ACTIVE).order_by(
        "depth", "id"
    )
    for sub_agent in below:
        _agent_set_status(
            actor=actor,
            agent=sub_agent,
            status=AgentStatus.SUSPENDED,
            reason=f"parent agent {suspended.name} suspended",
        )
    return suspended


@transaction.atomic
def agent_reactivate(*, actor: Actor, agent: Agent, reason: str = "") -> Agent:
    agent = Agent.objects.select_for_update().get(pk=agent.pk)
    if agent.status == AgentStatus.OFFBOARDED:
        raise Conflict("An offboarded agent cannot come back; register a new one.", code="agent_offboarded")
    if agent.parent_id is not None and agent.status != AgentStatus.ACTIVE:
        parent = Agent.objects.get(pk=agent.parent_id)
        if parent.status != AgentStatus.ACTIVE:
            raise Conflict(
                f"Its parent agent {parent.name} is {parent.status}; reactivate the parent first.",
                code="parent_inactive",
            )
    return _agent_set_status(actor=actor, agent=agent, status=AgentStatus.ACTIVE, reason=reason)


def _agent_set_status(*, actor: Actor, agent: Agent, status: str, reason: str) -> Agent:
    agent = Agent.objects.select_for_update().get(pk=agent.pk)
    if agent.status == status:
        return agent
    if agent.status == AgentStatus.OFFBOARDED:
        raise Conflict("An offboarded agent cannot change status.", code="agent_offboarded")
    previous = agent.status
    agent.status = status
    agent.updated_at = timezone.now()
    agent.save(update_fields=["status", "updated_at"])
    verb = "suspend" if status == AgentStatus.SUSPENDED else "reactivate"
    audit_append(
        actor=actor,
        action=f"agent.{verb}",
        target=Target.of(agent),
        context={"from": previous, "to": status, "reason": reason},
    )
    return agent
