from __future__ import annotations

import logging

from celery import shared_task

from audit.services import Actor, audit_verification_record
from audit.verification import verify_chain

log = logging.getLogger(__name__)


@shared_task
def verify_chain_task() -> dict[str, object]:
    """The nightly full verification: every event from the first, every checkpoint; recorded in the log
    (the audit page's badge shows the latest)."""
    result = verify_chain(full=True)
    if not result.ok:
        log.error("audit chain broken at #%s: %s", result.first_bad_seq, result.problem)
    audit_verification_record(actor=Actor.system("nightly verification"), result=result, full=True)
    return result.as_dict()
