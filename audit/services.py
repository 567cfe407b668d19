"""Appending to the audit log: the only way events are written."""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from django.core.serializers.json import DjangoJSONEncoder
from django.db import connection, transaction
from django.utils import timezone

from audit.hashing import chain_hash, event_digest
from audit.models import ActorKind, AuditEvent, ChainHead


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


_PG_APPEND = """
WITH head AS (
    UPDATE audit_chainhead
       SET seq = seq + 1,
           prev_hash = hash,
           hash = encode(sha256(convert_to((seq + 1)::text || '|' || hash || '|' || %s, 'UTF8')), 'hex')
     WHERE id = 1
 RETURNING seq, prev_hash, hash
)
INSERT INTO audit_auditevent (
    seq, occurred_at, actor_kind, actor_id, actor_label, on_behalf_of, action,
    target_type, target_id, target_label, context, prev_hash, hash
)
SELECT head.seq, %s, %s, %s, %s, %s::jsonb, %s, %s, %s, %s, %s::jsonb, head.prev_hash, head.hash
  FROM head
RETURNING id, seq, prev_hash, hash
"""


def audit_append(
    *,
    actor: Actor,
    action: str,
    target: Target | None = None,
    context: dict[str, Any] | None = None,
    on_behalf_of: Sequence[Any] = (),
) -> AuditEvent:
    """Append one event. Call inside the transaction of the change it records.

    The chain head's row lock serialises writers until their transactions end, so concurrent appends
    from any number of processes form one linear chain; on PostgreSQL the append is one statement.
    """
    target = target or Target(type="")
    event = AuditEvent(
        occurred_at=timezone.now(),
        actor_kind=actor.kind,
        actor_id=actor.id,
        actor_label=actor.label[:200],
        on_behalf_of=_plain_json(list(on_behalf_of)),
        action=action,
        target_type=target.type,
        target_id=target.id,
        target_label=target.label[:200],
        context=_plain_json(context or {}),
    )
    digest = event_digest(event)
    if connection.vendor == "postgresql" and connection.get_autocommit():
        # Outside any transaction (the runtime check) the one statement is its own transaction: atomic
        # by itself, committed with its own round trip, saving the BEGIN and COMMIT round trips.
        _append_postgresql(event, digest)
        return event
    with transaction.atomic():
        if connection.vendor == "postgresql":
            _append_postgresql(event, digest)
        else:
            _append_portable(event, digest)
    return event


def _append_postgresql(event: AuditEvent, digest: str) -> None:
    with connection.cursor() as cursor:
        cursor.execute(
            _PG_APPEND,
            [
                digest,
                event.occurred_at,
                event.actor_kind,
                event.actor_id,
                event.actor_label,
                json.dumps(event.on_behalf_of),
                event.action,
                event.target_type,
                event.target_id,
                event.target_label,
                json.dumps(event.context),
            ],
        )
        row = cursor.fetchone()
    if row is None:  # the head row is created by a migration; its absence is a broken install
        raise RuntimeError("audit chain head is missing; run migrations")
    event.pk, event.seq, event.prev_hash, event.hash = row
    event._state.adding = False


def _append_portable(event: AuditEvent, digest: str) -> None:
    # SQLite (the embedded development default) has a single writer per database, and Custos opens
    # its transactions IMMEDIATE, so reading then updating the head cannot interleave with another
    # writer.
    head = ChainHead.objects.select_for_update().get(pk=1)
    event.seq = head.seq + 1
    event.prev_hash = head.hash
    event.hash = chain_hash(event.seq, event.prev_hash, digest)
    ChainHead.objects.filter(pk=1).update(seq=event.seq, prev_hash=event.prev_hash, hash=event.hash)
    event.save(force_insert=True)
