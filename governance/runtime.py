"""The runtime check: load the live state in one round trip, decide, record, answer.

``check()`` is what ``POST /api/v1/check`` calls. It never caches anything a revocation could change:
each call reads the token or key row, every link of the delegation chain, every agent and sponsor on
it and the root human's grant for the scope, in one statement, then writes the decision to the audit
log in one more. A failure of either raises; the view turns that into 503, never an allow.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from django.conf import settings
from django.db import DatabaseError, connection
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from audit.services import Actor, Target, audit_append
from governance import credentials, jit, tokens
from governance.decision import (
    ChainState,
    KeyState,
    Link,
    Outcome,
    Reason,
    TokenState,
    decide_key,
    decide_token,
)
from governance.models import SCOPE_SEPARATOR
from governance.usage import usage

log = logging.getLogger(__name__)

CONTEXT_FIELDS = ("intent", "tool", "session_id", "request_id", "parent_request_id")


def _as_datetime(value: Any) -> datetime:
    if isinstance(value, datetime):
        return value if timezone.is_aware(value) else value.replace(tzinfo=UTC)
    parsed = parse_datetime(str(value))
    if parsed is None:
        raise ValueError(f"not a timestamp: {value!r}")
    return parsed if timezone.is_aware(parsed) else parsed.replace(tzinfo=UTC)


def _as_scopes(value: Any) -> frozenset[str]:
    if isinstance(value, str):  # SQLite returns JSON columns as text from raw queries
        value = json.loads(value)
    return frozenset(str(s) for s in value)


def _db_time(at: datetime) -> Any:
    return connection.ops.adapt_datetimefield_value(at)


_ACTIVE_GRANT = """
    SELECT 1 FROM governance_grant g JOIN governance_resource r ON r.id = g.resource_id
     WHERE {holder} AND r.name = %s AND g.action = %s AND g.status = 'active'
       AND g.valid_from <= %s AND (g.expires_at IS NULL OR g.expires_at > %s)
"""

# The chain from a token's delegation up to the root, with each delegate, its sponsor, the root
# human, whether the root human holds the scope, and the token's own record: one round trip.
_TOKEN_STATE_SQL = f"""
WITH RECURSIVE tok AS (
    SELECT t.delegation_id, t.agent_id, t.revoked_at, t.expires_at FROM governance_delegationtoken t WHERE t.jti = %s
), chain(id, parent_id, status, expires_at, scopes, delegate_id, root_human_id, hop) AS (
    SELECT d.id, d.parent_id, d.status, d.expires_at, d.scopes, d.delegate_id, d.root_human_id, 0
      FROM governance_delegation d JOIN tok ON d.id = tok.delegation_id
    UNION ALL
    SELECT d.id, d.parent_id, d.status, d.expires_at, d.scopes, d.delegate_id, d.root_human_id, chain.hop + 1
      FROM governance_delegation d JOIN chain ON d.id = chain.parent_id
)
SELECT tok.agent_id, tok.revoked_at IS NOT NULL,
       chain.id, chain.parent_id, chain.status, chain.expires_at, chain.scopes,
       a.id, a.name, a.status, s.name, s.status, h.id, h.name, h.status,
       EXISTS({_ACTIVE_GRANT.format(holder="g.holder_human_id = h.id")}),
       tok.expires_at
  FROM tok
  LEFT JOIN chain ON TRUE
  LEFT JOIN governance_agent a ON a.id = chain.delegate_id
  LEFT JOIN governance_human s ON s.id = a.sponsor_id
  LEFT JOIN governance_human h ON h.id = chain.root_human_id
 ORDER BY chain.hop DESC
