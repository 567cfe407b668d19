from __future__ import annotations

from celery import shared_task
from django.utils import timezone

from audit.services import Actor
from governance import repeats, services

# Below the beat's interval (config/celery.py): a sweep that cannot finish hands on to a fresh task
# rather than running into the next one.
SWEEP_BUDGET_SECONDS = 45.0


@shared_task
def expire_due() -> dict[str, int]:
    """Tidy what time has ended: grants, delegations, unanswered access requests. Checks already
    refuse all of them from their timestamps; this only brings the statuses in line."""
    actor = Actor.system("expiry sweep")
    started = timezone.now()
    counts = services.expire_due(actor=actor, time_budget=SWEEP_BUDGET_SECONDS)
    counts["access_requests"] = services.access_request_expire_due(actor=actor)
    if services.expiry_backlog(started):
        # Out of time with work left (a backlog of a million rows takes longer than a minute).
        expire_due.delay_on_commit()
    return counts


@shared_task
def flush_repeats() -> int:
    """Write the summaries of repeated unidentified denials whose window has ended."""
    return repeats.flush_repeats()


@shared_task
def key_hygiene() -> dict[str, int]:
    """Flag stale keys and keys due for rotation; revoke the stale ones if CUSTOS_KEY_AUTO_REVOKE_STALE."""
    return services.agentkey_hygiene(actor=Actor.system("key hygiene"))
