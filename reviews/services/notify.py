"""Notifications to reviewers (and to agents' sponsors about keys to rotate): a row per person and
occasion (shown with a badge in the console), and the same message by email, sent after the transaction
that wrote it commits (``notifications_send``)."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any

from django.conf import settings
from django.core.mail import send_mail
from django.db import transaction
from django.db.models import Count, QuerySet
from django.utils import timezone

from reviews.models import Campaign, Notification, NotificationKind, ReviewItem

log = logging.getLogger(__name__)


def _enqueue_send() -> None:
    from reviews import tasks

    try:
        tasks.send_notifications.delay()
    except Exception:  # the broker is down: the beat sends them on its next round
        log.warning("could not enqueue notification emails", exc_info=True)


def notify(
    campaign: Campaign, kind: str, per_user: Iterable[tuple[int, int]], *, subject: str, body: str
) -> list[Notification]:
    """One notification per ``(user id, item count)``; ``body`` may use {items}, {campaign} and {due}."""
    due = campaign.due_at.strftime("%Y-%m-%d") if campaign.due_at else "as soon as possible"
    rows = [
        Notification(
            user_id=user_id,
            kind=kind,
            campaign=campaign,
            subject=subject[:200],
            body=body.format(items=count, campaign=campaign.name, due=due),
            items=count,
        )
        for user_id, count in per_user
        if count
    ]
    return notify_rows(rows)


def notify_rows(rows: list[Notification]) -> list[Notification]:
    """Save notifications (ids set) and email them once the transaction commits."""
    Notification.objects.bulk_create(rows)
    if rows:
        transaction.on_commit(_enqueue_send)
    return rows


def notify_reviewers(
    campaign: Campaign, kind: str, items: QuerySet[ReviewItem], *, subject: str, body: str
) -> list[Notification]:
    """Notify each reviewer (by their console login) of their share of ``items``."""
    per_user = (
        items.filter(reviewer__user__isnull=False)
        .order_by()
        .values_list("reviewer__user_id")
        .annotate(n=Count("id"))
        .values_list("reviewer__user_id", "n")
    )
    return notify(campaign, kind, list(per_user), subject=subject, body=body)


def notifications_send(*, batch: int = 200) -> int:
    """Email the notifications not sent yet. Each is claimed by a conditional update before sending, so
    two workers never send one twice; a failed send is released for the next round."""
    sent = 0
    for note in Notification.objects.filter(emailed_at__isnull=True).select_related("user").order_by("id")[:batch]:
        if not Notification.objects.filter(pk=note.pk, emailed_at__isnull=True).update(emailed_at=timezone.now()):
            continue
        # A recipient without a console login (a key's sponsor) has only the address the row names.
        address = note.email or (note.user.email if note.user is not None else "")
        if not address:
            continue  # shown in the console only
        # Key rotation reminders carry their own links (to the agents' pages); the rest are about reviews.
        footer = (
            ""
            if note.kind == NotificationKind.KEY_ROTATION
            else f"\n\nOpen your review queue: {settings.CUSTOS_ISSUER.rstrip('/')}/reviews/\n"
        )
        try:
            send_mail(note.subject, f"{note.body}{footer}", None, [address])
            sent += 1
        except OSError:
            log.warning("could not email notification %s", note.pk, exc_info=True)
            Notification.objects.filter(pk=note.pk).update(emailed_at=None)
    return sent


def notifications_mark_read(*, user: Any) -> int:
    """Mark a user's unread notifications read. Their own inbox state, like a key's last use: not an
    access change, so no audit event (the notification itself was evidence when it was sent)."""
    return Notification.objects.filter(user=user, read_at__isnull=True).update(read_at=timezone.now())