"""  # noqa: S608 - formatted from constants only, never from input

_KEY_STATE_SQL = f"""
SELECT k.id, k.hashed, k.expires_at, k.revoked_at IS NOT NULL,
       a.id, a.name, a.status, s.name, s.status,
       EXISTS({_ACTIVE_GRANT.format(holder="g.holder_agent_id = a.id")})
  FROM governance_agentkey k
  JOIN governance_agent a ON a.id = k.agent_id
  JOIN governance_human s ON s.id = a.sponsor_id
 WHERE k.prefix = %s
"""  # noqa: S608 - formatted from constants only, never from input


def load_token_state(jti: str, resource: str, action: str, at: datetime) -> TokenState | None:
    moment = _db_time(at)
    with connection.cursor() as cursor:
        cursor.execute(_TOKEN_STATE_SQL, [jti, resource, action, moment, moment])
        rows = cursor.fetchall()
    if not rows:
        return None
    # The recorded expiry gets the same clock-skew leeway as the signed one.
    expires_at = _as_datetime(rows[0][16]) + settings.CUSTOS_TOKEN_LEEWAY
    agent_id, revoked = rows[0][0], bool(rows[0][1])
    if rows[0][2] is None:
        return TokenState(revoked=revoked, agent_id=agent_id, chain=None, expires_at=expires_at)
    links = tuple(
        Link(
            delegation_id=row[2],
            parent_id=row[3],
            status=row[4],
            expires_at=_as_datetime(row[5]),
            scopes=_as_scopes(row[6]),
            agent_id=row[7],
            agent_name=row[8],
            agent_status=row[9],
            sponsor_name=row[10],
            sponsor_status=row[11],
        )
        for row in rows
    )
    root = rows[0]
    held = frozenset({f"{resource}{SCOPE_SEPARATOR}{action}"}) if root[15] else frozenset()
    chain = ChainState(
        links=links, root_human_id=root[12], root_human_name=root[13], root_human_status=root[14], root_holds=held
    )
    return TokenState(revoked=revoked, agent_id=agent_id, chain=chain, expires_at=expires_at)


def load_key_state(prefix: str, resource: str, action: str, at: datetime) -> tuple[str, KeyState] | None:
    moment = _db_time(at)
    with connection.cursor() as cursor:
        cursor.execute(_KEY_STATE_SQL, [resource, action, moment, moment, prefix])
        row = cursor.fetchone()
    if row is None:
        return None
    held = frozenset({f"{resource}{SCOPE_SEPARATOR}{action}"}) if row[9] else frozenset()
    state = KeyState(
        key_id=row[0],
        expires_at=_as_datetime(row[2]),
        revoked=bool(row[3]),
        agent_id=row[4],
        agent_name=row[5],
        agent_status=row[6],
        sponsor_name=row[7],
        sponsor_status=row[8],
        agent_holds=held,
    )
    return row[1], state


# --- The check ------------------------------------------------------------------------------


@dataclass(slots=True)
class CheckResult:
    outcome: Outcome
    decision_id: str = ""
    subject: dict[str, Any] | None = None
    actors: list[dict[str, Any]] = field(default_factory=list)
    delegation_chain: list[dict[str, Any]] = field(default_factory=list)

    def as_response(self) -> dict[str, Any]:
        return {
            "decision": "allow" if self.outcome.allowed else "deny",
            "reason": self.outcome.reason,
            "detail": self.outcome.detail,
            "decision_id": self.decision_id,
            "subject": self.subject,
            "actors": self.actors,
            "delegation_chain": self.delegation_chain,
        }


def _agent_ref(agent_id: int, name: str) -> dict[str, Any]:
    return {"type": "agent", "id": agent_id, "label": name}


def check(*, credential: str, action: str, resource: str, context: dict[str, Any]) -> CheckResult:
    """Decide one request of an agent and record the decision. Raises on any infrastructure
    failure (the caller answers 503); every other outcome is a recorded allow or deny."""
    at = timezone.now()
    wanted = frozenset({f"{resource}{SCOPE_SEPARATOR}{action}"})
    result = CheckResult(outcome=Outcome(Reason.CREDENTIAL_INVALID, "credential not recognised"))
    actor = Actor(kind="agent", label="(unidentified credential)")
    credential_ref: dict[str, Any] = {"kind": "unknown"}

    if credential.startswith("ck_"):
        credential_ref = {"kind": "agent_key"}
        prefix = credentials.parse_prefix("ck", credential)
        loaded = load_key_state(prefix, resource, action, at) if prefix else None
        if loaded is not None and credentials.matches(credential, loaded[0]):
            _, key = loaded
            credential_ref = {"kind": "agent_key", "id": key.key_id, "prefix": prefix}
            actor = Actor(kind="agent", label=key.agent_name, id=str(key.agent_id))
            result.outcome = decide_key(key, wanted, at)
            result.actors = [_agent_ref(key.agent_id, key.agent_name)]
    else:
        credential_ref = {"kind": "delegation_token"}
        try:
            # A token is good at Custos itself, or at the one resource it was minted for.
            verified = tokens.verify(credential, audiences=(settings.CUSTOS_ISSUER, resource), at=at)
        except tokens.TokenExpired:
            result.outcome = Outcome(Reason.CREDENTIAL_EXPIRED, "the token has expired")
            verified = None
        except tokens.TokenInvalid as exc:
            result.outcome = Outcome(Reason.CREDENTIAL_INVALID, str(exc))
            verified = None
        if verified is not None:
            credential_ref = {"kind": "delegation_token", "jti": verified.jti}
            claimed_agent = tokens.agent_id_of(verified.claims["act"].get("sub"))
            state = load_token_state(verified.jti, resource, action, at)
            if state is None or claimed_agent is None:
                result.outcome = Outcome(Reason.CREDENTIAL_INVALID, "no record of this token")
            else:
                token_scopes = frozenset(str(verified.claims["scope"]).split())
                result.outcome = decide_token(
                    state, claimed_agent_id=claimed_agent, token_scopes=token_scopes, wanted=wanted, at=at
                )
                if state.chain is not None:
                    chain = state.chain
                    acting = chain.links[-1]
                    actor = Actor(kind="agent", label=acting.agent_name, id=str(acting.agent_id))
                    result.subject = {"type": "human", "id": chain.root_human_id, "label": chain.root_human_name}
                    result.actors = [_agent_ref(link.agent_id, link.agent_name) for link in reversed(chain.links)]
                    result.delegation_chain = [
                        {"id": link.delegation_id, "delegate": link.agent_id, "status": link.status}
                        for link in chain.links
                    ]

    decision = "allow" if result.outcome.allowed else "deny"
    event = audit_append(
        actor=actor,
        action=f"check.{decision}",
        # The event's target id holds 64 characters and a resource name up to 120: the full scope is in
        # the label and the context, so a long name is a recorded decision, not a failed append (503).
        target=Target(type="scope", id=resource[:64], label=next(iter(wanted))),
        on_behalf_of=[result.subject, *reversed(result.actors[1:])] if result.subject else [],
        context={
            "decision": decision,
            "reason": result.outcome.reason,
            "detail": result.outcome.detail,
            "scope": next(iter(wanted)),
            "credential": credential_ref,
            "delegation_chain": [link["id"] for link in result.delegation_chain],
            **{name: context.get(name, "") for name in CONTEXT_FIELDS},
        },
    )
    # The decision's id is its audit event's hash: unique, indexed, and evidence in itself.
    result.decision_id = event.hash
    if actor.id:
        usage.record(agent_id=int(actor.id), key_id=credential_ref.get("id"), at=at)
        if not result.outcome.allowed and result.outcome.reason in jit.DRIFT_REASONS:
            try:
                jit.drift_observe(agent_id=int(actor.id), reason=result.outcome.reason)
            except DatabaseError:
                # The denial is recorded already; a missed drift signal must not turn it into a 503.
                log.warning("drift detection failed", exc_info=True)
    return result
