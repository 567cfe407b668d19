"""OAuth services: RFC 8693 token exchange, RFC 7662 introspection, RFC 7009 revocation, and
signing-key rotation. Each state change is atomic and writes its audit event in the same transaction.

Token exchange, as Custos speaks it:

- the **actor token** is always the calling agent's own key (``ck_…``), type
  ``urn:custos:params:oauth:token-type:agent-key``;
- the **subject token** is either a delegation the agent is the delegate of (its id, type
  ``urn:custos:params:oauth:token-type:delegation``), or — for a sub-agent — its parent agent's
  delegation token (type ``urn:ietf:params:oauth:token-type:jwt``), in which case the sub-agent's own
  delegation below the parent's is used;
- ``scope`` may only narrow what is delegated (and, for a sub-agent, what the parent's token carries);
- ``audience`` (or ``resource``) names Custos itself or one resource, by its name or — the RFC 8707
  resource indicator MCP clients send — by the absolute URI registered for it (``Resource.uri``); the
  token's ``aud`` is then that URI, so the MCP server at it accepts the token and no other does.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from audit.services import Actor, Target, audit_append
from console import roles
from governance import authn, tokens
from governance.chain import chain_of
from governance.decision import Outcome, Reason, decide_chain
from governance.models import (
    Agent,
    Delegation,
    DelegationStatus,
    DelegationToken,
    Resource,
    SigningKey,
)
from governance.resource_uri import InvalidResourceUri, looks_like_uri, normalise_resource_uri
from governance.usage import usage

GRANT_TYPE_TOKEN_EXCHANGE = "urn:ietf:params:oauth:grant-type:token-exchange"
TOKEN_TYPE_JWT = "urn:ietf:params:oauth:token-type:jwt"
TOKEN_TYPE_ACCESS_TOKEN = "urn:ietf:params:oauth:token-type:access_token"
TOKEN_TYPE_AGENT_KEY = "urn:custos:params:oauth:token-type:agent-key"
TOKEN_TYPE_DELEGATION = "urn:custos:params:oauth:token-type:delegation"
SUBJECT_TOKEN_TYPES = (TOKEN_TYPE_DELEGATION, TOKEN_TYPE_JWT, TOKEN_TYPE_ACCESS_TOKEN)


class OAuthError(Exception):
    """An RFC 6749 §5.2 error: ``error`` is one of the registered codes."""

    def __init__(self, error: str, description: str, *, status: int = 400) -> None:
        super().__init__(description)
        self.error = error
        self.description = description
        self.status = status

    def as_dict(self) -> dict[str, str]:
        return {"error": self.error, "error_description": self.description}


# --- Signing keys ---------------------------------------------------------------------------


@transaction.atomic
def signingkey_rotate(*, actor: Actor) -> SigningKey:
    """Start signing with a new key now. The previous keys stop signing but stay published until the
    last token they signed has expired."""
    now = timezone.now()
    for old in SigningKey.objects.select_for_update().for_signing(now):
        old.signs_until = now
        old.verifies_until = now + settings.CUSTOS_TOKEN_MAX_LIFETIME
        old.save(update_fields=["signs_until", "verifies_until"])
    key = tokens.generate_signing_key(activated_at=now)
    key.save()
    audit_append(
        actor=actor,
        action="signingkey.rotate",
        target=Target(type="signingkey", id=str(key.pk), label=key.kid),
        context={"kid": key.kid, "algorithm": key.algorithm, "signs_until": key.signs_until},
    )
    return key


def signing_key_for_now(at: datetime) -> SigningKey:
    for key in SigningKey.objects.for_signing(at):
        if tokens.private_key_of(key) is not None:
            return key
    # None usable (first start, or the encryption secret changed): make one.
    return signingkey_rotate(actor=Actor.system("token service"))


# --- Token exchange -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class IssuedToken:
    access_token: str
    expires_in: int
    scope: str
    record: DelegationToken

    def as_response(self) -> dict[str, Any]:
        return {
            "access_token": self.access_token,
            "issued_token_type": TOKEN_TYPE_JWT,
            "token_type": "Bearer",
            "expires_in": self.expires_in,
            "scope": self.scope,
        }


def authenticate_actor(presented: str, at: datetime) -> authn.AgentPrincipal:
    """The agent behind the actor token (its key), or OAuthError(invalid_client). Inactive agents and
    sponsors fail the same way as a wrong key, with the reason: the caller is that agent's own code."""
    try:
        return authn.authenticate_key(presented, at)
    except authn.CredentialRefused as refused:
        if refused.reason == Reason.CREDENTIAL_INVALID:
            raise OAuthError("invalid_client", "the actor token is not a valid agent key", status=401) from None
        raise OAuthError("invalid_client", f"the agent key cannot be used: {refused.reason}", status=401) from None


