"""Offboarding: an agent with everything below it, or a human leaver, in one step with a preview.

The preview is computed by the same code as the run (``_agent_plan``/``_human_plan``), so what it lists is
what the run cuts. A run locks what it starts from (the agent subtree level by level, as
``delegation_revoke`` locks links; the leaver's row), revokes everything set-based (one ``UPDATE …
RETURNING`` per table, never a service call per object) and writes one audit event per object actually
changed with ``audit_append_many``, all in one transaction: it commits together, and the state-version
triggers (``governance.models.state``) move the version in that same transaction, so the very next check
in every process reads the new state.

The lock order matters for what is created concurrently: ``agent_create``, ``agentkey_create``,
``grant_create`` and ``delegation_create`` each lock the agent (or the root human) they attach to and
re-read its status. Each level of the subtree is read only after the level above is locked, so a sub-agent
committed before its parent's lock is granted here is found by the next level's read, and one made after
this commits finds its parent offboarded and is refused.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from django.db import connection, transaction
from django.utils import timezone

from audit.services import Actor, PendingEvent, Target, audit_append_many
from console.errors import Conflict, ValidationFailed
from console.trees import TreeRow, flatten
from governance import livestate
from governance.models import (
    Agent,
    AgentKey,
    AgentStatus,
    Delegation,
    DelegationStatus,
    DelegationToken,
    Grant,
    GrantStatus,
    Human,
    HumanStatus,
    Offboarding,
    OffboardingKind,
    StateVersion,
)
from governance.services._rules import human_ref, user_id_of

REASON_MAX = 2000


# --- What an offboarding cuts ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class KeyRow:
    id: int
    prefix: str
    agent_id: int


@dataclass(frozen=True, slots=True)
class GrantRow:
    id: int
    scope: str
    holder_id: int


@dataclass(frozen=True, slots=True)
class LinkRow:
    id: int
    parent_id: int | None
    delegate_id: int
    delegate_name: str
    root_human_id: int
    root_human_name: str


@dataclass(frozen=True, slots=True)
class TokenRow:
    id: int
    jti: str
    agent_id: int
    delegation_id: int


@dataclass(slots=True)
class Cut:
    """Credentials and access to revoke: keys, grants, delegation links, delegation tokens."""

    keys: list[KeyRow] = field(default_factory=list)
    grants: list[GrantRow] = field(default_factory=list)
    links: list[LinkRow] = field(default_factory=list)
    tokens: list[TokenRow] = field(default_factory=list)

    def counts(self) -> dict[str, int]:
        return {
            "keys": len(self.keys),
            "grants": len(self.grants),
            "delegations": len(self.links),
            "tokens": len(self.tokens),
        }


@dataclass(slots=True)
class AgentOffboardPlan:
    """The preview of an agent's offboarding (``offboarding`` set once it has run)."""

    agent: Agent
    agents: list[Agent]  # the agent and every sub-agent not yet offboarded, top down
    cut: Cut
    offboarding: Offboarding | None = None

    @property
    def tree(self) -> list[TreeRow]:
        return flatten(self.agents)

    def counts(self) -> dict[str, int]:
        return {"agents": len(self.agents), **self.cut.counts()}


@dataclass(slots=True)
class HumanOffboardPlan:
    """The preview of a human leaver's offboarding: their delegations and tokens to revoke, the agents
    they sponsor moved to ``new_sponsor`` (their active manager) or, with none, suspended with what
    they spawned."""

    human: Human
    new_sponsor: Human | None
    sponsored: list[Agent]  # every agent they sponsor that is not offboarded
    suspended: list[Agent]  # with no new sponsor: the active ones and their active sub-agents
    cut: Cut
    offboarding: Offboarding | None = None

    def counts(self) -> dict[str, int]:
        return {
            "responsored": len(self.sponsored) if self.new_sponsor is not None else 0,
            "suspended": len(self.suspended),
            **self.cut.counts(),
        }


# --- Agents ---------------------------------------------------------------------------------------


