"""Reviews' part of API v1, mounted in the ``api`` namespace (config/urls.py). (Being built.)"""

from __future__ import annotations

from django.urls import URLPattern

urlpatterns: list[URLPattern] = []