def _requested_scopes(scope: str | None, allowed: frozenset[str]) -> frozenset[str]:
    if scope is None or not scope.strip():
        if not allowed:
            # A token with no scope allows nothing: refuse rather than mint an empty one.
            raise OAuthError("invalid_scope", "nothing is both delegated and carried by the subject token")
        return allowed
    wanted = frozenset(scope.split())
    extra = wanted - allowed
    if extra:
        raise OAuthError("invalid_scope", f"not delegated: {' '.join(sorted(extra))}")
    return wanted


def _target(value: str, parameter: str) -> tuple[str, int | None]:
    """What one ``audience``/``resource`` value names: (the ``aud`` to mint, the resource's id or None
    for Custos itself). A URI must be registered as a resource's ``uri``; anything else is a name."""
    if value == settings.CUSTOS_ISSUER:
        return value, None
    if looks_like_uri(value):
        try:
            uri = normalise_resource_uri(value)
        except InvalidResourceUri as exc:
            raise OAuthError("invalid_target", f"{parameter} is not a usable resource URI: {exc}") from None
        found = Resource.objects.filter(uri=uri).values_list("pk", flat=True).first()
        if found is None:
            raise OAuthError("invalid_target", f"no resource is registered as {uri!r}")
        return uri, found
    by_name = Resource.objects.filter(name=value).values_list("pk", flat=True).first()
    if by_name is None:
        raise OAuthError(
            "invalid_target", f"unknown {parameter} {value!r}: use Custos's issuer, a resource name or its URI"
        )
    return value, by_name


def _audience(audience: str | None, resource: str | None = None) -> str:
    """The ``aud`` to mint. With both parameters they must name the same target; the RFC 8707
    ``resource`` then decides the form (an MCP client's URI wins over a name for the same resource)."""
    if not audience and not resource:
        return settings.CUSTOS_ISSUER
    by_audience = _target(audience, "audience") if audience else None
    by_resource = _target(resource, "resource") if resource else None
    if by_audience and by_resource and by_audience[1] != by_resource[1]:
        raise OAuthError("invalid_target", "audience and resource disagree")
    chosen = by_resource or by_audience
    assert chosen is not None
    return chosen[0]


def _usable_or_error(delegation: Delegation, wanted: frozenset[str], at: datetime) -> list[Delegation]:
    state, chain = chain_of(delegation, wanted, at)
    outcome: Outcome = decide_chain(state, wanted, at)
    if not outcome.allowed:
        error = "invalid_scope" if outcome.reason == Reason.SCOPE_NOT_DELEGATED else "invalid_grant"
        raise OAuthError(error, f"{outcome.reason}: {outcome.detail}")
    return chain


