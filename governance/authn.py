"""Every credential Custos accepts, parsed and checked in one place.

- **Agent keys** (``ck_<prefix>_<secret>``): an agent acting as itself.
- **Delegation tokens** (signed JWTs from ``/oauth/token``): an agent acting for a human through a chain.
  A token is good only while it says exactly what was recorded when it was issued (scope, actors,
  subject, audience, delegation), so a token re-signed with a stolen signing key gains nothing.
- **API tokens** (``cu_<prefix>_<secret>``): a console user calling the API.
- **The bearer header** that carries any of them.

Each check returns a principal or raises ``CredentialRefused`` with one reason code of the decision
core (``credential_invalid``, ``credential_expired``, ``delegation_revoked``…). The runtime check, the
OAuth endpoints and the API's DRF authentication classes are thin adapters over these functions.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from django.conf import settings
from django.contrib.auth.models import User
from django.db import connection
from django.utils import timezone

from governance import chain, credentials, tokens
from governance.decision import KeyState, Outcome, Reason, TokenState, decide_key, decide_token
from governance.models import SCOPE_SEPARATOR, Agent, ApiToken
from governance.selectors import human_held_scopes

# Recording every use of an API token would add a write to every request; once a minute shows activity.
API_TOKEN_LAST_USED_RESOLUTION_SECONDS = 60


class CredentialRefused(Exception):
    """A credential that does not let its bearer in, with the reason the check would give."""

    def __init__(self, detail: str, *, reason: str = Reason.CREDENTIAL_INVALID) -> None:
        super().__init__(detail)
        self.detail = detail
        self.reason = reason


# --- The bearer header ----------------------------------------------------------------------


def bearer(header: str | bytes | None) -> str | None:
    """The credential in an ``Authorization: Bearer …`` header, or None for no header or another scheme.
    A malformed bearer header (no value, several values, not ASCII) is refused."""
    if isinstance(header, bytes):
        try:
            header = header.decode("ascii")
        except UnicodeDecodeError:
            raise CredentialRefused("the Authorization header is not ASCII") from None
    parts = (header or "").split()
    if not parts or parts[0].lower() != "bearer":
        return None
    if len(parts) != 2 or not parts[1].isascii():
        raise CredentialRefused("malformed Authorization header: use Bearer <credential>")
    return parts[1]


def kind_of(presented: str) -> Literal["api_token", "agent_key", "delegation_token"]:
    if presented.startswith("cu_"):
        return "api_token"
    if presented.startswith("ck_"):
        return "agent_key"
    return "delegation_token"


# --- Principals -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class AgentPrincipal:
    """``request.user`` for an agent's call: who it is and what its credential carries."""

    agent: Agent
    via: Literal["key", "token"]
    expires_at: datetime  # of the credential presented
    key_id: int | None = None  # via a key: that key
    delegation_id: int | None = None  # via a token: the delegation it was issued for
    scopes: frozenset[str] = frozenset()  # via a token: the scopes recorded when it was issued
    jti: str | None = None

    # What Django and DRF ask of a user. ``is_agent`` is what ``console.roles`` looks for: no console role.
    is_authenticated = True
    is_active = True
    is_anonymous = False
    is_agent = True

    def __str__(self) -> str:
        return f"agent {self.agent.name} (via {self.via})"


def agent_principal(user: Any) -> AgentPrincipal | None:
    """The calling agent, or None when a console user (or nobody) is calling."""
    return user if isinstance(user, AgentPrincipal) else None


# --- Agent keys -----------------------------------------------------------------------------

