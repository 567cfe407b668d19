from __future__ import annotations

import logging

from celery import shared_task

from audit.verification import verify_chain

log = logging.getLogger(__name__)


@shared_task
def verify_chain_task() -> dict[str, object]:
    """The nightly full verification: every event from the first, every checkpoint."""
    result = verify_chain(full=True)
    if not result.ok:
        log.error("audit chain broken at #%s: %s", result.first_bad_seq, result.problem)
    return result.as_dict()
