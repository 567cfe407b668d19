"""Just-in-time access requests: an agent that needs a scope mid-task asks for it; the human it acts for
(or its sponsor) approves or denies in the console. Approval creates a narrow delegation: that one
scope, for that task, short. Unanswered requests lapse."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from audit.services import Actor, Target, audit_append
from console import roles
from console.errors import Conflict, DomainError, NotAllowed, ValidationFailed
from console.visibility import Visibility
from governance.models import (
    AccessRequest,
    AccessRequestStatus,
    Agent,
    AgentStatus,
    Delegation,
    Human,
)
from governance.services.delegations import delegation_create
from governance.services.resources import parse_scopes


def _target(request: AccessRequest) -> Target:
    return Target(type="accessrequest", id=str(request.pk), label=f"{request.agent.name} asks {request.scope}"[:200])


@transaction.atomic
def access_request_create(
    *,
    actor: Actor,
    agent: Agent,
    scope: str,
    justification: str,
    intent: str = "",
    session_id: str = "",
    duration: timedelta | None = None,
    delegation: Delegation | None = None,
) -> AccessRequest:
    """An agent asks for one scope. It goes to the human the agent acts for under ``delegation``,
    else to the agent's sponsor."""
    now = timezone.now()
    if agent.status != AgentStatus.ACTIVE:
        raise ValidationFailed(f"Agent {agent.name} is {agent.status}.", code="agent_inactive", field="agent")
    parse_scopes([scope], field="scope")
    justification = justification.strip()
    if not justification:
        raise ValidationFailed("Say why the scope is needed.", code="required", field="justification")
    duration = duration or settings.CUSTOS_JIT_DEFAULT_LIFETIME
    if duration <= timedelta(0) or duration > settings.CUSTOS_JIT_MAX_LIFETIME:
        raise ValidationFailed(
            f"Just-in-time access lasts at most {int(settings.CUSTOS_JIT_MAX_LIFETIME.total_seconds() // 60)} minutes.",
            code="lifetime_exceeds_maximum",
            field="duration_seconds",
        )
    if delegation is not None and delegation.delegate_id != agent.pk:
        raise NotAllowed("An agent may only ask under its own delegation.", code="not_delegate")
    if AccessRequest.objects.filter(
        agent=agent, scope=scope, status=AccessRequestStatus.PENDING, expires_at__gt=now
    ).exists():
        raise Conflict(
            "This agent already has a pending request for that scope.", code="duplicate_request", field="scope"
        )
    approver: Human = delegation.root_human if delegation is not None else agent.sponsor
    request = AccessRequest.objects.create(
        agent=agent,
        delegation=delegation,
        approver=approver,
        scope=scope,
        justification=justification[:2000],
        intent=intent.strip()[:500],
        session_id=session_id.strip()[:200],
        requested_duration=duration,
        expires_at=now + settings.CUSTOS_JIT_REQUEST_TTL,
    )
    audit_append(
        actor=actor,
        action="accessrequest.create",
        target=_target(request),
        on_behalf_of=[{"type": "human", "id": approver.pk, "label": approver.name}],
        context={
            "scope": scope,
            "justification": request.justification,
            "intent": request.intent,
            "session_id": request.session_id,
            "duration_seconds": int(duration.total_seconds()),
            "delegation": delegation.pk if delegation else None,
            "approver": approver.pk,
        },
    )
    return request


def may_decide(user: Any, request: AccessRequest) -> bool:
    """The approver, the agent's sponsor, or an admin."""
    if roles.is_admin(user):
        return True
    human_id = getattr(getattr(user, "human", None), "pk", None)
    return human_id is not None and human_id in (request.approver_id, request.agent.sponsor_id)


def _pending_or_error(request: AccessRequest, now: Any) -> AccessRequest:
    request = AccessRequest.objects.select_for_update().select_related("agent", "approver").get(pk=request.pk)
    if request.status != AccessRequestStatus.PENDING:
        raise Conflict(f"This request was already {request.status}.", code="request_decided")
    if request.expires_at <= now:
        raise Conflict("This request lapsed before it was answered.", code="request_expired")
    return request


def _worded_for(user: Any, request: AccessRequest, error: DomainError) -> DomainError:
    """A refusal to approve may name the agent, its sponsor or the approver, whom the decider may not all
    see (an approver deciding for another line's agent; a sponsor for a request that goes to someone
    outside their line): then it keeps its code and loses the sentence."""
    seen = Visibility(user)
    hidden = [obj for obj in (request.agent, request.agent.sponsor, request.approver) if not seen.sees(obj)]
    if not any(obj.name in error.detail for obj in hidden):
        return error
    return error.restated(f"This access cannot be granted now ({error.code}); an administrator can see why.")


@transaction.atomic
def access_request_approve(*, actor: Actor, user: Any, request: AccessRequest, note: str = "") -> AccessRequest:
    """Approve: a delegation of exactly that scope, from the approver to the agent, for the requested
    time. The approver must hold the scope: nobody delegates access they do not have."""
    now = timezone.now()
    request = _pending_or_error(request, now)
    if not may_decide(user, request):
        raise NotAllowed("Only the human the agent acts for, its sponsor or an admin may decide.", code="forbidden")
    try:
        delegation = delegation_create(
            actor=actor,
            delegate=request.agent,
            scopes=[request.scope],
            expires_at=now + request.requested_duration,
            purpose=f"Just-in-time: {request.intent or request.justification}"[:2000],
            root_human=request.approver,
            max_depth=0,
        )
    except DomainError as error:
        raise _worded_for(user, request, error) from None
    request.status = AccessRequestStatus.APPROVED
    request.decided_at = now
    request.decided_by = actor.label
    request.decision_note = note.strip()
    request.resulting_delegation = delegation
    request.save(update_fields=["status", "decided_at", "decided_by", "decision_note", "resulting_delegation"])
    audit_append(
        actor=actor,
        action="accessrequest.approve",
        target=_target(request),
        context={"delegation": delegation.pk, "note": request.decision_note, "expires_at": delegation.expires_at},
    )
    return request


@transaction.atomic
def access_request_deny(*, actor: Actor, user: Any, request: AccessRequest, note: str = "") -> AccessRequest:
    now = timezone.now()
    request = _pending_or_error(request, now)
    if not may_decide(user, request):
        raise NotAllowed("Only the human the agent acts for, its sponsor or an admin may decide.", code="forbidden")
    request.status = AccessRequestStatus.DENIED
    request.decided_at = now
    request.decided_by = actor.label
    request.decision_note = note.strip()
    request.save(update_fields=["status", "decided_at", "decided_by", "decision_note"])
    audit_append(
        actor=actor, action="accessrequest.deny", target=_target(request), context={"note": request.decision_note}
    )
    return request


def access_request_expire_due(*, actor: Actor, batch_size: int = 500) -> int:
    """Lapse unanswered requests (one event each). Approval already refuses them by timestamp."""
    now = timezone.now()
    count = 0
    ids = list(
        AccessRequest.objects.filter(status=AccessRequestStatus.PENDING, expires_at__lte=now)
        .order_by("id")
        .values_list("id", flat=True)[:batch_size]
    )
    for pk in ids:
        with transaction.atomic():
            if AccessRequest.objects.filter(pk=pk, status=AccessRequestStatus.PENDING).update(
                status=AccessRequestStatus.EXPIRED
            ):
                audit_append(
                    actor=actor, action="accessrequest.expire", target=Target(type="accessrequest", id=str(pk))
                )
                count += 1
    return count