# The key, its agent and sponsor, and whether the agent holds the one scope asked about: one round trip.
_KEY_SQL_TEMPLATE = f"""
SELECT k.id AS key_id, k.hashed AS hashed, k.expires_at AS expires_at, k.revoked_at IS NOT NULL AS revoked,
       a.id AS agent_id, a.name AS agent_name, a.status AS agent_status,
       s.name AS sponsor_name, s.status AS sponsor_status,
       EXISTS({chain.ACTIVE_GRANT_SQL.format(holder="g.holder_agent_id = a.id")}) AS agent_holds_scope{{versioned}}
  FROM governance_agentkey k
  JOIN governance_agent a ON a.id = k.agent_id
  JOIN governance_human s ON s.id = a.sponsor_id
 WHERE k.prefix = %s
"""  # noqa: S608 - formatted from constants only, never from input
_KEY_SQL = _KEY_SQL_TEMPLATE.format(versioned="")
_KEY_SQL_VERSIONED = _KEY_SQL_TEMPLATE.format(
    versioned=f""",
       {chain.STATE_VERSION_SQL} AS state_version,
       {chain.NEXT_GRANT_CHANGE_SQL.format(holder="g.holder_agent_id = a.id")} AS grant_changes_at"""
)


@dataclass(frozen=True, slots=True)
class LoadedKey:
    """A key's state and its keyed hash, which every presentation of the key is compared against."""

    hashed: str
    state: KeyState

    def for_presented(self, presented: str) -> KeyState | None:
        # Constant-time comparison of keyed hashes: a wrong secret and an unknown prefix look alike.
        return self.state if credentials.matches(presented, self.hashed) else None


def _key_row(presented: str, scope: str | None, at: datetime, *, versioned: bool) -> dict[str, Any] | None:
    prefix = credentials.parse_prefix("ck", presented)
    if prefix is None:
        return None
    resource, _, action = (scope or "").partition(SCOPE_SEPARATOR)
    moment = connection.ops.adapt_datetimefield_value(at)
    grant = [resource, action, moment, moment]
    params = [*grant, resource, action, moment, resource, action, moment, prefix] if versioned else [*grant, prefix]
    with connection.cursor() as cursor:
        cursor.execute(_KEY_SQL_VERSIONED if versioned else _KEY_SQL, params)
        names = [column[0] for column in cursor.description]
        found = cursor.fetchone()
    return dict(zip(names, found, strict=True)) if found is not None else None


def _loaded_key(row: dict[str, Any], scope: str | None) -> LoadedKey:
    return LoadedKey(
        hashed=row["hashed"],
        state=KeyState(
            key_id=row["key_id"],
            expires_at=chain.as_datetime(row["expires_at"]),
            revoked=bool(row["revoked"]),
            agent_id=row["agent_id"],
            agent_name=row["agent_name"],
            agent_status=row["agent_status"],
            sponsor_name=row["sponsor_name"],
            sponsor_status=row["sponsor_status"],
            agent_holds=frozenset({scope}) if scope and row["agent_holds_scope"] else frozenset(),
        ),
    )


def load_key(presented: str, scope: str | None, at: datetime) -> KeyState | None:
    """The state of the agent key presented, with whether its agent holds ``scope`` right now; None
    when it is not a key Custos issued (malformed, unknown prefix, wrong secret)."""
    row = _key_row(presented, scope, at, versioned=False)
    return _loaded_key(row, scope).for_presented(presented) if row is not None else None


def load_key_versioned(presented: str, scope: str | None, at: datetime) -> chain.Versioned | None:
    """The key presented as ``load_key`` reads it, whatever its secret (a ``LoadedKey``), with the
    state's version and until when its grant answer stands; None for a prefix Custos never issued."""
    row = _key_row(presented, scope, at, versioned=True)
    return chain.Versioned.of(_loaded_key(row, scope), row) if row is not None else None


def authenticate_key(presented: str, at: datetime | None = None) -> AgentPrincipal:
    """The agent behind a usable key: issued by Custos, not revoked or expired, its agent and sponsor
    active. Otherwise ``CredentialRefused`` with the reason."""
    at = at or timezone.now()
    state = load_key(presented, None, at)
    if state is None:
        raise CredentialRefused("the agent key is not valid")
    outcome = decide_key(state, frozenset(), at)
    if not outcome.allowed:
        raise CredentialRefused(outcome.detail, reason=outcome.reason)
    agent = Agent.objects.select_related("sponsor").get(pk=state.agent_id)
    return AgentPrincipal(agent=agent, via="key", key_id=state.key_id, expires_at=state.expires_at)


