from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.http import HttpRequest

from audit.models import AuditEvent


@admin.register(AuditEvent)
class AuditEventAdmin(admin.ModelAdmin[AuditEvent]):
    """Read-only: the log is evidence; the database refuses changes anyway."""

    list_display = ["id", "occurred_at", "actor_kind", "actor_label", "action", "target_type", "target_label", "digest"]
    list_filter = ["actor_kind", "action", "target_type"]
    search_fields = ["actor_label", "target_label", "action", "digest"]
    ordering = ["-id"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False
