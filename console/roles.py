"""Console roles. A console user holds zero or more of them as Django groups.

- admin: changes things (register agents, delegate, issue and revoke keys);
- reviewer: reads what they are accountable for (agents they or their reports sponsor);
- auditor: reads everything, changes nothing.

A user with no role sees nothing. Superusers count as admins.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any, TypeVar

from django.core.exceptions import PermissionDenied
from django.http import HttpRequest

ADMIN = "admin"
REVIEWER = "reviewer"
AUDITOR = "auditor"
ROLES = (ADMIN, REVIEWER, AUDITOR)

_CACHE_ATTR = "_custos_roles"


def is_agent(user: Any) -> bool:
    """An agent calling the API with its own key or token (its principal says ``is_agent``): no console user."""
    return bool(getattr(user, "is_agent", False))


def roles_of(user: Any) -> frozenset[str]:
    if user is None or not getattr(user, "is_authenticated", False) or not getattr(user, "is_active", False):
        return frozenset()
    if is_agent(user):
        return frozenset()
    cached = getattr(user, _CACHE_ATTR, None)
    if cached is None:
        names = set(user.groups.filter(name__in=ROLES).values_list("name", flat=True))
        if user.is_superuser:
            names.add(ADMIN)
        cached = frozenset(names)
        setattr(user, _CACHE_ATTR, cached)
    return cached


def is_admin(user: Any) -> bool:
    return ADMIN in roles_of(user)


def reads_everything(user: Any) -> bool:
    return bool(roles_of(user) & {ADMIN, AUDITOR})


def has_any_role(user: Any) -> bool:
    return bool(roles_of(user))


F = TypeVar("F", bound=Callable[..., Any])


def role_required(*allowed: str) -> Callable[[F], F]:
    """View decorator: 403 unless the user holds one of ``allowed`` (any role when none named)."""

    def decorator(view: F) -> F:
        @wraps(view)
        def wrapped(request: HttpRequest, *args: Any, **kwargs: Any) -> Any:
            held = roles_of(request.user)
            if not held or (allowed and not held & set(allowed)):
                raise PermissionDenied
            return view(request, *args, **kwargs)

        return wrapped  # type: ignore[return-value]

    return decorator
