"""A repeated check's decision recorded at the cost of its few changing values.

Most checks are the same agent asking about the same scope again, decided on state kept from an earlier
check (``governance.livestate``), and their audit events differ only in five request fields (intent,
tool, session, request and parent request ids), the nonce and the moment. Building each event in full —
walking its values, encoding its JSON twice, making a model instance — and sending it through Django's
and psycopg's cursor layers costs more CPU than anything else in the check. So:

- ``EventTemplate`` holds an event's canonical content and its context column's JSON, encoded once by
  ``audit.hashing.canonical`` (the format's own encoder, so key order and escaping are exactly its)
  with placeholders where the changing values go, cut into literal pieces; a check joins the pieces
  with its values, each encoded as that encoder encodes a string. The bytes are those
  ``audit.services`` would write for the same event, and so is the digest taken over them
  (``tests/governance/test_hot_append.py`` holds the two to the same bytes over many varied events).
  A template is kept with the live state it was made from and dropped with it.
- ``append_if`` writes the event with ``audit.services``' own conditional append statement
  (``_PG_APPEND_IF``, the state version as its precondition), prepared once per connection and run
  through libpq directly: one call, no cursor objects. Errors are raised through Django's error
  wrapper, so a failure is the same ``DatabaseError`` (and marks the connection for Django's usability
  check) as through a cursor, and the check answers 503.
- Checks of one process in flight at the same moment (a threaded worker) are written together
  (``governance.group_commit``): one statement with a row per check, each row under its own check's
  precondition, so PostgreSQL parses, plans, commits and flushes once for all of them. A lone check
  is written at once, alone, by the one-row statement.

Only what plainly fits goes this way: values that are exact strings with no characters beyond the
Basic Multilingual Plane (where the format may sort keys otherwise) and no NUL (libpq's text
parameters end at one); a connection whose queries Django is not logging (``DEBUG``, test query
capture) and that has no transaction open (see ``usable``); PostgreSQL. Everything else takes
``audit.services``, as before.
"""

from __future__ import annotations

import operator
import os
import re
import secrets
import threading
from collections.abc import Sequence
from datetime import UTC, datetime
from hashlib import sha256
from json.encoder import encode_basestring
from typing import Any
from weakref import WeakKeyDictionary

from django.db import DEFAULT_DB_ALIAS, connections
from psycopg import errors as pg_errors
from psycopg import pq

from audit.hashing import ASTRAL, canonical, content_document
from audit.services import _COLUMNS, _PG_APPEND_IF, Actor, Target
from governance import livestate
from governance.group_commit import GroupCommit

# The fields a check's request supplies, in the order ``append_if`` takes their values.
REQUEST_FIELDS = ("intent", "tool", "session_id", "request_id", "parent_request_id")

_NONCE, _MOMENT = len(REQUEST_FIELDS), len(REQUEST_FIELDS) + 1

_STATEMENT = b"custos_check_append_if"
_TUPLES_OK = pq.ExecStatus.TUPLES_OK
_SQLSTATE = pq.DiagnosticField.SQLSTATE
_IDLE = pq.TransactionStatus.IDLE
_NO_SUCH_STATEMENT = b"26000"

# Enough random bytes for many nonces per system call; each nonce is 16 of them, never reused.
_NONCE_BYTES = 16
_RANDOM_BATCH = 4096


def _placeholder_sql(sql: str) -> bytes:
    """``sql`` with its ``%s`` parameters numbered as libpq takes them ($1, $2, ...)."""
    parts = sql.split("%s")
    numbered = parts[0] + "".join(f"${i}{part}" for i, part in enumerate(parts[1:], start=1))
    return numbered.encode()


class _Random(threading.local):
    """Nonces from a per-thread buffer of ``os.urandom`` bytes: the same randomness as
    ``secrets.token_hex`` (which reads ``os.urandom`` for each), one system call per 256 nonces. A
    forked child starts with an empty buffer, so no two processes ever hand out the same bytes."""

    def __init__(self) -> None:
        self.buffer = b""
        self.at = 0

    def token_hex(self) -> str:
        at = self.at
        if at + _NONCE_BYTES > len(self.buffer):
            self.buffer, at = os.urandom(_RANDOM_BATCH), 0
        self.at = at + _NONCE_BYTES
        return self.buffer[at : at + _NONCE_BYTES].hex()


_random = _Random()


def _new_random_after_fork() -> None:
    global _random
    _random = _Random()


os.register_at_fork(after_in_child=_new_random_after_fork)


def _plain(value: Any) -> bool:
    """Plain JSON as ``audit.services`` writes it unchanged: exact types, integers within what RFC 8785
    represents exactly, no floats (a document with none is encoded by the C encoder)."""
    kind = type(value)
    if kind is str or kind is bool or value is None:
        return True
    if kind is int:
        return -(2**53 - 1) <= value <= 2**53 - 1
    if kind is dict:
        return all(type(key) is str and _plain(item) for key, item in value.items())
    if kind is list:
        return all(_plain(item) for item in value)
    return False