def agent_offboard(*, actor: Actor, agent: Agent, reason: str, dry_run: bool = False) -> AgentOffboardPlan:
    """Offboard an agent and every sub-agent below it, for good: their keys, grants not yet ended,
    delegations in force (and so the links below them, all held by sub-agents) and live delegation
    tokens are revoked, one audit event each, all carrying the offboarding's id and reason.

    ``dry_run`` answers the preview without changing anything (reason optional then)."""
    requested_at = timezone.now()
    if dry_run:
        plan = _agent_plan(agent, at=requested_at, lock=False)
        if plan.agent.status == AgentStatus.OFFBOARDED:
            raise Conflict(f"{plan.agent.name} is already offboarded.", code="agent_offboarded")
        return plan
    reason = _require_reason(reason)
    with transaction.atomic():
        plan = _agent_plan(agent, at=requested_at, lock=True)
        if plan.agent.status == AgentStatus.OFFBOARDED:
            raise Conflict(f"{plan.agent.name} is already offboarded.", code="agent_offboarded")
        version = _state_version()
        offboarding = Offboarding.objects.create(
            kind=OffboardingKind.AGENT,
            agent=plan.agent,
            agent_ids=[a.pk for a in plan.agents],
            reason=reason,
            actor_label=actor.label,
            actor_user_id=user_id_of(actor),
            requested_at=requested_at,
        )
        context = {"reason": reason, "offboarding": offboarding.pk}
        now = timezone.now()
        events: list[PendingEvent] = []
        offboarded = set(
            _update_returning(
                "governance_agent",
                "status = %s, updated_at = %s",
                [AgentStatus.OFFBOARDED, now],
                [a.pk for a in plan.agents],
                "status <> %s",
                [AgentStatus.OFFBOARDED],
            )
        )
        for node in plan.agents:
            if node.pk in offboarded:
                events.append(
                    PendingEvent(
                        actor=actor,
                        action="agent.offboard",
                        target=Target.of(node),
                        context={
                            **context,
                            "from": node.status,
                            "to": AgentStatus.OFFBOARDED,
                            "cascade_from": None if node.pk == plan.agent.pk else plan.agent.pk,
                        },
                    )
                )
        names = {a.pk: a.name for a in plan.agents}
        events += _revoke(actor=actor, cut=plan.cut, reason=reason, context=context, at=now, agent_names=names)
        audit_append_many(events, returning=False)
        counts = {**plan.counts(), "events": len(events)}
        offboarding.counts = counts
        offboarding.save(update_fields=["counts"])
        transaction.on_commit(
            lambda: _mark_effective(offboarding, version, lambda: _agent_cut_confirmed(plan)),
        )
    plan.offboarding = offboarding
    return plan


def _agent_plan(agent: Agent, *, at: datetime, lock: bool) -> AgentOffboardPlan:
    agents = Agent.objects.only("id", "name", "parent_id", "depth", "status", "sponsor_id", "risk_tier")
    if lock:
        agents = agents.select_for_update(of=("self",))
    root = agents.get(pk=agent.pk)
    found: list[Agent] = [root] if root.status != AgentStatus.OFFBOARDED else []
    level = found
    while level:
        # Offboarded agents are skipped with what is below them: it was offboarded with them.
        level = list(
            agents.filter(parent_id__in=[a.pk for a in level]).exclude(status=AgentStatus.OFFBOARDED).order_by("id")
        )
        found.extend(level)
    ids = [a.pk for a in found]
    cut = _agent_cut(ids, at) if ids else Cut()
    return AgentOffboardPlan(agent=root, agents=found, cut=cut)


def _agent_cut(agent_ids: list[int], at: datetime) -> Cut:
    keys = AgentKey.objects.active(at).filter(agent_id__in=agent_ids).order_by("id")
    grants = (
        Grant.objects.filter(holder_agent_id__in=agent_ids, status=GrantStatus.ACTIVE)
        .exclude(expires_at__lte=at)
        .order_by("id")
    )
    # The links below a link held by one of them are held by its sub-agents (a link's delegate is a
    # sub-agent of its parent's delegate), who are all in ``agent_ids``: "held by one of them" is the whole set.
    links = Delegation.objects.active(at).filter(delegate_id__in=agent_ids).order_by("depth", "id")
    tokens = DelegationToken.objects.active(at).filter(agent_id__in=agent_ids).order_by("id")
    return Cut(
        keys=[KeyRow(*row) for row in keys.values_list("id", "prefix", "agent_id")],
        grants=[
            GrantRow(pk, f"{name}:{action}", holder)
            for pk, name, action, holder in grants.values_list("id", "resource__name", "action", "holder_agent_id")
        ],
        links=[LinkRow(*row) for row in links.values_list(*_LINK_FIELDS)],
        tokens=[TokenRow(*row) for row in tokens.values_list("id", "jti", "agent_id", "delegation_id")],
    )


