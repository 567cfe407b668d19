"""Every state change of the identity model. Each service is atomic, validates what spans rows, and
writes its audit event in the same transaction, so a change and its evidence land together or not at all.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.contrib.auth.models import User
from django.core.exceptions import ValidationError as DjangoValidationError
from django.core.validators import validate_email
from django.db import transaction
from django.utils import timezone

from audit.services import Actor, Target, audit_append
from governance import credentials
from governance.errors import Conflict, ValidationFailed
from governance.models import (
    SCOPE_SEPARATOR,
    Agent,
    AgentKey,
    AgentStatus,
    ApiToken,
    Delegation,
    DelegationStatus,
    DelegationToken,
    Grant,
    GrantSource,
    GrantStatus,
    Human,
    HumanStatus,
    Resource,
    ResourceKind,
    RiskTier,
    Sensitivity,
    make_scope,
)
from governance.selectors import (
    agent_descendant_ids,
    delegation_usability,
    human_held_scopes,
)

_ACTION_RE = re.compile(r"^[a-z][a-z0-9_.-]{0,59}$")
_RESOURCE_RE = re.compile(r"^[a-z0-9][a-z0-9._-]{0,119}$")


def _user_id(actor: Actor) -> int | None:
    return int(actor.id) if actor.kind == "user" and actor.id.isdigit() else None


def _human_ref(human: Human) -> dict[str, Any]:
    return {"type": "human", "id": human.pk, "label": human.name}


def _agent_ref(agent: Agent) -> dict[str, Any]:
    return {"type": "agent", "id": agent.pk, "label": agent.name}


def _require_text(value: str, field: str, *, max_length: int, label: str) -> str:
    value = (value or "").strip()
    if not value:
        raise ValidationFailed(f"{label} is required.", code="required", field=field)
    if len(value) > max_length:
        raise ValidationFailed(f"{label} is longer than {max_length} characters.", code="too_long", field=field)
    return value


def _require_choice(value: str, choices: type[Any], field: str) -> str:
    if value not in choices.values:
        allowed = ", ".join(choices.values)
        raise ValidationFailed(f"{field} must be one of: {allowed}.", code="invalid_choice", field=field)
    return value


def _require_future(moment: datetime | None, field: str, *, now: datetime) -> datetime:
    if moment is None:
        raise ValidationFailed("An expiry time is required.", code="required", field=field)
    if timezone.is_naive(moment):
        raise ValidationFailed("Times must carry a time zone.", code="naive_datetime", field=field)
    if moment <= now:
        raise ValidationFailed("The expiry must be in the future.", code="expiry_in_past", field=field)
    return moment


def _cap(moment: datetime, limit: timedelta, field: str, *, now: datetime, what: str) -> None:
    if moment > now + limit:
        raise ValidationFailed(
            f"{what} may last at most {limit.days} days (configured maximum); pick an earlier expiry.",
            code="lifetime_exceeds_maximum",
            field=field,
        )


# --- Humans ---------------------------------------------------------------------------------


@transaction.atomic
def human_create(
    *,
    actor: Actor,
    email: str,
    name: str,
    department: str = "",
    title: str = "",
    manager: Human | None = None,
    external_id: str | None = None,
    user: User | None = None,
) -> Human:
    email = _require_text(email, "email", max_length=254, label="Email").lower()
    try:
        validate_email(email)
    except DjangoValidationError:
        raise ValidationFailed("Enter a valid email address.", code="invalid_email", field="email") from None
    name = _require_text(name, "name", max_length=200, label="Name")
    if Human.objects.filter(email=email).exists():
        raise Conflict(f"A human with email {email} already exists.", code="duplicate_email", field="email")
    if external_id and Human.objects.filter(external_id=external_id).exists():
        raise Conflict("That external id is already in use.", code="duplicate_external_id", field="external_id")
    human = Human.objects.create(
        email=email,
        name=name,
        department=department.strip()[:120],
        title=title.strip()[:120],
        manager=manager,
        external_id=external_id or None,
        user=user,
    )
    audit_append(
        actor=actor,
        action="human.create",
        target=Target.of(human),
        context={"email": email, "department": human.department, "manager": manager.pk if manager else None},
    )
    return human


@transaction.atomic
def human_set_status(*, actor: Actor, human: Human, status: str, reason: str = "") -> Human:
    """Suspend, reactivate, or mark a human as having left. Their delegations stop being usable at
    once (the check reads the root human's status); the offboarding issue adds the cascade."""
    _require_choice(status, HumanStatus, "status")
    human = Human.objects.select_for_update().get(pk=human.pk)
    if human.status == status:
        return human
    previous = human.status
    human.status = status
    human.updated_at = timezone.now()
    human.save(update_fields=["status", "updated_at"])
    audit_append(
        actor=actor,
        action=f"human.{status}",
        target=Target.of(human),
        context={"from": previous, "to": status, "reason": reason},
    )
    return human


# --- Agents ---------------------------------------------------------------------------------


@transaction.atomic
def agent_create(
    *,
    actor: Actor,
    name: str,
    sponsor: Human | None = None,
    purpose: str = "",
    parent: Agent | None = None,
    risk_tier: str = RiskTier.MEDIUM,
) -> Agent:
    """Register an agent, or a sub-agent when ``parent`` is given (its sponsor defaults to the
    parent's: the human accountable for an agent is accountable for what it spawns)."""
    name = _require_text(name, "name", max_length=120, label="Name")
    _require_choice(risk_tier, RiskTier, "risk_tier")
    depth = 0
    if parent is not None:
        parent = Agent.objects.select_for_update().get(pk=parent.pk)
        if parent.status != AgentStatus.ACTIVE:
            raise ValidationFailed(
                f"Parent agent {parent.name} is {parent.status}; only active agents get sub-agents.",
                code="parent_inactive",
                field="parent",
            )
        depth = parent.depth + 1
        if depth > settings.CUSTOS_DELEGATION_MAX_DEPTH:
            raise ValidationFailed(
                f"Sub-agents may nest at most {settings.CUSTOS_DELEGATION_MAX_DEPTH} levels.",
                code="agent_depth_exceeded",
                field="parent",
            )
        sponsor = sponsor or parent.sponsor
    if sponsor is None:
        raise ValidationFailed(
            "Every agent needs a sponsor: the human accountable for it.", code="required", field="sponsor"
        )
    if sponsor.status != HumanStatus.ACTIVE:
        raise ValidationFailed(
            f"Sponsor {sponsor.name} is {sponsor.status}; choose an active human.",
            code="sponsor_inactive",
            field="sponsor",
        )
    agent = Agent.objects.create(
        name=name, purpose=purpose.strip(), sponsor=sponsor, parent=parent, depth=depth, risk_tier=risk_tier
    )
    audit_append(
        actor=actor,
        action="agent.create",
        target=Target.of(agent),
        on_behalf_of=[_human_ref(sponsor)],
        context={
            "sponsor": sponsor.pk,
            "parent": parent.pk if parent else None,
            "risk_tier": risk_tier,
            "purpose": agent.purpose,
        },
    )
    return agent


@transaction.atomic
def agent_update(
    *,
    actor: Actor,
    agent: Agent,
    name: str | None = None,
    purpose: str | None = None,
    risk_tier: str | None = None,
    sponsor: Human | None = None,
) -> Agent:
    agent = Agent.objects.select_for_update().get(pk=agent.pk)
    changes: dict[str, list[Any]] = {}
    if name is not None:
        name = _require_text(name, "name", max_length=120, label="Name")
        if name != agent.name:
            changes["name"] = [agent.name, name]
            agent.name = name
    if purpose is not None and purpose.strip() != agent.purpose:
        changes["purpose"] = [agent.purpose, purpose.strip()]
        agent.purpose = purpose.strip()
    if risk_tier is not None and risk_tier != agent.risk_tier:
        _require_choice(risk_tier, RiskTier, "risk_tier")
        changes["risk_tier"] = [agent.risk_tier, risk_tier]
        agent.risk_tier = risk_tier
    if sponsor is not None and sponsor.pk != agent.sponsor_id:
        if sponsor.status != HumanStatus.ACTIVE:
            raise ValidationFailed(
                f"Sponsor {sponsor.name} is {sponsor.status}.", code="sponsor_inactive", field="sponsor"
            )
        changes["sponsor"] = [agent.sponsor_id, sponsor.pk]
        agent.sponsor = sponsor
    if not changes:
        return agent
    agent.updated_at = timezone.now()
    agent.save()
    audit_append(actor=actor, action="agent.update", target=Target.of(agent), context={"changes": changes})
    return agent


@transaction.atomic
def agent_suspend(*, actor: Actor, agent: Agent, reason: str = "") -> Agent:
    """Suspend an agent and every active sub-agent below it (one event each): what an agent spawned
    must not keep acting, with its own key or a delegation of its own, while the agent is stopped.
    Reactivation is one agent at a time, from the top down."""
    suspended = _agent_set_status(actor=actor, agent=agent, status=AgentStatus.SUSPENDED, reason=reason)
    below = Agent.objects.filter(pk__in=agent_descendant_ids(suspended), status=AgentStatus.ACTIVE).order_by(
        "depth", "id"
    )
    for sub_agent in below:
        _agent_set_status(
            actor=actor,
            agent=sub_agent,
            status=AgentStatus.SUSPENDED,
            reason=f"parent agent {suspended.name} suspended",
        )
    return suspended


@transaction.atomic
def agent_reactivate(*, actor: Actor, agent: Agent, reason: str = "") -> Agent:
    agent = Agent.objects.select_for_update().get(pk=agent.pk)
    if agent.status == AgentStatus.OFFBOARDED:
        raise Conflict("An offboarded agent cannot come back; register a new one.", code="agent_offboarded")
    if agent.parent_id is not None and agent.status != AgentStatus.ACTIVE:
        parent = Agent.objects.get(pk=agent.parent_id)
        if parent.status != AgentStatus.ACTIVE:
            raise Conflict(
                f"Its parent agent {parent.name} is {parent.status}; reactivate the parent first.",
                code="parent_inactive",
            )
    return _agent_set_status(actor=actor, agent=agent, status=AgentStatus.ACTIVE, reason=reason)


def _agent_set_status(*, actor: Actor, agent: Agent, status: str, reason: str) -> Agent:
    agent = Agent.objects.select_for_update().get(pk=agent.pk)
    if agent.status == status:
        return agent
    if agent.status == AgentStatus.OFFBOARDED:
        raise Conflict("An offboarded agent cannot change status.", code="agent_offboarded")
    previous = agent.status
    agent.status = status
    agent.updated_at = timezone.now()
    agent.save(update_fields=["status", "updated_at"])
    verb = "suspend" if status == AgentStatus.SUSPENDED else "reactivate"
    audit_append(
        actor=actor,
        action=f"agent.{verb}",
        target=Target.of(agent),
        context={"from": previous, "to": status, "reason": reason},
    )
    return agent


# --- Resources ------------------------------------------------------------------------------


def _clean_actions(actions: Iterable[str]) -> list[str]:
    cleaned = sorted({str(a).strip() for a in actions if str(a).strip()})
    if not cleaned:
        raise ValidationFailed("List at least one action, e.g. read.", code="required", field="actions")
    for action in cleaned:
        if not _ACTION_RE.match(action):
            raise ValidationFailed(
                f"Action {action!r} must be lower-case letters, digits, '.', '_' or '-'.",
                code="invalid_action",
                field="actions",
            )
    return cleaned


@transaction.atomic
def resource_create(
    *,
    actor: Actor,
    name: str,
    owner: Human,
    actions: Iterable[str],
    kind: str = ResourceKind.API,
    sensitivity: str = Sensitivity.MEDIUM,
    description: str = "",
) -> Resource:
    name = _require_text(name, "name", max_length=120, label="Name").lower()
    if not _RESOURCE_RE.match(name):
        raise ValidationFailed(
            "A resource name is lower-case letters, digits, '.', '_' or '-' (e.g. crm.contacts).",
            code="invalid_resource_name",
            field="name",
        )
    _require_choice(kind, ResourceKind, "kind")
    _require_choice(sensitivity, Sensitivity, "sensitivity")
    cleaned = _clean_actions(actions)
    if Resource.objects.filter(name=name).exists():
        raise Conflict(f"A resource named {name} already exists.", code="duplicate_resource", field="name")
    resource = Resource.objects.create(
        name=name, owner=owner, actions=cleaned, kind=kind, sensitivity=sensitivity, description=description.strip()
    )
    audit_append(
        actor=actor,
        action="resource.create",
        target=Target.of(resource),
        context={"kind": kind, "sensitivity": sensitivity, "actions": cleaned, "owner": owner.pk},
    )
    return resource


# --- Scopes ---------------------------------------------------------------------------------


def parse_scopes(scopes: Iterable[str], *, field: str = "scopes") -> dict[str, tuple[Resource, str]]:
    """Validate ``resource:action`` strings against the catalogue; return them keyed by scope."""
    wanted = sorted({str(s).strip() for s in scopes if str(s).strip()})
    if not wanted:
        raise ValidationFailed("Name at least one scope (resource:action).", code="required", field=field)
    pairs: dict[str, tuple[str, str]] = {}
    for scope in wanted:
        name, sep, action = scope.partition(SCOPE_SEPARATOR)
        if not sep or not name or not action:
            raise ValidationFailed(
                f"Scope {scope!r} is not of the form resource:action.", code="invalid_scope", field=field
            )
        pairs[scope] = (name, action)
    resources = {r.name: r for r in Resource.objects.filter(name__in={n for n, _ in pairs.values()})}
    result: dict[str, tuple[Resource, str]] = {}
    for scope, (name, action) in pairs.items():
        resource = resources.get(name)
        if resource is None:
            raise ValidationFailed(f"No resource named {name}.", code="unknown_resource", field=field)
        if action not in resource.actions:
            raise ValidationFailed(
                f"{name} has no action {action!r} (it has: {', '.join(resource.actions)}).",
                code="unknown_action",
                field=field,
            )
        result[scope] = (resource, action)
    return result


# --- Grants ---------------------------------------------------------------------------------


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
    _require_choice(source, GrantSource, "source")
    if action not in resource.actions:
        raise ValidationFailed(
            f"{resource.name} has no action {action!r} (it has: {', '.join(resource.actions)}).",
            code="unknown_action",
            field="action",
        )
    is_agent = isinstance(holder, Agent)
    if is_agent:
        expires_at = _require_future(expires_at, "expires_at", now=now)
        _cap(expires_at, settings.CUSTOS_GRANT_MAX_LIFETIME, "expires_at", now=now, what="An agent's grant")
    elif expires_at is not None:
        _require_future(expires_at, "expires_at", now=now)
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
        granted_by_user_id=_user_id(actor),
        **holder_filter,
    )
    audit_append(
        actor=actor,
        action="grant.create",
        target=Target(type="grant", id=str(grant.pk), label=str(grant)[:200]),
        on_behalf_of=[_agent_ref(holder) if is_agent else _human_ref(holder)],  # type: ignore[arg-type]
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


# --- Delegations ----------------------------------------------------------------------------


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
    purpose = _require_text(purpose, "purpose", max_length=2000, label="Purpose")
    expires_at = _require_future(expires_at, "expires_at", now=now)
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
        usability = delegation_usability(parent, at=now)
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
        _cap(expires_at, settings.CUSTOS_DELEGATION_MAX_LIFETIME, "expires_at", now=now, what="A delegation")
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
        created_by_user_id=_user_id(actor),
    )
    audit_append(
        actor=actor,
        action="delegation.create",
        target=Target(type="delegation", id=str(delegation.pk), label=f"{root.name} → {delegate.name}"[:200]),
        on_behalf_of=[_human_ref(root), *(_agent_ref(a) for a in chain_agents)],
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
            on_behalf_of=[_human_ref(link.root_human)],
            context={
                "reason": link.revoked_reason,
                "cascade_from": None if link.pk == delegation.pk else delegation.pk,
            },
        )
    return links


