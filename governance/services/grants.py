"""Grants: time-bounded entitlements of a human or an agent to one scope."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from audit.services import Actor, Target, audit_append
from console.errors import Conflict, ValidationFailed
from governance.models import (
    Agent,
    AgentStatus,
    Grant,
    GrantSource,
    GrantStatus,
    Human,
    HumanStatus,
    Resource,
    make_scope,
)
from governance.services._rules import (
    agent_ref,
    cap_lifetime,
    human_ref,
    require_choice,
    require_future,
    user_id_of,
)


@transaction.atomic
def grant_create(
    *,
    actor: Actor,
    holder: Human | Agent,
    resource: Resource,
    action: str,
    expires_at: datetime | None = None,
    valid_from: datetime | None = None,
    justification: str = "",
    source: str = GrantSource.DIRECT,
) -> Grant:
    """Entitle a human or an agent to one scope. Agents' grants always expire, no later than the
    configured maximum; humans' may be open-ended."""
    now = timezone.now()
    valid_from = valid_from or now
    require_choice(source, GrantSource, "source")
    if action not in resource.actions:
        raise ValidationFailed(
            f"{resource.name} has no action {action!r} (it has: {', '.join(resource.actions)}).",
            code="unknown_action",
            field="action",
        )
    is_agent = isinstance(holder, Agent)
    if is_agent:
        expires_at = require_future(expires_at, "expires_at", now=now)
        cap_lifetime(expires_at, settings.CUSTOS_GRANT_MAX_LIFETIME, "expires_at", now=now, what="An agent's grant")
    elif expires_at is not None:
        require_future(expires_at, "expires_at", now=now)
    if expires_at is not None and expires_at <= valid_from:
        raise ValidationFailed("The grant must expire after it starts.", code="expiry_before_start", field="expires_at")
    # Read the holder afresh and lock it: the instance passed in may predate a suspension, and the lock
    # orders concurrent grants to one holder so the duplicate check below cannot be raced.
    holder = (Agent if is_agent else Human).objects.select_for_update().get(pk=holder.pk)
    holder_active = holder.status == (AgentStatus.ACTIVE if is_agent else HumanStatus.ACTIVE)
    if not holder_active:
        raise ValidationFailed(
            f"{holder} is {holder.status}; grants go to active holders.", code="holder_inactive", field="holder"
        )
    holder_filter: dict[str, Any] = {"holder_agent": holder} if is_agent else {"holder_human": holder}
    if Grant.objects.active(now).filter(resource=resource, action=action, **holder_filter).exists():
        raise Conflict(
            f"{holder} already holds {make_scope(resource.name, action)}.", code="duplicate_grant", field="action"
        )
    grant = Grant.objects.create(
        resource=resource,
        action=action,
        valid_from=valid_from,
        expires_at=expires_at,
        source=source,
        justification=justification.strip(),
        granted_by=actor.label,
        granted_by_user_id=user_id_of(actor),
        **holder_filter,
    )
    audit_append(
        actor=actor,
        action="grant.create",
        target=Target(type="grant", id=str(grant.pk), label=str(grant)[:200]),
        on_behalf_of=[agent_ref(holder) if is_agent else human_ref(holder)],  # type: ignore[arg-type]
        context={
            "holder": {"type": "agent" if is_agent else "human", "id": holder.pk},
            "scope": grant.scope,
            "expires_at": expires_at,
            "source": source,
            "justification": grant.justification,
        },
    )
    return grant


@transaction.atomic
def grant_revoke(*, actor: Actor, grant: Grant, reason: str = "") -> Grant:
    """Revoke a grant. A human's delegations that relied on it stop being usable at the next check
    (``delegator_lacks_grant``); they are not rewritten."""
    grant = Grant.objects.select_for_update().select_related("resource").get(pk=grant.pk)
    if grant.status == GrantStatus.REVOKED:
        return grant
    now = timezone.now()
    grant.status = GrantStatus.REVOKED
    grant.revoked_at = now
    grant.revoked_reason = reason.strip()
    grant.save(update_fields=["status", "revoked_at", "revoked_reason"])
    audit_append(
        actor=actor,
        action="grant.revoke",
        target=Target(type="grant", id=str(grant.pk), label=str(grant)[:200]),
        context={"scope": grant.scope, "reason": grant.revoked_reason},
    )
    return grant


@transaction.atomic
def grant_renew(*, actor: Actor, grant: Grant, expires_at: datetime, reason: str = "") -> Grant:
    """Extend a grant in force to a new expiry: a fresh, bounded decision (an agent's grant no later than
    the configured maximum from now), never an open end for an agent. A grant that has already ended is
    not renewed: a new grant is a new decision with its own checks."""
    now = timezone.now()
    grant = Grant.objects.select_for_update().select_related("resource").get(pk=grant.pk)
    if not grant.is_in_force(now):
        state = grant.status if grant.status != GrantStatus.ACTIVE else "expired"
        raise Conflict(f"{grant.scope} is {state}; it cannot be renewed.", code="grant_not_in_force")
    expires_at = require_future(expires_at, "expires_at", now=now)
    if grant.holder_agent_id is not None:
        cap_lifetime(expires_at, settings.CUSTOS_GRANT_MAX_LIFETIME, "expires_at", now=now, what="An agent's grant")
    if grant.expires_at is not None and expires_at <= grant.expires_at:
        raise ValidationFailed(
            "A renewal must end later than the grant does now.", code="renewal_not_later", field="expires_at"
        )
    previous = grant.expires_at
    grant.expires_at = expires_at
    grant.save(update_fields=["expires_at"])
    audit_append(
        actor=actor,
        action="grant.renew",
        target=Target(type="grant", id=str(grant.pk), label=str(grant)[:200]),
        context={"scope": grant.scope, "from": previous, "to": expires_at, "reason": reason.strip()},
    )
    return grant