_LINK_FIELDS = ("id", "parent_id", "delegate_id", "delegate__name", "root_human_id", "root_human__name")


def _agent_cut_confirmed(plan: AgentOffboardPlan) -> bool:
    ids = [a.pk for a in plan.agents]
    return not (
        Agent.objects.filter(pk__in=ids).exclude(status=AgentStatus.OFFBOARDED).exists()
        or AgentKey.objects.active().filter(agent_id__in=ids).exists()
        or DelegationToken.objects.active().filter(agent_id__in=ids).exists()
    )


# --- Human leavers --------------------------------------------------------------------------------


def human_offboard(*, actor: Actor, human: Human, reason: str, dry_run: bool = False) -> HumanOffboardPlan:
    """A human leaves: status ``left``; every delegation rooted at them in force (all links of their
    chains carry them as root) and the live tokens on it revoked; each agent they sponsor moves to their
    manager (``agent.sponsor_change``) or, when they have no active manager, is suspended with its
    sub-agents. One event per change, each carrying the offboarding's id and reason."""
    requested_at = timezone.now()
    if dry_run:
        plan = _human_plan(human, at=requested_at, lock=False)
        _refuse_twice(plan.human)
        return plan
    reason = _require_reason(reason)
    with transaction.atomic():
        plan = _human_plan(human, at=requested_at, lock=True)
        _refuse_twice(plan.human)
        version = _state_version()
        touched = plan.sponsored if plan.new_sponsor is not None else plan.suspended
        offboarding = Offboarding.objects.create(
            kind=OffboardingKind.HUMAN,
            human=plan.human,
            agent_ids=[a.pk for a in touched],
            reason=reason,
            actor_label=actor.label,
            actor_user_id=user_id_of(actor),
            requested_at=requested_at,
        )
        context = {"reason": reason, "offboarding": offboarding.pk}
        now = timezone.now()
        subject = plan.human
        # The offboarding itself, even of someone marked left earlier with nothing left to cut.
        events: list[PendingEvent] = [
            PendingEvent(
                actor=actor,
                action="human.offboard",
                target=Target.of(subject),
                context={
                    **context,
                    "new_sponsor": plan.new_sponsor.pk if plan.new_sponsor else None,
                    "counts": plan.counts(),
                },
            )
        ]
        if subject.status != HumanStatus.LEFT:
            Human.objects.filter(pk=subject.pk).update(status=HumanStatus.LEFT, updated_at=now)
            events.append(
                PendingEvent(
                    actor=actor,
                    action="human.left",
                    target=Target.of(subject),
                    context={**context, "from": subject.status, "to": HumanStatus.LEFT},
                )
            )
        names = {link.delegate_id: link.delegate_name for link in plan.cut.links}
        events += _revoke(actor=actor, cut=plan.cut, reason=reason, context=context, at=now, agent_names=names)
        if plan.new_sponsor is not None:
            moved = set(
                _update_returning(
                    "governance_agent",
                    "sponsor_id = %s, sponsor_changed_at = %s, updated_at = %s",
                    [plan.new_sponsor.pk, now, now],
                    [a.pk for a in plan.sponsored],
                    "sponsor_id = %s",
                    [subject.pk],
                )
            )
            to = plan.new_sponsor
            events += [
                PendingEvent(
                    actor=actor,
                    action="agent.sponsor_change",
                    target=Target.of(a),
                    on_behalf_of=[human_ref(to)],
                    context={**context, "from": subject.pk, "to": to.pk, "from_name": subject.name, "to_name": to.name},
                )
                for a in plan.sponsored
                if a.pk in moved
            ]
        else:
            suspended = set(
                _update_returning(
                    "governance_agent",
                    "status = %s, updated_at = %s",
                    [AgentStatus.SUSPENDED, now],
                    [a.pk for a in plan.suspended],
                    "status = %s",
                    [AgentStatus.ACTIVE],
                )
            )
            events += [
                PendingEvent(
                    actor=actor,
                    action="agent.suspend",
                    target=Target.of(a),
                    context={**context, "from": AgentStatus.ACTIVE, "to": AgentStatus.SUSPENDED},
                )
                for a in plan.suspended
                if a.pk in suspended
            ]
        audit_append_many(events, returning=False)
        offboarding.counts = {**plan.counts(), "events": len(events)}
        offboarding.save(update_fields=["counts"])
        transaction.on_commit(lambda: _mark_effective(offboarding, version, lambda: _human_cut_confirmed(plan)))
    plan.offboarding = offboarding
    return plan


