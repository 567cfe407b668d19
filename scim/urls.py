"""The SCIM clients page, mounted with the other console pages in the ``console`` namespace."""

from __future__ import annotations

from django.urls import URLPattern, path

from scim import views

urlpatterns: list[URLPattern] = [
    path("scim-clients/", views.scim_clients, name="scim_clients"),
    path("scim-clients/<int:pk>/revoke/", views.scim_client_revoke, name="scim_client_revoke"),
]
