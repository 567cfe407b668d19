"""Review jobs: thin wrappers that call one service each. The beat schedule is in ``config/celery.py``."""

from __future__ import annotations

from celery import shared_task
from django.db.models import Q
from django.utils import timezone

from reviews import services
from reviews.models import Campaign, CampaignKind, CampaignStatus
from reviews.services.campaigns import CLAIM_TIMEOUT


@shared_task
def generate_items(campaign_id: int) -> int:
    """Open a launched campaign's items (enqueued when it is launched)."""
    return services.campaign_generate(campaign_id=campaign_id)


@shared_task
def generate_pending() -> int:
    """Catch-up: launched campaigns whose generation was never enqueued (the broker was down) or whose
    worker died mid-way (its claim went stale)."""
    stale = timezone.now() - CLAIM_TIMEOUT
    waiting = Campaign.objects.filter(
        kind=CampaignKind.CAMPAIGN, status=CampaignStatus.ACTIVE, generated_at__isnull=True
    ).filter(Q(generation_claimed_at__isnull=True) | Q(generation_claimed_at__lt=stale))
    return sum(services.campaign_generate(campaign_id=pk) for pk in waiting.values_list("id", flat=True))


@shared_task
def launch_recurring() -> int:
    return len(services.campaign_launch_due())


@shared_task
def remind_and_escalate() -> dict[str, int]:
    return {"reminded": services.reviews_remind_due(), "escalated": services.reviews_escalate_due()}


@shared_task
def open_recertifications() -> dict[str, int]:
    return services.recertification_open_due()


@shared_task
def open_micro_reviews() -> dict[str, int]:
    return services.micro_reviews_open()


@shared_task
def send_notifications() -> int:
    return services.notifications_send()


@shared_task
def remind_key_rotation(batch_size: int = 1000) -> dict[str, int]:
    """Tell sponsors about their agents' keys due for rotation, a batch at a time until none is full."""
    totals = {"keys": 0, "reminders": 0, "notifications": 0}
    while True:
        counts = services.key_rotation_remind_due(batch_size=batch_size)
        totals = {name: totals[name] + counts[name] for name in totals}
        if counts["keys"] < batch_size:
            return totals
