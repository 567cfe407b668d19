"""Appending to the audit log: the only way events are written.

An append inserts the event, nothing else: no lock on the chain, so concurrent writers only share WAL
flushes. On PostgreSQL it goes into the intake (a table of the log's shape, seen by every query of the
log, with none of its indexes or checks: the sealer moves events into the log proper in batches); on
SQLite into the log with an entry in the sealer's queue. The event's digest (its public id) is computed
here, before it is sealed (``audit.sealer`` gives it its place in the chain).
"""

from __future__ import annotations

import json
import math
import secrets
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cache
from json.encoder import encode_basestring
from typing import TYPE_CHECKING, Any

from django.core.serializers.json import DjangoJSONEncoder
from django.db import connection, transaction
from django.db.models.base import ModelState
from django.db.models.signals import post_init, pre_init
from django.utils import timezone

from audit.hashing import ASTRAL, canonical, content_document, digest_of, isoformat
from audit.models import ActorKind, AuditEvent, PendingSeal

if TYPE_CHECKING:
    from audit.verification import VerifyResult


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


# One encoder for every event (``json.dumps`` with options builds a new one per call).
_COMPACT = json.JSONEncoder(sort_keys=True, ensure_ascii=False, separators=(",", ":")).encode


def _compact(value: Any) -> str:
    """Plain JSON as the canonical form writes it when it holds no float (sorted keys, no spaces, text
    as it is): good for the jsonb column and, as it stands, for its place in the canonical document."""
    return _COMPACT(value)


# A JSON string as ``json.dumps(value, ensure_ascii=False)`` writes it, without its Python-level wrapper
# (called nine times per event).
_string = encode_basestring


class _Plain:
    """Turns a context (or on-behalf-of list) into plain JSON, exactly as the database will give it back.

    Numbers that would not survive the round trip unchanged become their text: RFC 8785 cannot encode
    integers beyond 2^53 - 1 nor NaN and infinities, PostgreSQL's jsonb refuses the latter, and it hands
    floats written in exponent form (1e+16 and up) back as integers. Left as numbers, such a value would
    make the append fail or, worse, be stored but never verify again — and contexts carry what agents
    send. The numbers are met by the C parser's hooks, so a value without them costs no Python walk;
    whether any float remains is noted for the canonical encoder.
    """

    def __init__(self) -> None:
        self.floats = False
        self.changed = False

    def _int(self, text: str) -> int | str:
        number = int(text)
        if abs(number) <= _MAX_EXACT_INT:
            return number
        self.changed = True
        return text

    def _float(self, text: str) -> float | str:
        number = float(text)
        if math.isfinite(number) and abs(number) <= _MAX_EXACT_INT:
            self.floats = True
            return number
        self.changed = True
        return repr(number)

    def _constant(self, name: str) -> str:
        self.changed = True
        return name.lower()

    def _plain(self, value: Any) -> bool:
        """Whether ``value`` comes back from JSON unchanged: exact types only (no str or int subclasses,
        no tuples, string keys), integers and floats the round trip keeps."""
        kind = type(value)
        if kind is str or kind is bool or value is None:
            return True
        if kind is int:
            return -_MAX_EXACT_INT <= value <= _MAX_EXACT_INT
        if kind is float:
            if math.isfinite(value) and abs(value) <= _MAX_EXACT_INT:
                self.floats = True
                return True
            return False
        # Loops rather than all() over a generator, and text (most of what contexts hold) checked in
        # place: this walk runs over every event's context.
        if kind is dict:
            for key, item in value.items():
                if type(key) is not str or (type(item) is not str and not self._plain(item)):
                    return False
            return True
        if kind is list:
            for item in value:  # noqa: SIM110 - a loop, as above: no generator per list walked
                if type(item) is not str and not self._plain(item):
                    return False
            return True
        return False

    def with_text(self, value: Any) -> tuple[Any, str]:
        """The plain value and its JSON text (for a jsonb column): the encoder's own text when the parser
        changed nothing, which saves encoding it a second time. A value that is plain JSON already (what
        services and checks write) is used as it is, after one walk over it, and encoded once."""
        if self._plain(value):
            return value, _compact(value)
        self.changed = False
        text = json.dumps(value, cls=DjangoJSONEncoder)
        plain = json.loads(text, parse_int=self._int, parse_float=self._float, parse_constant=self._constant)
        return plain, _compact(plain)


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

# On PostgreSQL events go into the intake (audit migration 0013): a table beside the log that its queries
# see too, with only its primary key and no content constraint, from which the sealer moves them into the
# log in batches. Elsewhere (SQLite) into the log itself, with an entry in the sealer's queue.
#
# A batch: ids drawn from the events' sequence in one statement, then the events by COPY (two statements
# whatever the batch's size, and COPY is PostgreSQL's fastest way in).
_PG_IDS = "SELECT nextval(pg_get_serial_sequence('audit_auditevent', 'id')) FROM generate_series(1, %s)"
_PG_COPY_EVENTS = f"COPY audit_intake (id, {', '.join(_COLUMNS)}) FROM STDIN"

