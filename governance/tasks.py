from __future__ import annotations

from celery import shared_task

from audit.services import Actor
from governance import jit
from governance.services import expire_due as expire_due_service


@shared_task
def expire_due() -> dict[str, int]:
    """Tidy what time has ended: grants, delegations, unanswered access requests. Checks already
    refuse all of them from their timestamps; this only brings the statuses in line."""
    actor = Actor.system("expiry sweep")
    counts = expire_due_service(actor=actor)
    counts["access_requests"] = jit.access_request_expire_due(actor=actor)
    return counts