@transaction.atomic
def token_exchange(
    *,
    actor_token: str,
    actor_token_type: str,
    subject_token: str,
    subject_token_type: str,
    scope: str | None = None,
    audience: str | None = None,
    resource: str | None = None,
    requested_lifetime: timedelta | None = None,
) -> IssuedToken:
    at = timezone.now()
    if actor_token_type != TOKEN_TYPE_AGENT_KEY:
        raise OAuthError("invalid_request", f"actor_token_type must be {TOKEN_TYPE_AGENT_KEY}")
    if subject_token_type not in SUBJECT_TOKEN_TYPES:
        raise OAuthError("invalid_request", f"subject_token_type must be one of {', '.join(SUBJECT_TOKEN_TYPES)}")
    principal = authenticate_actor(actor_token, at)
    agent, key_id = principal.agent, principal.key_id
    aud = _audience(audience, resource)
    parent_token: DelegationToken | None = None
    parent_scopes: frozenset[str] | None = None
    max_exp: datetime | None = None

    if subject_token_type == TOKEN_TYPE_DELEGATION:
        # ASCII digits, bounded: "²".isdigit() is true but int() refuses it, as it does 5000 digits.
        if not (subject_token.isascii() and subject_token.isdigit()) or len(subject_token) > 18:
            raise OAuthError("invalid_request", "subject_token must be a delegation id")
        delegation = Delegation.objects.filter(pk=int(subject_token)).first()
        if delegation is None:
            raise OAuthError("invalid_grant", "no such delegation")
        if delegation.delegate_id != agent.pk:
            raise OAuthError("unauthorized_client", "this agent is not the delegate of that delegation")
    else:
        try:
            verified = authn.verify_token(subject_token, at, audiences=None)
        except authn.CredentialRefused as refused:
            raise OAuthError("invalid_grant", f"subject token rejected: {refused.detail}") from None
        parent_state, parent_outcome = authn.token_decision(verified, frozenset(), at)
        if parent_state is None or parent_state.revoked:
            raise OAuthError("invalid_grant", "subject token is revoked or unknown")
        if not parent_outcome.allowed:
            raise OAuthError("invalid_grant", f"subject token cannot be used: {parent_outcome.reason}")
        parent_token = DelegationToken.objects.get(jti=verified.jti)
        if agent.parent_id != parent_token.agent_id:
            raise OAuthError("unauthorized_client", "only a sub-agent of the subject token's agent may exchange it")
        # What the parent's token was issued for, as recorded (never what its claims say).
        parent_scopes = parent_state.scopes
        max_exp = parent_token.expires_at
        # Audience attenuates too: from a token good at one resource only, a sub-agent gets a token
        # for that resource only, never one good at Custos (and so at every resource in scope).
        # (An MCP server's URI audience is inherited the same way: the sub-agent's token is good at
        # that server only.)
        if parent_token.audience != settings.CUSTOS_ISSUER:
            if (audience or resource) and aud != parent_token.audience:
                raise OAuthError("invalid_target", f"the subject token is only for {parent_token.audience!r}")
            aud = parent_token.audience
        wanted_hint = frozenset(scope.split()) if scope else frozenset()
        candidates = Delegation.objects.filter(
            parent_id=parent_token.delegation_id, delegate=agent, status=DelegationStatus.ACTIVE, expires_at__gt=at
        ).order_by("-created_at")
        found = next((d for d in candidates if wanted_hint <= d.scope_set), None)
        if found is None:
            raise OAuthError("invalid_grant", "no active delegation to this agent below the subject token's")
        delegation = found

    allowed = delegation.scope_set if parent_scopes is None else delegation.scope_set & parent_scopes
    wanted = _requested_scopes(scope, allowed)
    chain = _usable_or_error(delegation, wanted, at)
    try:
        lifetime = tokens.token_lifetime(requested_lifetime, delegation.expires_at, at)
    except tokens.LifetimeExceedsMaximum as exc:
        raise OAuthError("invalid_request", str(exc)) from None
    expires_at = at + lifetime
    if max_exp is not None and expires_at > max_exp:
        expires_at = max_exp  # a sub-agent's token never outlives the token it was derived from
    if expires_at <= at:
        raise OAuthError("invalid_grant", "nothing left of the delegation's lifetime")

    key = signing_key_for_now(at)
    jti = secrets.token_urlsafe(18)
    root_human_id = delegation.root_human_id
    scope_claim = " ".join(sorted(wanted))
    claims: dict[str, Any] = {
        "iss": settings.CUSTOS_ISSUER,
        "sub": tokens.human_subject(root_human_id),
        "aud": aud,
        "iat": int(at.timestamp()),
        "nbf": int(at.timestamp()),
        "exp": int(expires_at.timestamp()),
        "jti": jti,
        "scope": scope_claim,
        "client_id": tokens.agent_subject(agent.pk),
        "delegation_id": delegation.pk,
        "act": tokens.nested_act([tokens.agent_subject(link.delegate_id) for link in chain]),
    }
    record = DelegationToken.objects.create(
        jti=jti,
        agent=agent,
        delegation=delegation,
        parent_token=parent_token,
        agent_key_id=key_id,
        scopes=sorted(wanted),
        audience=aud,
        signing_key=key,
        issued_at=at,
        expires_at=expires_at,
    )
    audit_append(
        actor=Actor.agent(agent),
        action="token.issue",
        target=Target(type="delegationtoken", id=jti, label=f"{agent.name} token"),
        on_behalf_of=[
            {"type": "human", "id": root_human_id, "label": chain[0].root_human.name},
            *({"type": "agent", "id": link.delegate_id, "label": link.delegate.name} for link in chain[:-1]),
        ],
        context={
            "delegation": delegation.pk,
            "parent_token": parent_token.jti if parent_token else None,
            "scopes": sorted(wanted),
            "audience": aud,
            "expires_at": expires_at,
            "kid": key.kid,
        },
    )
    # The key was used to obtain the token: its "last used" (and the agent's activity) says so.
    usage.record(agent_id=agent.pk, key_id=key_id, at=at)
    return IssuedToken(
        access_token=tokens.encode(claims, key),
        expires_in=int((expires_at - at).total_seconds()),
        scope=scope_claim,
        record=record,
    )


