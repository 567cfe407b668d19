"""The audit log's console pages, mounted with the other apps' in the ``console`` namespace."""

from __future__ import annotations

from django.urls import URLPattern, path

from audit import views

urlpatterns: list[URLPattern] = [
    path("audit/", views.audit_events, name="audit"),
    path("audit/export.csv", views.audit_export, {"fmt": "csv"}, name="audit_export_csv"),
    path("audit/export.json", views.audit_export, {"fmt": "json"}, name="audit_export_json"),
    path("audit/bundle/", views.audit_bundle, name="audit_bundle"),
    path("audit/verify/", views.audit_verify, name="audit_verify"),
]