# --- Agent keys -----------------------------------------------------------------------------


@transaction.atomic
def agentkey_create(
    *, actor: Actor, agent: Agent, name: str = "", expires_at: datetime | None = None
) -> tuple[AgentKey, str]:
    """Issue a key; returns it with the full secret, which is never stored and never shown again."""
    now = timezone.now()
    agent = Agent.objects.select_for_update().get(pk=agent.pk)
    if agent.status != AgentStatus.ACTIVE:
        raise ValidationFailed(
            f"Agent {agent.name} is {agent.status}; keys go to active agents.", code="agent_inactive", field="agent"
        )
    expires_at = expires_at or now + settings.CUSTOS_KEY_TTL
    _require_future(expires_at, "expires_at", now=now)
    _cap(expires_at, settings.CUSTOS_KEY_MAX_TTL, "expires_at", now=now, what="An agent key")
    new = credentials.generate("ck")
    key = AgentKey.objects.create(
        agent=agent,
        name=name.strip()[:120],
        prefix=new.prefix,
        hashed=new.hashed,
        created_by=actor.label,
        expires_at=expires_at,
    )
    audit_append(
        actor=actor,
        action="agentkey.create",
        target=Target(type="agentkey", id=str(key.pk), label=f"{agent.name} {key.display}"),
        on_behalf_of=[_agent_ref(agent)],
        context={"agent": agent.pk, "prefix": key.prefix, "expires_at": expires_at, "name": key.name},
    )
    return key, new.full


