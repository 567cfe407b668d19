from __future__ import annotations

from typing import Any

from django.http import HttpRequest
from django.utils.functional import SimpleLazyObject

from governance import roles
from governance.models import AccessRequest


def pending_decisions(user: Any) -> int:
    """How many access requests await a decision ``user`` may take: one COUNT, or none for a user who
    decides nothing (``.none()`` never reaches the database)."""
    return AccessRequest.objects.decidable_by(user).pending().count()


def console(request: HttpRequest) -> dict[str, Any]:
    user = getattr(request, "user", None)
    held = roles.roles_of(user)
    return {
        "roles": held,
        "is_admin": roles.ADMIN in held,
        "reads_everything": bool(held & {roles.ADMIN, roles.AUDITOR}),
        "decides_access": bool(held & {roles.ADMIN, roles.REVIEWER}),
        # Lazy: counted only when a template shows the badge (full pages), never for an htmx fragment.
        "pending_decisions": SimpleLazyObject(lambda: pending_decisions(user)),
    }
