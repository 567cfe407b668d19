"""A campaign's figures for its page: progress per reviewer, notifications sent, rubber-stamp signals and
the recommendation against the decision. Each figure is one grouped query, whatever the campaign's size."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import connection
from django.db.models import Count, F, Q, QuerySet, Sum
from django.utils import timezone

from governance.models import Human
from reviews.models import (
    DECIDED,
    Campaign,
    Decision,
    ItemStatus,
    Notification,
    NotificationKind,
    ReviewItem,
    ReviewItemQuerySet,
)

NO_RESPONSE = (ItemStatus.KEPT, ItemStatus.FLAGGED)


@dataclass
class ReviewerRow:
    reviewer: Human | None
    total: int = 0
    pending: int = 0
    # Decided by a person (certified or revoked); ``closed`` ended otherwise (no response, lapsed, ended).
    decided: int = 0
    closed: int = 0
    overdue: int = 0
    # Rubber-stamp signals (admins only on the page).
    fast: int = 0
    bulk: int = 0
    streak: int = 0

    @property
    def percent(self) -> int:
        return int(100 * self.decided / self.total) if self.total else 0


@dataclass
class Outcomes:
    """Recommended (revoke / certify / none) against what happened (certify / revoke / no response /
    pending / other), as counts."""

    cells: dict[tuple[str, str], int] = field(default_factory=dict)

    def get(self, recommended: str, outcome: str) -> int:
        return self.cells.get((recommended, outcome), 0)

    def rows(self) -> list[tuple[str, list[int]]]:
        labels = [("revoke", "Recommended revoke"), ("certify", "Recommended certify"), ("", "No recommendation")]
        return [(label, [self.get(key, o) for o in OUTCOME_COLUMNS]) for key, label in labels]


OUTCOME_COLUMNS = ("certify", "revoke", "no_response", "pending", "other")
OUTCOME_LABELS = ("Certified", "Revoked", "No response", "Pending", "Ended elsewhere")


def _outcome(status: str) -> str:
    if status == ItemStatus.CERTIFIED:
        return Decision.CERTIFY
    if status == ItemStatus.REVOKED:
        return Decision.REVOKE
    if status in NO_RESPONSE:
        return "no_response"
    if status == ItemStatus.PENDING:
        return "pending"
    return "other"


def reviewer_rows(campaign: Campaign, items: QuerySet[ReviewItem], now: datetime | None = None) -> list[ReviewerRow]:
    """Per reviewer: items, pending, decided, overdue, decisions faster than the rubber-stamp threshold,
    bulk certifications and the longest unbroken run of certifications. Two queries (three with streaks)."""
    now = now or timezone.now()
    fast_limit = timedelta(seconds=settings.CUSTOS_RUBBER_STAMP_SECONDS)
    # Decided by a person; the no-response outcome of a close is recorded with no user.
    by_reviewer = Q(status__in=DECIDED, decided_by_user__isnull=False)
    grouped = (
        items.filter(campaign=campaign)
        .order_by()
        .values("reviewer_id")
        .annotate(
            total=Count("id"),
            pending=Count("id", filter=Q(status=ItemStatus.PENDING)),
            decided=Count("id", filter=by_reviewer),
            closed=Count("id", filter=~Q(status=ItemStatus.PENDING) & ~by_reviewer),
            overdue=Count("id", filter=Q(status=ItemStatus.PENDING, due_at__lt=now)),
            fast=Count(
                "id",
                filter=Q(
                    status__in=DECIDED, opened_at__isnull=False, bulk=False, decided_at__lt=F("opened_at") + fast_limit
                ),
            ),
            bulk=Count("id", filter=Q(bulk=True, status=ItemStatus.CERTIFIED)),
        )
    )
    rows = list(grouped)
    humans = Human.objects.in_bulk([r["reviewer_id"] for r in rows if r["reviewer_id"] is not None])
    streaks = certify_streaks(campaign)
    out = [
        ReviewerRow(
            reviewer=humans.get(r["reviewer_id"]) if r["reviewer_id"] else None,
            total=r["total"],
            pending=r["pending"],
            decided=r["decided"],
            closed=r["closed"],
            overdue=r["overdue"],
            fast=r["fast"],
            bulk=r["bulk"],
            streak=streaks.get(r["reviewer_id"], 0),
        )
        for r in rows
    ]
    out.sort(key=lambda row: (-row.overdue, -row.pending, row.reviewer.name if row.reviewer else ""))
    return out


# The longest run of consecutive certifications per reviewer, in the order they decided (gaps and
# islands: a row's rank among all its reviewer's decisions minus its rank among its decisions of the same
# kind is constant along a run).
_STREAKS = """
WITH d AS (
    SELECT reviewer_id, status,
           ROW_NUMBER() OVER (PARTITION BY reviewer_id ORDER BY decided_at, id)
           - ROW_NUMBER() OVER (PARTITION BY reviewer_id, status ORDER BY decided_at, id) AS run
    FROM reviews_reviewitem
    WHERE campaign_id = %s AND status IN (%s, %s) AND reviewer_id IS NOT NULL
)
SELECT reviewer_id, MAX(n) FROM (
    SELECT reviewer_id, run, COUNT(*) AS n FROM d WHERE status = %s GROUP BY reviewer_id, run
) runs GROUP BY reviewer_id
"""


def certify_streaks(campaign: Campaign) -> dict[int, int]:
    with connection.cursor() as cursor:
        cursor.execute(
            _STREAKS, [campaign.pk, ItemStatus.CERTIFIED.value, ItemStatus.REVOKED.value, ItemStatus.CERTIFIED.value]
        )
        return {int(reviewer): int(n) for reviewer, n in cursor.fetchall()}


def outcomes(campaign: Campaign, items: QuerySet[ReviewItem]) -> Outcomes:
    cells: dict[tuple[str, str], int] = defaultdict(int)
    grouped = items.filter(campaign=campaign).order_by().values("recommendation", "status").annotate(n=Count("id"))
    for row in grouped:
        cells[(row["recommendation"] or "", _outcome(row["status"]))] += row["n"]
    return Outcomes(dict(cells))


def notifications_sent(campaign: Campaign) -> dict[str, dict[str, int]]:
    """Notifications by kind: how many messages, about how many items."""
    sent = {kind: {"messages": 0, "items": 0} for kind in NotificationKind.values}
    grouped = (
        Notification.objects.filter(campaign=campaign)
        .order_by()
        .values("kind")
        .annotate(messages=Count("id"), items=Sum("items"))
    )
    for row in grouped:
        sent[row["kind"]] = {"messages": row["messages"], "items": row["items"] or 0}
    return sent


def overdue_items(campaign: Campaign, items: ReviewItemQuerySet, limit: int = 20) -> list[ReviewItem]:
    return list(
        items.filter(campaign=campaign).overdue().select_related("agent", "reviewer").order_by("due_at", "id")[:limit]
    )


def totals(rows: list[ReviewerRow]) -> dict[str, Any]:
    total = sum(r.total for r in rows)
    decided = sum(r.decided for r in rows)
    return {
        "total": total,
        "decided": decided,
        "closed": sum(r.closed for r in rows),
        "pending": sum(r.pending for r in rows),
        "overdue": sum(r.overdue for r in rows),
        "percent": int(100 * decided / total) if total else 0,
    }
