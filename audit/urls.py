"""The audit log's console pages, mounted with the other apps' in the ``console`` namespace."""

from __future__ import annotations

from django.urls import URLPattern, path

from audit import views

urlpatterns: list[URLPattern] = [
    path("audit/", views.audit_events, name="audit"),
]
