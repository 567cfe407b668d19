"""Drift: an agent that keeps being refused for out-of-scope attempts raises a drift event for people
to look at."""

from __future__ import annotations

from datetime import datetime

from django.conf import settings
from django.db import transaction
from django.db.models import QuerySet
from django.utils import timezone

from audit.models import AuditEvent
from audit.services import Actor, Target, audit_append
from governance.decision import Reason
from governance.models import (
    Agent,
    DriftEvent,
)

DRIFT_REASONS = (Reason.SCOPE_NOT_DELEGATED, Reason.SCOPE_NOT_GRANTED, Reason.DELEGATOR_LACKS_GRANT)


def drift_observe(*, agent_id: int, reason: str) -> DriftEvent | None:
    """Called after a denial was recorded: raise a drift event when the agent has been refused for
    out-of-scope attempts ``CUSTOS_DRIFT_THRESHOLD`` times within ``CUSTOS_DRIFT_WINDOW``, at most one
    per agent per window."""
    if reason not in DRIFT_REASONS:
        return None
    window = settings.CUSTOS_DRIFT_WINDOW
    since = timezone.now() - window
    denials = AuditEvent.objects.filter(
        actor_kind="agent", actor_id=str(agent_id), action="check.deny", occurred_at__gte=since
    ).filter(context__reason__in=DRIFT_REASONS)
    # Counted outside any transaction: on the check's deny path, most calls stop here.
    count = denials.count()
    if count < settings.CUSTOS_DRIFT_THRESHOLD:
        return None
    with transaction.atomic():
        return _drift_raise(agent_id=agent_id, reason=reason, count=count, since=since, denials=denials)


def _drift_raise(
    *, agent_id: int, reason: str, count: int, since: datetime, denials: QuerySet[AuditEvent]
) -> DriftEvent | None:
    # The agent row's lock orders concurrent observers: one drift event per agent per window.
    agent = Agent.objects.select_for_update().filter(pk=agent_id).first()
    if agent is None or DriftEvent.objects.filter(agent=agent, created_at__gte=since).exists():
        return None
    window = settings.CUSTOS_DRIFT_WINDOW
    recent = list(denials.order_by("-id").values_list("context", flat=True)[:10])
    event = DriftEvent.objects.create(
        agent=agent,
        kind="repeated_out_of_scope",
        reason=reason,
        count=count,
        window_seconds=int(window.total_seconds()),
        detail={
            "scopes": sorted({str(c.get("scope")) for c in recent}),
            "intents": sorted({str(c.get("intent")) for c in recent if c.get("intent")})[:5],
            "tools": sorted({str(c.get("tool")) for c in recent if c.get("tool")})[:5],
        },
    )
    audit_append(
        actor=Actor.system("drift detector"),
        action="drift.raise",
        target=Target(type="agent", id=str(agent.pk), label=agent.name),
        context={"drift_event": event.pk, "count": count, "window_seconds": event.window_seconds, **event.detail},
    )
    return event


@transaction.atomic
def drift_acknowledge(*, actor: Actor, event: DriftEvent) -> DriftEvent:
    event = DriftEvent.objects.select_for_update().select_related("agent").get(pk=event.pk)
    if event.acknowledged_at is not None:
        return event
    event.acknowledged_at = timezone.now()
    event.acknowledged_by = actor.label
    event.save(update_fields=["acknowledged_at", "acknowledged_by"])
    audit_append(
        actor=actor,
        action="drift.acknowledge",
        target=Target(type="agent", id=str(event.agent_id), label=event.agent.name),
        context={"drift_event": event.pk},
    )
    return event
