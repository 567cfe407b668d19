"""SCIM 2.0 under /scim/v2/ (config/urls.py). No trailing slashes: SCIM clients address ``/Users``."""

from __future__ import annotations

from django.urls import URLPattern, path, re_path

from scim import api

urlpatterns: list[URLPattern] = [
    path(".search", api.search_all, name="search"),
    path("Users", api.users, name="users"),
    path("Users/.search", api.search_users, name="users_search"),
    path("Users/<str:pk>", api.user, name="user"),
    path("Groups", api.groups, name="groups"),
    path("Groups/.search", api.search_groups, name="groups_search"),
    path("Groups/<str:pk>", api.group, name="group"),
    path("ServiceProviderConfig", api.service_provider_config, name="service_provider_config"),
    path("ResourceTypes", api.resource_types, name="resource_types"),
    path("ResourceTypes/<str:name>", api.resource_type, name="resource_type"),
    path("Schemas", api.schemas, name="schemas"),
    path("Schemas/<str:urn>", api.schema, name="schema"),
    re_path(r"^(?P<rest>.*)$", api.not_found),
]
