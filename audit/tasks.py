from __future__ import annotations

import logging

from celery import shared_task

from audit import checkpoints
from audit.verification import verify_chain

log = logging.getLogger(__name__)


@shared_task
def verify_chain_task() -> dict[str, object]:
    """The nightly full verification: every event from the first, every checkpoint."""
    result = verify_chain(full=True)
    if not result.ok:
        log.error("audit chain broken at #%s: %s", result.first_bad_seq, result.problem)
    return result.as_dict()


@shared_task
def checkpoint_task() -> dict[str, object]:
    """Every few minutes: verify what is new since the last checkpoint, and sign the head only if it
    holds (a broken chain is reported at ERROR, never signed)."""
    result = verify_chain(full=False)
    if not result.ok:
        log.error("audit chain broken at #%s: %s (no checkpoint signed)", result.first_bad_seq, result.problem)
        return result.as_dict()
    signed = checkpoints.checkpoint_now()
    return {**result.as_dict(), "checkpoint": signed.seq if signed is not None else None}