@transaction.atomic
def agentkey_revoke(*, actor: Actor, key: AgentKey, reason: str = "") -> AgentKey:
    key = AgentKey.objects.select_for_update().select_related("agent").get(pk=key.pk)
    if key.revoked_at is not None:
        return key
    key.revoked_at = timezone.now()
    key.revoked_by = actor.label
    key.revoked_reason = reason.strip()
    key.save(update_fields=["revoked_at", "revoked_by", "revoked_reason"])
    audit_append(
        actor=actor,
        action="agentkey.revoke",
        target=Target(type="agentkey", id=str(key.pk), label=f"{key.agent.name} {key.display}"),
        context={"agent": key.agent_id, "prefix": key.prefix, "reason": key.revoked_reason},
    )
    # A leaked key's tokens must not outlive it: revoke every token it obtained that is still live
    # (and, through token_revoke, the tokens derived from them).
    live = DelegationToken.objects.filter(agent_key=key, revoked_at__isnull=True, expires_at__gt=key.revoked_at)
    for jti in live.values_list("jti", flat=True):
        token_revoke(actor=actor, jti=jti, reason=f"agent key {key.display} revoked")
    return key


@transaction.atomic
def token_revoke(*, actor: Actor, jti: str, reason: str = "") -> list[DelegationToken]:
    """Revoke a token and every token derived from it (sub-agents' exchanges), one event each."""
    now = timezone.now()
    revoked: list[DelegationToken] = []
    frontier = list(DelegationToken.objects.select_for_update().filter(jti=jti, revoked_at__isnull=True))
    while frontier:
        for record in frontier:
            record.revoked_at = now
            record.revoked_reason = reason if record.jti == jti else f"parent token {jti} revoked"
            record.save(update_fields=["revoked_at", "revoked_reason"])
            audit_append(
                actor=actor,
                action="token.revoke",
                target=Target(type="delegationtoken", id=record.jti, label="delegation token"),
                context={"reason": record.revoked_reason, "agent": record.agent_id, "delegation": record.delegation_id},
            )
            revoked.append(record)
        frontier = list(
            DelegationToken.objects.select_for_update().filter(
                parent_token__in=[r.pk for r in frontier], revoked_at__isnull=True
            )
        )
    return revoked


