"""Reminders before the due date and escalation after it, per campaign schedule. Both are safe to run
again at any time: an item is reminded once per threshold crossed and escalated once."""

from __future__ import annotations

from collections import Counter
from datetime import datetime, timedelta

from django.db import transaction
from django.db.models import F, Q
from django.utils import timezone

from audit.services import Actor, PendingEvent, Target, audit_append_many
from reviews.models import Campaign, CampaignStatus, ItemStatus, NotificationKind, ReviewItem
from reviews.routing import Org
from reviews.services.items import made_by
from reviews.services.notify import notify


def reviews_remind_due(*, now: datetime | None = None) -> int:
    """Remind each reviewer, once per reminder threshold crossed (``reminder_days`` before the due date),
    of their undecided items: one notification and email per reviewer and campaign."""
    now = now or timezone.now()
    reminded = 0
    actor = Actor.system("review reminders")
    for campaign in Campaign.objects.filter(status=CampaignStatus.ACTIVE).exclude(reminder_days=[]):
        with transaction.atomic():
            picked: list[ReviewItem] = []
            for days in sorted(campaign.reminder_days):
                lead = timedelta(days=days)
                due = (
                    ReviewItem.objects.select_for_update(skip_locked=True, of=("self",))
                    .filter(campaign=campaign, status=ItemStatus.PENDING, reviewer__user__isnull=False)
                    .filter(due_at__gt=now, due_at__lte=now + lead)
                    .filter(Q(last_reminded_at__isnull=True) | Q(last_reminded_at__lt=F("due_at") - lead))
                    .exclude(pk__in=[i.pk for i in picked])
                    .select_related("reviewer")
                )
                picked.extend(due)
            if not picked:
                continue
            ReviewItem.objects.filter(pk__in=[i.pk for i in picked]).update(
                last_reminded_at=now, reminders_sent=F("reminders_sent") + 1
            )
            per_user = Counter(i.reviewer.user_id for i in picked if i.reviewer is not None)
            notes = notify(
                campaign,
                NotificationKind.REMINDER,
                [(u, n) for u, n in per_user.items() if u is not None],
                subject=f"Reminder — {campaign.name}: items due soon",
                body="{items} items in {campaign} still await your decision; they are due {due}.",
            )
            audit_append_many(
                [
                    PendingEvent(
                        actor=actor,
                        action="review.remind",
                        target=Target(type="campaign", id=str(campaign.pk), label=campaign.name[:200]),
                        context={"user": note.user_id, "items": note.items},
                    )
                    for note in notes
                ]
            )
            reminded += len(picked)
    return reminded


def reviews_escalate_due(*, now: datetime | None = None) -> int:
    """Move each item overdue by the campaign's ``escalate_after_days`` to its reviewer's manager (or,
    when the manager cannot review it, the fallback reviewer), once; notify the new reviewer and the
    previous one."""
    now = now or timezone.now()
    escalated = 0
    actor = Actor.system("review escalation")
    org: Org | None = None
    for campaign in Campaign.objects.filter(status=CampaignStatus.ACTIVE, escalate_after_days__isnull=False):
        assert campaign.escalate_after_days is not None
        cutoff = now - timedelta(days=campaign.escalate_after_days)
        with transaction.atomic():
            overdue = list(
                ReviewItem.objects.select_for_update(skip_locked=True, of=("self",))
                .filter(campaign=campaign, status=ItemStatus.PENDING, escalated_at__isnull=True, due_at__lte=cutoff)
                .select_related("reviewer", "grant", "delegation")
            )
            if not overdue:
                continue
            org = org or Org.load()
            events: list[PendingEvent] = []
            to_new: Counter[int] = Counter()
            to_old: Counter[int] = Counter()
            for item in overdue:
                previous = item.reviewer
                conflicted = org.conflicted(item.agent_id, made_by(item, org.human_of_user))
                manager = org.humans[previous.pk].manager_id if previous and previous.pk in org.humans else None
                target = None
                if org.why_not(manager, conflicted) is None:
                    target, how = manager, "escalated to the reviewer's manager"
                elif campaign.fallback_reviewer_id != item.reviewer_id and (
                    org.why_not(campaign.fallback_reviewer_id, conflicted) is None
                ):
                    target, how = campaign.fallback_reviewer_id, "escalated to the fallback reviewer"
                else:
                    how = "overdue; nobody to escalate to (an admin may reassign it)"
                item.escalated_at = now
                if target is not None:
                    item.escalated_from = previous
                    item.reviewer_id = target
                    to_new[org.humans[target].user_id or 0] += 1
                    if previous is not None and previous.user_id is not None:
                        to_old[previous.user_id] += 1
                item.routing = f"{how} (was {previous.name if previous else 'unassigned'})"[:300]
                events.append(
                    PendingEvent(
                        actor=actor,
                        action="review.escalate",
                        target=Target(type="reviewitem", id=str(item.pk), label=item.label[:200]),
                        context={
                            "campaign": campaign.pk,
                            "from": previous.pk if previous else None,
                            "to": target,
                            "overdue_since": item.due_at.isoformat(),
                        },
                    )
                )
            ReviewItem.objects.bulk_update(overdue, ["escalated_at", "escalated_from", "reviewer", "routing"])
            audit_append_many(events)
            notify(
                campaign,
                NotificationKind.ESCALATION,
                [(u, n) for u, n in to_new.items() if u],
                subject=f"Escalation — {campaign.name}: overdue items for you",
                body="{items} overdue items in {campaign} were escalated to you; they were due {due}.",
            )
            notify(
                campaign,
                NotificationKind.ESCALATION,
                list(to_old.items()),
                subject=f"Escalated — {campaign.name}: overdue items moved on",
                body="{items} of your items in {campaign} were overdue and moved to your manager.",
            )
            escalated += len(overdue)
    return escalated
