"""The audit log's API, mounted under /api/v1/ with the other apps' (config/urls.py)."""

from __future__ import annotations

from django.urls import URLPattern, path

from audit.api import AuditEventListApi, AuditExportApi, AuditVerifyApi

urlpatterns: list[URLPattern] = [
    path("audit/events/", AuditEventListApi.as_view(), name="audit-events"),
    path("audit/verify/", AuditVerifyApi.as_view(), name="audit-verify"),
    path("audit/export/", AuditExportApi.as_view(), name="audit-export"),
]
