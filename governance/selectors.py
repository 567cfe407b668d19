"""Reads that span models: delegation chains and whether a delegation is usable right now."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from django.utils import timezone

from governance import decision
from governance.models import Agent, Delegation, Grant, Human, make_scope

# The reason codes live with the decision core; re-exported here for callers of the selectors.
Reason = decision.Reason


@dataclass(frozen=True, slots=True)
class Usability:
    usable: bool
    reason: str
    detail: str = ""
    # Root first, the delegation asked about last.
    chain: list[Delegation] = field(default_factory=list)


def delegation_chain(delegation: Delegation) -> list[Delegation]:
    """The links from the root down to ``delegation``, with delegates and sponsors loaded.

    Every link is read afresh, ``delegation`` included: the instance in hand (and the agent and sponsor
    cached on it) may predate a revocation, suspension or departure made through another instance or
    process, and must not vouch for itself.
    """
    current = Delegation.objects.select_related("delegate__sponsor", "root_human").get(pk=delegation.pk)
    chain = [current]
    while current.parent_id is not None:
        current = Delegation.objects.select_related("delegate__sponsor", "root_human").get(pk=current.parent_id)
        chain.append(current)
    chain.reverse()
    return chain


def human_held_scopes(human: Human, at: datetime | None = None) -> set[str]:
    rows = Grant.objects.active(at).filter(holder_human=human).values_list("resource__name", "action")
    return {make_scope(name, action) for name, action in rows}


def agent_held_scopes(agent: Agent, at: datetime | None = None) -> set[str]:
    rows = Grant.objects.active(at).filter(holder_agent=agent).values_list("resource__name", "action")
    return {make_scope(name, action) for name, action in rows}


def chain_state(
    delegation: Delegation, wanted: frozenset[str], at: datetime
) -> tuple[decision.ChainState, list[Delegation]]:
    """The plain state the decision core needs for ``delegation``'s chain, and the chain itself."""
    chain = delegation_chain(delegation)
    root_human = chain[0].root_human
    held = frozenset(wanted & human_held_scopes(root_human, at)) if wanted else frozenset()
    state = decision.ChainState(
        links=tuple(
            decision.Link(
                delegation_id=link.pk,
                parent_id=link.parent_id,
                status=link.status,
                expires_at=link.expires_at,
                scopes=link.scope_set,
                agent_id=link.delegate_id,
                agent_name=link.delegate.name,
                agent_status=link.delegate.status,
                sponsor_name=link.delegate.sponsor.name,
                sponsor_status=link.delegate.sponsor.status,
            )
            for link in chain
        ),
        root_human_id=root_human.pk,
        root_human_name=root_human.name,
        root_human_status=root_human.status,
        root_holds=held,
    )
    return state, chain


def delegation_usability(
    delegation: Delegation, *, scopes: frozenset[str] | set[str] | None = None, at: datetime | None = None
) -> Usability:
    """Is ``delegation`` usable at ``at`` (now by default) for ``scopes`` (all of its own by default)?

    Usable only while every link up to the root, every agent on it and their sponsors, and the root
    human are active and unexpired, the scopes were delegated, and the root human still holds each.
    The rules themselves are ``governance.decision.decide_chain``, shared with the runtime check.
    """
    at = at or timezone.now()
    wanted = frozenset(scopes) if scopes is not None else delegation.scope_set
    state, chain = chain_state(delegation, wanted, at)
    outcome = decision.decide_chain(state, wanted, at)
    return Usability(outcome.allowed, outcome.reason, outcome.detail, chain)


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
