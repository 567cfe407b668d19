"""The demo organisation behind ``manage.py seed_demo``: Halyard Payments, a mid-size payments company.

Everything is created through ``governance.services`` (so every change writes its audit event), and its
agents' work goes through the runtime check, with the clock moved back in time by ``time_machine``: the
history is replayed from a queue of dated actions, oldest first, so the audit chain's sequence order is
its time order. The catalogue (``demo.people``, ``demo.resources``, ``demo.catalogue``) is plain data;
the replay draws every choice from seeded ``random.Random`` generators, so the same code builds the same
organisation (only the dates move with the day it runs).

``time_machine`` is a demo-only dependency (``requirements-demo.txt``): it is imported by ``seed()``
alone, so the rest of Custos, and this module, import without it.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import timedelta
from functools import partial

from django.contrib.auth.hashers import make_password
from django.contrib.auth.models import Group, User
from django.db import transaction
from django.db.models import Max, Min, Model
from django.utils import timezone

from audit import sealer
from audit.models import AuditEvent
from audit.services import Actor, Target, audit_append
from demo import reviews as demo_reviews
from demo.agents import AgentSpec, agent_name
from demo.catalogue import (
    FAMILIES,
    FATE_OVERRIDES,
    FATE_WEIGHTS,
    FATES,
    HUMAN_GRANT_REVOCATIONS,
    check_catalogue,
)
from demo.lifecycle import SEED_ACTOR, Lifecycle
from demo.people import DEMO_PASSWORD, DEMO_USERS, DOMAIN, PEOPLE, PEOPLE_BY_KEY, Person, logins
from demo.resources import RESOURCES, scopes_of
from demo.reviews import DemoReviews
from demo.timeline import Deployment, Node
from governance import services
from governance.models import (
    Agent,
    AgentKey,
    AgentStatus,
    Delegation,
    DelegationStatus,
    Grant,
    Human,
    HumanStatus,
    Resource,
    RiskTier,
    Sensitivity,
)
from governance.services import offboarding
from governance.usage import usage
from reviews.models import ItemStatus, ReviewItem

HISTORY_DAYS = 42
SCIM_ACTOR = Actor.system("scim: workday")
SWEEP_ACTOR = Actor.system("expiry sweep")
REQUIREMENTS = "requirements-demo.txt"


class Seeder(Lifecycle):
    """The organisation's story: the plan of dated actions, and the people's part of it."""

    # -- the plan -----------------------------------------------------------------------------

    def plan(self) -> None:
        tl = self.tl
        tl.at(tl.day(0, 9, 0), self.create_console_users)
        tl.at(tl.day(0, 9, 20), self.import_people)
        tl.at(tl.day(0, 11, 0), self.register_resources)
        tl.at(tl.day(0, 14, 0), self.grant_baseline_access)
        for day in range(1, HISTORY_DAYS):
            tl.at(tl.day(day, 2, 0), self.sweep)
        for person in PEOPLE:
            if person.joins_day:
                tl.at(tl.day(person.joins_day, 8, 30), partial(self.join, person))
            for day, status, reason in person.changes:
                if day == 0:
                    continue
                tl.at(tl.day(day, 8, 15), partial(self.change_status, person, status, reason))
        for key, scope, day, by_reviewer, reason in HUMAN_GRANT_REVOCATIONS:
            tl.at(self.office_time(day), partial(self.revoke_human_grant, key, scope, by_reviewer, reason))
        self.plan_deployments()
        self.reviews = DemoReviews(self, HISTORY_DAYS)
        self.reviews.plan()
        # Agents at work for someone when HR marks them away or gone: their next calls are refused.
        for person in PEOPLE:
            for day, status, _ in person.changes:
                if day and status != HumanStatus.ACTIVE:
                    for deployment in self.by_sponsor.get(person.key, []):
                        self.work.around(deployment, tl.day(day, 8, 15))

    def plan_deployments(self) -> None:
        rng = self.rng
        pairs = [(family, variant, sponsor) for family in FAMILIES for variant, sponsor in family.variants]
        rng.shuffle(pairs)
        last_day = HISTORY_DAYS - 4
        for index, (family, variant, sponsor) in enumerate(pairs):
            person = PEOPLE_BY_KEY[sponsor]
            day = 2 + index * (last_day - 2) // len(pairs)
            for _ in range(200):
                bad = [
                    d
                    for d in range(day, day + 4)
                    if d < person.joins_day + 1 or self.status_on(person, d) != HumanStatus.ACTIVE
                ]
                if not bad:
                    break
                day = rng.randint(max(2, person.joins_day + 1), last_day)
            else:
                raise ValueError(f"no day when {sponsor} can sponsor {family.spec.name}")
            name = agent_name(family.spec, variant)
            fate = FATE_OVERRIDES.get(name) or rng.choices(FATES, FATE_WEIGHTS)[0]
            deployment = Deployment(
                family.spec, variant, sponsor, day, fate, root=self.tree(family.spec, variant, None)
            )
            self.deployments.append(deployment)
            self.by_sponsor.setdefault(sponsor, []).append(deployment)
            self.tl.at(self.office_time(day), partial(self.onboard, deployment))

    def tree(self, spec: AgentSpec, variant: str, parent: Node | None) -> Node:
        node = Node(spec, agent_name(spec, variant), parent)
        node.children = [self.tree(child, variant, node) for child in spec.children]
        return node

    # -- day 0: users, people, resources, baseline access ----------------------------------------

    def create_console_users(self) -> None:
        hashed = make_password(DEMO_PASSWORD)  # once: the hasher is deliberately slow
        for username, role, key in DEMO_USERS:
            person = PEOPLE_BY_KEY[key]
            first, _, last = person.name.partition(" ")
            user = User.objects.filter(username=username).first()
            created = user is None
            if user is None:
                user = User.objects.create(
                    username=username, email=person.email, first_name=first, last_name=last, password=hashed
                )
            else:
                self.notes.append(f"console user {username!r} already existed: its password was left unchanged")
            user.groups.add(Group.objects.get(name=role))
            self.users[key] = user
            # Who may use the console, and as what, is evidence an auditor asks for.
            audit_append(
                actor=SEED_ACTOR,
                action="console_user.create" if created else "console_user.add_role",
                target=Target(type="user", id=str(user.pk), label=username),
                context={"username": username, "roles": [role], "human": person.email},
            )
            self.pause(1, 5)
        self.admin = Actor.user(self.users["nadia-haddad"])
        self.reviewer = Actor.user(self.users["elena-petrova"])

    def import_people(self) -> None:
        for index, person in enumerate(PEOPLE, start=1):
            if person.joins_day:
                continue
            self.create_person(person, index)
            self.pause(1, 4)
        for person in PEOPLE:
            for day, status, reason in person.changes:
                if day == 0:
                    services.human_set_status(
                        actor=SCIM_ACTOR, human=self.human(person.key), status=status, reason=reason
                    )
                    self.pause(1, 4)

    def create_person(self, person: Person, index: int) -> None:
        manager = self.human(person.manager) if person.manager else None
        human = services.human_create(
            actor=SCIM_ACTOR,
            email=person.email,
            name=person.name,
            department=person.department,
            title=person.title,
            manager=manager,
            external_id=f"WD-{10000 + index}",
            user=self.users.get(person.key),
        )
        self.humans[person.key] = human.pk

    def register_resources(self) -> None:
        for spec in RESOURCES:
            self.resources[spec.name] = services.resource_create(
                actor=self.admin,
                name=spec.name,
                owner=self.human(spec.owner),
                actions=spec.actions,
                kind=spec.kind,
                sensitivity=spec.sensitivity,
                description=spec.description,
            )
            self.pause(20, 90)

    def grant_baseline_access(self) -> None:
        for person in PEOPLE:
            if person.joins_day or self.status_on(person, 0) != HumanStatus.ACTIVE:
                continue
            self.grant_person(person)

    def grant_person(self, person: Person) -> None:
        human = self.human(person.key)
        for scope in scopes_of(person):
            resource, action = self.scope_parts(scope)
            # Standing access to critical systems is time-bound even for humans.
            expires = self.tl.now + timedelta(days=120) if resource.sensitivity == Sensitivity.CRITICAL else None
            services.grant_create(
                actor=self.admin,
                holder=human,
                resource=resource,
                action=action,
                expires_at=expires,
                justification=f"Baseline access for {person.title} ({person.department})",
            )
            self.pause(1, 6)

    # -- people over time ---------------------------------------------------------------------

    def join(self, person: Person) -> None:
        self.create_person(person, PEOPLE.index(person) + 1)
        self.tl.pause(3600)
        self.grant_person(person)

    def change_status(self, person: Person, status: str, reason: str) -> None:
        human = services.human_set_status(actor=SCIM_ACTOR, human=self.human(person.key), status=status, reason=reason)
        if status == HumanStatus.LEFT:
            self.tl.at(self.office(self.tl.now + timedelta(hours=2)), lambda: self.offboard_leaver(person, human))

    def offboard_leaver(self, person: Person, human: Human) -> None:
        """What the IAM admin does the morning a leaver goes: cut their delegations, hand their agents to
        their manager (suspending the risky ones), revoke their keys and grants."""
        reason = f"Leaver: {person.name} left Halyard"
        for link in list(
            Delegation.objects.filter(root_human=human, parent__isnull=True, status=DelegationStatus.ACTIVE)
        ):
            services.delegation_revoke(actor=self.admin, delegation=link, reason=reason)
            self.pause()
        manager = self.human(person.manager) if person.manager else None
        for deployment in self.by_sponsor.get(person.key, []):
            deployment.stopped = True
            for node in deployment.root.walk():
                if not node.agent_id:
                    continue
                agent = self.agent(node)
                if agent.status != AgentStatus.ACTIVE:
                    continue
                if manager is not None:
                    services.agent_update(actor=self.admin, agent=agent, sponsor=manager)
                    self.pause()
                if node.parent is None and agent.risk_tier in (RiskTier.HIGH, RiskTier.CRITICAL):
                    services.agent_suspend(
                        actor=self.admin, agent=agent, reason=f"{reason}; suspended until the new sponsor reviews it"
                    )
                    self.pause()
                self.revoke_keys(node, f"{reason}; keys withdrawn")
        for grant in Grant.objects.active().filter(holder_human=human):
            services.grant_revoke(actor=self.admin, grant=grant, reason=reason)
            self.pause(1, 4)

    def revoke_human_grant(self, key: str, scope: str, by_reviewer: bool, reason: str) -> None:
        resource, action = self.scope_parts(scope)
        grant = (
            Grant.objects.active().filter(holder_human_id=self.humans[key], resource=resource, action=action).first()
        )
        if grant is not None:
            services.grant_revoke(actor=self.reviewer if by_reviewer else self.admin, grant=grant, reason=reason)

    def sweep(self) -> None:
        services.expire_due(actor=SWEEP_ACTOR)

    # -- agents -------------------------------------------------------------------------------


# --- Entry points ---------------------------------------------------------------------------


class NotEmpty(Exception):
    """The database already holds an organisation or recent audit history the demo would mix with."""


class MissingDependency(Exception):
    """Seeding needs a package a production install does not have."""


@dataclass(slots=True)
class SeedResult:
    created: bool
    seconds: float = 0.0
    counts: dict[str, str] = field(default_factory=dict)
    logins: list[tuple[str, str]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def demo_present() -> bool:
    return Human.objects.filter(email__endswith=f"@{DOMAIN}").exists()


def seed() -> SeedResult:
    """Create the demo organisation unless it is already there. All or nothing: one transaction."""
    if demo_present():
        return SeedResult(created=False, counts=summary(), logins=logins())
    try:
        # Imported here, not at the top: a production install has no time-machine, and imports this module.
        import time_machine
    except ImportError:
        raise MissingDependency(
            f"seeding the demo replays its history with time-machine, which is not installed: "
            f"pip install -r {REQUIREMENTS}"
        ) from None
    check_catalogue()
    began = time.monotonic()
    real_now = timezone.now()
    start = real_now.replace(hour=0, minute=0, second=0, microsecond=0) - timedelta(days=HISTORY_DAYS)
    end = start + timedelta(days=HISTORY_DAYS)
    if Human.objects.exists():
        raise NotEmpty(
            f"the database already holds an organisation ({Human.objects.count()} humans); "
            "seed_demo only fills an empty one"
        )
    latest = AuditEvent.objects.order_by("-occurred_at").values_list("occurred_at", flat=True).first()
    if latest is not None and latest >= start:
        raise NotEmpty(
            "the audit log already has events from the last six weeks; replaying demo history before them would "
            "put the chain out of time order"
        )
    seeder = Seeder(start=start, end=end)
    with transaction.atomic():
        seeder.plan()
        with time_machine.travel(start, tick=False) as traveller:
            seeder.tl.run(traveller)
        assert timezone.now() > seeder.tl.now
        # Agents' last activity and keys' last use, from the replayed checks still in the usage buffer.
        usage.flush()
        # Tidy statuses at the real now: everything whose time ran out since the last nightly sweep.
        while sum(services.expire_due(actor=SWEEP_ACTOR).values()):
            pass
        # Access nearing its end and the events that call for a review, into the standing campaigns.
        seeder.reviews.finish()
        # The history in its chain, in the order it happened (the sealer process is not running yet).
        sealer.seal_pending()
    # Offboardings happen now, each in its own transaction after the history has committed, so the
    # time-to-revoke they measure is a real one (inside the replay every moment is frozen, and the one
    # transaction commits minutes later).
    offboard_this_morning(seeder.admin)
    sealer.seal_pending()
    return SeedResult(
        created=True, seconds=time.monotonic() - began, counts=summary(), logins=logins(), notes=seeder.notes
    )


# How many of the agents suspended during the story the admin retires for good at the end of it.
RETIRED_AGENTS = 2


def offboard_this_morning(admin: Actor) -> None:
    """The admin's morning: the top-level agents suspended during the story that no review is still
    asking about are offboarded for good, and each leaver who still sponsors an agent is offboarded (the
    agent moves to their manager)."""
    asked_about = ReviewItem.objects.filter(status=ItemStatus.PENDING, agent__isnull=False).values("agent_id")
    retired = list(
        Agent.objects.filter(status=AgentStatus.SUSPENDED, parent__isnull=True)
        .exclude(pk__in=asked_about)
        .order_by("name")[:RETIRED_AGENTS]
    )
    # Leavers first: the agents they still sponsor move to their managers before any is retired.
    for human in Human.objects.filter(status=HumanStatus.LEFT, sponsored_agents__isnull=False).distinct():
        offboarding.human_offboard(actor=admin, human=human, reason="Left the company; leaver checklist completed")
    for agent in retired:
        offboarding.agent_offboard(
            actor=admin, agent=agent, reason="Retired after the investigation that suspended it; not to return"
        )


def summary() -> dict[str, str]:
    """Counts by status, for the command's report."""
    now = timezone.now()

    def by_status(rows: Iterable[str]) -> str:
        counts = Counter(rows)
        return f"{counts.total()} ({', '.join(f'{n} {status}' for status, n in sorted(counts.items()))})"

    def column(model: type[Model], name: str) -> str:
        return by_status(model.objects.values_list(name, flat=True))  # type: ignore[attr-defined]

    sub_agents = Agent.objects.filter(parent__isnull=False)
    deepest = sub_agents.aggregate(depth=Max("depth"))["depth"] or 0
    span = AuditEvent.objects.aggregate(first=Min("occurred_at"), last=Max("occurred_at"))
    head = AuditEvent.objects.count()
    days = (span["last"] - span["first"]).days if span["first"] else 0
    return {
        "humans": column(Human, "status"),
        "resources": column(Resource, "sensitivity"),
        "agents": f"{column(Agent, 'status')}; {sub_agents.count()} sub-agents, nested {deepest} deep",
        "grants": column(Grant, "status"),
        "delegations": column(Delegation, "status"),
        "agent keys": by_status(key.status_at(now) for key in AgentKey.objects.all()),
        "decisions": decisions(),
        "reviews": demo_reviews.summary(),
        "audit events": f"{head} over {days} days",
    }


def decisions() -> str:
    """Runtime decisions in the audit log, allowed and denied, and the commonest reasons for denial."""
    checks = AuditEvent.objects.filter(action__in=("check.allow", "check.deny"))
    outcomes = Counter(checks.values_list("action", flat=True))
    reasons = Counter(
        AuditEvent.objects.filter(action="check.deny").values_list("context__reason", flat=True)
    ).most_common(4)
    denied = ", ".join(f"{n} {reason}" for reason, n in reasons)
    return f"{outcomes.total()} ({outcomes['check.allow']} allowed, {outcomes['check.deny']} denied: {denied})"
