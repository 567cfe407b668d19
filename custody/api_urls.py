"""The auditor's API, mounted under /api/v1/ with the other apps' (config/urls.py)."""

from __future__ import annotations

from django.urls import URLPattern, path

from custody.api import CustodyApi, SessionApi

urlpatterns: list[URLPattern] = [
    path("audit/custody/<str:digest>/", CustodyApi.as_view(), name="custody"),
    path("audit/sessions/<str:session_id>/", SessionApi.as_view(), name="session"),
]