# --- Console API tokens ---------------------------------------------------------------------


@transaction.atomic
def api_token_create(*, actor: Actor, user: User) -> tuple[ApiToken, str]:
    new = credentials.generate("cu")
    token = ApiToken.objects.create(user=user, prefix=new.prefix, hashed=new.hashed)
    audit_append(
        actor=actor,
        action="apitoken.create",
        target=Target(type="apitoken", id=str(token.pk), label=f"{user.get_username()} cu_{token.prefix}_…"),
        context={"user": user.pk, "prefix": token.prefix},
    )
    return token, new.full


# --- Expiry sweep ---------------------------------------------------------------------------


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


# --- Key rotation ---------------------------------------------------------------------------


@transaction.atomic
def agentkey_rotate(
    *,
    actor: Actor,
    key: AgentKey,
    overlap: timedelta | None = None,
    expires_at: datetime | None = None,
    name: str | None = None,
) -> tuple[AgentKey, str, AgentKey]:
    """Replace a key with a new one for the same agent; the old key keeps working only for ``overlap``
    (``CUSTOS_KEY_ROTATION_OVERLAP`` by default) so the agent can switch, and never longer than it
    already would. Returns the new key, its secret (shown once) and the old key as shortened."""
    now = timezone.now()
    overlap = settings.CUSTOS_KEY_ROTATION_OVERLAP if overlap is None else overlap
    if overlap < timedelta(0):
        raise ValidationFailed("The overlap cannot be negative.", code="invalid_overlap", field="overlap_seconds")
    old = AgentKey.objects.select_for_update().select_related("agent").get(pk=key.pk)
    if old.revoked_at is not None:
        raise Conflict("This key was revoked; issue a new key instead.", code="key_revoked")
    if old.expires_at <= now:
        raise Conflict("This key has expired; issue a new key instead.", code="key_expired")
    new, secret = agentkey_create(
        actor=actor, agent=old.agent, name=old.name if name is None else name, expires_at=expires_at
    )
    previous_expiry = old.expires_at
    old.expires_at = min(old.expires_at, now + overlap)
    old.save(update_fields=["expires_at"])
    audit_append(
        actor=actor,
        action="agentkey.rotate",
        target=Target(type="agentkey", id=str(old.pk), label=f"{old.agent.name} {old.display}"),
        on_behalf_of=[_agent_ref(old.agent)],
        context={
            "agent": old.agent_id,
            "prefix": old.prefix,
            "replaced_by": new.pk,
            "replaced_by_prefix": new.prefix,
            "overlap_seconds": int(overlap.total_seconds()),
            "expires_at_before": previous_expiry,
            "expires_at": old.expires_at,
        },
    )
    return new, secret, old
