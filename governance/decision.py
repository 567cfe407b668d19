"""The decision core: plain functions over plain data, no I/O.

Everything the runtime check, the token exchange and the console need to answer "may this actor use
this scope right now, and if not, why" is decided here, so there is one definition of the rules
(SPEC §2 and §3). Loading the state is someone else's job (``governance.runtime``).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime


class Reason:
    """Stable reason codes (SPEC §3). Exactly one is given for every decision."""

    ALLOWED = "allowed"
    CREDENTIAL_INVALID = "credential_invalid"
    CREDENTIAL_EXPIRED = "credential_expired"
    CREDENTIAL_REVOKED = "credential_revoked"
    AGENT_INACTIVE = "agent_inactive"
    SPONSOR_INACTIVE = "sponsor_inactive"
    HUMAN_INACTIVE = "human_inactive"
    NO_DELEGATION = "no_delegation"
    DELEGATION_EXPIRED = "delegation_expired"
    DELEGATION_REVOKED = "delegation_revoked"
    CHAIN_BROKEN = "chain_broken"
    SCOPE_NOT_DELEGATED = "scope_not_delegated"
    SCOPE_NOT_GRANTED = "scope_not_granted"
    DELEGATOR_LACKS_GRANT = "delegator_lacks_grant"


# Each reason in words that name nobody. An outcome's detail names the agents, sponsors and root human
# on the chain, some of whom a reviewer reading the decision may not see; they read this instead.
REASON_SUMMARIES = {
    Reason.ALLOWED: "allowed",
    Reason.CREDENTIAL_INVALID: "the credential is not one Custos issued",
    Reason.CREDENTIAL_EXPIRED: "the credential has expired",
    Reason.CREDENTIAL_REVOKED: "the credential was revoked",
    Reason.AGENT_INACTIVE: "an agent on the chain is not active",
    Reason.SPONSOR_INACTIVE: "the sponsor of an agent on the chain is not active",
    Reason.HUMAN_INACTIVE: "the human the chain acts for is not active",
    Reason.NO_DELEGATION: "no delegation covers the request",
    Reason.DELEGATION_EXPIRED: "the delegation has expired",
    Reason.DELEGATION_REVOKED: "the delegation was revoked",
    Reason.CHAIN_BROKEN: "a link up the chain is no longer in force",
    Reason.SCOPE_NOT_DELEGATED: "the scope was not delegated",
    Reason.SCOPE_NOT_GRANTED: "the agent holds no grant for the scope",
    Reason.DELEGATOR_LACKS_GRANT: "the human the chain acts for no longer holds the scope",
}


def reason_summary(reason: str) -> str:
    return REASON_SUMMARIES.get(reason, reason)


ACTIVE = "active"
REVOKED = "revoked"
EXPIRED = "expired"


@dataclass(frozen=True, slots=True)
class Link:
    """One delegation link with its delegate agent and that agent's sponsor."""

    delegation_id: int
    parent_id: int | None
    status: str
    expires_at: datetime
    scopes: frozenset[str]
    agent_id: int
    agent_name: str
    agent_status: str
    sponsor_name: str
    sponsor_status: str


@dataclass(frozen=True, slots=True)
class ChainState:
    links: tuple[Link, ...]  # root first; the link in use last
    root_human_id: int
    root_human_name: str
    root_human_status: str
    # Which of the scopes asked about the root human holds through an active grant right now.
    root_holds: frozenset[str]


@dataclass(frozen=True, slots=True)
class Outcome:
    reason: str
    detail: str = ""

    @property
    def allowed(self) -> bool:
        return self.reason == Reason.ALLOWED


ALLOWED = Outcome(Reason.ALLOWED)


def decide_chain(state: ChainState, wanted: frozenset[str], at: datetime) -> Outcome:
    """May the delegate of the last link use ``wanted`` on behalf of the root human at ``at``?

    Checked from the link in use up to the root: the link itself, then the links above it, then every
    agent and sponsor on the chain, then the root human, then the scopes. The first rule that fails
    names the reason.
    """
    leaf = state.links[-1]
    if leaf.status == REVOKED:
        return Outcome(Reason.DELEGATION_REVOKED, f"delegation {leaf.delegation_id} was revoked")
    if leaf.status != ACTIVE or leaf.expires_at <= at:
        return Outcome(Reason.DELEGATION_EXPIRED, f"delegation {leaf.delegation_id} expired at {leaf.expires_at}")
    for link in reversed(state.links[:-1]):
        if link.status != ACTIVE or link.expires_at <= at:
            state_word = "revoked" if link.status == REVOKED else "expired"
            return Outcome(Reason.CHAIN_BROKEN, f"delegation {link.delegation_id} up the chain is {state_word}")
    for link in reversed(state.links):
        if link.agent_status != ACTIVE:
            return Outcome(Reason.AGENT_INACTIVE, f"agent {link.agent_name} is {link.agent_status}")
        if link.sponsor_status != ACTIVE:
            return Outcome(
                Reason.SPONSOR_INACTIVE, f"{link.sponsor_name}, sponsor of {link.agent_name}, is {link.sponsor_status}"
            )
    if state.root_human_status != ACTIVE:
        return Outcome(Reason.HUMAN_INACTIVE, f"{state.root_human_name} is {state.root_human_status}")
    not_delegated = wanted - leaf.scopes
    if not_delegated:
        return Outcome(Reason.SCOPE_NOT_DELEGATED, f"not delegated: {', '.join(sorted(not_delegated))}")
    lacking = wanted - state.root_holds
    if lacking:
        return Outcome(
            Reason.DELEGATOR_LACKS_GRANT, f"{state.root_human_name} no longer holds {', '.join(sorted(lacking))}"
        )
    return ALLOWED


