"""The live state of a delegation chain: one typed structure, two loaders.

``decision.ChainState`` (and, for a token, ``decision.TokenState``) is what the decision core decides
on. It is loaded either

- in one SQL round trip (``load_chain``, ``load_token``): the runtime check, token authentication and
  introspection, where every request pays for it; or
- through the ORM (``chain_of``), with the ``Delegation`` objects themselves: the token exchange and
  the services, which also need the links' names and locks.

Both read the same rows and must return equal states (a property test holds them to it over generated
organisations). Nothing here is cached: a revocation is seen by the very next load, in every process.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from django.conf import settings
from django.db import connection
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from governance import decision
from governance.models import SCOPE_SEPARATOR, Delegation
from governance.selectors import human_held_scopes

Reason = decision.Reason


# --- One round trip -------------------------------------------------------------------------

# Whether {holder} holds one scope (resource name, action) by a grant in force at a moment.
ACTIVE_GRANT_SQL = """
    SELECT 1 FROM governance_grant g JOIN governance_resource r ON r.id = g.resource_id
     WHERE {holder} AND r.name = %s AND g.action = %s AND g.status = 'active'
       AND g.valid_from <= %s AND (g.expires_at IS NULL OR g.expires_at > %s)
"""

# When whether {holder} holds the scope can next change by time alone: the earliest start or end, after
# the moment asked about, of its active grants for it (NULL: never). Until then a yes or no stands.
NEXT_GRANT_CHANGE_SQL = """(
    SELECT min(boundary) FROM (
        SELECT g.valid_from AS boundary
          FROM governance_grant g JOIN governance_resource r ON r.id = g.resource_id
         WHERE {holder} AND r.name = %s AND g.action = %s AND g.status = 'active' AND g.valid_from > %s
        UNION ALL
        SELECT g.expires_at
          FROM governance_grant g JOIN governance_resource r ON r.id = g.resource_id
         WHERE {holder} AND r.name = %s AND g.action = %s AND g.status = 'active' AND g.expires_at > %s
    ) AS boundaries
)"""

# The state's version (``models.StateVersion``), read in the same statement as the state itself.
STATE_VERSION_SQL = "(SELECT version FROM governance_stateversion WHERE id = 1)"

# The links from ``{seed}`` up to the root, each with its delegate, the delegate's sponsor and the root
# human, and whether the root human holds the one scope asked about (by an active grant, now).
_CHAIN = """
chain(id, parent_id, status, expires_at, scopes, delegate_id, root_human_id, hop) AS (
    SELECT d.id, d.parent_id, d.status, d.expires_at, d.scopes, d.delegate_id, d.root_human_id, 0
      FROM governance_delegation d WHERE d.id = {seed}
    UNION ALL
    SELECT d.id, d.parent_id, d.status, d.expires_at, d.scopes, d.delegate_id, d.root_human_id, chain.hop + 1
      FROM governance_delegation d JOIN chain ON d.id = chain.parent_id
)"""

_CHAIN_COLUMNS = f"""
       chain.id AS link_id, chain.parent_id AS link_parent_id, chain.status AS link_status,
       chain.expires_at AS link_expires_at, chain.scopes AS link_scopes,
       a.id AS agent_id, a.name AS agent_name, a.status AS agent_status,
       s.name AS sponsor_name, s.status AS sponsor_status,
       h.id AS human_id, h.name AS human_name, h.status AS human_status,
       EXISTS({ACTIVE_GRANT_SQL.format(holder="g.holder_human_id = h.id")}) AS human_holds_scope"""

_CHAIN_JOINS = """
  LEFT JOIN governance_agent a ON a.id = chain.delegate_id
  LEFT JOIN governance_human s ON s.id = a.sponsor_id
  LEFT JOIN governance_human h ON h.id = chain.root_human_id"""

_CHAIN_SQL = f"""
WITH RECURSIVE {_CHAIN.format(seed="%s")}
SELECT {_CHAIN_COLUMNS}
  FROM chain {_CHAIN_JOINS}
 ORDER BY chain.hop DESC