# --- Delegation tokens ----------------------------------------------------------------------


def verify_token(presented: str, at: datetime, audiences: Collection[str] | None) -> tokens.VerifiedToken:
    """The token's signature, time claims, audience and claim shapes; ``CredentialRefused`` otherwise."""
    try:
        return tokens.verify(presented, audiences=audiences, at=at)
    except tokens.TokenExpired:
        raise CredentialRefused("the token has expired", reason=Reason.CREDENTIAL_EXPIRED) from None
    except tokens.TokenInvalid as exc:
        raise CredentialRefused(f"the token is not valid: {exc}") from None


def token_decision(
    verified: tokens.VerifiedToken, wanted: frozenset[str], at: datetime
) -> tuple[TokenState | None, Outcome]:
    """What the live state says of a verified token: its record (which its claims must match), the
    recorded expiry, the chain of its delegation, and the scopes ``wanted`` (at most one is looked up
    in the same round trip; more cost one more query)."""
    scope = next(iter(wanted)) if len(wanted) == 1 else None
    return token_outcome(verified, wanted, at, chain.load_token(verified.jti, scope, at))


def token_outcome(
    verified: tokens.VerifiedToken, wanted: frozenset[str], at: datetime, state: TokenState | None
) -> tuple[TokenState | None, Outcome]:
    """``token_decision`` on a state already loaded (for the one scope wanted; None: no such token)."""
    if state is None:
        return None, Outcome(Reason.CREDENTIAL_INVALID, "no record of this token")
    if len(wanted) > 1 and state.chain is not None:
        held = frozenset(wanted & human_held_scopes(state.chain.root_human_id, at))
        state = dataclasses.replace(state, chain=dataclasses.replace(state.chain, root_holds=held))
    return state, decide_token(state, claims=verified.parsed, wanted=wanted, at=at)


def authenticate_token(
    presented: str, at: datetime | None = None, *, audiences: Collection[str] | None = None
) -> AgentPrincipal:
    """The agent a usable delegation token was issued to, acting within its chain. By default only a
    token issued for Custos itself (not one bound to a resource or an MCP server) is accepted."""
    at = at or timezone.now()
    verified = verify_token(presented, at, audiences if audiences is not None else (settings.CUSTOS_ISSUER,))
    state, outcome = token_decision(verified, frozenset(), at)
    if state is None or not outcome.allowed:
        raise CredentialRefused(outcome.detail, reason=outcome.reason)
    agent = Agent.objects.select_related("sponsor").get(pk=state.agent_id)
    return AgentPrincipal(
        agent=agent,
        via="token",
        expires_at=verified.expires_at,
        delegation_id=state.delegation_id,
        scopes=state.scopes,
        jti=verified.jti,
    )


def authenticate_agent(presented: str, at: datetime | None = None) -> AgentPrincipal:
    """An agent's own key or a delegation token issued for Custos."""
    if kind_of(presented) == "agent_key":
        return authenticate_key(presented, at)
    return authenticate_token(presented, at)


# --- Console API tokens ---------------------------------------------------------------------


def authenticate_api_token(presented: str) -> tuple[User, ApiToken]:
    """The console user behind a personal API token that is not revoked, of an active user."""
    prefix = credentials.parse_prefix("cu", presented)
    token = (
        ApiToken.objects.select_related("user").filter(prefix=prefix, revoked_at__isnull=True).first()
        if prefix
        else None
    )
    if token is None or not credentials.matches(presented, token.hashed) or not token.user.is_active:
        raise CredentialRefused("invalid or revoked API token")
    now = timezone.now()
    last = token.last_used_at
    if last is None or (now - last).total_seconds() > API_TOKEN_LAST_USED_RESOLUTION_SECONDS:
        ApiToken.objects.filter(pk=token.pk).update(last_used_at=now)
    return token.user, token
