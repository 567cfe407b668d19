"""Appending to the audit log: the only way events are written.

An append inserts the event and its entry in the sealer's queue, nothing else: no lock on the chain, so
concurrent writers only share WAL flushes. The event's digest (its public id) is computed here, before
it is sealed (``audit.sealer`` gives it its place in the chain).
"""

from __future__ import annotations

import json
import math
import secrets
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from django.core.serializers.json import DjangoJSONEncoder
from django.db import connection, transaction
from django.utils import timezone

from audit.hashing import canonical, digest_of, event_document
from audit.models import ActorKind, AuditEvent, PendingSeal


@dataclass(frozen=True, slots=True)
class Actor:
    """Who did it: a label people read plus an id that survives the deletion of what it names."""

    kind: str
    label: str
    id: str = ""

    @classmethod
    def system(cls, label: str = "system") -> Actor:
        return cls(kind=ActorKind.SYSTEM, label=label)

    @classmethod
    def user(cls, user: Any) -> Actor:
        return cls(kind=ActorKind.USER, label=user.get_username(), id=str(user.pk))

    @classmethod
    def agent(cls, agent: Any) -> Actor:
        return cls(kind=ActorKind.AGENT, label=str(agent.name), id=str(agent.pk))

    @classmethod
    def of(cls, user: Any) -> Actor:
        """Whoever a request is made by: a console user, or an agent calling with its own credential
        (its principal says ``is_agent`` and carries the ``agent``)."""
        if getattr(user, "is_agent", False):
            return cls.agent(user.agent)
        return cls.user(user)


@dataclass(frozen=True, slots=True)
class Target:
    type: str
    id: str = ""
    label: str = ""

    @classmethod
    def of(cls, obj: Any, label: str | None = None) -> Target:
        return cls(type=obj._meta.model_name, id=str(obj.pk), label=label if label is not None else str(obj)[:200])


@dataclass(frozen=True, slots=True)
class PendingEvent:
    actor: Actor
    action: str
    target: Target = field(default_factory=lambda: Target(type=""))
    context: dict[str, Any] = field(default_factory=dict)
    on_behalf_of: Sequence[Any] = ()


# The largest integer RFC 8785 (I-JSON: IEEE 754 doubles) represents exactly.
_MAX_EXACT_INT = 2**53 - 1


def _exact_numbers(value: Any) -> Any:
    """Numbers that would not survive the round trip unchanged, as their text.

    RFC 8785 cannot encode integers beyond 2^53 - 1 nor NaN and infinities, PostgreSQL's jsonb refuses
    the latter, and it hands floats written in exponent form (1e+16 and up) back as integers. Left as
    numbers, such a value would make the append fail or, worse, be stored but never verify again — and
    contexts carry what agents send.
    """
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return value
    if isinstance(value, int):
        return value if abs(value) <= _MAX_EXACT_INT else str(value)
    if isinstance(value, float):
        return value if math.isfinite(value) and abs(value) <= _MAX_EXACT_INT else repr(value)
    if isinstance(value, list):
        return [_exact_numbers(item) for item in value]
    if isinstance(value, dict):
        return {key: _exact_numbers(item) for key, item in value.items()}
    return value


def _plain_json(value: Any) -> Any:
    # What is hashed must be exactly what the database gives back: plain JSON types only.
    return _exact_numbers(json.loads(json.dumps(value, cls=DjangoJSONEncoder)))


