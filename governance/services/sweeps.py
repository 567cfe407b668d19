"""Tidying what time has ended. Checks already refuse expired access from its timestamps."""

from __future__ import annotations

from django.db import transaction
from django.utils import timezone

from audit.services import Actor, Target, audit_append
from governance.models import (
    Delegation,
    DelegationStatus,
    Grant,
    GrantStatus,
)


def expire_due(*, actor: Actor, batch_size: int = 500) -> dict[str, int]:
    """Mark grants and delegations whose time is up as expired, one audit event each, in bounded
    batches. Only tidies state: checks already refuse them from their timestamps."""
    now = timezone.now()
    counts = {"grants": 0, "delegations": 0}
    for model, status_cls, key in ((Grant, GrantStatus, "grants"), (Delegation, DelegationStatus, "delegations")):
        ids = list(model.objects.expiring_before(now).order_by("id").values_list("id", flat=True)[:batch_size])
        for pk in ids:
            with transaction.atomic():
                # The conditional update claims the row: two sweepers never both record it.
                claimed = model.objects.filter(pk=pk, status=status_cls.ACTIVE, expires_at__lte=now).update(
                    status=status_cls.EXPIRED
                )
                if claimed:
                    audit_append(
                        actor=actor,
                        action=f"{model._meta.model_name}.expire",
                        target=Target(type=model._meta.model_name or "", id=str(pk)),
                    )
                    counts[key] += 1
    return counts
