"""Agents calling API v1 with their own credential: ``Authorization: Bearer ck_…`` (an agent key, the
agent acting as itself) or ``Bearer <JWT>`` (a delegation token, the agent acting for the root human
within its chain).

The principal this yields holds no console role (``governance.roles.roles_of`` gives it none), so every
``visible_to`` shows it nothing and ``ConsoleRole`` refuses it everywhere except on the few operations
that name it in ``agent_methods`` (SPEC §9: an agent may create its own sub-agents and delegate to them
within its chain; nothing else).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

from django.conf import settings
from django.utils import timezone
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework import exceptions, status
from rest_framework.authentication import BaseAuthentication, get_authorization_header
from rest_framework.request import Request

from governance import credentials, tokens
from governance.decision import Reason, decide_chain
from governance.models import Agent, AgentKey, DelegationToken
from governance.oauth import OAuthError, authenticate_agent_key
from governance.selectors import chain_state
from governance.tokens import agent_subject
from governance.usage import usage


@dataclass(frozen=True, slots=True)
class AgentPrincipal:
    """``request.user`` for an agent's call: who it is and what its credential carries."""

    agent: Agent
    via: Literal["key", "token"]
    expires_at: datetime  # of the credential presented
    key_id: int | None = None  # via a key: that key
    delegation_id: int | None = None  # via a token: the delegation it was issued for
    scopes: frozenset[str] = frozenset()  # via a token: its ``scope`` claim
    jti: str | None = None

    # What Django and DRF ask of a user. ``is_agent`` is what roles_of() looks for.
    is_authenticated = True
    is_active = True
    is_anonymous = False
    is_agent = True

    def __str__(self) -> str:
        return f"agent {self.agent.name} (via {self.via})"


def agent_principal(request: Request) -> AgentPrincipal | None:
    """The calling agent, or None when a console user (or nobody) is calling."""
    user = request.user
    return user if isinstance(user, AgentPrincipal) else None


class CredentialRefused(exceptions.APIException):
    """401 naming why the credential was refused (``credential_expired``, ``delegation_revoked``, …).

    Its own class rather than ``AuthenticationFailed``: the API's exception handler reports every
    AuthenticationFailed as ``credential_invalid``, and an agent deserves the precise reason, the same
    one the check would give."""

    status_code = status.HTTP_401_UNAUTHORIZED
    default_detail = "The agent credential is not valid."
    default_code = Reason.CREDENTIAL_INVALID

    def __init__(self, detail: str, *, code: str = Reason.CREDENTIAL_INVALID) -> None:
        super().__init__(detail, code)
        # The handler reads default_code for exceptions it does not map itself.
        self.default_code = code


class AgentAuthentication(BaseAuthentication):
    """Accepts an agent key or a delegation token issued for Custos itself. Other bearers (``cu_``
    console tokens) are left to ``ApiTokenAuthentication``, which runs first."""

    keyword = b"bearer"

    def authenticate(self, request: Request) -> tuple[AgentPrincipal, None] | None:
        parts = get_authorization_header(request).split()
        if not parts or parts[0].lower() != self.keyword:
            return None
        if len(parts) != 2:
            raise CredentialRefused("Malformed Authorization header.")
        try:
            presented = parts[1].decode("ascii")
        except UnicodeDecodeError:
            raise CredentialRefused("Invalid credential.") from None
        if presented.startswith("cu_"):
            return None
        at = timezone.now()
        principal = _by_key(presented, at) if presented.startswith("ck_") else _by_token(presented, at)
        # Last use and last activity, buffered: no database write per request.
        usage.record(agent_id=principal.agent.pk, key_id=principal.key_id, at=at)
        return principal, None

    def authenticate_header(self, request: Request) -> str:
        return 'Bearer realm="custos"'


def _by_key(presented: str, at: datetime) -> AgentPrincipal:
    try:
        agent = authenticate_agent_key(presented, at)
    except OAuthError as exc:
        raise CredentialRefused(exc.description) from None
    prefix = credentials.parse_prefix("ck", presented)
    key = AgentKey.objects.filter(prefix=prefix).values_list("id", "expires_at").first()
    if key is None:  # deleted between the two reads: as good as never there
        raise CredentialRefused("the agent key is not valid")
    return AgentPrincipal(agent=agent, via="key", key_id=key[0], expires_at=key[1])


def _by_token(presented: str, at: datetime) -> AgentPrincipal:
    try:
        verified = tokens.verify(presented, audiences=(settings.CUSTOS_ISSUER,), at=at)
    except tokens.TokenExpired:
        raise CredentialRefused("the token has expired", code=Reason.CREDENTIAL_EXPIRED) from None
    except tokens.TokenInvalid as exc:
        raise CredentialRefused(f"the token is not valid: {exc}") from None
    record = DelegationToken.objects.select_related("agent__sponsor", "delegation").filter(jti=verified.jti).first()
    if record is None:
        raise CredentialRefused("no record of this token")
    if record.revoked_at is not None:
        raise CredentialRefused("the token was revoked", code=Reason.CREDENTIAL_REVOKED)
    if verified.claims["act"].get("sub") != agent_subject(record.agent_id):
        raise CredentialRefused("the token does not match its record")
    # The whole chain must be usable right now: every link, agent, sponsor and the root human.
    state, _chain = chain_state(record.delegation, frozenset(), at)
    outcome = decide_chain(state, frozenset(), at)
    if not outcome.allowed:
        raise CredentialRefused(outcome.detail, code=outcome.reason)
    return AgentPrincipal(
        agent=record.agent,
        via="token",
        expires_at=datetime.fromtimestamp(verified.exp, tz=UTC),
        delegation_id=record.delegation_id,
        scopes=frozenset(str(verified.claims["scope"]).split()),
        jti=record.jti,
    )


class AgentCredentialScheme(OpenApiAuthenticationExtension):
    target_class = AgentAuthentication
    name = "agentCredential"

    def get_security_definition(self, auto_schema: Any) -> dict[str, str]:
        return {
            "type": "http",
            "scheme": "bearer",
            "description": (
                "An agent's own key (`Bearer ck_<prefix>_<secret>`) or a delegation token from `/oauth/token`. "
                "Agents may only register their sub-agents, issue their keys, delegate within their chain, "
                "rotate their own keys and ask for access."
            ),
        }
