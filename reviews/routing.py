"""Who reviews an item: the campaign's rule, separation of duties, and the fallback.

Routing reads the organisation once (``Org.load``: every human, agent and delegation in force, as plain
rows) and then answers per item without a query, so a launch of 100,000 items costs a few queries.

Separation of duties, delegation-aware: nobody reviews access that is theirs in effect. For an item about
agent A, the conflicted humans are, over A's whole family line (its parent agents and its sub-agents):

- the agents' sponsors (an agent you sponsor, directly or through a sub-agent);
- the root humans of the delegations in force to them (a delegation that acts for you);
- for a grant or a delegation under review, whoever granted or made it, and a delegation's root human.

Such an item goes to the fallback reviewer; when the fallback is conflicted too (or cannot review), it is
left unassigned, for an admin to reassign.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field

from django.contrib.auth import get_user_model
from django.db.models import Q

from console import roles
from governance.models import Agent, Delegation, DelegationStatus, Human, HumanStatus
from reviews.models import ReviewerRule

RULE_WORDS: dict[str, str] = {
    ReviewerRule.SPONSOR: "the agent's sponsor",
    ReviewerRule.SPONSOR_MANAGER: "the sponsor's manager",
    ReviewerRule.RESOURCE_OWNER: "the resource's owner",
    ReviewerRule.NAMED: "the named reviewer",
}


@dataclass(frozen=True, slots=True)
class Person:
    id: int
    name: str
    manager_id: int | None
    status: str
    user_id: int | None
    department: str


@dataclass(frozen=True, slots=True)
class AgentNode:
    id: int
    name: str
    parent_id: int | None
    sponsor_id: int
    status: str
    risk_tier: str


@dataclass(frozen=True, slots=True)
class Route:
    reviewer_id: int | None
    # Why, in words for the item's drawer and the evidence: "the sponsor's manager", "fallback: …".
    routing: str
    # Whether separation of duties moved the item away from the rule's choice.
    sod: bool = False


@dataclass
class Org:
    humans: dict[int, Person]
    agents: dict[int, AgentNode]
    # Users who may work a review queue (reviewer or admin role).
    reviewer_users: set[int]
    # Agent id -> root humans of the delegations in force to it.
    acts_for: dict[int, set[int]]
    user_human: dict[int, int]
    _children: dict[int, list[int]] = field(default_factory=dict)
    _line_humans: dict[int, set[int]] = field(default_factory=dict)

    @classmethod
    def load(cls) -> Org:
        humans = {
            row[0]: Person(*row)
            for row in Human.objects.values_list("id", "name", "manager_id", "status", "user_id", "department")
        }
        agents = {
            row[0]: AgentNode(*row)
            for row in Agent.objects.values_list("id", "name", "parent_id", "sponsor_id", "status", "risk_tier")
        }
        acts_for: dict[int, set[int]] = defaultdict(set)
        for delegate_id, root_id in Delegation.objects.filter(status=DelegationStatus.ACTIVE).values_list(
            "delegate_id", "root_human_id"
        ):
            acts_for[delegate_id].add(root_id)
        users = get_user_model().objects.filter(is_active=True)
        reviewer_users = set(
            users.filter(Q(is_superuser=True) | Q(groups__name__in=(roles.REVIEWER, roles.ADMIN))).values_list(
                "id", flat=True
            )
        )
        user_human = {p.user_id: p.id for p in humans.values() if p.user_id is not None}
        org = cls(humans, agents, reviewer_users, acts_for, user_human)
        children: dict[int, list[int]] = defaultdict(list)
        for node in agents.values():
            if node.parent_id is not None:
                children[node.parent_id].append(node.id)
        org._children = children
        return org

    # --- The family line ------------------------------------------------------------------

    def ancestors(self, agent_id: int) -> list[int]:
        found: list[int] = []
        node = self.agents.get(agent_id)
        while node is not None and node.parent_id is not None and node.parent_id not in found:
            found.append(node.parent_id)
            node = self.agents.get(node.parent_id)
        return found

    def descendants(self, agent_id: int) -> list[int]:
        found: list[int] = []
        frontier = [agent_id]
        while frontier:
            frontier = [child for parent in frontier for child in self._children.get(parent, ())]
            found.extend(frontier)
        return found

    def line(self, agent_id: int) -> list[int]:
        return [agent_id, *self.ancestors(agent_id), *self.descendants(agent_id)]

    # --- Separation of duties ---------------------------------------------------------------

    def conflicted(self, agent_id: int, also: Iterable[int | None] = ()) -> set[int]:
        """Humans who may not review an item about ``agent_id`` (plus ``also``: whoever granted or made
        the access under review)."""
        line = self._line_humans.get(agent_id)
        if line is None:  # the same for every item about this agent: worked out once per launch
            line = set()
            for member in self.line(agent_id):
                node = self.agents.get(member)
                if node is not None:
                    line.add(node.sponsor_id)
                line |= self.acts_for.get(member, set())
            self._line_humans[agent_id] = line
        extra = {h for h in also if h is not None}
        return line | extra if extra else line

    def human_of_user(self, user_id: int | None) -> int | None:
        return self.user_human.get(user_id) if user_id is not None else None

    # --- Routing ----------------------------------------------------------------------------

    def why_not(self, human_id: int | None, conflicted: set[int]) -> str | None:
        """Why this human cannot review the item, or None when they can."""
        if human_id is None or human_id not in self.humans:
            return "nobody fits the rule"
        person = self.humans[human_id]
        if person.status != HumanStatus.ACTIVE:
            return f"{person.name} has {'left' if person.status == HumanStatus.LEFT else person.status}"
        if person.user_id is None or person.user_id not in self.reviewer_users:
            return f"{person.name} has no reviewer login"
        if human_id in conflicted:
            return f"{person.name} may not review access that acts for them or that they sponsor"
        return None

    def candidate(
        self,
        rule: str,
        agent_id: int,
        *,
        resource_owner_id: int | None = None,
        named_id: int | None = None,
    ) -> int | None:
        node = self.agents.get(agent_id)
        if rule == ReviewerRule.NAMED:
            return named_id
        if rule == ReviewerRule.RESOURCE_OWNER:
            return resource_owner_id
        if node is None:
            return None
        # A sub-agent answers to its top-level agent's sponsor line as well as its own sponsor.
        if rule == ReviewerRule.SPONSOR:
            return node.sponsor_id
        sponsor = self.humans.get(node.sponsor_id)
        return sponsor.manager_id if sponsor is not None else None

    def route(
        self,
        rule: str,
        agent_id: int,
        *,
        fallback_id: int | None,
        resource_owner_id: int | None = None,
        named_id: int | None = None,
        also_conflicted: Iterable[int | None] = (),
    ) -> Route:
        conflicted = self.conflicted(agent_id, also_conflicted)
        choice = self.candidate(rule, agent_id, resource_owner_id=resource_owner_id, named_id=named_id)
        problem = self.why_not(choice, conflicted)
        if problem is None:
            assert choice is not None
            return Route(choice, RULE_WORDS.get(rule, rule))
        sod = choice is not None and choice in conflicted
        fallback_problem = self.why_not(fallback_id, conflicted)
        if fallback_problem is None:
            return Route(fallback_id, f"fallback reviewer: {problem}"[:300], sod)
        return Route(None, f"unassigned: {problem}; fallback: {fallback_problem}"[:300], sod)

    def may_review(self, human_id: int | None, agent_id: int, also_conflicted: Iterable[int | None] = ()) -> bool:
        return self.why_not(human_id, self.conflicted(agent_id, also_conflicted)) is None


def conflicted_now(agent: Agent, also: Iterable[int | None] = ()) -> set[int]:
    """``Org.conflicted`` for one agent, read afresh (a decision re-checks separation of duties: the
    organisation may have changed since the item was routed). A few queries, whatever the org's size."""
    line = [agent.pk]
    frontier = [agent.pk]
    while frontier:  # sub-agents, level by level
        frontier = list(Agent.objects.filter(parent_id__in=frontier).values_list("id", flat=True))
        line.extend(frontier)
    parent_id = agent.parent_id
    while parent_id is not None and parent_id not in line:  # parent agents
        line.append(parent_id)
        parent_id = Agent.objects.filter(pk=parent_id).values_list("parent_id", flat=True).first()
    humans: set[int] = {h for h in also if h is not None}
    humans |= set(Agent.objects.filter(pk__in=line).values_list("sponsor_id", flat=True))
    humans |= set(
        Delegation.objects.filter(delegate_id__in=line, status=DelegationStatus.ACTIVE).values_list(
            "root_human_id", flat=True
        )
    )
    return humans
