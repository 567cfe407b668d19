"""The auditor's console pages, mounted in the ``console`` namespace (config/urls.py)."""

from __future__ import annotations

from django.urls import URLPattern, path

from custody.views import custody, sessions

urlpatterns: list[URLPattern] = [
    path("custody/<str:digest>/", custody.custody, name="custody"),
    path("sessions/<str:session_id>/", sessions.session, name="session"),
]
