from __future__ import annotations

from typing import Any

from django.http import HttpRequest
from django.utils.functional import SimpleLazyObject

from governance.models import AccessRequest


def pending_decisions(user: Any) -> int:
    """How many access requests await a decision ``user`` may take: one COUNT, or none for a user who
    decides nothing (``.none()`` never reaches the database)."""
    return AccessRequest.objects.decidable_by(user).pending().count()


def console(request: HttpRequest) -> dict[str, Any]:
    user = getattr(request, "user", None)
    # Lazy: counted only when a template shows the badge (full pages), never for an htmx fragment.
    return {"pending_decisions": SimpleLazyObject(lambda: pending_decisions(user))}
