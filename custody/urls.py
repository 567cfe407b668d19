"""The auditor's console pages, mounted in the ``console`` namespace (config/urls.py)."""

from __future__ import annotations

from django.urls import URLPattern, path

from custody.views import custody, frameworks, overview, sessions

urlpatterns: list[URLPattern] = [
    path("custody/<str:digest>/", custody.custody, name="custody"),
    path("custody/<str:digest>/bundle.json", custody.custody_bundle, name="custody_bundle"),
    path("sessions/<str:session_id>/", sessions.session, name="session"),
    path("", overview.home, name="home"),
    path("frameworks/", frameworks.frameworks, name="frameworks"),
    path("frameworks.json", frameworks.frameworks_json, name="frameworks_json"),
]