_COLUMNS = (
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
_JSON_COLUMNS = ("on_behalf_of", "context")

# The events and their queue entries in one statement, whatever their number: each column travels as
# one array (a constant number of parameters), the CTE inserts the events and then their queue entries.
_PG_APPEND = f"""
WITH e AS (
    INSERT INTO audit_auditevent ({", ".join(_COLUMNS)})
    SELECT * FROM unnest(
        %s::varchar[], %s::text[], %s::varchar[], %s::timestamptz[], %s::varchar[], %s::varchar[], %s::varchar[],
        %s::jsonb[], %s::varchar[], %s::varchar[], %s::varchar[], %s::varchar[], %s::jsonb[]
    )
    RETURNING id, digest, occurred_at
)
INSERT INTO audit_pendingseal (event_id, digest, occurred_at)
SELECT id, digest, occurred_at FROM e
RETURNING event_id, digest
"""  # noqa: S608 - formatted from constants only

# One event (every service change, every check): plain values, cheaper to send than one-element arrays.
_PG_APPEND_ONE = f"""
WITH e AS (
    INSERT INTO audit_auditevent ({", ".join(_COLUMNS)})
    VALUES (%s, %s, %s, %s, %s, %s, %s, %s::jsonb, %s, %s, %s, %s, %s::jsonb)
    RETURNING id, digest, occurred_at
)
INSERT INTO audit_pendingseal (event_id, digest, occurred_at)
SELECT id, digest, occurred_at FROM e
RETURNING event_id, digest
"""  # noqa: S608 - formatted from constants only


def _event(pending: PendingEvent, occurred_at: Any) -> AuditEvent:
    target = pending.target
    event = AuditEvent(
        nonce=secrets.token_hex(16),
        occurred_at=occurred_at,
        actor_kind=pending.actor.kind,
        actor_id=pending.actor.id,
        actor_label=pending.actor.label[:200],
        on_behalf_of=_plain_json(list(pending.on_behalf_of)),
        action=pending.action,
        target_type=target.type,
        target_id=target.id,
        target_label=target.label[:200],
        context=_plain_json(pending.context),
    )
    content = canonical(event_document(event))
    event.canonical = content.decode()
    event.digest = digest_of(content)
    return event


def audit_append(
    *,
    actor: Actor,
    action: str,
    target: Target | None = None,
    context: dict[str, Any] | None = None,
    on_behalf_of: Sequence[Any] = (),
) -> AuditEvent:
    """Append one event. Call inside the transaction of the change it records: the event is then
    durable exactly when the change is. Outside any transaction (the runtime check) it is durable when
    this returns. Its ``digest`` is its id from now on; its seal follows within the sealing delay."""
    pending = PendingEvent(
        actor=actor, action=action, target=target or Target(type=""), context=context or {}, on_behalf_of=on_behalf_of
    )
    return audit_append_many([pending])[0]


def audit_append_many(events: Sequence[PendingEvent]) -> list[AuditEvent]:
    """Append a batch of events in a constant number of statements (one on PostgreSQL), in order.
    For services that change many rows at once: sweeps, campaign launches, offboarding."""
    if not events:
        return []
    now = timezone.now()
    built = [_event(pending, now) for pending in events]
    if connection.vendor == "postgresql":
        _insert_postgresql(built)
    else:
        with transaction.atomic():
            AuditEvent.objects.bulk_create(built)
            PendingSeal.objects.bulk_create(
                [PendingSeal(event_id=e.pk, digest=e.digest, occurred_at=e.occurred_at) for e in built]
            )
    return built


def _insert_postgresql(events: list[AuditEvent]) -> None:
    # One statement: atomic by itself even in autocommit (the runtime check saves BEGIN and COMMIT).
    if len(events) == 1:
        event = events[0]
        values = [json.dumps(getattr(event, n)) if n in _JSON_COLUMNS else getattr(event, n) for n in _COLUMNS]
        statement, params = _PG_APPEND_ONE, values
    else:
        params = []
        for name in _COLUMNS:
            column = [getattr(event, name) for event in events]
            params.append([json.dumps(v) for v in column] if name in _JSON_COLUMNS else column)
        statement = _PG_APPEND
    with connection.cursor() as cursor:
        cursor.execute(statement, params)
        ids = {digest: event_id for event_id, digest in cursor.fetchall()}
    for event in events:
        event.pk = ids[event.digest]
        event._state.adding = False