class EventTemplate:
    """The constant part of a check's audit event, encoded; ``append_if`` adds the changing values."""

    __slots__ = ("_canonical", "_canonical_order", "_context", "_context_order", "_static")

    def __init__(self, canonical_text: str, context_text: str, mark: str, static: list[bytes]) -> None:
        self._canonical, self._canonical_order = _format(canonical_text, mark, _MOMENT + 1)
        self._context, self._context_order = _format(context_text, mark, len(REQUEST_FIELDS))
        self._static = static

    @classmethod
    def of(
        cls, *, actor: Actor, action: str, target: Target, on_behalf_of: Sequence[Any], context: dict[str, Any]
    ) -> EventTemplate | None:
        """The template of an event with these values and the request fields still to come (any in
        ``context`` are ignored); None when the event does not plainly fit this path."""
        mark = f"\ue000{secrets.token_hex(8)}:"
        slots = [f"{mark}{i}\ue000" for i in range(_MOMENT + 1)]
        fixed = {name: value for name, value in context.items() if name not in REQUEST_FIELDS}
        obo = list(on_behalf_of)
        if not (_plain(fixed) and _plain(obo)):
            return None
        full_context = {**fixed, **dict(zip(REQUEST_FIELDS, slots, strict=False))}
        actor_label, target_label = actor.label[:200], target.label[:200]
        document = content_document(
            occurred_at=datetime(2000, 1, 1, tzinfo=UTC),
            actor_kind=actor.kind,
            actor_id=actor.id,
            actor_label=actor_label,
            on_behalf_of=obo,
            action=action,
            target_type=target.type,
            target_id=target.id,
            target_label=target_label,
            context=full_context,
            nonce=slots[_NONCE],
        )
        document["occurred_at"] = slots[_MOMENT]
        text = canonical(document, floats=False).decode()
        context_text = canonical(full_context, floats=False).decode()
        obo_text = canonical(obo, floats=False).decode()
        static = [actor.kind, actor.id, actor_label, obo_text, action, target.type, target.id, target_label]
        if any(ASTRAL.search(value) or "\x00" in value for value in (text, *static)):
            return None
        try:
            return cls(text, context_text, mark, [value.encode() for value in static])
        except ValueError:
            return None

    def render(self, values: Sequence[Any], nonce: str, moment: str) -> tuple[str, str] | None:
        """The event's canonical content and its context column's JSON with the request fields'
        ``values`` (in ``REQUEST_FIELDS`` order), the nonce and the moment (``audit.hashing.isoformat``);
        None if the values do not plainly fit this path."""
        encoded = []
        for value in values:
            if type(value) is not str:
                return None
            encoded.append(encode_basestring(value))
        encoded.append(f'"{nonce}"')
        encoded.append(f'"{moment}"')
        content = self._canonical % self._canonical_order(encoded)
        if not content.isascii() and ASTRAL.search(content):
            return None
        return content, self._context % self._context_order(encoded)

    def append_if(self, values: Sequence[Any], version: int, wrapper: Any) -> str | bool | None:
        """Record the event with the request fields' ``values`` if the state is still at ``version``, on
        ``wrapper``'s connection (what ``usable`` gave), with whatever other threads of this process are
        recording at the same moment (``group_commit``): its digest; None if the state has moved
        (nothing written); False if the values do not plainly fit this path (nothing done: take
        ``audit.services``)."""
        params = self.parameters(values, version)
        if params is None:
            return False
        return params[0].decode() if _group.submit(params, wrapper) else None

    def parameters(self, values: Sequence[Any], version: int) -> list[bytes] | None:
        """The append's parameters for an event with these request values, a new nonce and this moment,
        in ``_COLUMNS``' order (digest, canonical, nonce, occurred_at, actor kind/id/label, on_behalf_of,
        action, target type/id/label, context), then the precondition's version; None if the values do
        not plainly fit this path."""
        nonce = _random.token_hex()
        moment = datetime.now(UTC).isoformat(timespec="microseconds")
        rendered = self.render(values, nonce, moment)
        if rendered is None:
            return None
        content = rendered[0].encode()
        digest = sha256(content).hexdigest()
        params = [digest.encode(), content, nonce.encode(), moment.encode(), *self._static]
        params += [rendered[1].encode(), b"%d" % version]
        return params


def _format(text: str, mark: str, count: int) -> tuple[str, Any]:
    """``text`` as a %-format with a ``%s`` where each placeholder (a whole JSON string value) was, and
    the function picking the values for them, in the order they appear, from a list indexed by slot."""
    parts = re.split(f'"{re.escape(mark)}([0-9]+)\ue000"', text)
    pieces, slots = parts[::2], [int(i) for i in parts[1::2]]
    if sorted(slots) != list(range(count)) or any(mark in piece for piece in pieces):
        raise ValueError("each placeholder must appear once, as a value")
    pick = operator.itemgetter(*slots)
    if len(slots) == 1:
        return "%s".join(piece.replace("%", "%%") for piece in pieces), lambda values: (pick(values),)
    return "%s".join(piece.replace("%", "%%") for piece in pieces), pick


