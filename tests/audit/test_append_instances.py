"""What ``audit_append`` hands back: the event as the database holds it, made without the model's
constructor unless something listens to the model's init signals (then through it, so listeners see
every instance)."""

from __future__ import annotations

from typing import Any

import pytest
from django.db.models.signals import post_init

from audit.models import AuditEvent
from audit.services import Actor, PendingEvent, Target, audit_append, audit_append_many

pytestmark = pytest.mark.django_db


def _fields(event: AuditEvent) -> dict[str, Any]:
    return {field.attname: getattr(event, field.attname) for field in AuditEvent._meta.concrete_fields}


def _append() -> AuditEvent:
    return audit_append(
        actor=Actor(kind="agent", label="Report bot", id="7"),
        action="grant.create",
        target=Target(type="grant", id="42", label="crm.contacts:read → Report bot"),
        context={"scopes": ["crm.contacts:read"], "ttl": 3600, "ratio": 0.5, "nested": {"b": [1, None, True]}},
        on_behalf_of=[{"type": "human", "id": 3, "label": "Ada"}],
    )


def test_the_returned_event_is_the_stored_row_and_behaves_as_a_saved_instance() -> None:
    event = _append()
    stored = AuditEvent.objects.get(pk=event.pk)
    assert _fields(event) == _fields(stored)
    assert event.pk is not None and event._state.adding is False
    # A saved instance: it reloads in place and compares equal to the row by primary key.
    event.refresh_from_db()
    assert event == stored and _fields(event) == _fields(stored)


def test_events_of_a_batch_come_back_as_their_stored_rows() -> None:
    pending = [PendingEvent(actor=Actor.system(), action="sweep.expire", context={"n": i}) for i in range(3)]
    events = audit_append_many(pending)
    stored = {e.pk: e for e in AuditEvent.objects.filter(pk__in=[e.pk for e in events])}
    assert [_fields(e) for e in events] == [_fields(stored[e.pk]) for e in events]
    assert all(e._state.adding is False for e in events)


def test_a_listener_on_the_models_init_sees_every_returned_event() -> None:
    seen: list[AuditEvent] = []

    def receiver(sender: type, instance: AuditEvent, **kwargs: Any) -> None:
        seen.append(instance)

    post_init.connect(receiver, sender=AuditEvent)
    try:
        event = _append()
        batch = audit_append_many([PendingEvent(actor=Actor.system(), action="a"), PendingEvent(Actor.system(), "b")])
    finally:
        post_init.disconnect(receiver, sender=AuditEvent)
    assert [e.digest for e in seen] == [event.digest, *(e.digest for e in batch)]
    assert _fields(event) == _fields(AuditEvent.objects.get(pk=event.pk))