"""  # noqa: S608 - formatted from constants only, never from input

_TOKEN_SQL_TEMPLATE = f"""
WITH RECURSIVE tok AS (
    SELECT t.delegation_id, t.agent_id, t.revoked_at, t.expires_at, t.scopes, t.audience
      FROM governance_delegationtoken t WHERE t.jti = %s
), {_CHAIN.format(seed="(SELECT delegation_id FROM tok)")}
SELECT tok.agent_id AS token_agent_id, tok.revoked_at IS NOT NULL AS token_revoked,
       tok.expires_at AS token_expires_at, tok.scopes AS token_scopes, tok.audience AS token_audience,
       tok.delegation_id AS token_delegation_id, {_CHAIN_COLUMNS}{{versioned}}
  FROM tok
  LEFT JOIN chain ON TRUE {_CHAIN_JOINS}
 ORDER BY chain.hop DESC
"""  # noqa: S608 - formatted from constants only, never from input
_TOKEN_SQL = _TOKEN_SQL_TEMPLATE.format(versioned="")
# The same, with what ``governance.livestate`` keeps it under: the state's version, and until when the
# grant answer stands.
_TOKEN_SQL_VERSIONED = _TOKEN_SQL_TEMPLATE.format(
    versioned=f""",
       {STATE_VERSION_SQL} AS state_version,
       {NEXT_GRANT_CHANGE_SQL.format(holder="g.holder_human_id = h.id")} AS grant_changes_at"""
)


def as_datetime(value: Any) -> datetime:
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


def _rows(sql: str, params: list[Any]) -> list[dict[str, Any]]:
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        names = [column[0] for column in cursor.description]
        return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]


def _scope_params(scope: str | None, at: datetime) -> list[Any]:
    resource, _, action = (scope or "").partition(SCOPE_SEPARATOR)
    moment = connection.ops.adapt_datetimefield_value(at)
    return [resource, action, moment, moment]


def _chain_from_rows(rows: list[dict[str, Any]], scope: str | None) -> decision.ChainState:
    links = tuple(
        decision.Link(
            delegation_id=row["link_id"],
            parent_id=row["link_parent_id"],
            status=row["link_status"],
            expires_at=as_datetime(row["link_expires_at"]),
            scopes=_as_scopes(row["link_scopes"]),
            agent_id=row["agent_id"],
            agent_name=row["agent_name"],
            agent_status=row["agent_status"],
            sponsor_name=row["sponsor_name"],
            sponsor_status=row["sponsor_status"],
        )
        for row in rows
    )
    root = rows[0]
    return decision.ChainState(
        links=links,
        root_human_id=root["human_id"],
        root_human_name=root["human_name"],
        root_human_status=root["human_status"],
        root_holds=frozenset({scope}) if scope and root["human_holds_scope"] else frozenset(),
    )


def load_chain(delegation_id: int, scope: str | None, at: datetime) -> decision.ChainState | None:
    """The live chain of a delegation, root first, and whether its root human holds ``scope`` (one
    ``resource:action``; None asks about no scope). None when there is no such delegation."""
    rows = _rows(_CHAIN_SQL, [delegation_id, *_scope_params(scope, at)])
    return _chain_from_rows(rows, scope) if rows else None


@dataclass(frozen=True, slots=True)
class Versioned:
    """A state as loaded, with the version of the whole it was read at and the moment until which its
    grant answer stands by time (None: as long as nothing changes). ``version`` is None where there is
    no version to go by (SQLite, or the version row gone): such a state is not kept."""

    state: Any
    version: int | None
    until: datetime | None

    @classmethod
    def of(cls, state: Any, row: dict[str, Any]) -> Versioned:
        """``state`` with the version and grant horizon read beside it (the ``*_VERSIONED`` queries)."""
        until = row["grant_changes_at"]
        return cls(state, row["state_version"], as_datetime(until) if until is not None else None)


def load_token(jti: str, scope: str | None, at: datetime) -> decision.TokenState | None:
    """An issued token's record and the live chain of its delegation, in one round trip. None when no
    token with this jti was ever issued."""
    rows = _rows(_TOKEN_SQL, [jti, *_scope_params(scope, at)])
    return _token_from_rows(rows, scope) if rows else None


def load_token_versioned(jti: str, scope: str | None, at: datetime) -> Versioned | None:
    """``load_token``, with the state's version and until when its grant answer stands, in the same
    round trip."""
    params = _scope_params(scope, at)
    rows = _rows(_TOKEN_SQL_VERSIONED, [jti, *params, *params[:3], *params[:3]])
    return Versioned.of(_token_from_rows(rows, scope), rows[0]) if rows else None


def _token_from_rows(rows: list[dict[str, Any]], scope: str | None) -> decision.TokenState:
    first = rows[0]
    return decision.TokenState(
        revoked=bool(first["token_revoked"]),
        agent_id=first["token_agent_id"],
        chain=_chain_from_rows(rows, scope) if first["link_id"] is not None else None,
        # The recorded expiry gets the same clock-skew leeway as the signed one.
        expires_at=as_datetime(first["token_expires_at"]) + settings.CUSTOS_TOKEN_LEEWAY,
        scopes=_as_scopes(first["token_scopes"]),
        audience=first["token_audience"],
        delegation_id=first["token_delegation_id"],
    )


# --- Through the ORM ------------------------------------------------------------------------


def delegation_chain(delegation: Delegation) -> list[Delegation]:
    """The links from the root down to ``delegation``, with delegates and sponsors loaded.

    Every link is read afresh, ``delegation`` included: the instance in hand (and the agent and sponsor
    cached on it) may predate a revocation, suspension or departure made through another instance or
    process, and must not vouch for itself.
    """
    current = Delegation.objects.select_related("delegate__sponsor", "root_human").get(pk=delegation.pk)
    chain = [current]
    while current.parent_id is not None:
        current = Delegation.objects.select_related("delegate__sponsor", "root_human").get(pk=current.parent_id)
        chain.append(current)
    chain.reverse()
    return chain


def chain_of(
    delegation: Delegation, wanted: frozenset[str], at: datetime
) -> tuple[decision.ChainState, list[Delegation]]:
    """The same state as ``load_chain`` for any set of scopes, and the links themselves, root first."""
    chain = delegation_chain(delegation)
    root_human = chain[0].root_human
    held = frozenset(wanted & human_held_scopes(root_human, at)) if wanted else frozenset()
    state = decision.ChainState(
        links=tuple(
            decision.Link(
                delegation_id=link.pk,
                parent_id=link.parent_id,
                status=link.status,
                expires_at=link.expires_at,
                scopes=link.scope_set,
                agent_id=link.delegate_id,
                agent_name=link.delegate.name,
                agent_status=link.delegate.status,
                sponsor_name=link.delegate.sponsor.name,
                sponsor_status=link.delegate.sponsor.status,
            )
            for link in chain
        ),
        root_human_id=root_human.pk,
        root_human_name=root_human.name,
        root_human_status=root_human.status,
        root_holds=held,
    )
    return state, chain


# --- Usability ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Usability:
    usable: bool
    reason: str
    detail: str = ""
    # Root first, the delegation asked about last.
    chain: list[Delegation] = field(default_factory=list)


def delegation_usability(
    delegation: Delegation, *, scopes: frozenset[str] | set[str] | None = None, at: datetime | None = None
) -> Usability:
    """Is ``delegation`` usable at ``at`` (now by default) for ``scopes`` (all of its own by default)?

    Usable only while every link up to the root, every agent on it and their sponsors, and the root
    human are active and unexpired, the scopes were delegated, and the root human still holds each.
    The rules themselves are ``governance.decision.decide_chain``, shared with the runtime check.
    """
    at = at or timezone.now()
    wanted = frozenset(scopes) if scopes is not None else delegation.scope_set
    state, chain = chain_of(delegation, wanted, at)
    outcome = decision.decide_chain(state, wanted, at)
    return Usability(outcome.allowed, outcome.reason, outcome.detail, chain)
