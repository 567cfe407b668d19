"""Reads that span models: delegation chains and whether a delegation is usable right now."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from django.utils import timezone

from governance.models import (
    Agent,
    AgentStatus,
    Delegation,
    DelegationStatus,
    Grant,
    Human,
    HumanStatus,
    make_scope,
)


class Reason:
    """Stable reason codes shared with the runtime check (SPEC §3)."""

    ALLOWED = "allowed"
    DELEGATION_REVOKED = "delegation_revoked"
    DELEGATION_EXPIRED = "delegation_expired"
    CHAIN_BROKEN = "chain_broken"
    AGENT_INACTIVE = "agent_inactive"
    SPONSOR_INACTIVE = "sponsor_inactive"
    HUMAN_INACTIVE = "human_inactive"
    SCOPE_NOT_DELEGATED = "scope_not_delegated"
    DELEGATOR_LACKS_GRANT = "delegator_lacks_grant"


@dataclass(frozen=True, slots=True)
class Usability:
    usable: bool
    reason: str
    detail: str = ""
    # Root first, the delegation asked about last.
    chain: list[Delegation] = field(default_factory=list)


def delegation_chain(delegation: Delegation) -> list[Delegation]:
    """The links from the root down to ``delegation``, with delegates and sponsors loaded."""
    chain = [delegation]
    current = delegation
    while current.parent_id is not None:
        current = (
            Delegation.objects.select_related("delegate__sponsor", "root_human").get(pk=current.parent_id)
        )
        chain.append(current)
    chain.reverse()
    return chain


def human_held_scopes(human: Human, at: datetime | None = None) -> set[str]:
    rows = (
        Grant.objects.active(at)
        .filter(holder_human=human)
        .values_list("resource__name", "action")
    )
    return {make_scope(name, action) for name, action in rows}


def agent_held_scopes(agent: Agent, at: datetime | None = None) -> set[str]:
    rows = Grant.objects.active(at).filter(holder_agent=agent).values_list("resource__name", "action")
    return {make_scope(name, action) for name, action in rows}


def delegation_usability(
    delegation: Delegation, *, scopes: frozenset[str] | set[str] | None = None, at: datetime | None = None
) -> Usability:
    """Is ``delegation`` usable at ``at`` (now by default) for ``scopes`` (all of its own by default)?

    Usable only while every link up to the root, every agent on it and their sponsors, and the root
    human are active and unexpired, the scopes were delegated, and the root human still holds each.
    The first failing rule names the reason, checked from the link asked about up to the root.
    """
    at = at or timezone.now()
    chain = delegation_chain(delegation)
    wanted = frozenset(scopes) if scopes is not None else delegation.scope_set

    def no(reason: str, detail: str) -> Usability:
        return Usability(False, reason, detail, chain)

    if delegation.status == DelegationStatus.REVOKED:
        return no(Reason.DELEGATION_REVOKED, f"delegation {delegation.pk} was revoked")
    if delegation.status == DelegationStatus.EXPIRED or delegation.expires_at <= at:
        return no(Reason.DELEGATION_EXPIRED, f"delegation {delegation.pk} expired at {delegation.expires_at}")
    for link in reversed(chain[:-1]):
        if not link.is_in_force(at):
            state = "revoked" if link.status == DelegationStatus.REVOKED else "expired"
            return no(Reason.CHAIN_BROKEN, f"link {link.pk} up the chain is {state}")
    for link in reversed(chain):
        agent = link.delegate
        if agent.status != AgentStatus.ACTIVE:
            return no(Reason.AGENT_INACTIVE, f"agent {agent.name} is {agent.status}")
        if agent.sponsor.status != HumanStatus.ACTIVE:
            return no(Reason.SPONSOR_INACTIVE, f"sponsor {agent.sponsor.name} of {agent.name} is {agent.sponsor.status}")
    root_human = chain[0].root_human
    if root_human.status != HumanStatus.ACTIVE:
        return no(Reason.HUMAN_INACTIVE, f"{root_human.name} is {root_human.status}")
    missing = wanted - delegation.scope_set
    if missing:
        return no(Reason.SCOPE_NOT_DELEGATED, f"not delegated: {', '.join(sorted(missing))}")
    lacking = wanted - human_held_scopes(root_human, at)
    if lacking:
        return no(
            Reason.DELEGATOR_LACKS_GRANT, f"{root_human.name} no longer holds: {', '.join(sorted(lacking))}"
        )
    return Usability(True, Reason.ALLOWED, "", chain)


def agent_ancestors(agent: Agent) -> list[Agent]:
    """Parent, grandparent, … up to the top-level agent."""
    ancestors: list[Agent] = []
    current = agent
    while current.parent_id is not None:
        current = Agent.objects.get(pk=current.parent_id)
        ancestors.append(current)
    return ancestors


def agent_descendant_ids(agent: Agent) -> list[int]:
    """Ids of every sub-agent below ``agent``, breadth first (one query per level)."""
    found: list[int] = []
    frontier = [agent.pk]
    while frontier:
        frontier = list(Agent.objects.filter(parent_id__in=frontier).values_list("id", flat=True))
        found.extend(frontier)
    return found


def delegation_descendant_ids(delegation: Delegation) -> list[int]:
    found: list[int] = []
    frontier = [delegation.pk]
    while frontier:
        frontier = list(Delegation.objects.filter(parent_id__in=frontier).values_list("id", flat=True))
        found.extend(frontier)
    return found
