"""Who may call what: reads need a console role, writes need admin (SPEC §1); agents only what an
operation names in ``agent_methods`` (SPEC §9)."""

from __future__ import annotations

from typing import Any

from rest_framework.permissions import SAFE_METHODS, BasePermission
from rest_framework.request import Request

from console import roles


class ConsoleRole(BasePermission):
    """A view names the roles that may read (``read_roles``, any role by default) and write
    (``write_roles``, admin by default). Which *objects* a reader sees is decided by the models'
    ``visible_to`` querysets, not here.

    A caller with no role is refused before anything is looked up, so an outsider learns nothing
    (not even whether an id exists); an anonymous caller gets a 401 because DRF turns a refusal
    without credentials into ``NotAuthenticated``.

    An agent (its key or delegation token) holds no role: it may call only the methods a view lists in
    ``agent_methods``, and the view then confines it to its own sub-agents, keys and chain."""

    message = "Your console role does not allow this."
    code = "forbidden"

    def has_permission(self, request: Request, view: Any) -> bool:
        if roles.is_agent(request.user):
            # Set per request: DRF builds the permission objects anew for each one.
            self.message = (
                "An agent may only register its own sub-agents, issue their keys, delegate to them within its "
                "chain, rotate its own keys and ask for access."
            )
            return request.method in getattr(view, "agent_methods", frozenset())
        held = roles.roles_of(request.user)
        if not held:
            return False
        if request.method in SAFE_METHODS:
            allowed = getattr(view, "read_roles", roles.ROLES)
        else:
            allowed = getattr(view, "write_roles", (roles.ADMIN,))
        return bool(held & set(allowed))
