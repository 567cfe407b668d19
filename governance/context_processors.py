from __future__ import annotations

from typing import Any

from django.http import HttpRequest

from governance import roles


def console(request: HttpRequest) -> dict[str, Any]:
    held = roles.roles_of(getattr(request, "user", None))
    return {
        "roles": held,
        "is_admin": roles.ADMIN in held,
        "reads_everything": bool(held & {roles.ADMIN, roles.AUDITOR}),
    }
