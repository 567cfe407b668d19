from __future__ import annotations

from celery import shared_task

from audit.services import Actor
from governance import repeats, services


@shared_task
def expire_due() -> dict[str, int]:
    """Tidy what time has ended: grants, delegations, unanswered access requests. Checks already
    refuse all of them from their timestamps; this only brings the statuses in line."""
    actor = Actor.system("expiry sweep")
    counts = services.expire_due(actor=actor)
    counts["access_requests"] = services.access_request_expire_due(actor=actor)
    return counts


@shared_task
def flush_repeats() -> int:
    """Write the summaries of repeated unidentified denials whose window has ended."""
    return repeats.flush_repeats()
