"""Credentials: agent keys (issue, revoke, rotate), delegation tokens (revoke) and console API tokens."""

from __future__ import annotations

from datetime import datetime, timedelta

from django.conf import settings
from django.contrib.auth.models import User
from django.db import transaction
from django.utils import timezone

from audit.services import Actor, Target, audit_append
from console.errors import Conflict, ValidationFailed
from governance import credentials
from governance.models import (
    Agent,
    AgentKey,
    AgentStatus,
    ApiToken,
    DelegationToken,
)
from governance.selectors import KEY_ROTATE, KEY_STALE, flagged_keys, key_flags, stale_keys, unused_days
from governance.services._rules import (
    agent_ref,
    cap_lifetime,
    require_future,
)


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
    require_future(expires_at, "expires_at", now=now)
    cap_lifetime(expires_at, settings.CUSTOS_KEY_MAX_TTL, "expires_at", now=now, what="An agent key")
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
        on_behalf_of=[agent_ref(agent)],
        context={"agent": agent.pk, "prefix": key.prefix, "expires_at": expires_at, "name": key.name},
    )
    return key, new.full


@transaction.atomic
def agentkey_revoke(*, actor: Actor, key: AgentKey, reason: str = "", leaked: bool = False) -> AgentKey:
    """Revoke a key and every token it obtained. ``leaked`` reports it compromised (not merely retired):
    the agent's access is then reviewed (a micro-review), since whoever holds the key may have used it."""
    key = AgentKey.objects.select_for_update().select_related("agent").get(pk=key.pk)
    if key.revoked_at is not None:
        if leaked and not key.leaked:
            # A key retired earlier and found leaked later is still worth a review.
            key.leaked = True
            key.save(update_fields=["leaked"])
            audit_append(
                actor=actor,
                action="agentkey.report_leak",
                target=Target(type="agentkey", id=str(key.pk), label=f"{key.agent.name} {key.display}"),
                context={"agent": key.agent_id, "prefix": key.prefix, "reason": reason.strip()},
            )
        return key
    key.revoked_at = timezone.now()
    key.revoked_by = actor.label
    key.revoked_reason = reason.strip()
    key.leaked = leaked
    key.save(update_fields=["revoked_at", "revoked_by", "revoked_reason", "leaked"])
    audit_append(
        actor=actor,
        action="agentkey.revoke",
        target=Target(type="agentkey", id=str(key.pk), label=f"{key.agent.name} {key.display}"),
        context={"agent": key.agent_id, "prefix": key.prefix, "reason": key.revoked_reason, "leaked": leaked},
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
        on_behalf_of=[agent_ref(old.agent)],
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


@transaction.atomic
def agentkey_revoke_all(*, actor: Actor, agent: Agent, reason: str = "") -> list[AgentKey]:
    """Revoke every key of ``agent`` still in force (with the tokens each obtained), one event per key.
    The agent is locked so a key issued concurrently is either revoked here or issued after."""
    agent = Agent.objects.select_for_update().get(pk=agent.pk)
    keys = list(AgentKey.objects.active().filter(agent=agent).order_by("id"))
    return [agentkey_revoke(actor=actor, key=key, reason=reason) for key in keys]


def agentkey_hygiene(*, actor: Actor, batch_size: int = 500) -> dict[str, int]:
    """Key hygiene (SPEC §4): count keys in force that are stale (unused ``CUSTOS_KEY_STALE_DAYS``) or
    due for rotation (older than ``CUSTOS_KEY_MAX_AGE``), and, when ``CUSTOS_KEY_AUTO_REVOKE_STALE``,
    revoke the stale ones, one transaction and one event each, in a bounded batch. Idempotent: a key
    revoked by an earlier, interrupted run is no longer in force and is not counted again."""
    now = timezone.now()
    counts = {"stale": 0, "rotate": 0, "revoked": 0}
    for key in flagged_keys(now).order_by("id")[:batch_size]:
        flags = key_flags(key, now)
        counts["stale"] += KEY_STALE in flags
        counts["rotate"] += KEY_ROTATE in flags
    if settings.CUSTOS_KEY_AUTO_REVOKE_STALE:
        for key in stale_keys(now).select_related("agent").order_by("id")[:batch_size]:
            with transaction.atomic():
                if agentkey_revoke(
                    actor=actor, key=key, reason=f"stale: unused {unused_days(key, now)} days"
                ).revoked_at:
                    counts["revoked"] += 1
    return counts
