"""The agents' part of the replay: deploying a family (the agent, its key and delegation, the sub-agents it
registers and delegates to), renewing links, keys and grants, and how each family's story turns. The
people's part and the plan are in ``demo.seeder``, which builds on this class.

Everything is created through ``governance.services``, as the console or the API would, so every change
writes its own audit event.
"""

from __future__ import annotations

import random
from datetime import datetime, timedelta

from django.contrib.auth.models import User

from audit.services import Actor
from console.errors import ValidationFailed
from demo.catalogue import (
    CHAIN_REFUSALS,
    DRIFTED,
    DRIFTING,
    JIT,
    REVOKE_REASONS,
    SUB_AGENT_SUSPEND_REASONS,
    SUSPEND_REASONS,
)
from demo.history import Work
from demo.people import PEOPLE_BY_KEY, Person
from demo.timeline import Deployment, Node, Timeline, agent_actor, minute
from governance import services
from governance.models import (
    Agent,
    AgentKey,
    AgentStatus,
    Delegation,
    DelegationStatus,
    Grant,
    GrantSource,
    Human,
    HumanStatus,
    Resource,
)
from governance.selectors import human_held_scopes

SEED = 4211
SEED_ACTOR = Actor.system("seed_demo")


class Lifecycle:
    def __init__(self, *, start: datetime, end: datetime) -> None:
        self.rng = random.Random(SEED)  # noqa: S311 - a reproducible demo, not a secret
        self.tl = Timeline(start, end)
        self.work = Work(self.tl, seed=SEED + 1)
        self.humans: dict[str, int] = {}
        self.resources: dict[str, Resource] = {}
        self.users: dict[str, User] = {}
        self.deployments: list[Deployment] = []
        self.by_sponsor: dict[str, list[Deployment]] = {}
        self.notes: list[str] = []
        self.admin = SEED_ACTOR
        self.reviewer = SEED_ACTOR

    # -- helpers ------------------------------------------------------------------------------

    def human(self, key: str) -> Human:
        return Human.objects.get(pk=self.humans[key])

    def agent(self, node: Node) -> Agent:
        return Agent.objects.get(pk=node.agent_id)

    def pause(self, low: int = 3, high: int = 40) -> None:
        self.tl.pause(self.rng.randint(low, high))

    def office(self, moment: datetime) -> datetime:
        """The same day, moved into office hours (09:00 to 17:59)."""
        if moment.hour < 9:
            return moment.replace(hour=9, minute=self.rng.randint(0, 59))
        if moment.hour >= 18:
            return moment.replace(hour=17, minute=self.rng.randint(0, 59))
        return moment

    def office_time(self, day: int) -> datetime:
        return self.tl.day(day, self.rng.randint(9, 16), self.rng.randint(0, 59))

    def status_on(self, person: Person, day: int) -> str:
        status: str = HumanStatus.ACTIVE
        for change_day, new_status, _ in person.changes:
            if change_day <= day:
                status = new_status
        return status

    def scope_parts(self, scope: str) -> tuple[Resource, str]:
        name, _, action = scope.partition(":")
        return self.resources[name], action

    def reviewer_for(self, deployment: Deployment) -> Actor:
        person = PEOPLE_BY_KEY[deployment.sponsor]
        return self.reviewer if person.manager == "elena-petrova" else self.admin

    def onboard(self, deployment: Deployment) -> None:
        rng = self.rng
        sponsor = self.human(deployment.sponsor)
        deployment.human_id = sponsor.pk
        root = deployment.root
        agent = services.agent_create(
            actor=self.admin,
            name=root.name,
            sponsor=sponsor,
            purpose=root.spec.purpose.format(v=deployment.variant.replace("-", " ")),
            risk_tier=root.spec.risk,
        )
        root.agent_id = agent.pk
        self.pause()
        self.issue_key(deployment, root, "primary")
        self.grant_own(deployment, root)
        scopes = sorted(set(root.spec.scopes) & human_held_scopes(sponsor))
        link = services.delegation_create(
            actor=self.admin,
            delegate=agent,
            root_human=sponsor,
            scopes=scopes,
            expires_at=self.tl.now + timedelta(days=rng.choice((14, 21, 28))),
            purpose=f"{sponsor.name} delegates {root.name}: {agent.purpose}",
            max_depth=root.spec.height,
        )
        root.link_id = link.pk
        self.pause()
        self.schedule_root_renewal(deployment, link)
        for child in root.children:
            self.spawn(deployment, child)
        if deployment.name in JIT:
            self.tl.at(self.office(self.tl.now + timedelta(days=rng.randint(2, 9))), lambda: self.jit(deployment))
        self.schedule_fate(deployment, link)
        self.work.start(deployment)

    def spawn(self, deployment: Deployment, node: Node) -> None:
        """The parent agent registers its sub-agent and delegates to it, then the sub-agent does the
        same for its own sub-agents."""
        assert node.parent is not None
        parent_agent = self.agent(node.parent)
        agent = services.agent_create(
            actor=Actor.agent(parent_agent),
            name=node.name,
            parent=parent_agent,
            purpose=node.spec.purpose.format(v=deployment.variant.replace("-", " ")),
            risk_tier=node.spec.risk,
        )
        node.agent_id = agent.pk
        self.pause(1, 10)
        if self.rng.random() < 0.3:
            # A few sub-agents got their key from an admin, and half of those let it lapse.
            self.issue_key(deployment, node, "primary", rotates=self.rng.random() < 0.5)
        else:
            # The others from the agent that registered them, for longer than the replayed weeks: a sub-agent
            # needs a key of its own to exchange its parent's token for its own.
            parent = agent_actor(node.parent)
            self.issue_key(deployment, node, "issued by parent", issuer=parent, days=60, rotates=False)
        self.grant_own(deployment, node)
        self.delegate(deployment, node)
        if self.rng.random() < 0.05:
            self.tl.at(self.tl.now + timedelta(days=self.rng.randint(3, 20)), lambda: self.retire(node))
        for child in node.children:
            self.spawn(deployment, child)

    def delegate(self, deployment: Deployment, node: Node) -> None:
        """Give ``node`` a fresh link under its parent's current link (shorter, no wider), then its
        own sub-agents likewise."""
        assert node.parent is not None
        if node.parent.link_id is None:
            return
        parent_link = Delegation.objects.get(pk=node.parent.link_id)
        if not parent_link.is_in_force() or parent_link.expires_at - self.tl.now < timedelta(days=1, hours=12):
            return  # the parent's own renewal, due soon, re-delegates to the whole subtree
        scopes = sorted(set(node.spec.scopes) & parent_link.scope_set)
        if not scopes:
            return
        rng = self.rng
        # Shorter at each hop: a few days, and always some hours before the parent link runs out.
        expires = minute(
            min(
                self.tl.now + timedelta(days=rng.choice((5, 7, 10)), hours=rng.randint(0, 12)),
                parent_link.expires_at - timedelta(hours=rng.randint(1, 12), minutes=rng.randint(0, 59)),
            )
        )
        try:
            link = services.delegation_create(
                actor=agent_actor(node.parent),
                delegate=Agent(pk=node.agent_id),
                parent=parent_link,
                scopes=scopes,
                expires_at=expires,
                purpose=f"{node.parent.name} hands {node.name} part of its task: "
                + node.spec.purpose.format(v=deployment.variant.replace("-", " ")),
                max_depth=node.spec.height,
            )
        except ValidationFailed as refusal:
            # Something up the chain is no longer usable (an agent suspended, the human away or
            # without the grant): the parent agent cannot hand anything on, as in production.
            if refusal.code in CHAIN_REFUSALS:
                return
            raise
        node.link_id = link.pk
        self.pause(1, 8)
        # The parent agent re-issues the link shortly before it runs out.
        self.tl.at(expires - timedelta(hours=rng.randint(1, 8)), lambda: self.renew_child(deployment, node, link.pk))
        if rng.random() < 0.03:
            self.tl.at(self.tl.now + timedelta(hours=rng.randint(4, 60)), lambda: self.release_child(node, link.pk))
        for child in node.children:
            if child.agent_id:  # not yet registered while its parent is being set up
                self.delegate(deployment, child)

    def renew_child(self, deployment: Deployment, node: Node, link_id: int) -> None:
        if node.link_id != link_id:
            return  # superseded by a renewal higher up
        link = Delegation.objects.get(pk=link_id)
        if link.status != DelegationStatus.ACTIVE:
            return
        self.delegate(deployment, node)

    def release_child(self, node: Node, link_id: int) -> None:
        """The parent agent ends its sub-agent's task early."""
        assert node.parent is not None
        link = Delegation.objects.get(pk=link_id)
        if node.link_id != link_id or not link.is_in_force() or not self.agent(node.parent).is_active:
            return
        services.delegation_revoke(
            actor=Actor.agent(self.agent(node.parent)), delegation=link, reason="Task complete; sub-agent released"
        )
        node.link_id = None

    def retire(self, node: Node) -> None:
        agent = self.agent(node)
        if agent.is_active:
            services.agent_suspend(actor=self.admin, agent=agent, reason=self.rng.choice(SUB_AGENT_SUSPEND_REASONS))
            self.pause()
            self.revoke_keys(node, "Agent suspended")

    def schedule_root_renewal(self, deployment: Deployment, link: Delegation) -> None:
        if not deployment.renews:
            return
        when = self.office(link.expires_at - timedelta(hours=self.rng.randint(20, 72)))
        self.tl.at(max(when, self.tl.now), lambda: self.renew_root(deployment, link.pk))

    def renew_root(self, deployment: Deployment, link_id: int) -> None:
        root = deployment.root
        if not deployment.renews or root.link_id != link_id:
            return
        human = Human.objects.get(pk=deployment.human_id)
        agent = self.agent(root)
        if human.status == HumanStatus.LEFT or agent.status != AgentStatus.ACTIVE:
            return
        if human.status == HumanStatus.SUSPENDED:
            # On leave: try again tomorrow; the chain lapses meanwhile.
            self.tl.at(self.office(self.tl.now + timedelta(days=1)), lambda: self.renew_root(deployment, link_id))
            return
        scopes = sorted(set(root.spec.scopes) & human_held_scopes(human))
        if not scopes:
            return
        old = Delegation.objects.get(pk=link_id)
        link = services.delegation_create(
            actor=self.admin,
            delegate=agent,
            root_human=human,
            scopes=scopes,
            expires_at=self.tl.now + timedelta(days=self.rng.choice((14, 21, 28))),
            purpose=f"Renewal: {human.name} delegates {root.name}: {agent.purpose}",
            max_depth=root.spec.height,
        )
        root.link_id = link.pk
        self.pause()
        for child in root.children:
            self.delegate(deployment, child)
        if old.is_in_force() and self.rng.random() < 0.3:
            services.delegation_revoke(actor=self.admin, delegation=old, reason=f"Superseded by renewal {link.pk}")
            self.pause()
        self.schedule_root_renewal(deployment, link)

    # -- keys and agents' own grants ------------------------------------------------------------

    def issue_key(
        self,
        deployment: Deployment,
        node: Node,
        name: str,
        *,
        rotates: bool = True,
        issuer: Actor | None = None,
        days: int = 0,
    ) -> None:
        rng = self.rng
        agent = self.agent(node)
        key, secret = services.agentkey_create(
            actor=issuer or self.admin,
            agent=agent,
            name=name,
            expires_at=self.tl.now + timedelta(days=days or rng.choice((14, 30, 30, 45, 60))),
        )
        self.work.secrets[key.pk] = secret  # the agent's copy, in memory while seeding runs
        node.key_id = key.pk
        self.pause()
        if rotates and deployment.renews:
            when = self.office(key.expires_at - timedelta(days=rng.randint(1, 4)))
            self.tl.at(max(when, self.tl.now), lambda: self.rotate_key(deployment, node, key.pk, issuer))

    def rotate_key(self, deployment: Deployment, node: Node, key_id: int, issuer: Actor | None) -> None:
        if node.key_id != key_id or not deployment.renews or not self.agent(node).is_active:
            return
        old = AgentKey.objects.get(pk=key_id)
        if old.revoked_at is not None:
            return
        self.issue_key(deployment, node, f"rotation {self.tl.now:%Y-%m-%d}", issuer=issuer)
        new_prefix = AgentKey.objects.get(pk=node.key_id).prefix
        when = self.tl.now + timedelta(hours=self.rng.randint(12, 36))
        self.tl.at(
            min(when, old.expires_at - timedelta(minutes=5)),
            lambda: self.retire_key(old.pk, f"Rotated: replaced by ck_{new_prefix}_…", issuer),
        )

    def retire_key(self, key_id: int, reason: str, issuer: Actor | None = None) -> None:
        key = AgentKey.objects.get(pk=key_id)
        if key.revoked_at is None and key.expires_at > self.tl.now:
            services.agentkey_revoke(actor=issuer or self.admin, key=key, reason=reason)

    def revoke_keys(self, node: Node, reason: str) -> None:
        for key in AgentKey.objects.active().filter(agent_id=node.agent_id):
            services.agentkey_revoke(actor=self.admin, key=key, reason=reason)
            self.pause(1, 5)

    def grant_own(self, deployment: Deployment, node: Node) -> None:
        for scope in node.spec.own:
            self.grant_agent(deployment, node, scope, GrantSource.DIRECT)

    def grant_agent(self, deployment: Deployment, node: Node, scope: str, source: str) -> None:
        resource, action = self.scope_parts(scope)
        days = self.rng.choice((14, 21, 30, 45))
        owner = Human.objects.get(pk=resource.owner_id)
        grant = services.grant_create(
            actor=self.admin,
            holder=self.agent(node),
            resource=resource,
            action=action,
            expires_at=self.tl.now + timedelta(days=days),
            source=source,
            justification=(
                f"Standing access for {node.name}, approved by the resource owner {owner.name}"
                if source == GrantSource.DIRECT
                else f"Renewed after {owner.name} recertified it"
            ),
        )
        self.pause()
        assert grant.expires_at is not None
        # Renewed a little after it ran out (a fresh decision, not an extension), in office hours.
        when = self.office(grant.expires_at + timedelta(hours=self.rng.randint(6, 30)))
        when = max(when, grant.expires_at + timedelta(minutes=self.rng.randint(5, 50)))
        self.tl.at(when, lambda: self.renew_agent_grant(deployment, node, scope))

    def renew_agent_grant(self, deployment: Deployment, node: Node, scope: str) -> None:
        if not deployment.renews or not self.agent(node).is_active:
            return
        self.grant_agent(deployment, node, scope, GrantSource.RENEWAL)

    def jit(self, deployment: Deployment) -> None:
        scope, hours, reason = JIT[deployment.name]
        agent = self.agent(deployment.root)
        if not agent.is_active:
            return
        resource, action = self.scope_parts(scope)
        services.grant_create(
            actor=self.admin,
            holder=agent,
            resource=resource,
            action=action,
            expires_at=self.tl.now + timedelta(hours=hours),
            source=GrantSource.JIT,
            justification=reason,
        )

    # -- how each family's story turns ----------------------------------------------------------

    def schedule_fate(self, deployment: Deployment, link: Delegation) -> None:
        rng = self.rng
        if deployment.fate == "lapse":
            deployment.stopped = True
            self.work.lapse(deployment, link.expires_at)
            return
        delay = {"revoke": (5, 20), "suspend": (4, 20), "leak": (3, 15)}.get(deployment.fate)
        if delay is None:
            return
        when = self.office(self.tl.now + timedelta(days=rng.randint(*delay)))
        action = {"revoke": self.withdraw, "suspend": self.suspend, "leak": self.leak}[deployment.fate]
        self.tl.at(when, lambda: action(deployment))
        # The agent is at work when it happens: its next calls meet the change.
        self.work.around(deployment, when)
        if deployment.fate == "leak":
            self.work.leak(deployment, when)

    def withdraw(self, deployment: Deployment) -> None:
        """A review takes the family's access away: its delegation (cascading), keys and own grants."""
        if deployment.stopped:
            return
        deployment.stopped = True
        reason = self.rng.choice(REVOKE_REASONS)
        actor = self.reviewer_for(deployment)
        root = deployment.root
        for link in list(Delegation.objects.filter(delegate_id=root.agent_id, status=DelegationStatus.ACTIVE)):
            services.delegation_revoke(actor=actor, delegation=link, reason=reason)
            self.pause()
        for node in root.walk():
            if node.agent_id:
                self.revoke_keys(node, reason)
                for grant in Grant.objects.active().filter(holder_agent_id=node.agent_id):
                    services.grant_revoke(actor=actor, grant=grant, reason=reason)
                    self.pause(1, 5)

    def suspend(self, deployment: Deployment) -> None:
        agent = self.agent(deployment.root)
        if deployment.stopped or not agent.is_active:
            return
        deployment.stopped = True
        reason = self.rng.choice(SUSPEND_REASONS)
        if deployment.name in DRIFTING:
            reason = DRIFTED
        if reason == DRIFTED:
            self.work.drift(deployment)  # the runtime raises the drift signal the admin acts on
        services.agent_suspend(actor=self.admin, agent=agent, reason=reason)
        self.pause()
        self.revoke_keys(deployment.root, "Agent suspended; key withdrawn as a precaution")

    def leak(self, deployment: Deployment) -> None:
        root = deployment.root
        if deployment.stopped or root.key_id is None or not self.agent(root).is_active:
            return
        key = AgentKey.objects.get(pk=root.key_id)
        if key.revoked_at is not None or key.expires_at <= self.tl.now:
            return
        services.agentkey_revoke(actor=self.admin, key=key, reason="Secret found in a public CI log; replaced")
        self.pause(30, 300)
        self.issue_key(deployment, root, "replacement after leak")