# The statements prepared on each connection (libpq's, so a reconnection prepares them again).
_prepared: WeakKeyDictionary[Any, set[bytes]] = WeakKeyDictionary()
_PRECONDITION = livestate.unchanged_since(0).sql
_SQL = _placeholder_sql(_PG_APPEND_IF.format(precondition=_PRECONDITION))
_PARAMETERS = (
    "digest",
    "canonical",
    "nonce",
    "occurred_at",
    "actor_kind",
    "actor_id",
    "actor_label",
    "on_behalf_of",
    "action",
    "target_type",
    "target_id",
    "target_label",
    "context",
)
if _COLUMNS != _PARAMETERS:
    raise ImportError("audit.services' append statement takes other columns: update append_if's parameters")
if _PRECONDITION.count("%s") != 1:
    raise ImportError("the live state's precondition takes other parameters: update the batch statement")

# Concurrent checks of one process (a threaded worker) recorded by one statement: at most this many.
BATCH_LIMIT = 32
_CASTS = {"occurred_at": "::timestamptz", "on_behalf_of": "::jsonb", "context": "::jsonb"}


def _batch_sql(rows: int) -> bytes:
    """``_SQL`` for ``rows`` events at once, each with its own precondition (the state version its check
    decided on), the same condition tested per row: the digests of those written."""
    width = len(_PARAMETERS) + 1
    values = ", ".join(
        "(" + ", ".join(f"${row * width + column}" for column in range(1, width + 1)) + ")" for row in range(rows)
    )
    columns = ", ".join(_PARAMETERS)
    picked = ", ".join(f"r.{name}{_CASTS.get(name, '')}" for name in _PARAMETERS)
    condition = _PRECONDITION.replace("%s", "r.state_version::bigint")
    return f"""
INSERT INTO audit_intake ({columns})
SELECT {picked} FROM (VALUES {values}) AS r({columns}, state_version)
 WHERE EXISTS ({condition})
RETURNING digest
""".encode()  # noqa: S608 - formatted from constants only


def _write(batch: Sequence[list[bytes]], wrapper: Any) -> list[bool]:
    """Run the append for ``batch`` (each item ``append_if``'s parameters) in one statement on
    ``wrapper``'s connection; whether each event was written."""
    if len(batch) == 1:
        return [bool(_execute(_STATEMENT, _SQL, batch[0], wrapper).ntuples)]
    name = b"%s_%d" % (_STATEMENT, len(batch))
    result = _execute(name, None, [value for params in batch for value in params], wrapper)
    written = {result.get_value(row, 0) for row in range(result.ntuples)}
    return [params[0] in written for params in batch]


_group: GroupCommit[list[bytes], bool] = GroupCommit(_write, limit=BATCH_LIMIT)


def usable() -> Any:
    """The default connection's wrapper if it can take this path, else None: PostgreSQL, queries not
    being logged, autocommit (the append commits by itself, as through a cursor) and no transaction
    open (psycopg answers a rollback with ``DEALLOCATE ALL`` on its next statement, which takes this
    statement too; outside a transaction the append then simply prepares it again, inside one the
    failed attempt would have aborted the transaction)."""
    wrapper: Any = connections[DEFAULT_DB_ALIAS]
    if wrapper.vendor != "postgresql" or wrapper.queries_logged:
        return None
    raw = wrapper.connection
    if raw is None or (raw.autocommit and raw.pgconn.transaction_status == _IDLE):
        return wrapper
    return None


def _execute(name: bytes, sql: bytes | None, params: list[bytes], wrapper: Any) -> Any:
    """Run the prepared statement ``name`` (``sql``; None: the batch statement for the parameters'
    count) on ``wrapper``'s connection (``usable``), preparing it first if this connection has not;
    its result. The connection is made ready as Django makes it for a cursor: health-checked when due,
    then connected if it is not."""
    wrapper.close_if_health_check_failed()
    if wrapper.connection is None:
        wrapper.ensure_connection()
    raw = wrapper.connection
    with wrapper.wrap_database_errors, raw.lock:
        pgconn = raw.pgconn
        prepared = _prepared.setdefault(pgconn, set())
        if name not in prepared:
            _prepare(pgconn, name, sql, len(params))
            prepared.add(name)
        result = pgconn.exec_prepared(name, params)
        if result.status != _TUPLES_OK and result.error_field(_SQLSTATE) == _NO_SUCH_STATEMENT:
            # Deallocated behind this module's back (psycopg's DEALLOCATE ALL after a rollback, DISCARD
            # ALL): nothing was run, and outside a transaction (``usable``) nothing is aborted.
            prepared.clear()
            _prepare(pgconn, name, sql, len(params))
            prepared.add(name)
            result = pgconn.exec_prepared(name, params)
        _check(result)
        return result


def _prepare(pgconn: Any, name: bytes, sql: bytes | None, count: int) -> None:
    _check(pgconn.prepare(name, sql if sql is not None else _batch_sql(count // (len(_PARAMETERS) + 1))))


def _check(result: Any) -> None:
    if result.status not in (_TUPLES_OK, pq.ExecStatus.COMMAND_OK):
        raise pg_errors.error_from_result(result, encoding="utf-8")
