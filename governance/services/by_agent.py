"""What an agent may do over the API with its own key or token (SPEC §9): register its own sub-agents,
issue their keys, rotate its own keys, and delegate part of its chain to its sub-agents. Nothing else.

Each service takes the calling agent's ``principal`` (``governance.authn.AgentPrincipal``), applies the
rules that confine an agent to its own subtree and chain, then calls the same service an admin's
request would, so the invariants and the audit event are exactly those of every other front door.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import Max
from django.utils import timezone

from audit.services import Actor
from console.errors import NotAllowed, ValidationFailed
from governance.authn import AgentPrincipal
from governance.models import Agent, AgentKey, Delegation, RiskTier
from governance.services.agents import agent_create
from governance.services.delegations import delegation_create
from governance.services.keys import agentkey_create, agentkey_rotate


def _actor(principal: AgentPrincipal) -> Actor:
    return Actor.agent(principal.agent)


@transaction.atomic
def agent_create_by_agent(
    *,
    principal: AgentPrincipal,
    name: str,
    purpose: str = "",
    risk_tier: str = RiskTier.MEDIUM,
    parent_id: int | None = None,
    sponsor_id: int | None = None,
) -> Agent:
    """A sub-agent of the caller: its parent is the caller and its sponsor the caller's sponsor. Naming
    any other parent or sponsor is refused."""
    caller = principal.agent
    if parent_id not in (None, caller.pk):
        raise NotAllowed(
            "An agent may only register sub-agents of its own.", code="agent_scope_exceeded", field="parent"
        )
    if sponsor_id not in (None, caller.sponsor_id):
        raise NotAllowed("A sub-agent's sponsor is its parent's sponsor.", code="agent_scope_exceeded", field="sponsor")
    return agent_create(actor=_actor(principal), name=name, purpose=purpose, risk_tier=risk_tier, parent=caller)


def sub_agent_key_expiry(principal: AgentPrincipal, requested: datetime | None) -> datetime:
    """When a key an agent issues to its sub-agent may expire: within the configured key lifetime and
    never after the latest of the caller's own keys, so a sub-agent cannot outlive its parent's ability
    to act. Not bounded by a token's few minutes: the sub-agent needs its key to exchange the parent's
    next token too."""
    now = timezone.now()
    own = AgentKey.objects.active(now).filter(agent=principal.agent).aggregate(latest=Max("expires_at"))["latest"]
    own = own or principal.expires_at
    limit, code = now + settings.CUSTOS_KEY_TTL, "lifetime_exceeds_maximum"
    if own < limit:
        limit, code = own, "expiry_exceeds_caller"
    if requested is None:
        return limit
    if requested > limit:
        raise ValidationFailed(
            f"A key you issue must expire by {limit:%Y-%m-%d %H:%M} UTC (your own keys' expiry and the configured "
            "key lifetime).",
            code=code,
            field="expires_at",
        )
    return requested


@transaction.atomic
def agentkey_create_by_agent(
    *, principal: AgentPrincipal, agent: Agent, name: str = "", expires_at: datetime | None = None
) -> tuple[AgentKey, str]:
    """A key for one of the caller's direct sub-agents, expiring no later than the caller's own keys."""
    if agent.parent_id != principal.agent.pk:
        raise NotAllowed("An agent may only issue keys to its own sub-agents.", code="agent_scope_exceeded")
    expires_at = sub_agent_key_expiry(principal, expires_at)
    return agentkey_create(actor=_actor(principal), agent=agent, name=name, expires_at=expires_at)


@transaction.atomic
def agentkey_rotate_by_agent(
    *, principal: AgentPrincipal, key: AgentKey, overlap: timedelta | None = None, name: str | None = None
) -> tuple[AgentKey, str, AgentKey]:
    """Rotate one of the caller's own keys. The new key expires when the old one would have: rotation
    renews the secret, not the agent's lifetime."""
    if key.agent_id != principal.agent.pk:
        raise NotAllowed("An agent may only rotate its own keys.", code="agent_scope_exceeded")
    return agentkey_rotate(actor=_actor(principal), key=key, overlap=overlap, expires_at=key.expires_at, name=name)


@transaction.atomic
def delegation_create_by_agent(
    *,
    principal: AgentPrincipal,
    parent_id: int,
    delegate_id: int,
    scopes: Iterable[str],
    expires_at: datetime | None,
    purpose: str,
    max_depth: int = 0,
    root_human_id: int | None = None,
) -> Delegation:
    """Pass part of the caller's token's delegation to one of its own sub-agents. Only with a delegation
    token (a key alone has no delegation to pass on), below exactly the token's delegation, within the
    scopes the token was issued for."""
    if principal.via != "token" or principal.delegation_id is None:
        raise NotAllowed(
            "Delegating takes a delegation token: an agent acting as itself with its key has no delegation "
            "to pass on. Exchange one at /oauth/token.",
            code="token_required",
        )
    if root_human_id is not None:
        raise NotAllowed(
            "An agent cannot start a chain; it delegates within its own.",
            code="agent_scope_exceeded",
            field="root_human",
        )
    if parent_id != principal.delegation_id:
        raise NotAllowed(
            f"parent must be the delegation your token was issued for ({principal.delegation_id}).",
            code="parent_not_token_delegation",
            field="parent",
        )
    scopes = list(scopes)
    beyond = {scope.strip() for scope in scopes} - principal.scopes
    if beyond:
        raise NotAllowed(
            f"Not in your token's scope: {', '.join(sorted(beyond))}.", code="scope_not_delegated", field="scopes"
        )
    # Only the caller's own sub-agents are named: any other id, existing or not, gets the same answer.
    delegate = Agent.objects.filter(pk=delegate_id, parent_id=principal.agent.pk).first()
    if delegate is None:
        raise ValidationFailed(
            "That agent is not one of your sub-agents; an agent may only delegate to its own sub-agents.",
            code="delegate_not_sub_agent",
            field="delegate",
        )
    return delegation_create(
        actor=_actor(principal),
        parent=Delegation.objects.get(pk=principal.delegation_id),
        delegate=delegate,
        scopes=scopes,
        expires_at=expires_at,
        purpose=purpose,
        max_depth=max_depth,
    )
