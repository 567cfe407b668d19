"""Blast radius (SPEC §8): what an agent, or every agent acting for a human, can do right now if it goes
wrong or its credentials leak.

For an agent: the scopes it can exercise now, directly (its grants in force, the delegations in force to
it) or through its sub-agents at any depth, each weighted by its resource's sensitivity
(``SENSITIVITY_WEIGHT``), their total, and the exposure window: how long the longest-lived credential
or delegation in force (keys, tokens, delegations, grants) still runs. For a human: the same across the
agents acting for them (delegates of the links in force rooted at them, and the agents they sponsor).

A constant number of queries per call, whatever the size of the tree: the subtree in one recursive
query, then grants, delegations, the root humans' grants, resources, keys and tokens in bulk.

``viewer``: the figures as that console user may see them. Sub-agents outside their view are neither
named nor counted, as agent pages leave them out of the sub-agent tree: a count that moved when a hidden
agent appeared would tell them it exists (the visibility invariant, ``tests/governance/
test_visibility_invariant.py``). ``viewer=None`` reads everything (jobs, review items, admins).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.db.models import Max
from django.db.models.expressions import RawSQL
from django.utils import timezone

from console.roles import reads_everything
from console.trees import flatten
from governance.models import (
    SCOPE_SEPARATOR,
    SENSITIVITY_WEIGHT,
    Agent,
    AgentKey,
    AgentStatus,
    Delegation,
    DelegationToken,
    Grant,
    Human,
    HumanStatus,
    Resource,
    Sensitivity,
    make_scope,
)

# The agents given and every sub-agent below them, at any depth (parents never change: no cycle). One
# placeholder per seed, so it runs on SQLite (make run) as on PostgreSQL.
_SUBTREE_IDS = (
    "WITH RECURSIVE sub(id) AS (SELECT id FROM governance_agent WHERE id IN ({seeds}) "
    "UNION SELECT a.id FROM governance_agent a JOIN sub ON a.parent_id = sub.id) SELECT id FROM sub"
)

SENSITIVITIES = [s.value for s in Sensitivity]
# A scope naming a resource no longer in the catalogue counts as medium: never as nothing.
_UNKNOWN_SENSITIVITY = Sensitivity.MEDIUM.value


@dataclass(frozen=True, slots=True)
class ScopeExposure:
    scope: str
    resource: str
    sensitivity: str
    weight: int
    # How many agents of the tree can exercise it now.
    agents: int


@dataclass(frozen=True, slots=True)
class AgentExposure:
    """One agent of the tree: what it can exercise now (nothing when it is not active)."""

    agent_id: int
    name: str
    # Its parent within the tree as shown, or None (the top, or a parent left out of the view).
    parent_id: int | None
    depth: int
    status: str
    scopes: tuple[str, ...]

    @property
    def pk(self) -> int:
        return self.agent_id

    @property
    def active(self) -> bool:
        return self.status == AgentStatus.ACTIVE


@dataclass(frozen=True, slots=True)
class BlastRadius:
    computed_at: datetime
    agents: tuple[AgentExposure, ...]
    scopes: tuple[ScopeExposure, ...]
    # When the longest-lived credential or delegation in force ends; None when nothing is in force.
    exposure_until: datetime | None

    @property
    def score(self) -> int:
        return sum(s.weight for s in self.scopes)

    @property
    def exposure_window(self) -> timedelta:
        if self.exposure_until is None:
            return timedelta(0)
        return max(self.exposure_until - self.computed_at, timedelta(0))

    @property
    def by_sensitivity(self) -> dict[str, int]:
        counts = dict.fromkeys(SENSITIVITIES, 0)
        for s in self.scopes:
            counts[s.sensitivity] = counts.get(s.sensitivity, 0) + 1
        return counts

    @property
    def active_agents(self) -> int:
        return sum(1 for a in self.agents if a.active and a.scopes)

    def resources(self) -> list[tuple[str, str]]:
        """(resource, sensitivity) of every resource reachable, most sensitive first."""
        seen = {(s.resource, s.sensitivity) for s in self.scopes}
        return sorted(seen, key=lambda r: (-SENSITIVITY_WEIGHT.get(r[1], 0), r[0]))


def agent_blast_radius(agent: Agent, *, viewer: Any = None, at: datetime | None = None) -> BlastRadius:
    return _blast_radius([agent.pk], viewer=viewer, at=at or timezone.now())


def human_blast_radius(human: Human, *, viewer: Any = None, at: datetime | None = None) -> BlastRadius:
    """Across every agent acting for ``human``: the delegates of the links in force rooted at them and
    the agents they sponsor, each with its sub-agents."""
    at = at or timezone.now()
    delegates = Delegation.objects.active(at).filter(root_human=human).values("delegate_id")
    seeds = Agent.objects.filter(sponsor=human) | Agent.objects.filter(pk__in=delegates)
    return _blast_radius(list(seeds.values_list("pk", flat=True)), viewer=viewer, at=at)


def _split(scope: str) -> tuple[str, str]:
    resource, _, action = scope.rpartition(SCOPE_SEPARATOR)
    return resource, action


def _blast_radius(seed_ids: list[int], *, viewer: Any, at: datetime) -> BlastRadius:
    if not seed_ids:
        return BlastRadius(computed_at=at, agents=(), scopes=(), exposure_until=None)
    seeds = ", ".join(["%s"] * len(seed_ids))
    below = RawSQL(_SUBTREE_IDS.format(seeds=seeds), seed_ids)  # noqa: S611 - constant SQL, bound ids
    tree = Agent.objects.filter(id__in=below)
    if viewer is not None and not reads_everything(viewer):
        tree = tree & Agent.objects.visible_to(viewer)
    rows = list(
        tree.order_by("depth", "name", "id").values("id", "name", "parent_id", "depth", "status", "sponsor__status")
    )
    # An agent acts only while it and its sponsor are active (the check's agent_inactive, sponsor_inactive).
    acting = [r["id"] for r in rows if r["status"] == AgentStatus.ACTIVE and r["sponsor__status"] == HumanStatus.ACTIVE]

    held: dict[int, set[str]] = defaultdict(set)
    ends: list[datetime] = []
    grants = Grant.objects.active(at).filter(holder_agent_id__in=acting)
    for agent_id, name, action, expires_at in grants.values_list(
        "holder_agent_id", "resource__name", "action", "expires_at"
    ):
        held[agent_id].add(make_scope(name, action))
        if expires_at is not None:
            ends.append(expires_at)

    links = list(
        Delegation.objects.active(at)
        .filter(delegate_id__in=acting, root_human__status=HumanStatus.ACTIVE)
        .values_list("delegate_id", "root_human_id", "scopes", "expires_at")
    )
    # A link is usable only for the scopes its root human still holds (the check's delegator_lacks_grant).
    roots = {root for _d, root, _s, _e in links}
    still_held: dict[int, set[str]] = defaultdict(set)
    for human_id, name, action in (
        Grant.objects.active(at)
        .filter(holder_human_id__in=roots)
        .values_list("holder_human_id", "resource__name", "action")
    ):
        still_held[human_id].add(make_scope(name, action))
    for delegate_id, root_id, scopes, expires_at in links:
        usable = set(scopes) & still_held[root_id]
        if usable:
            held[delegate_id] |= usable
            ends.append(expires_at)

    # One query for every resource named, whichever way its scope came (grant or delegation).
    named = {_split(scope)[0] for scopes in held.values() for scope in scopes}
    sensitivity = dict(Resource.objects.filter(name__in=named).values_list("name", "sensitivity")) if named else {}

    credentials = (
        AgentKey.objects.active(at).filter(agent_id__in=acting).aggregate(end=Max("expires_at"))["end"],
        DelegationToken.objects.active(at).filter(agent_id__in=acting).aggregate(end=Max("expires_at"))["end"],
    )
    ends.extend(end for end in credentials if end is not None)

    shown = {r["id"] for r in rows}
    agents = tuple(
        AgentExposure(
            agent_id=r["id"],
            name=r["name"],
            parent_id=r["parent_id"] if r["parent_id"] in shown else None,
            depth=r["depth"],
            status=r["status"],
            scopes=tuple(sorted(held.get(r["id"], ()))),
        )
        for r in rows
    )
    return BlastRadius(
        computed_at=at,
        agents=agents,
        scopes=_scopes(held.values(), sensitivity),
        exposure_until=max(ends, default=None),
    )


def _scopes(per_agent: Iterable[set[str]], sensitivity: dict[str, str]) -> tuple[ScopeExposure, ...]:
    holders: dict[str, int] = defaultdict(int)
    for scopes in per_agent:
        for scope in scopes:
            holders[scope] += 1
    exposures = []
    for scope, count in holders.items():
        resource = _split(scope)[0]
        level = sensitivity.get(resource, _UNKNOWN_SENSITIVITY)
        exposures.append(ScopeExposure(scope, resource, level, SENSITIVITY_WEIGHT.get(level, 1), count))
    return tuple(sorted(exposures, key=lambda e: (-e.weight, e.scope)))


# --- The picture: agent → sub-agents → resources, as an inline SVG laid out here ----------------

PICTURE_ROWS = 24  # agents or resources drawn; beyond, the figures and the tables say it all
_ROW, _TOP, _LEVEL, _AGENT_X, _NODE_W = 26, 18, 22, 8, 190


@dataclass(frozen=True, slots=True)
class PictureNode:
    x: int
    y: int
    label: str
    css: str


@dataclass(frozen=True, slots=True)
class PictureEdge:
    x1: int
    y1: int
    x2: int
    y2: int
    css: str


@dataclass(frozen=True, slots=True)
class Picture:
    width: int
    height: int
    agents: tuple[PictureNode, ...]
    resources: tuple[PictureNode, ...]
    edges: tuple[PictureEdge, ...]
    more_agents: int
    more_resources: int


def picture(blast: BlastRadius) -> Picture:
    """Agents on the left, indented by depth under their parent; the resources they reach on the right,
    coloured by sensitivity (classes ``blast-<sensitivity>`` in static/app.css: the CSP forbids inline
    styles). Coordinates only: the template draws it."""
    rows = flatten(blast.agents)[:PICTURE_ROWS]
    resources = blast.resources()[:PICTURE_ROWS]
    max_level = max((r.level for r in rows), default=0)
    resource_x = _AGENT_X + max_level * _LEVEL + _NODE_W + 90
    width = resource_x + _NODE_W + 10
    height = _TOP + max(len(rows), len(resources), 1) * _ROW
    agent_at: dict[int, tuple[int, int]] = {}
    agents = []
    for i, row in enumerate(rows):
        node: AgentExposure = row.node
        x, y = _AGENT_X + row.level * _LEVEL, _TOP + i * _ROW
        agent_at[node.agent_id] = (x, y)
        css = "blast-agent" if node.active else "blast-agent blast-inactive"
        agents.append(PictureNode(x, y, node.name, css))
    resource_at = {name: _TOP + i * _ROW for i, (name, _level) in enumerate(resources)}
    edges = []
    for row in rows:
        node = row.node
        x, y = agent_at[node.agent_id]
        if node.parent_id in agent_at:
            px, py = agent_at[node.parent_id]
            edges.append(PictureEdge(px + 6, py + 6, x, y, "blast-tree"))
        for name in sorted({_split(s)[0] for s in node.scopes}):
            if name in resource_at:
                edges.append(PictureEdge(x + _NODE_W, y, resource_x, resource_at[name], "blast-reach"))
    return Picture(
        width=width,
        height=height,
        agents=tuple(agents),
        resources=tuple(
            PictureNode(resource_x, resource_at[name], name, f"blast-resource blast-{level}")
            for name, level in resources
        ),
        edges=tuple(edges),
        more_agents=max(len(blast.agents) - len(rows), 0),
        more_resources=max(len(blast.resources()) - len(resources), 0),
    )
