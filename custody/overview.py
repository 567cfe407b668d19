"""The overview's figures: decisions and denials per day, drift, key hygiene, reviews, time to revoke.

Each figure is one grouped or aggregate query over what the viewer may see (``visible_to``), so the page
costs the same whatever the size of the organisation or of the audit log. A reviewer's review figures are
their own queue."""

from __future__ import annotations

import statistics
from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from django.conf import settings
from django.db.models import Count, Q, QuerySet
from django.db.models.functions import TruncDate

from console.roles import reads_everything
from governance.models import Agent, AgentKey, DriftEvent, Human, Offboarding
from governance.selectors import decisions_visible_to
from reviews import selectors as review_selectors
from reviews.models import Campaign, CampaignStatus, ReviewItem

DAYS = 30
RECENT_OFFBOARDINGS = 12
# The median is taken over this many latest offboardings: enough to be steady, bounded whatever the history.
MEDIAN_OVER = 200


@dataclass(frozen=True, slots=True)
class DayCount:
    day: date
    allowed: int
    denied: int


def decisions_per_day(user: Any, today: date, days: int = DAYS) -> list[DayCount]:
    """Allowed and denied checks the user may read per UTC day, the last ``days`` days up to ``today``,
    in one grouped query (TruncDate works alike on PostgreSQL and SQLite)."""
    first = today - timedelta(days=days - 1)
    rows = (
        decisions_visible_to(user)
        .filter(occurred_at__gte=datetime.combine(first, time.min, tzinfo=UTC))
        .annotate(day=TruncDate("occurred_at", tzinfo=UTC))
        .order_by()  # the model's ordering would otherwise join the GROUP BY
        .values("day", "action")
        .annotate(n=Count("id"))
    )
    counts: dict[date, dict[str, int]] = defaultdict(lambda: {"check.allow": 0, "check.deny": 0})
    for row in rows:
        counts[row["day"]][row["action"]] += row["n"]
    return [
        DayCount(day, counts[day]["check.allow"], counts[day]["check.deny"])
        for day in (first + timedelta(days=i) for i in range(days))
    ]


def key_figures(user: Any, now: datetime) -> dict[str, int]:
    """Keys in force the user may see: how many, expiring within 7 and 30 days, past the maximum age."""
    return (
        AgentKey.objects.visible_to(user)
        .active(now)
        .aggregate(
            active=Count("id"),
            expiring_7=Count("id", filter=Q(expires_at__lte=now + timedelta(days=7))),
            expiring_30=Count("id", filter=Q(expires_at__lte=now + timedelta(days=30))),
            past_max_age=Count("id", filter=Q(created_at__lt=now - settings.CUSTOS_KEY_MAX_AGE)),
        )
    )


@dataclass(frozen=True, slots=True)
class KeyRow:
    key: AgentKey
    past_max_age: bool


def keys_to_act_on(user: Any, now: datetime, limit: int = 10) -> list[KeyRow]:
    """Keys in force expiring within 30 days or past the maximum age, soonest to lapse first."""
    oldest = now - settings.CUSTOS_KEY_MAX_AGE
    due = Q(expires_at__lte=now + timedelta(days=30)) | Q(created_at__lt=oldest)
    keys = AgentKey.objects.visible_to(user).active(now).filter(due).select_related("agent")
    return [KeyRow(key, key.created_at < oldest) for key in keys.order_by("expires_at", "id")[:limit]]


def drift_figures(user: Any, now: datetime) -> dict[str, int]:
    return DriftEvent.objects.visible_to(user).aggregate(
        open=Count("id", filter=Q(acknowledged_at__isnull=True)),
        opened_7=Count("id", filter=Q(created_at__gte=now - timedelta(days=7))),
    )


def review_items(user: Any) -> QuerySet[ReviewItem]:
    """Pending items the figures count: every one for admins and auditors, a reviewer's own queue."""
    show = review_selectors.EVERYONE if reads_everything(user) else review_selectors.MINE
    return review_selectors.pending_items(user, show)


def review_figures(user: Any, now: datetime) -> dict[str, int]:
    return review_items(user).aggregate(
        pending=Count("id"),
        overdue=Count("id", filter=Q(due_at__lt=now)),
        due_7=Count("id", filter=Q(due_at__gte=now, due_at__lt=now + timedelta(days=7))),
    )


def campaigns_active(user: Any) -> int:
    return Campaign.objects.visible_to(user).filter(status=CampaignStatus.ACTIVE).count()


def offboardings_visible_to(user: Any) -> QuerySet[Offboarding]:
    """Offboardings have no owner of their own: a reviewer sees those of agents and humans they see."""
    if reads_everything(user):
        return Offboarding.objects.all()
    return Offboarding.objects.filter(
        Q(agent__in=Agent.objects.visible_to(user)) | Q(human__in=Human.objects.visible_to(user))
    )


@dataclass(frozen=True, slots=True)
class RevokeTime:
    """One offboarding's time from the click to the last credential refused."""

    offboarding_id: int
    kind: str
    subject_id: int | None
    requested_at: datetime
    ms: int


@dataclass(frozen=True, slots=True)
class TimeToRevoke:
    median_ms: int | None
    measured: int  # offboardings the median is taken over (at most MEDIAN_OVER)
    recent: list[RevokeTime]  # oldest first, for the chart


def time_to_revoke(offboardings: QuerySet[Offboarding], recent: int = RECENT_OFFBOARDINGS) -> TimeToRevoke:
    """Median time to revoke over the latest ``MEDIAN_OVER`` measured offboardings and the latest few,
    in one query (the median in Python: PostgreSQL's percentile_cont has no SQLite counterpart)."""
    rows = list(
        offboardings.filter(effective_at__isnull=False)
        .order_by("-requested_at", "-id")
        .values_list("id", "kind", "agent_id", "human_id", "requested_at", "effective_at")[:MEDIAN_OVER]
    )
    times = [
        RevokeTime(pk, kind, agent_id or human_id, requested, round((effective - requested).total_seconds() * 1000))
        for pk, kind, agent_id, human_id, requested, effective in rows
        if effective is not None  # filtered above; for the type checker
    ]
    median = round(statistics.median(t.ms for t in times)) if times else None
    return TimeToRevoke(median_ms=median, measured=len(times), recent=list(reversed(times[:recent])))


def humanise_ms(ms: int | None) -> str:
    """A duration in the unit people read it in: 840 ms, 2.4 s, 3 min, 5 h."""
    if ms is None:
        return "—"
    if ms < 1000:
        return f"{ms} ms"
    if ms < 60_000:
        return f"{ms / 1000:.1f} s"
    if ms < 3_600_000:
        return f"{ms / 60_000:.0f} min"
    return f"{ms / 3_600_000:.1f} h"
