"""Delegation links: created with every invariant of SPEC §2 checked, revoked with everything below."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from audit.services import Actor, Target, audit_append
from console.errors import Conflict, ValidationFailed
from governance.chain import delegation_usability
from governance.models import (
    Agent,
    AgentStatus,
    Delegation,
    DelegationStatus,
    Human,
    HumanStatus,
)
from governance.selectors import human_held_scopes
from governance.services._rules import (
    agent_ref,
    cap_lifetime,
    human_ref,
    require_future,
    require_text,
    user_id_of,
)
from governance.services.resources import parse_scopes


@transaction.atomic
def delegation_create(
    *,
    actor: Actor,
    delegate: Agent,
    scopes: Iterable[str],
    expires_at: datetime | None,
    purpose: str,
    root_human: Human | None = None,
    parent: Delegation | None = None,
    max_depth: int = 0,
) -> Delegation:
    """Create one link of a chain, enforcing every invariant of SPEC §2:

    - scopes ⊆ parent's scopes (root: ⊆ the root human's active grants) — attenuation only;
    - expiry ≤ parent's expiry (root: ≤ now + the configured maximum);
    - depth within the parent's remaining depth; no cycles;
    - the delegate of a child link is a sub-agent of the parent's delegate;
    - everything on the chain active and unexpired.
    """
    now = timezone.now()
    purpose = require_text(purpose, "purpose", max_length=2000, label="Purpose")
    expires_at = require_future(expires_at, "expires_at", now=now)
    if (root_human is None) == (parent is None):
        raise ValidationFailed(
            "A delegation starts either from a human (root) or from a parent delegation, not both.",
            code="invalid_delegator",
            field="parent" if parent is not None else "root_human",
        )
    if max_depth < 0:
        raise ValidationFailed("max_depth cannot be negative.", code="invalid_depth", field="max_depth")
    parsed = parse_scopes(scopes)
    wanted = frozenset(parsed)
    delegate = Agent.objects.select_for_update().select_related("sponsor").get(pk=delegate.pk)
    if delegate.status != AgentStatus.ACTIVE:
        raise ValidationFailed(f"Agent {delegate.name} is {delegate.status}.", code="agent_inactive", field="delegate")
    if delegate.sponsor.status != HumanStatus.ACTIVE:
        raise ValidationFailed(
            f"{delegate.name}'s sponsor {delegate.sponsor.name} is {delegate.sponsor.status}.",
            code="sponsor_inactive",
            field="delegate",
        )

    if parent is not None:
        parent = (
            Delegation.objects.select_for_update().select_related("delegate__sponsor", "root_human").get(pk=parent.pk)
        )
        # Usable for what the new link asks for (SPEC §3): the root human may have lost a scope of the
        # parent's since, and a child that uses only the scopes still held is as good as the check says.
        usability = delegation_usability(parent, scopes=wanted & parent.scope_set, at=now)
        if not usability.usable:
            raise ValidationFailed(
                f"The parent delegation is not usable: {usability.detail}.", code=usability.reason, field="parent"
            )
        if delegate.parent_id != parent.delegate_id:
            raise ValidationFailed(
                f"{delegate.name} is not a sub-agent of {parent.delegate.name}; "
                "an agent may only delegate to its own sub-agents.",
                code="delegate_not_sub_agent",
                field="delegate",
            )
        if any(link.delegate_id == delegate.pk for link in usability.chain):
            raise ValidationFailed(
                f"{delegate.name} is already on this chain.", code="delegation_cycle", field="delegate"
            )
        widened = wanted - parent.scope_set
        if widened:
            raise ValidationFailed(
                f"Cannot widen the parent's scopes: {', '.join(sorted(widened))} "
                f"not delegated to {parent.delegate.name}.",
                code="scope_not_delegated",
                field="scopes",
            )
        if expires_at > parent.expires_at:
            raise ValidationFailed(
                f"Must expire no later than the parent delegation ({parent.expires_at:%Y-%m-%d %H:%M} UTC).",
                code="expiry_exceeds_parent",
                field="expires_at",
            )
        if parent.max_depth < 1:
            raise ValidationFailed(
                "The parent delegation allows no further delegation.", code="depth_exhausted", field="parent"
            )
        if max_depth > parent.max_depth - 1:
            raise ValidationFailed(
                f"max_depth can be at most {parent.max_depth - 1} below this parent.",
                code="depth_exceeds_parent",
                field="max_depth",
            )
        root = parent.root_human
        depth = parent.depth + 1
        chain_agents = [link.delegate for link in usability.chain]
    else:
        assert root_human is not None
        root = Human.objects.select_for_update().get(pk=root_human.pk)
        if root.status != HumanStatus.ACTIVE:
            raise ValidationFailed(f"{root.name} is {root.status}.", code="human_inactive", field="root_human")
        cap_lifetime(expires_at, settings.CUSTOS_DELEGATION_MAX_LIFETIME, "expires_at", now=now, what="A delegation")
        if max_depth > settings.CUSTOS_DELEGATION_MAX_DEPTH:
            raise ValidationFailed(
                f"max_depth can be at most {settings.CUSTOS_DELEGATION_MAX_DEPTH} (configured maximum).",
                code="depth_exceeds_maximum",
                field="max_depth",
            )
        lacking = wanted - human_held_scopes(root, now)
        if lacking:
            raise ValidationFailed(
                f"{root.name} does not hold {', '.join(sorted(lacking))}; a human can only delegate access they have.",
                code="delegator_lacks_grant",
                field="scopes",
            )
        depth = 0
        chain_agents = []

    delegation = Delegation.objects.create(
        parent=parent,
        root_human=root,
        delegate=delegate,
        purpose=purpose,
        scopes=sorted(wanted),
        depth=depth,
        max_depth=max_depth,
        expires_at=expires_at,
        created_by=actor.label,
        created_by_user_id=user_id_of(actor),
    )
    audit_append(
        actor=actor,
        action="delegation.create",
        target=Target(type="delegation", id=str(delegation.pk), label=f"{root.name} → {delegate.name}"[:200]),
        on_behalf_of=[human_ref(root), *(agent_ref(a) for a in chain_agents)],
        context={
            "parent": parent.pk if parent else None,
            "delegate": delegate.pk,
            "scopes": delegation.scopes,
            "expires_at": expires_at,
            "max_depth": max_depth,
            "depth": depth,
            "purpose": purpose,
        },
    )
    return delegation


@transaction.atomic
def delegation_revoke(*, actor: Actor, delegation: Delegation, reason: str = "") -> list[Delegation]:
    """Revoke a link and every active link below it (one audit event each). Returns those revoked.

    The subtree is locked level by level from the top, each level read only once the one above is
    locked. Creating a child locks its parent until it commits, so a child made concurrently is either
    committed before its parent's lock is granted here (and the next level's read finds it) or made
    after this commits (and finds its parent revoked). Reading the descendants before locking would
    miss the first kind and leave an active link under a revoked one.
    """
    now = timezone.now()
    # Only the delegation rows: locking the joined agents and humans too would invite deadlocks with
    # delegation_create, which locks the delegate agent before the parent link.
    locking = Delegation.objects.select_for_update(of=("self",)).select_related("root_human", "delegate")
    links: list[Delegation] = []
    level = list(locking.filter(pk=delegation.pk))
    while level:
        links.extend(link for link in level if link.status == DelegationStatus.ACTIVE)
        level = list(locking.filter(parent_id__in=[link.pk for link in level]).order_by("id"))
    for link in links:
        link.status = DelegationStatus.REVOKED
        link.revoked_at = now
        link.revoked_reason = (
            reason.strip() if link.pk == delegation.pk else f"parent delegation {delegation.pk} revoked"
        )
        link.save(update_fields=["status", "revoked_at", "revoked_reason"])
        audit_append(
            actor=actor,
            action="delegation.revoke",
            target=Target(
                type="delegation", id=str(link.pk), label=f"{link.root_human.name} → {link.delegate.name}"[:200]
            ),
            on_behalf_of=[human_ref(link.root_human)],
            context={
                "reason": link.revoked_reason,
                "cascade_from": None if link.pk == delegation.pk else delegation.pk,
            },
        )
    return links


@transaction.atomic
def delegation_renew(*, actor: Actor, delegation: Delegation, expires_at: datetime, reason: str = "") -> Delegation:
    """Extend a link in force to a new expiry, bounded as at creation: no later than the configured
    maximum from now and, below the root, no later than its parent link (a child never outlives its
    parent). The links below keep their own expiries."""
    now = timezone.now()
    link = (
        Delegation.objects.select_for_update(of=("self",))
        .select_related("root_human", "delegate")
        .get(pk=delegation.pk)
    )
    if not link.is_in_force(now):
        raise Conflict(
            f"Delegation #{link.pk} is {link.status_at(now)}; it cannot be renewed.", code="delegation_not_in_force"
        )
    expires_at = require_future(expires_at, "expires_at", now=now)
    cap_lifetime(expires_at, settings.CUSTOS_DELEGATION_MAX_LIFETIME, "expires_at", now=now, what="A delegation")
    if expires_at <= link.expires_at:
        raise ValidationFailed(
            "A renewal must end later than the delegation does now.", code="renewal_not_later", field="expires_at"
        )
    if link.parent_id is not None:
        parent = Delegation.objects.get(pk=link.parent_id)
        if expires_at > parent.expires_at:
            raise ValidationFailed(
                f"Delegation #{link.pk} cannot outlive its parent link #{parent.pk}; renew the parent first.",
                code="expiry_exceeds_parent",
                field="expires_at",
            )
    previous = link.expires_at
    link.expires_at = expires_at
    link.save(update_fields=["expires_at"])
    audit_append(
        actor=actor,
        action="delegation.renew",
        target=Target(type="delegation", id=str(link.pk), label=f"{link.root_human.name} → {link.delegate.name}"[:200]),
        on_behalf_of=[human_ref(link.root_human)],
        context={"from": previous, "to": expires_at, "reason": reason.strip()},
    )
    return link
