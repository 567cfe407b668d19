"""The intake (audit migration 0013, PostgreSQL): events are written there and moved into the log by the
sealer, which checks each one first. What it cannot seal it sets aside, with the reason, and verification
names it; everything else is sealed around it, in order."""

from __future__ import annotations

import hashlib
from typing import Any

import pytest
from django.db import connection

from audit import sealer
from audit.models import AuditEvent, Seal
from audit.services import _COLUMNS, Actor, PendingEvent, _event, audit_append
from audit.verification import verify_chain
from tests.audit.support import queued_ids

pytestmark = pytest.mark.django_db

COLUMNS = ", ".join(_COLUMNS)
INSERT = """
INSERT INTO audit_intake (digest, canonical, nonce, occurred_at, actor_kind, actor_id, actor_label, on_behalf_of,
                          action, target_type, target_id, target_label, context)
VALUES (%s, %s, %s, %s, %s, %s, %s, %s::jsonb, %s, %s, %s, %s, %s::jsonb)
RETURNING id
"""


def write_raw(made_as: str, **overrides: Any) -> tuple[int, str]:
    """An event made with the action ``made_as``, written straight into the intake as the application's
    role could, with any column changed after its content was made. Its id and digest."""
    built = _event(PendingEvent(actor=Actor.system(), action=made_as, context={"n": 1}), _now())
    values = dict(zip(("digest", "canonical", "nonce", "occurred_at", "actor_kind", "actor_id", "actor_label",
                       "on_behalf_of", "action", "target_type", "target_id", "target_label", "context"),
                      built.values(), strict=True))  # fmt: skip
    values.update(overrides)
    with connection.cursor() as cursor:
        cursor.execute(INSERT, list(values.values()))
        (event_id,) = cursor.fetchone()
    return event_id, values["digest"]


def _now() -> Any:
    from django.utils import timezone

    return timezone.now()


def rejected() -> list[tuple[int, str, str]]:
    with connection.cursor() as cursor:
        cursor.execute("SELECT event_id, digest, reason FROM audit_rejected ORDER BY event_id")
        return list(cursor.fetchall())


def sealed_actions() -> list[str]:
    return list(Seal.objects.order_by("seq").values_list("event__action", flat=True))


@pytest.mark.parametrize("implementation", ["database function", "portable"])
def test_an_event_whose_columns_lie_is_set_aside_and_named_and_the_rest_sealed_in_order(implementation: str) -> None:
    audit_append(actor=Actor.system(), action="before")
    liar, liar_digest = write_raw("grant.revoke", action="grant.create")  # the column says otherwise
    audit_append(actor=Actor.system(), action="after")
    seal = sealer.seal_batch if implementation == "database function" else sealer._seal_batch_portable
    assert seal(batch=10).count == 2
    assert sealed_actions() == ["before", "after"]
    assert rejected() == [(liar, liar_digest, "its columns do not match its content")]
    assert not queued_ids() and not AuditEvent.objects.filter(pk=liar).exists()
    result = verify_chain()
    assert (result.ok, result.first_bad_event) == (False, liar_digest)
    assert result.problem == "an event was recorded that cannot be sealed: its columns do not match its content"


@pytest.mark.parametrize("implementation", ["database function", "portable"])
@pytest.mark.parametrize("content", ['{"action": "cut short', '{"context": {"text": "\\u0000"}}'])
def test_a_content_that_is_not_json_is_set_aside_and_the_rest_sealed_around_it(
    implementation: str, content: str
) -> None:
    audit_append(actor=Actor.system(), action="before")
    # Its digest its content's SHA-256 (or it would be set aside for that first, without a parse).
    unparsable, digest = write_raw("unparsable", canonical=content, digest=hashlib.sha256(content.encode()).hexdigest())
    audit_append(actor=Actor.system(), action="after")
    seal = sealer.seal_batch if implementation == "database function" else sealer._seal_batch_portable
    assert seal(batch=10).count == 2 and sealed_actions() == ["before", "after"]
    assert rejected() == [(unparsable, digest, "its content is not JSON")]
    assert verify_chain().first_bad_event == digest


@pytest.mark.parametrize("implementation", ["database function", "portable"])
def test_content_that_is_not_json_just_past_a_batch_waits_for_the_next_one(implementation: str) -> None:
    # The batch that sets the first one aside must not reach for the second in its place: it has not been
    # looked at, and parsing it would fail the whole batch.
    def unparsable(n: int) -> tuple[int, str]:
        content = '{"cut": "short' + str(n)
        return write_raw(f"bad {n}", canonical=content, digest=hashlib.sha256(content.encode()).hexdigest())

    audit_append(actor=Actor.system(), action="before")
    first = unparsable(1)
    audit_append(actor=Actor.system(), action="between")
    second = unparsable(2)
    audit_append(actor=Actor.system(), action="last")
    seal = sealer.seal_batch if implementation == "database function" else sealer._seal_batch_portable
    assert seal(batch=3).count == 2 and [row[0] for row in rejected()] == [first[0]]
    assert seal(batch=3).count == 1 and [row[0] for row in rejected()] == [first[0], second[0]]
    assert sealed_actions() == ["before", "between", "last"]


def test_a_digest_that_is_not_its_contents_hash_is_set_aside() -> None:
    forged, _ = write_raw("forged", digest="0" * 64)
    audit_append(actor=Actor.system(), action="honest")
    assert sealer.seal_pending() == 1 and sealed_actions() == ["honest"]
    assert rejected() == [(forged, "0" * 64, "its digest is not the SHA-256 of its content")]


def test_a_digest_already_in_the_log_or_repeated_in_the_intake_is_set_aside() -> None:
    kept = audit_append(actor=Actor.system(), action="kept")
    sealer.seal_pending()
    # A replay of a sealed event (its very row, written again) and an event written twice.
    first = write_raw("twice")
    with connection.cursor() as cursor:
        copy = f"INSERT INTO audit_intake ({COLUMNS}) SELECT {COLUMNS} FROM audit_auditevent WHERE id = %s RETURNING id"
        cursor.execute(copy, [kept.pk])
        (again,) = cursor.fetchone()
        cursor.execute(copy, [first[0]])
    twice = (max(queued_ids()), first[1])
    assert sealer.seal_pending() == 1
    assert sealed_actions() == ["kept", "twice"]
    assert rejected() == [
        (again, kept.digest, "its digest is already in the log"),
        (twice[0], first[1], "its digest is repeated in the intake"),
    ]
    assert not verify_chain().ok


def test_a_batch_moves_only_as_many_intake_events_as_it_has_room_for_after_the_old_queue() -> None:
    # Events queued the earlier way (in the log, with a queue entry) come first, then the intake's.
    from audit.models import PendingSeal

    old = AuditEvent.objects.create(**_fields("queued before 0013"))
    PendingSeal.objects.create(event_id=old.pk, digest=old.digest, occurred_at=old.occurred_at)
    fresh = [audit_append(actor=Actor.system(), action=f"new {i}") for i in range(3)]
    assert sealer.seal_batch(batch=2).count == 2
    assert sealed_actions() == ["queued before 0013", "new 0"]
    assert queued_ids() == [e.pk for e in fresh[1:]]
    assert sealer.seal_pending() == 2 and verify_chain().ok


def _fields(action: str) -> dict[str, Any]:
    built = _event(PendingEvent(actor=Actor.system(), action=action), _now())
    return {name: value for name, value in built.fields.items() if name != "id"}