def _refuse_twice(human: Human) -> None:
    # Once gone, gone: a second offboarding has nothing to cut. A leaver rehired since (reactivated,
    # e.g. by their identity provider) may leave again, and then everything they hold now is cut.
    if human.status == HumanStatus.LEFT and Offboarding.objects.filter(human=human).exists():
        raise Conflict(f"{human.name} has already been offboarded.", code="human_offboarded")


def _human_plan(human: Human, *, at: datetime, lock: bool) -> HumanOffboardPlan:
    humans = Human.objects.select_for_update() if lock else Human.objects.all()
    subject = humans.get(pk=human.pk)
    # Locked too: a manager suspended concurrently must not be handed the agents.
    manager = humans.filter(pk=subject.manager_id).first() if subject.manager_id else None
    new_sponsor = manager if manager is not None and manager.status == HumanStatus.ACTIVE else None
    agents = Agent.objects.only("id", "name", "parent_id", "depth", "status", "sponsor_id", "risk_tier")
    if lock:
        agents = agents.select_for_update(of=("self",))
    sponsored = list(agents.filter(sponsor=subject).exclude(status=AgentStatus.OFFBOARDED).order_by("depth", "id"))
    suspended: list[Agent] = []
    if new_sponsor is None:
        # Suspending an agent suspends what it spawned (as agent_suspend does), whoever sponsors it.
        seen: set[int] = set()
        level = [a for a in sponsored if a.status == AgentStatus.ACTIVE]
        while level:
            fresh = [a for a in level if a.pk not in seen]
            seen.update(a.pk for a in fresh)
            suspended.extend(fresh)
            below = agents.filter(parent_id__in=[a.pk for a in fresh], status=AgentStatus.ACTIVE)
            level = list(below.order_by("id")) if fresh else []
    links = Delegation.objects.active(at).filter(root_human=subject).order_by("depth", "id")
    if lock:
        links = links.select_for_update(of=("self",))
    link_rows = [LinkRow(*row) for row in links.values_list(*_LINK_FIELDS)]
    tokens = DelegationToken.objects.active(at).filter(delegation_id__in=[link.id for link in link_rows])
    cut = Cut(
        links=link_rows,
        tokens=[TokenRow(*row) for row in tokens.order_by("id").values_list("id", "jti", "agent_id", "delegation_id")],
    )
    return HumanOffboardPlan(human=subject, new_sponsor=new_sponsor, sponsored=sponsored, suspended=suspended, cut=cut)


def _human_cut_confirmed(plan: HumanOffboardPlan) -> bool:
    links = [link.id for link in plan.cut.links]
    return (
        Human.objects.filter(pk=plan.human.pk, status=HumanStatus.LEFT).exists()
        and not Delegation.objects.active().filter(pk__in=links).exists()
    )


# --- Shared ---------------------------------------------------------------------------------------


def _require_reason(reason: str) -> str:
    reason = (reason or "").strip()
    if not reason:
        raise ValidationFailed(
            "Say why: the reason goes into every audit event.", code="reason_required", field="reason"
        )
    if len(reason) > REASON_MAX:
        raise ValidationFailed(f"The reason is longer than {REASON_MAX} characters.", code="too_long", field="reason")
    return reason


def _state_version() -> int:
    return StateVersion.objects.values_list("version", flat=True).get(pk=1)


def _update_returning(
    table: str, assignments: str, values: list[Any], ids: Sequence[int], condition: str, params: list[Any]
) -> list[int]:
    """One ``UPDATE … WHERE id = ANY(ids) AND condition RETURNING id``: the ids actually changed, so an
    object changed concurrently in between (and so no longer matching) gets no event of ours."""
    if not ids:
        return []
    if connection.vendor == "postgresql":
        sql = f"UPDATE {table} SET {assignments} WHERE id = ANY(%s) AND {condition} RETURNING id"  # noqa: S608
        with connection.cursor() as cursor:
            cursor.execute(sql, [*values, list(ids), *params])
            return [row[0] for row in cursor.fetchall()]
    # SQLite (make run): no arrays; the ids as placeholders, in chunks under its variable limit.
    changed: list[int] = []
    with connection.cursor() as cursor:
        for start in range(0, len(ids), 900):
            chunk = list(ids[start : start + 900])
            marks = ", ".join(["%s"] * len(chunk))
            sql = f"UPDATE {table} SET {assignments} WHERE id IN ({marks}) AND {condition} RETURNING id"  # noqa: S608
            cursor.execute(sql, [*values, *chunk, *params])
            changed.extend(row[0] for row in cursor.fetchall())
    return changed