# One event (every service change, every check): plain values, cheaper to send than one-element arrays.
_PG_APPEND_ONE = f"""
INSERT INTO audit_intake ({", ".join(_COLUMNS)})
VALUES (%s, %s, %s, %s, %s, %s, %s, %s::jsonb, %s, %s, %s, %s, %s::jsonb)
RETURNING id
"""  # noqa: S608 - formatted from constants only


# The same, written only if a precondition (a query, formatted in) returns a row in the same snapshot.
_PG_APPEND_IF = f"""
INSERT INTO audit_intake ({", ".join(_COLUMNS)})
SELECT %s, %s, %s, %s::timestamptz, %s, %s, %s, %s::jsonb, %s, %s, %s, %s, %s::jsonb
 WHERE EXISTS ({{precondition}})
RETURNING id, digest
"""


class _Built:
    """An event ready to insert: its column values, the JSON columns as text, and (made only when asked
    for: a batch that returns nothing needs no model instances) the ``AuditEvent``."""

    __slots__ = ("_event", "fields", "json", "pk")

    def __init__(self, fields: dict[str, Any], json_texts: dict[str, str]) -> None:
        self.fields = fields
        self.json = json_texts
        self.pk: int | None = None
        self._event: AuditEvent | None = None

    @property
    def event(self) -> AuditEvent:
        if self._event is None:
            self._event = _instance(self.fields, saved=self.pk is not None)
        return self._event

    def saved(self, pk: int) -> None:
        self.pk = self.fields["id"] = pk
        if self._event is not None:
            self._event.pk = pk
            self._event._state.adding = False

    def values(self) -> list[Any]:
        fields, texts = self.fields, self.json
        return [texts[n] if n in _JSON_COLUMNS else fields[n] for n in _COLUMNS]


def _event(pending: PendingEvent, occurred_at: Any) -> _Built:
    target = pending.target
    plain = _Plain()
    on_behalf_of, on_behalf_of_text = plain.with_text(list(pending.on_behalf_of))
    context, context_text = plain.with_text(pending.context)
    fields: dict[str, Any] = {
        "nonce": secrets.token_hex(16),
        "occurred_at": occurred_at,
        "actor_kind": pending.actor.kind,
        "actor_id": pending.actor.id,
        "actor_label": pending.actor.label[:200],
        "on_behalf_of": on_behalf_of,
        "action": pending.action,
        "target_type": target.type,
        "target_id": target.id,
        "target_label": target.label[:200],
        "context": context,
    }
    if plain.floats:
        content = canonical(content_document(**fields), floats=True)
    else:
        content = _canonical_without_floats(fields, on_behalf_of_text, context_text)
    fields["canonical"] = content.decode()
    fields["digest"] = digest_of(content)
    return _Built(fields, {"on_behalf_of": on_behalf_of_text, "context": context_text})


def _canonical_without_floats(fields: dict[str, Any], on_behalf_of_text: str, context_text: str) -> bytes:
    """``canonical(content_document(**fields))`` for an event without floats, assembled from the JSON
    texts already made for its columns instead of encoding them a second time: the document's keys in
    their sorted order, each value as the encoder writes it. Keys beyond the Basic Multilingual Plane
    (where RFC 8785's key order may differ from Python's) take the general path: the document's own keys
    are ASCII, so only the context and the on-behalf-of list, where any other key is, are searched for
    such characters, not the labels. A property test holds the two equal."""
    text = (
        f'{{"action":{_string(fields["action"])},'
        f'"actor":{{"id":{_string(fields["actor_id"])},"kind":{_string(fields["actor_kind"])},'
        f'"label":{_string(fields["actor_label"])}}},'
        f'"context":{context_text},"nonce":{_string(fields["nonce"])},'
        f'"occurred_at":{_string(isoformat(fields["occurred_at"]))},"on_behalf_of":{on_behalf_of_text},'
        f'"target":{{"id":{_string(fields["target_id"])},"label":{_string(fields["target_label"])},'
        f'"type":{_string(fields["target_type"])}}}}}'
    )
    if _bmp_only(context_text) and _bmp_only(on_behalf_of_text):
        return text.encode()
    return canonical(content_document(**fields), floats=False)


def _bmp_only(text: str) -> bool:
    return text.isascii() or not ASTRAL.search(text)


@cache
def _event_fields() -> tuple[str, ...]:
    return tuple(field.attname for field in AuditEvent._meta.concrete_fields)


