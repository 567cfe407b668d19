"""The Django admin: a convenience for operators, never a back door around the services.

Every important change goes through ``governance.services``, which enforce the rules that span rows
(attenuation, expiry caps, sub-agent rules, active sponsors) and write the audit event in the same
transaction; a plain ModelAdmin save would do neither. So grants, delegations, keys and API tokens are
read-only here, humans and resources too (their fields decide who sees and reaches what), and the one
edit offered — an agent's name, purpose and risk tier — is saved through ``agent_update``.
"""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.http import HttpRequest

from audit.services import Actor
from governance import services
from governance.models import Agent, AgentKey, ApiToken, Delegation, Grant, Human, Resource


class _ReadOnlyAdmin(admin.ModelAdmin[Any]):
    """Browse only. The services are the one way to change these, so the change is validated and audited."""

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(Human)
class HumanAdmin(_ReadOnlyAdmin):
    list_display = ["name", "email", "department", "title", "manager", "status", "user"]
    list_filter = ["status", "department"]
    search_fields = ["name", "email", "external_id", "department"]
    list_select_related = ["manager", "user"]


@admin.register(Agent)
class AgentAdmin(admin.ModelAdmin[Agent]):
    list_display = ["name", "sponsor", "parent", "status", "risk_tier", "last_activity_at", "created_at"]
    list_filter = ["status", "risk_tier", ("parent", admin.EmptyFieldListFilter)]
    search_fields = ["name", "purpose", "sponsor__name", "sponsor__email"]
    list_select_related = ["sponsor", "parent"]
    fields = ["name", "purpose", "risk_tier", "sponsor", "parent", "depth", "status", "last_activity_at", "created_at"]
    # Sponsor, parent and status carry accountability and access: the console and API change them.
    readonly_fields = ["sponsor", "parent", "depth", "status", "last_activity_at", "created_at"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def save_model(self, request: HttpRequest, obj: Agent, form: Any, change: bool) -> None:
        data = form.cleaned_data
        services.agent_update(
            actor=Actor.user(request.user),
            agent=obj,
            name=data["name"],
            purpose=data["purpose"],
            risk_tier=data["risk_tier"],
        )


@admin.register(Resource)
class ResourceAdmin(_ReadOnlyAdmin):
    list_display = ["name", "kind", "sensitivity", "owner", "created_at"]
    list_filter = ["kind", "sensitivity"]
    search_fields = ["name", "description", "owner__name"]
    list_select_related = ["owner"]


@admin.register(Grant)
class GrantAdmin(_ReadOnlyAdmin):
    list_display = ["id", "holder_human", "holder_agent", "resource", "action", "status", "source", "expires_at"]
    list_filter = ["status", "source", "resource__sensitivity"]
    search_fields = ["holder_human__name", "holder_agent__name", "resource__name", "action", "granted_by"]
    list_select_related = ["holder_human", "holder_agent", "resource"]
    date_hierarchy = "created_at"


@admin.register(Delegation)
class DelegationAdmin(_ReadOnlyAdmin):
    list_display = ["id", "root_human", "delegate", "parent", "depth", "max_depth", "status", "expires_at"]
    list_filter = ["status", "depth"]
    search_fields = ["root_human__name", "delegate__name", "purpose", "created_by"]
    list_select_related = ["root_human", "delegate"]
    date_hierarchy = "created_at"


@admin.register(AgentKey)
class AgentKeyAdmin(_ReadOnlyAdmin):
    list_display = ["display", "agent", "name", "status", "expires_at", "last_used_at", "revoked_at"]
    list_filter = [("revoked_at", admin.EmptyFieldListFilter)]
    search_fields = ["prefix", "name", "agent__name"]
    list_select_related = ["agent"]
    # The keyed hash is useless to a reader and needless to show.
    exclude = ["hashed"]


@admin.register(ApiToken)
class ApiTokenAdmin(_ReadOnlyAdmin):
    list_display = ["__str__", "user", "created_at", "last_used_at", "revoked_at"]
    search_fields = ["prefix", "user__username"]
    list_select_related = ["user"]
    exclude = ["hashed"]
