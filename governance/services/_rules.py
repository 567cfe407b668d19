"""Checks and references the services share."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from django.utils import timezone

from audit.services import Actor
from console.errors import ValidationFailed
from governance.models import (
    Agent,
    Human,
)


def user_id_of(actor: Actor) -> int | None:
    return int(actor.id) if actor.kind == "user" and actor.id.isdigit() else None


def human_ref(human: Human) -> dict[str, Any]:
    return {"type": "human", "id": human.pk, "label": human.name}


def agent_ref(agent: Agent) -> dict[str, Any]:
    return {"type": "agent", "id": agent.pk, "label": agent.name}


def require_text(value: str, field: str, *, max_length: int, label: str) -> str:
    value = (value or "").strip()
    if not value:
        raise ValidationFailed(f"{label} is required.", code="required", field=field)
    if len(value) > max_length:
        raise ValidationFailed(f"{label} is longer than {max_length} characters.", code="too_long", field=field)
    return value


def require_choice(value: str, choices: type[Any], field: str) -> str:
    if value not in choices.values:
        allowed = ", ".join(choices.values)
        raise ValidationFailed(f"{field} must be one of: {allowed}.", code="invalid_choice", field=field)
    return value


def require_future(moment: datetime | None, field: str, *, now: datetime) -> datetime:
    if moment is None:
        raise ValidationFailed("An expiry time is required.", code="required", field=field)
    if timezone.is_naive(moment):
        raise ValidationFailed("Times must carry a time zone.", code="naive_datetime", field=field)
    if moment <= now:
        raise ValidationFailed("The expiry must be in the future.", code="expiry_in_past", field=field)
    return moment


def cap_lifetime(moment: datetime, limit: timedelta, field: str, *, now: datetime, what: str) -> None:
    if moment > now + limit:
        raise ValidationFailed(
            f"{what} may last at most {limit.days} days (configured maximum); pick an earlier expiry.",
            code="lifetime_exceeds_maximum",
            field=field,
        )