def _instance(fields: dict[str, Any], *, saved: bool) -> AuditEvent:
    """The ``AuditEvent`` of ``fields``, as ``AuditEvent(**fields)`` would make it (every concrete field
    set, none deferred), without the constructor's per-field walk: it runs for every recorded change and
    decision, and its instance is mostly thrown away. The constructor is used whenever anything listens
    to the model's init signals, so nothing that observes instances is bypassed."""
    if pre_init.has_listeners(AuditEvent) or post_init.has_listeners(AuditEvent):
        # Positional arguments in the model's field order: Django's fast path, half the cost of keywords.
        model: Any = AuditEvent  # the stubs' plugin types keyword construction only
        event = model(*(fields.get(name) for name in _event_fields()))
    else:
        event = AuditEvent.__new__(AuditEvent)
        state = event.__dict__
        state["_state"] = ModelState()
        for name in _event_fields():
            state[name] = fields.get(name)
    if saved:
        event._state.adding = False
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
    built = _event(pending, timezone.now())
    if connection.vendor == "postgresql":
        _insert_one_postgresql(built)
    else:
        _insert_others([built])
    return built.event


@dataclass(frozen=True, slots=True)
class Precondition:
    """A query that returns a row while an append may happen: ``audit_append_if`` records its event only
    then, judged in the same statement (one snapshot) as the insert."""

    sql: str
    params: Sequence[Any] = ()


def audit_append_if(
    precondition: Precondition,
    *,
    actor: Actor,
    action: str,
    target: Target | None = None,
    context: dict[str, Any] | None = None,
    on_behalf_of: Sequence[Any] = (),
) -> AuditEvent | None:
    """Append one event if ``precondition`` holds when it is written; None (nothing written) otherwise.
    For a decision made on state read earlier: it is recorded, and so stands, only if that state is
    still the state when the record is written (``governance.livestate``)."""
    pending = PendingEvent(
        actor=actor, action=action, target=target or Target(type=""), context=context or {}, on_behalf_of=on_behalf_of
    )
    built = _event(pending, timezone.now())
    event = built.event
    if connection.vendor != "postgresql":
        with transaction.atomic():
            with connection.cursor() as cursor:
                cursor.execute(precondition.sql, list(precondition.params))
                if cursor.fetchone() is None:
                    return None
            _insert_others([built])
        return event
    with connection.cursor() as cursor:
        cursor.execute(_PG_APPEND_IF.format(precondition=precondition.sql), [*built.values(), *precondition.params])
        row = cursor.fetchone()
    if row is None:
        return None
    event.pk = row[0]
    event._state.adding = False
    return event


def audit_append_many(events: Sequence[PendingEvent], *, returning: bool = True) -> list[AuditEvent]:
    """Append a batch of events in a constant number of statements (two on PostgreSQL), in order.
    For services that change many rows at once: sweeps, campaign launches, offboarding. With
    ``returning=False`` nothing comes back (an empty list) and no model instance is made: a large batch
    then costs its encoding, hashing and COPY only."""
    if not events:
        return []
    now = timezone.now()
    built = [_event(pending, now) for pending in events]
    if connection.vendor == "postgresql":
        _insert_postgresql(built)
    else:
        _insert_others(built)
    return [b.event for b in built] if returning else []


def _insert_others(built: list[_Built]) -> None:
    events = [b.event for b in built]
    with transaction.atomic():
        AuditEvent.objects.bulk_create(events)
        for b, event in zip(built, events, strict=True):
            b.saved(event.pk)
        PendingSeal.objects.bulk_create(
            [PendingSeal(event_id=e.pk, digest=e.digest, occurred_at=e.occurred_at) for e in events]
        )


def _insert_one_postgresql(built: _Built) -> None:
    # One statement: atomic by itself even in autocommit (the runtime check saves BEGIN and COMMIT).
    with connection.cursor() as cursor:
        cursor.execute(_PG_APPEND_ONE, built.values())
        row = cursor.fetchone()
    assert row is not None
    built.saved(row[0])


def _insert_postgresql(built: list[_Built]) -> None:
    if len(built) == 1:
        _insert_one_postgresql(built[0])
        return
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(_PG_IDS, [len(built)])
        for b, (event_id,) in zip(built, cursor.fetchall(), strict=True):
            b.saved(event_id)
        with cursor.copy(_PG_COPY_EVENTS) as copy:
            for b in built:
                copy.write_row((b.pk, *b.values()))


# The action of a recorded chain verification; the audit page's badge reads the latest one.
VERIFY_ACTION = "audit.verify"


@transaction.atomic
def audit_verification_record(*, actor: Actor, result: VerifyResult, full: bool) -> AuditEvent:
    """Record that the chain was verified, by whom, and what was found: the nightly job (in full) and
    "Verify now" on the audit page (from the latest checkpoint). The log holding its own verifications
    is what lets anyone see when it was last known good, and a break found once stays on record."""
    return audit_append(
        actor=actor,
        action=VERIFY_ACTION,
        target=Target(type="auditchain", id=str(result.head_seq), label=f"#{result.head_seq}"),
        context={
            "ok": result.ok,
            "checked": result.checked,
            "head_seq": result.head_seq,
            "first_bad_seq": result.first_bad_seq,
            "first_bad_event": result.first_bad_event,
            "problem": result.problem,
            "full": full,
        },
    )