# --- Introspection (RFC 7662) and revocation (RFC 7009) -------------------------------------


def token_introspect(token: str, *, caller: Any) -> dict[str, Any]:
    """RFC 7662: whether the token is active right now, judged as the check judges it (its claims
    against its record, revocation, the recorded expiry, the live chain and the recorded scopes held).

    Only for a caller entitled to know (RFC 7662 §4): an agent for tokens of its own chain (it is one
    of the token's actors), a console user for tokens ``visible_to`` them. Anything else, and every
    token that is not active, is ``{"active": false}`` and nothing more.
    """
    at = timezone.now()
    inactive: dict[str, Any] = {"active": False}
    try:
        verified = authn.verify_token(token, at, audiences=None)
    except authn.CredentialRefused:
        return inactive
    state, outcome = authn.token_decision(verified, verified.parsed.scopes, at)
    if state is None or state.chain is None or not outcome.allowed:
        return inactive
    if not _may_introspect(caller, state.chain.links, verified.jti):
        return inactive
    claims = verified.claims
    return {
        "active": True,
        "scope": claims["scope"],
        "client_id": claims.get("client_id"),
        "token_type": "Bearer",
        "exp": claims["exp"],
        "iat": claims["iat"],
        "nbf": claims["nbf"],
        "sub": claims["sub"],
        "aud": claims["aud"],
        "iss": claims["iss"],
        "jti": claims["jti"],
        "act": claims["act"],
        "delegation_id": claims.get("delegation_id"),
    }


def _may_introspect(caller: Any, links: tuple[Any, ...], jti: str) -> bool:
    principal = authn.agent_principal(caller)
    if principal is not None:
        return any(link.agent_id == principal.agent.pk for link in links)
    return roles.has_any_role(caller) and DelegationToken.objects.visible_to(caller).filter(jti=jti).exists()


def token_owner_may_revoke(agent: Agent, record: DelegationToken) -> bool:
    """An agent may revoke its own tokens and those of the sub-agents below it."""
    current: Agent | None = record.agent
    while current is not None:
        if current.pk == agent.pk:
            return True
        current = current.parent
    return False
