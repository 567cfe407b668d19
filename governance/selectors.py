"""Reads that span models: the scopes someone holds, agents above and below an agent, and the runtime
decisions recorded in the audit log, read as typed rows and scoped to what a viewer may see.

A delegation chain's live state and whether a delegation is usable are in ``governance.chain``.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db.models import CharField, Count, Max, Q, QuerySet
from django.db.models.fields.json import KT
from django.db.models.functions import Cast, TruncDate, TruncMinute
from django.utils import timezone

from audit import links
from audit.models import ActorKind, AuditEvent
from console.roles import reads_everything
from governance.decision import reason_summary
from governance.models import Agent, AgentKey, Delegation, Grant, Human, make_scope


def human_held_scopes(human: Human | int, at: datetime | None = None) -> set[str]:
    """The scopes a human (or the human with this id) holds by grants in force at ``at``."""
    human_id = human if isinstance(human, int) else human.pk
    rows = Grant.objects.active(at).filter(holder_human_id=human_id).values_list("resource__name", "action")
    return {make_scope(name, action) for name, action in rows}


def agent_held_scopes(agent: Agent, at: datetime | None = None) -> set[str]:
    rows = Grant.objects.active(at).filter(holder_agent=agent).values_list("resource__name", "action")
    return {make_scope(name, action) for name, action in rows}


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


# --- Key hygiene ----------------------------------------------------------------------------

KEY_STALE, KEY_ROTATE = "stale", "rotate"


def _stale_q(at: datetime) -> Q:
    unused_since = at - timedelta(days=settings.CUSTOS_KEY_STALE_DAYS)
    return Q(last_used_at__lt=unused_since) | Q(last_used_at__isnull=True, created_at__lt=unused_since)


def _overdue_q(at: datetime) -> Q:
    return Q(created_at__lt=at - settings.CUSTOS_KEY_MAX_AGE)


def stale_keys(at: datetime) -> QuerySet[AgentKey]:
    """Keys in force unused for ``CUSTOS_KEY_STALE_DAYS`` (or never used, created that long ago)."""
    return AgentKey.objects.active(at).filter(_stale_q(at))


def flagged_keys(at: datetime | None = None) -> QuerySet[AgentKey]:
    """Keys in force that are stale or older than ``CUSTOS_KEY_MAX_AGE`` (due for rotation)."""
    at = at or timezone.now()
    return AgentKey.objects.active(at).filter(_stale_q(at) | _overdue_q(at))


def key_flags(key: AgentKey, at: datetime) -> list[str]:
    """The hygiene flags of one key, as badges: ``stale``, ``rotate``; none once it is out of force."""
    if key.status_at(at) != "active":
        return []
    flags = []
    unused_since = at - timedelta(days=settings.CUSTOS_KEY_STALE_DAYS)
    if (key.last_used_at or key.created_at) < unused_since:
        flags.append(KEY_STALE)
    if key.created_at < at - settings.CUSTOS_KEY_MAX_AGE:
        flags.append(KEY_ROTATE)
    return flags


def unused_days(key: AgentKey, at: datetime) -> int:
    return max((at - (key.last_used_at or key.created_at)).days, 0)


# --- Runtime decisions ----------------------------------------------------------------------

DECISION_ACTIONS = ("check.allow", "check.deny")


def _text(context: dict[str, Any], name: str) -> str:
    value = context.get(name)
    return "" if value is None else str(value)


@dataclass(frozen=True, slots=True)
class Decision:
    """One recorded runtime check, read from its audit event (the decision's evidence)."""

    event_id: int
    occurred_at: datetime
    allowed: bool
    reason: str
    # The outcome's detail, which names agents and humans on the chain; for a viewer who does not read
    # everything, the reason in words that name nobody (some on the chain may be outside their view).
    detail: str
    scope: str
    intent: str
    tool: str
    session_id: str
    request_id: str
    parent_request_id: str
    # How the agent authenticated: "delegation_token", "agent_key" or "unknown".
    credential: str
    # The acting agent, when the credential identified one.
    agent_id: int | None
    agent_label: str
    # The human the agent acted for (through a delegation token), as the event recorded them: an unsaved
    # Human with their id and the name they had, for ``{% ref %}`` to show or not. None without one.
    on_behalf_of: Human | None
    decision_id: str
    # Pages about the decision other apps offer (audit.links: "Custody", "Session"), by label; only for
    # viewers who read everything, the only ones those pages admit.
    links: dict[str, str]

    @property
    def agent(self) -> Agent | None:
        """The acting agent as the event recorded it (unsaved), for ``{% ref %}``."""
        return Agent(pk=self.agent_id, name=self.agent_label) if self.agent_id is not None else None

    @classmethod
    def of(cls, event: AuditEvent, *, full_detail: bool) -> Decision:
        context = event.context if isinstance(event.context, dict) else {}
        credential = context.get("credential")
        refs = event.on_behalf_of
        subject = refs[0] if refs and isinstance(refs[0], dict) else {}
        subject_id = subject.get("id")
        on_behalf_of = None
        if subject.get("type") == "human" and type(subject_id) is int:
            on_behalf_of = Human(pk=subject_id, name=str(subject.get("label", "")))
        reason = _text(context, "reason")
        agent_id = None
        if event.actor_kind == ActorKind.AGENT and event.actor_id.isascii() and event.actor_id.isdigit():
            agent_id = int(event.actor_id)
        return cls(
            event_id=event.pk,
            occurred_at=event.occurred_at,
            allowed=event.action == "check.allow",
            reason=reason,
            detail=_text(context, "detail") if full_detail else reason_summary(reason),
            scope=_text(context, "scope") or event.target_label,
            intent=_text(context, "intent"),
            tool=_text(context, "tool"),
            session_id=_text(context, "session_id"),
            request_id=_text(context, "request_id"),
            parent_request_id=_text(context, "parent_request_id"),
            credential=str(credential.get("kind", "")) if isinstance(credential, dict) else "",
            agent_id=agent_id,
            agent_label=event.actor_label,
            on_behalf_of=on_behalf_of,
            decision_id=event.digest,
            links=dict(links.event_links(event)) if full_detail else {},
        )


def decisions_visible_to(user: Any) -> QuerySet[AuditEvent]:
    """Recorded checks a user may read. The audit log has no owner to scope by, so decisions are scoped
    through their actor: a reviewer reads those of the agents ``Agent.visible_to`` lets them see (never
    the unidentified ones); admins and auditors read them all."""
    decisions = AuditEvent.objects.filter(action__in=DECISION_ACTIONS)
    if reads_everything(user):
        return decisions
    agent_refs = Agent.objects.visible_to(user).annotate(ref=Cast("id", CharField())).values("ref")
    return decisions.filter(actor_kind=ActorKind.AGENT, actor_id__in=agent_refs)


def recent_decisions(user: Any, limit: int) -> list[Decision]:
    full = reads_everything(user)
    return [Decision.of(e, full_detail=full) for e in decisions_visible_to(user).order_by("-id")[:limit]]


def agent_decisions(agent: Agent, viewer: Any, limit: int = 25) -> list[Decision]:
    """The agent's latest checks, in one query down the audit log's (actor_kind, actor_id, -id) index.
    Scoped by the agent, which the caller fetched through ``visible_to``."""
    events = AuditEvent.objects.for_actor(ActorKind.AGENT, agent.pk).filter(action__in=DECISION_ACTIONS)
    full = reads_everything(viewer)
    return [Decision.of(e, full_detail=full) for e in events.order_by("-id")[:limit]]


@dataclass(frozen=True, slots=True)
class MinuteCount:
    minute: datetime
    allowed: int
    denied: int


def decisions_per_minute(user: Any, start: datetime, minutes: int) -> list[MinuteCount]:
    """Allowed and denied checks a user may read, per minute from ``start`` (whole minutes), in one
    grouped query whatever the traffic."""
    per_minute = (
        decisions_visible_to(user)
        .filter(occurred_at__gte=start, occurred_at__lt=start + timedelta(minutes=minutes))
        .annotate(minute=TruncMinute("occurred_at"))
        .order_by()  # the model's ordering would otherwise join the GROUP BY
        .values("minute", "action")
        .annotate(n=Count("id"))
    )
    counts: dict[int, dict[str, int]] = defaultdict(lambda: {"check.allow": 0, "check.deny": 0})
    for row in per_minute:
        index = int((row["minute"] - start).total_seconds() // 60)
        if 0 <= index < minutes:
            counts[index][row["action"]] += row["n"]
    return [
        MinuteCount(start + timedelta(minutes=i), counts[i]["check.allow"], counts[i]["check.deny"])
        for i in range(minutes)
    ]


# --- Use of each scope, from the recorded decisions ----------------------------------------------


@dataclass(frozen=True, slots=True)
class ScopeUse:
    """How an agent used one scope in a window: allowed checks, on how many days, and the last one."""

    count: int
    days: int
    last_at: datetime


def scope_usage(agent_ids: list[int] | None, since: datetime) -> dict[tuple[int, str], ScopeUse]:
    """Allowed checks per (agent, scope) since ``since``, in one grouped query over the decisions (the
    audit log is their record). ``agent_ids=None`` reads every agent's, for a launch that spans most of
    them."""
    events = AuditEvent.objects.filter(action="check.allow", actor_kind=ActorKind.AGENT, occurred_at__gte=since)
    if agent_ids is not None:
        events = events.filter(actor_id__in=[str(i) for i in agent_ids])
    rows = (
        events.order_by()
        .values("actor_id", scope=KT("context__scope"))
        .annotate(n=Count("id"), days=Count(TruncDate("occurred_at"), distinct=True), last=Max("occurred_at"))
    )
    usage: dict[tuple[int, str], ScopeUse] = {}
    for row in rows:
        actor_id, scope = row["actor_id"], row["scope"]
        if scope and actor_id.isascii() and actor_id.isdigit():
            usage[(int(actor_id), str(scope))] = ScopeUse(row["n"], row["days"], row["last"])
    return usage