def _revoke(
    *, actor: Actor, cut: Cut, reason: str, context: dict[str, Any], at: datetime, agent_names: dict[int, str]
) -> list[PendingEvent]:
    """Revoke the keys, grants, links and tokens of ``cut``, one UPDATE each; the events for what changed."""
    events: list[PendingEvent] = []
    keys = set(
        _update_returning(
            "governance_agentkey",
            "revoked_at = %s, revoked_by = %s, revoked_reason = %s",
            [at, actor.label[:200], reason],
            [k.id for k in cut.keys],
            "revoked_at IS NULL",
            [],
        )
    )
    for key in cut.keys:
        if key.id in keys:
            label = f"{agent_names.get(key.agent_id, '')} ck_{key.prefix}_…".strip()
            events.append(
                PendingEvent(
                    actor=actor,
                    action="agentkey.revoke",
                    target=Target(type="agentkey", id=str(key.id), label=label),
                    context={**context, "agent": key.agent_id, "prefix": key.prefix, "leaked": False},
                )
            )
    grants = set(
        _update_returning(
            "governance_grant",
            "status = %s, revoked_at = %s, revoked_reason = %s",
            [GrantStatus.REVOKED, at, reason],
            [g.id for g in cut.grants],
            "status = %s",
            [GrantStatus.ACTIVE],
        )
    )
    for grant in cut.grants:
        if grant.id in grants:
            label = f"{agent_names.get(grant.holder_id, '')} → {grant.scope}"[:200]
            events.append(
                PendingEvent(
                    actor=actor,
                    action="grant.revoke",
                    target=Target(type="grant", id=str(grant.id), label=label),
                    context={**context, "scope": grant.scope},
                )
            )
    links = set(
        _update_returning(
            "governance_delegation",
            "status = %s, revoked_at = %s, revoked_reason = %s",
            [DelegationStatus.REVOKED, at, reason],
            [link.id for link in cut.links],
            "status = %s",
            [DelegationStatus.ACTIVE],
        )
    )
    for link in cut.links:
        if link.id in links:
            events.append(
                PendingEvent(
                    actor=actor,
                    action="delegation.revoke",
                    target=Target(
                        type="delegation", id=str(link.id), label=f"{link.root_human_name} → {link.delegate_name}"[:200]
                    ),
                    on_behalf_of=[{"type": "human", "id": link.root_human_id, "label": link.root_human_name}],
                    context={**context, "cascade_from": None},
                )
            )
    tokens = set(
        _update_returning(
            "governance_delegationtoken",
            "revoked_at = %s, revoked_reason = %s",
            [at, reason],
            [t.id for t in cut.tokens],
            "revoked_at IS NULL",
            [],
        )
    )
    for token in cut.tokens:
        if token.id in tokens:
            events.append(
                PendingEvent(
                    actor=actor,
                    action="token.revoke",
                    target=Target(type="delegationtoken", id=token.jti, label="delegation token"),
                    context={**context, "agent": token.agent_id, "delegation": token.delegation_id},
                )
            )
    return events


def _mark_effective(offboarding: Offboarding, version_before: int, confirmed: Callable[[], bool]) -> None:
    """After the commit: the moment the revocation is what every check sees. The version the check
    confirms its kept state by has moved past the one read before the change (so no process decides on
    what it kept from before), and what was cut reads back as cut."""
    committed_at = timezone.now()
    # Where no process keeps the state it decided on (SQLite under make run, or the cache switched off),
    # every check reads afresh: what committed is what the next check sees, with no version to wait for.
    moved = not livestate.enabled() or _state_version() > version_before
    if not moved or not confirmed():
        return  # not (yet) confirmed: effective_at stays empty rather than claim what was not seen
    effective_at = timezone.now()
    Offboarding.objects.filter(pk=offboarding.pk).update(committed_at=committed_at, effective_at=effective_at)
    offboarding.committed_at = committed_at
    offboarding.effective_at = effective_at
