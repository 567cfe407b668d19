"""What every console template may ask of the viewer's roles. Templates never decide access (views
and ``visible_to`` do); these only choose what to offer, such as a menu entry."""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest

from console import roles


def roles_of_viewer(request: HttpRequest) -> dict[str, Any]:
    held = roles.roles_of(getattr(request, "user", None))
    return {
        "roles": held,
        "is_admin": roles.ADMIN in held,
        "reads_everything": bool(held & {roles.ADMIN, roles.AUDITOR}),
        "decides_access": bool(held & {roles.ADMIN, roles.REVIEWER}),
    }