@dataclass(frozen=True, slots=True)
class TokenClaims:
    """What a token whose signature verified says of itself, parsed (``governance.tokens``)."""

    human_id: int | None  # from ``sub``
    agent_ids: tuple[int | None, ...]  # from the nested ``act``: the agent acting now first
    scopes: frozenset[str]
    audience: str
    delegation_id: int | None


@dataclass(frozen=True, slots=True)
class TokenState:
    """What the database says of an issued token at the moment of the check: its record, and the live
    chain of the delegation it was issued for."""

    revoked: bool
    agent_id: int
    chain: ChainState | None  # None when the delegation it names no longer exists
    # The expiry recorded at issue. The signed ``exp`` is checked first; this one holds even against
    # a token whose ``exp`` was forged with a stolen signing key.
    expires_at: datetime | None = None
    scopes: frozenset[str] = frozenset()  # recorded at issue
    audience: str = ""
    delegation_id: int | None = None


def matches_record(token: TokenState, claims: TokenClaims) -> bool:
    """Does the token say exactly what was recorded when it was issued? A token re-signed with a stolen
    signing key can say anything; its record (and the chain it names) cannot be forged that way."""
    if claims.scopes != token.scopes or claims.audience != token.audience:
        return False
    if claims.delegation_id != token.delegation_id or claims.agent_ids[:1] != (token.agent_id,):
        return False
    if token.chain is not None:
        if claims.human_id != token.chain.root_human_id:
            return False
        if claims.agent_ids != tuple(link.agent_id for link in reversed(token.chain.links)):
            return False
    return True


def decide_token(token: TokenState, *, claims: TokenClaims, wanted: frozenset[str], at: datetime) -> Outcome:
    """A verified, unexpired token: revocation, its claims against its record, the recorded expiry, then
    the live chain, then the recorded scope (a token never allows more than it was issued for, even if
    the delegation was widened since or the token re-signed with a wider scope)."""
    if token.revoked:
        return Outcome(Reason.CREDENTIAL_REVOKED, "the token was revoked")
    if not matches_record(token, claims):
        return Outcome(Reason.CREDENTIAL_INVALID, "the token does not match its record")
    if token.expires_at is not None and token.expires_at <= at:
        return Outcome(Reason.CREDENTIAL_EXPIRED, "the token has expired")
    if token.chain is None:
        return Outcome(Reason.NO_DELEGATION, "the token's delegation no longer exists")
    outcome = decide_chain(token.chain, wanted, at)
    if outcome.allowed and not wanted <= token.scopes:
        return Outcome(
            Reason.SCOPE_NOT_DELEGATED, f"not in the token's scope: {', '.join(sorted(wanted - token.scopes))}"
        )
    return outcome


@dataclass(frozen=True, slots=True)
class KeyState:
    """An agent key and its agent, as the database says at the moment of the check."""

    key_id: int
    expires_at: datetime
    revoked: bool
    agent_id: int
    agent_name: str
    agent_status: str
    sponsor_name: str
    sponsor_status: str
    agent_holds: frozenset[str]  # of the scopes asked, those the agent holds by its own active grants


def decide_key(key: KeyState, wanted: frozenset[str], at: datetime) -> Outcome:
    """An agent acting as itself with its key: only its own grants count."""
    if key.revoked:
        return Outcome(Reason.CREDENTIAL_REVOKED, "the key was revoked")
    if key.expires_at <= at:
        return Outcome(Reason.CREDENTIAL_EXPIRED, f"the key expired at {key.expires_at}")
    if key.agent_status != ACTIVE:
        return Outcome(Reason.AGENT_INACTIVE, f"agent {key.agent_name} is {key.agent_status}")
    if key.sponsor_status != ACTIVE:
        return Outcome(
            Reason.SPONSOR_INACTIVE, f"{key.sponsor_name}, sponsor of {key.agent_name}, is {key.sponsor_status}"
        )
    missing = wanted - key.agent_holds
    if missing:
        return Outcome(Reason.SCOPE_NOT_GRANTED, f"{key.agent_name} holds no grant for {', '.join(sorted(missing))}")
    return ALLOWED
