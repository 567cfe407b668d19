"""Property-based: random sequences of delegation operations — valid and invalid — keep the invariants
of SPEC §2, and the services and the usability selector agree with a small independent model of them.

Each hypothesis example runs inside a savepoint of the test's transaction that is rolled back at the
end, over one organisation built once per test, with the clock frozen and moved only by the example.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import pytest
import time_machine
from django.conf import settings
from django.db import transaction
from django.utils import timezone
from hypothesis import HealthCheck, event, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from audit.models import AuditEvent
from console.errors import DomainError
from governance import chain, services
from governance.chain import delegation_usability
from governance.models import Agent, Delegation, DelegationStatus, Grant, GrantStatus, Human
from tests.factories import SYSTEM, make_agent, make_grant, make_human, make_resource

pytestmark = pytest.mark.django_db

# --- The organisation ---------------------------------------------------------------------------

HUMANS = ("ada", "bo")
SCOPES = ("crm:read", "crm:write", "crm:admin", "mail:send")
HELD = {"ada": {"crm:read", "crm:write", "mail:send"}, "bo": {"crm:read", "crm:admin"}}
# name -> parent name (None for a top-level agent)
AGENTS: dict[str, str | None] = {
    "t0": None,
    "a": "t0",
    "b": "t0",
    "a1": "a",
    "a2": "a",
    "a11": "a1",
    "b1": "b",
    "t1": None,
    "c": "t1",
}
AGENT_NAMES = tuple(AGENTS)


@dataclass
class World:
    humans: dict[str, Human]
    agents: dict[str, Agent]
    grants: dict[tuple[str, str], Grant]


@pytest.fixture
def world() -> World:
    humans = {name: make_human(name=name.title()) for name in HUMANS}
    sponsor = make_human(name="Sponsor")
    owner = make_human(name="Owner")
    resources = {
        "crm": make_resource(name="crm", actions=("read", "write", "admin"), owner=owner),
        "mail": make_resource(name="mail", actions=("send",), owner=owner),
    }
    grants = {}
    for human, scopes in HELD.items():
        for scope in scopes:
            resource, action = scope.split(":")
            grants[(human, scope)] = make_grant(humans[human], resources[resource], action)
    agents: dict[str, Agent] = {}
    for name, parent in AGENTS.items():
        agents[name] = make_agent(
            name=name, sponsor=sponsor if parent is None else None, parent=agents.get(parent or "")
        )
    return World(humans, agents, grants)


# --- An independent model of what should happen --------------------------------------------------


@dataclass
class Link:
    pk: int
    parent: Link | None
    human: str
    agent: str
    scopes: frozenset[str]
    expires_at: datetime
    max_depth: int
    depth: int
    revoked: bool = False
    children: list[Link] = field(default_factory=list)

    def ancestors(self) -> list[Link]:
        found, current = [], self.parent
        while current is not None:
            found.append(current)
            current = current.parent
        return found


@dataclass
class Model:
    now: datetime
    held: dict[str, set[str]]
    suspended: set[str] = field(default_factory=set)
    links: list[Link] = field(default_factory=list)

    def usable(self, link: Link, scopes: frozenset[str] | None = None) -> bool:
        """Usable for ``scopes`` (all of its own by default)."""
        chain = [link, *link.ancestors()]
        return (
            all(not x.revoked and x.expires_at > self.now for x in chain)
            and all(x.agent not in self.suspended for x in chain)
            and (link.scopes if scopes is None else scopes) <= self.held[link.human]
        )

    def root_refusal(
        self, human: str, agent: str, scopes: frozenset[str], expires_at: datetime, max_depth: int
    ) -> bool:
        return (
            not scopes
            or agent in self.suspended
            or not self.now < expires_at <= self.now + settings.CUSTOS_DELEGATION_MAX_LIFETIME
            or not 0 <= max_depth <= settings.CUSTOS_DELEGATION_MAX_DEPTH
            or not scopes <= self.held[human]
        )

    def child_refusal(
        self, parent: Link, agent: str, scopes: frozenset[str], expires_at: datetime, max_depth: int
    ) -> bool:
        return (
            not scopes
            # A new link needs its parent usable for what it asks (SPEC §3), not for all the parent carries.
            or not self.usable(parent, scopes & parent.scopes)
            or AGENTS[agent] != parent.agent
            or agent in self.suspended
            or not scopes <= parent.scopes
            or not self.now < expires_at <= parent.expires_at
            or parent.max_depth < 1
            or not 0 <= max_depth <= parent.max_depth - 1
        )

    def revoke(self, link: Link) -> None:
        link.revoked = True
        for child in link.children:
            self.revoke(child)


# --- Operations -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Root:
    human: str
    agent: str
    keep: int  # bit mask over the scopes the human started with
    extra: str | None  # one more scope, which the human may or may not hold
    expires_in_minutes: int
    max_depth: int


@dataclass(frozen=True)
class Delegate:
    link: int  # index into the links made so far
    pick: int  # which agent: mostly a sub-agent of the parent's delegate, sometimes any agent
    keep: int  # bit mask over the parent's scopes
    widen: bool  # add a scope the parent does not have
    expires_shift_minutes: int  # relative to the parent's expiry
    max_depth: int
    depth_from_parent: bool = False  # ignore max_depth: take all the depth the parent has left


@dataclass(frozen=True)
class Revoke:
    link: int


@dataclass(frozen=True)
class Advance:
    minutes: int


@dataclass(frozen=True)
class RevokeGrant:
    human: str
    scope: str


@dataclass(frozen=True)
class Suspend:
    agent: str


@dataclass(frozen=True)
class Reactivate:
    agent: str


MAX_MINUTES = 45 * 24 * 60  # past the 30-day default maximum, so some roots must be refused

# Operations are drawn mostly valid (so chains grow several links deep) and sometimes wild (so every
# rule gets broken); the model decides which must be refused.
roots = st.builds(
    Root,
    human=st.sampled_from(HUMANS),
    agent=st.sampled_from(("t0", "t0", "t1", "a", "b1")),
    keep=st.integers(0, 7),
    extra=st.one_of(st.none(), st.none(), st.sampled_from(SCOPES)),
    expires_in_minutes=st.one_of(st.integers(6 * 60, 5 * 24 * 60), st.integers(-30, MAX_MINUTES)),
    max_depth=st.one_of(st.integers(1, 3), st.integers(1, 3), st.integers(-1, 4)),
)
valid_roots = st.builds(
    Root,
    human=st.sampled_from(HUMANS),
    agent=st.sampled_from(("t0", "a")),
    keep=st.integers(1, 7),
    extra=st.none(),
    expires_in_minutes=st.integers(6 * 60, 5 * 24 * 60),
    max_depth=st.integers(1, 3),
)
likely_children = st.builds(
    Delegate,
    link=st.one_of(st.just(0), st.integers(0, 50)),
    pick=st.integers(0, 69),
    keep=st.integers(1, 15),
    widen=st.just(False),
    expires_shift_minutes=st.integers(-120, 0),
    max_depth=st.integers(0, 2),
    depth_from_parent=st.booleans(),
)
wild_children = st.builds(
    Delegate,
    link=st.integers(0, 50),
    pick=st.integers(0, 99),
    keep=st.integers(0, 15),
    widen=st.booleans(),
    expires_shift_minutes=st.integers(-24 * 60, 60),
    max_depth=st.integers(-1, 3),
)
# Drawn by weight: a branch listed twice is drawn twice as often.
operations = st.sampled_from(
    [
        roots,
        roots,
        likely_children,
        likely_children,
        likely_children,
        likely_children,
        wild_children,
        st.builds(Revoke, link=st.integers(0, 50)),
        st.builds(Advance, minutes=st.one_of(st.integers(1, 12 * 60), st.integers(1, 4 * 24 * 60))),
        st.builds(RevokeGrant, human=st.sampled_from(HUMANS), scope=st.sampled_from(SCOPES)),
        st.builds(Suspend, agent=st.sampled_from(AGENT_NAMES)),
        st.builds(Reactivate, agent=st.sampled_from(AGENT_NAMES)),
    ]
).flatmap(lambda strategy: strategy)


def counts() -> tuple[int, int]:
    return Delegation.objects.count(), AuditEvent.objects.count()


class Run:
    """Applies operations to the real services and to the model, and checks they agree."""

    def __init__(self, world: World, traveller: time_machine.Traveller) -> None:
        self.world = world
        self.traveller = traveller
        self.model = Model(now=timezone.now(), held={h: set(s) for h, s in HELD.items()})
        self.agent_names = {agent.pk: name for name, agent in world.agents.items()}

    def apply(self, op: Any) -> None:
        handler = getattr(self, f"_{type(op).__name__.lower()}")
        events = AuditEvent.objects.count()
        handler(op)
        # Every change writes an audit event; only the clock moves silently. Operations that changed
        # nothing (refusals are checked for that in _attempt) need no fresh look at every link.
        if isinstance(op, Advance) or AuditEvent.objects.count() != events:
            self.check()

    # -- operations --

    def _attempt(self, refused_expected: bool, create: Any) -> Delegation | None:
        before = counts()
        try:
            link = create()
        except DomainError as exc:
            assert refused_expected, f"refused ({exc.code}: {exc.detail}) though every rule holds"
            assert counts() == before, "a refused create wrote something"
            event(f"refused: {exc.code}")
            return None
        assert not refused_expected, f"created {link} though a rule forbids it"
        assert counts() == (before[0] + 1, before[1] + 1), "one link and one audit event per create"
        event(f"created at depth {link.depth}")
        return link

    def _root(self, op: Root) -> None:
        expires_at = self.model.now + timedelta(minutes=op.expires_in_minutes)
        scopes = {scope for bit, scope in enumerate(sorted(HELD[op.human])) if op.keep & (1 << bit)}
        scopes |= {op.extra} if op.extra else set()
        wanted = frozenset(scopes)
        refusal = self.model.root_refusal(op.human, op.agent, wanted, expires_at, op.max_depth)
        held_now = self.held_in_database(op.human)
        link = self._attempt(
            refusal,
            lambda: services.delegation_create(
                actor=SYSTEM,
                delegate=self.world.agents[op.agent],
                root_human=self.world.humans[op.human],
                scopes=sorted(wanted),
                expires_at=expires_at,
                purpose="property test",
                max_depth=op.max_depth,
            ),
        )
        if link is not None:
            assert set(link.scopes) <= held_now, "a root delegated scopes its human did not hold"
            self.model.links.append(Link(link.pk, None, op.human, op.agent, wanted, expires_at, op.max_depth, 0))

    def _delegate(self, op: Delegate) -> None:
        if not self.model.links:
            return
        parent = self.model.links[-1 - op.link % len(self.model.links)]  # recent links first
        subs = [name for name, up in AGENTS.items() if up == parent.agent]
        agent = subs[op.pick % len(subs)] if subs and op.pick < 70 else AGENT_NAMES[op.pick % len(AGENT_NAMES)]
        ordered = sorted(parent.scopes)
        mask = op.keep % ((1 << len(ordered)) - 1) + 1 if op.keep else 0  # keep=0: no scope at all
        scopes = {scope for bit, scope in enumerate(ordered) if mask & (1 << bit)}
        if op.widen:
            scopes |= set(SCOPES) - parent.scopes or set()
        expires_at = parent.expires_at + timedelta(minutes=op.expires_shift_minutes)
        max_depth = max(parent.max_depth - 1, 0) if op.depth_from_parent else op.max_depth
        refusal = self.model.child_refusal(parent, agent, frozenset(scopes), expires_at, max_depth)
        link = self._attempt(
            refusal,
            lambda: services.delegation_create(
                actor=SYSTEM,
                delegate=self.world.agents[agent],
                parent=Delegation.objects.get(pk=parent.pk),
                scopes=sorted(scopes),
                expires_at=expires_at,
                purpose="property test",
                max_depth=max_depth,
            ),
        )
        if link is not None:
            child = Link(
                link.pk, parent, parent.human, agent, frozenset(scopes), expires_at, max_depth, parent.depth + 1
            )
            parent.children.append(child)
            self.model.links.append(child)

    def _revoke(self, op: Revoke) -> None:
        if not self.model.links:
            return
        link = self.model.links[op.link % len(self.model.links)]
        services.delegation_revoke(actor=SYSTEM, delegation=Delegation.objects.get(pk=link.pk))
        self.model.revoke(link)

    def _advance(self, op: Advance) -> None:
        self.traveller.shift(timedelta(minutes=op.minutes))
        self.model.now = timezone.now()

    def _revokegrant(self, op: RevokeGrant) -> None:
        grant = self.world.grants.get((op.human, op.scope))
        if grant is None:
            return
        services.grant_revoke(actor=SYSTEM, grant=grant)
        self.model.held[op.human].discard(op.scope)

    def _suspend(self, op: Suspend) -> None:
        services.agent_suspend(actor=SYSTEM, agent=self.world.agents[op.agent])
        # Suspension reaches every sub-agent below the agent.
        below, frontier = {op.agent}, {op.agent}
        while frontier:
            frontier = {name for name, parent in AGENTS.items() if parent in frontier}
            below |= frontier
        self.model.suspended |= below

    def _reactivate(self, op: Reactivate) -> None:
        parent = AGENTS[op.agent]
        if parent is not None and parent in self.model.suspended and op.agent in self.model.suspended:
            with pytest.raises(DomainError) as refused:  # the parent must come back first
                services.agent_reactivate(actor=SYSTEM, agent=self.world.agents[op.agent])
            assert refused.value.code == "parent_inactive"
            return
        services.agent_reactivate(actor=SYSTEM, agent=self.world.agents[op.agent])
        self.model.suspended.discard(op.agent)

    # -- invariants --

    def held_in_database(self, human: str) -> set[str]:
        now = timezone.now()
        return {
            f"{grant.resource.name}:{grant.action}"
            for grant in Grant.objects.filter(
                holder_human=self.world.humans[human], status=GrantStatus.ACTIVE
            ).select_related("resource")
            if grant.valid_from <= now and (grant.expires_at is None or grant.expires_at > now)
        }

    def check(self) -> None:
        now = timezone.now()
        rows = {d.pk: d for d in Delegation.objects.select_related("delegate")}
        assert set(rows) == {link.pk for link in self.model.links}
        for row in rows.values():
            # The check's one-round-trip loader and the ORM loader see the same live state.
            for scope in (None, *SCOPES):
                fast = chain.load_chain(row.pk, scope, now)
                orm, _links = chain.chain_of(row, frozenset({scope}) if scope else frozenset(), now)
                assert fast == orm, f"the loaders disagree on delegation {row.pk} for {scope}"
        usable = {pk: delegation_usability(row).usable for pk, row in rows.items()}
        held = {human: self.held_in_database(human) for human in HUMANS}
        for link in self.model.links:
            row = rows[link.pk]
            # The selector agrees with the model, link by link.
            assert usable[link.pk] == self.model.usable(link), f"selector says {usable[link.pk]} for {row}"
            assert (row.status == DelegationStatus.REVOKED) == link.revoked
            parent = rows.get(row.parent_id) if row.parent_id else None
            if row.status == DelegationStatus.ACTIVE and parent is not None:
                assert set(row.scopes) <= set(parent.scopes), "attenuation"
                assert row.expires_at <= parent.expires_at, "a child outlives its parent"
                assert row.depth == parent.depth + 1
                assert row.delegate.parent_id == parent.delegate_id, "delegate is not a sub-agent of the parent's"
                assert row.root_human_id == parent.root_human_id
            if usable[link.pk]:
                # Every link above is usable for what this one uses (not necessarily for all of its own
                # scopes: losing one grant leaves the links that never carried it usable).
                for ancestor in link.ancestors():
                    assert delegation_usability(rows[ancestor.pk], scopes=set(row.scopes)).usable, (
                        f"usable below link {ancestor.pk}, which is not usable for {row.scopes}"
                    )
                assert set(row.scopes) <= held[link.human], "usable for scopes its human no longer holds"
                assert row.expires_at > now
            if row.status == DelegationStatus.REVOKED:
                for child in link.children:
                    assert rows[child.pk].status != DelegationStatus.ACTIVE, "active link under a revoked one"


@hypothesis_settings(
    max_examples=50,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.data_too_large],
)
# Every sequence starts from a chain that can grow.
@given(ops=st.tuples(valid_roots, st.lists(operations, min_size=3, max_size=12)).map(lambda t: [t[0], *t[1]]))
def test_random_operations_keep_the_delegation_invariants(world: World, ops: list[Any]) -> None:
    with transaction.atomic(), time_machine.travel(timezone.now(), tick=False) as traveller:
        try:
            run = Run(world, traveller)
            for op in ops:
                run.apply(op)
        finally:
            transaction.set_rollback(True)
