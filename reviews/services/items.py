"""Deciding review items: certify, revoke (applied at once through the governance services), reassign,
bulk certify; and marking an item opened (for rubber-stamp signals).

Two reviewers deciding one item at once: the item's row lock orders them; the second finds it decided and
gets 409 ``item_decided``, and nothing is applied twice.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from audit.services import Actor, PendingEvent, Target, audit_append, audit_append_many
from console import roles
from console.errors import Conflict, NotAllowed, ValidationFailed
from governance import services as governance
from governance.models import Agent, AgentStatus, Human, HumanStatus
from reviews.models import (
    CampaignStatus,
    Decision,
    ItemKind,
    ItemStatus,
    NotificationKind,
    ReviewItem,
)
from reviews.routing import conflicted_now
from reviews.services.notify import notify

MAX_JUSTIFICATION = 2000
MAX_BULK = 500


def _lock(item: ReviewItem) -> ReviewItem:
    return (
        ReviewItem.objects.select_for_update(of=("self",))
        .select_related(
            "campaign", "agent", "grant__resource", "delegation", "key", "drift_event", "access_request", "reviewer"
        )
        .get(pk=item.pk)
    )


def made_by(item: ReviewItem, human_of_user: Callable[[int | None], int | None] | None = None) -> list[int | None]:
    """Humans who granted or made the access under review (separation of duties). ``human_of_user``
    (``Org.human_of_user``) maps console users to humans without a query, for a job going over many."""
    users: list[int | None] = []
    humans: list[int | None] = []
    if item.grant is not None:
        users.append(item.grant.granted_by_user_id)
    if item.delegation is not None:
        humans.append(item.delegation.root_human_id)
        users.append(item.delegation.created_by_user_id)
    ids = [u for u in users if u is not None]
    if human_of_user is not None:
        humans.extend(human_of_user(u) for u in ids)
    elif ids:
        humans.extend(Human.objects.filter(user_id__in=ids).values_list("id", flat=True))
    return humans


def human_of(user: Any) -> Human | None:
    if not getattr(user, "is_authenticated", False):
        return None
    return Human.objects.filter(user=user).first()


def sod_problem(human: Human | None, item: ReviewItem) -> str | None:
    """Why ``human`` may not decide ``item`` by separation of duties, re-read now; None if they may."""
    if human is None:
        return None
    if human.pk in conflicted_now(item.agent, made_by(item)):
        return (
            "Separation of duties: you may not review access that acts for you, that you made or granted, or of an "
            "agent you sponsor (directly or through a sub-agent). Reassign it."
        )
    return None


def may_decide(user: Any, item: ReviewItem) -> bool:
    """Whether ``user``'s role and assignment let them decide ``item``: its reviewer, or an admin for an
    unassigned item. (Separation of duties is checked when they decide.) Auditors decide nothing."""
    held = roles.roles_of(user)
    if not held & {roles.ADMIN, roles.REVIEWER}:
        return False
    if item.reviewer_id is None:
        return roles.ADMIN in held
    return item.reviewer is not None and item.reviewer.user_id == user.pk


def may_reassign(user: Any, item: ReviewItem) -> bool:
    return roles.is_admin(user) or may_decide(user, item)


def _item_ref(item: ReviewItem) -> Target:
    return Target(type="reviewitem", id=str(item.pk), label=item.label[:200])


def decided_event(item: ReviewItem, actor: Actor) -> PendingEvent:
    return PendingEvent(
        actor=actor,
        action="review.decide",
        target=_item_ref(item),
        context={
            "campaign": item.campaign_id,
            "kind": item.kind,
            "subject": item.subject_key,
            "agent": item.agent_id,
            "status": item.status,
            "justification": item.justification,
            "recommendation": item.recommendation,
            "applied": item.applied,
            "renewed_until": item.renewed_until,
            "bulk": item.bulk,
            "seconds_open": item.decision_seconds,
        },
    )


# --- Applying an outcome ------------------------------------------------------------------------


def apply_revoke(item: ReviewItem, actor: Actor, *, reason: str) -> str:
    """End the access the item is about, through the governance services (each writes its own audit
    event); returns what was done, in words for the evidence."""
    kind = item.kind
    if kind in (ItemKind.GRANT, ItemKind.RENEWAL) and item.grant is not None:
        governance.grant_revoke(actor=actor, grant=item.grant, reason=reason)
        return f"grant {item.grant.pk} revoked"
    if kind in (ItemKind.DELEGATION, ItemKind.RENEWAL) and item.delegation is not None:
        links = governance.delegation_revoke(actor=actor, delegation=item.delegation, reason=reason)
        return f"delegation #{item.delegation.pk} revoked ({len(links)} links)"
    if kind == ItemKind.KEY and item.key is not None:
        governance.agentkey_revoke(actor=actor, key=item.key, reason=reason)
        return f"key {item.key.display} revoked"
    if kind == ItemKind.JIT_USED and item.access_request is not None:
        link = item.access_request.resulting_delegation
        if link is not None:
            links = governance.delegation_revoke(actor=actor, delegation=link, reason=reason)
            return f"just-in-time delegation #{link.pk} revoked ({len(links)} links)"
        return "nothing to revoke"
    # The agent itself (an agent item, drift, a sponsor gone, a leaked key): stop it and its sub-agents.
    agent = Agent.objects.get(pk=item.agent_id)
    if agent.status == AgentStatus.OFFBOARDED:
        return "agent already offboarded"
    governance.agent_suspend(actor=actor, agent=agent, reason=reason)
    if kind == ItemKind.DRIFT and item.drift_event is not None:
        governance.drift_acknowledge(actor=actor, event=item.drift_event)
    return f"agent {agent.name} suspended"


def _renewal_end(item: ReviewItem, now: datetime) -> datetime:
    wanted = now + settings.CUSTOS_RECERT_RENEWAL
    if item.grant is not None:
        return min(wanted, now + settings.CUSTOS_GRANT_MAX_LIFETIME)
    limit = now + settings.CUSTOS_DELEGATION_MAX_LIFETIME
    if item.delegation is not None and item.delegation.parent_id is not None:
        parent = item.delegation.parent
        assert parent is not None
        limit = min(limit, parent.expires_at)
    return min(wanted, limit)


def apply_certify(item: ReviewItem, actor: Actor, *, reason: str) -> str:
    now = timezone.now()
    if item.kind == ItemKind.RENEWAL:
        until = _renewal_end(item, now)
        if item.grant is not None:
            governance.grant_renew(actor=actor, grant=item.grant, expires_at=until, reason=reason)
            item.renewed_until = until
            return f"grant {item.grant.pk} renewed until {until:%Y-%m-%d %H:%M} UTC"
        if item.delegation is not None:
            governance.delegation_renew(actor=actor, delegation=item.delegation, expires_at=until, reason=reason)
            item.renewed_until = until
            return f"delegation #{item.delegation.pk} renewed until {until:%Y-%m-%d %H:%M} UTC"
    if item.kind == ItemKind.DRIFT and item.drift_event is not None:
        governance.drift_acknowledge(actor=actor, event=item.drift_event)
        return "drift acknowledged"
    return ""


# --- Decide -------------------------------------------------------------------------------------


def _check_decidable(user: Any, item: ReviewItem, decision: str, justification: str, *, bulk: bool) -> str:
    if decision not in Decision.values:
        raise ValidationFailed("Decide certify or revoke.", code="invalid_choice", field="decision")
    if item.status != ItemStatus.PENDING:
        raise Conflict(
            f"Already decided: {item.get_status_display().lower()} by {item.decided_by or 'someone else'}"
            f"{f' at {item.decided_at:%Y-%m-%d %H:%M} UTC' if item.decided_at else ''}.",
            code="item_decided",
        )
    if item.campaign.status != CampaignStatus.ACTIVE:
        raise Conflict(f"The campaign is {item.campaign.status}.", code="campaign_not_active")
    if not may_decide(user, item):
        raise NotAllowed("This item is not in your queue.", code="not_your_item")
    problem = sod_problem(human_of(user), item)
    if problem:
        raise NotAllowed(problem, code="separation_of_duties")
    justification = (justification or "").strip()
    if len(justification) > MAX_JUSTIFICATION:
        raise ValidationFailed(
            f"A justification is at most {MAX_JUSTIFICATION} characters.", code="too_long", field="justification"
        )
    if not justification and item.campaign.needs_justification(decision):
        what = "every decision" if decision == Decision.CERTIFY else "a revoke"
        raise ValidationFailed(
            f"This campaign asks for a justification for {what}.",
            code="justification_required",
            field="justification",
        )
    if bulk and item.risk not in item.campaign.bulk_risks:
        raise Conflict(
            f"{item.get_risk_display()}-risk items are decided one by one in this campaign.", code="bulk_not_allowed"
        )
    return justification


def _decide_locked(
    *, actor: Actor, user: Any, item: ReviewItem, decision: str, justification: str, bulk: bool
) -> ReviewItem:
    justification = _check_decidable(user, item, decision, justification, bulk=bulk)
    now = timezone.now()
    reason = f"review: {item.campaign.name} (item {item.pk})" + (f": {justification}" if justification else "")
    if decision == Decision.REVOKE:
        item.applied = apply_revoke(item, actor, reason=reason)
        item.status = ItemStatus.REVOKED
    else:
        item.applied = apply_certify(item, actor, reason=reason)
        item.status = ItemStatus.CERTIFIED
    item.applied_at = now if item.applied else None
    item.decided_at = now
    item.decided_by = actor.label
    item.decided_by_user_id = user.pk
    item.justification = justification
    item.bulk = bulk
    if item.opened_at is None:
        item.opened_at = now
    item.save()
    audit_append_many([decided_event(item, actor)])
    return item


@transaction.atomic
def review_decide(*, actor: Actor, user: Any, item: ReviewItem, decision: str, justification: str = "") -> ReviewItem:
    """Certify or revoke one item. A revoke ends the access at once (the agent's next check is refused);
    certifying a "renew?" item renews it for ``CUSTOS_RECERT_RENEWAL``."""
    return _decide_locked(
        actor=actor, user=user, item=_lock(item), decision=decision, justification=justification, bulk=False
    )


@dataclass(frozen=True, slots=True)
class BulkResult:
    decided: list[ReviewItem]
    # Item id -> why it was left for one-by-one review.
    skipped: dict[int, str]


@transaction.atomic
def review_certify_bulk(*, actor: Actor, user: Any, items: Sequence[ReviewItem], justification: str = "") -> BulkResult:
    """Certify many items at once: only those the campaign's bulk policy allows (by risk) and the caller
    may decide; the rest are skipped with the reason, for one-by-one review."""
    if len(items) > MAX_BULK:
        raise ValidationFailed(f"At most {MAX_BULK} items at once.", code="too_many", field="items")
    decided: list[ReviewItem] = []
    skipped: dict[int, str] = {}
    for item in sorted(items, key=lambda i: i.pk):
        locked = _lock(item)
        try:
            with transaction.atomic():
                decided.append(
                    _decide_locked(
                        actor=actor,
                        user=user,
                        item=locked,
                        decision=Decision.CERTIFY,
                        justification=justification,
                        bulk=True,
                    )
                )
        except (Conflict, NotAllowed, ValidationFailed) as exc:
            skipped[item.pk] = exc.detail
    return BulkResult(decided, skipped)


@transaction.atomic
def review_reassign(*, actor: Actor, user: Any, item: ReviewItem, to: Human, reason: str = "") -> ReviewItem:
    """Hand an item to another reviewer (its reviewer, or an admin). The new reviewer must be able to
    review it: active, with a reviewer login, and not conflicted by separation of duties."""
    item = _lock(item)
    if item.status != ItemStatus.PENDING:
        raise Conflict(f"Already decided ({item.get_status_display().lower()}).", code="item_decided")
    if not may_reassign(user, item):
        raise NotAllowed("This item is not in your queue.", code="not_your_item")
    if to.pk == item.reviewer_id:
        raise ValidationFailed(f"{to.name} already reviews it.", code="same_reviewer", field="reviewer")
    if to.status != HumanStatus.ACTIVE or to.user_id is None:
        raise ValidationFailed(
            f"{to.name} cannot review (inactive or no login).", code="reviewer_unavailable", field="reviewer"
        )
    if not roles.roles_of(to.user) & {roles.ADMIN, roles.REVIEWER}:
        raise ValidationFailed(f"{to.name} has no reviewer role.", code="reviewer_unavailable", field="reviewer")
    if to.pk in conflicted_now(item.agent, made_by(item)):
        raise ValidationFailed(
            f"Separation of duties: {to.name} may not review this access.",
            code="separation_of_duties",
            field="reviewer",
        )
    previous = item.reviewer_id
    item.reviewer = to
    item.routing = f"reassigned by {actor.label}" + (f": {reason.strip()}" if reason.strip() else "")
    item.routing = item.routing[:300]
    item.save(update_fields=["reviewer", "routing"])
    audit_append(
        actor=actor,
        action="review.reassign",
        target=_item_ref(item),
        context={"campaign": item.campaign_id, "from": previous, "to": to.pk, "reason": reason.strip()},
    )
    notify(
        item.campaign,
        NotificationKind.ASSIGNED,
        [(to.user_id, 1)],
        subject=f"{item.campaign.name}: an item was handed to you",
        body=f"{actor.label} handed you an item to review in {{campaign}}: {item.label}.",
    )
    return item


@transaction.atomic
def review_mark_opened(*, actor: Actor, user: Any, item: ReviewItem) -> bool:
    """Record when the item's reviewer first opened it: how long a decision took is what the rubber-stamp
    signals read, so it is evidence too. Only the first opening counts (a conditional update)."""
    if item.opened_at is not None or item.status != ItemStatus.PENDING or not may_decide(user, item):
        return False
    now = timezone.now()
    if not ReviewItem.objects.filter(pk=item.pk, opened_at__isnull=True).update(opened_at=now):
        return False
    item.opened_at = now
    audit_append(actor=actor, action="review.item.view", target=_item_ref(item), context={"campaign": item.campaign_id})
    return True
