from __future__ import annotations

from celery import shared_task

from audit.services import Actor
from governance.services import expire_due as expire_due_service


@shared_task
def expire_due() -> dict[str, int]:
    return expire_due_service(actor=Actor.system("expiry sweep"))
