"""Governance's console pages, mounted with the other apps' in the ``console`` namespace (config/urls.py)."""

from __future__ import annotations

from django.urls import URLPattern, path

from governance.views import (
    access_requests,
    agents,
    dashboard,
    delegations,
    drift,
    grants,
    humans,
    keys,
    offboarding,
    resources,
)

urlpatterns: list[URLPattern] = [
    path("live/", dashboard.live, name="live"),
    path("humans/", humans.humans, name="humans"),
    path("humans/<int:pk>/", humans.human_detail, name="human"),
    path("humans/<int:pk>/offboard/", offboarding.human_offboard, name="human_offboard"),
    path("humans/<int:pk>/offboard/confirm/", offboarding.human_offboard_confirm, name="human_offboard_confirm"),
    path("humans/<int:pk>/grants/new/", grants.human_grant_create, name="human_grant_create"),
    path("humans/<int:pk>/delegations/new/", humans.human_delegation_create, name="human_delegation_create"),
    path("agents/", agents.agents, name="agents"),
    path("agents/new/", agents.agent_create, name="agent_create"),
    path("agents/<int:pk>/", agents.agent_detail, name="agent"),
    path("agents/<int:pk>/decisions/", agents.agent_decisions, name="agent_decisions"),
    path("agents/<int:pk>/grants/new/", grants.agent_grant_create, name="agent_grant_create"),
    path("agents/<int:pk>/delegations/new/", delegations.agent_delegation_create, name="agent_delegation_create"),
    path("agents/<int:pk>/keys/new/", keys.agent_key_create, name="agent_key_create"),
    path("agents/<int:pk>/suspend/", agents.agent_set_status, {"verb": "suspend"}, name="agent_suspend"),
    path("agents/<int:pk>/reactivate/", agents.agent_set_status, {"verb": "reactivate"}, name="agent_reactivate"),
    path("agents/<int:pk>/offboard/", offboarding.agent_offboard, name="agent_offboard"),
    path("agents/<int:pk>/offboard/confirm/", offboarding.agent_offboard_confirm, name="agent_offboard_confirm"),
    path("agents/<int:pk>/keys/revoke-all/", keys.agent_keys_revoke_all, name="agent_keys_revoke_all"),
    path("keys/<int:pk>/revoke/", keys.key_revoke, name="key_revoke"),
    path("grants/<int:pk>/revoke/", grants.grant_revoke, name="grant_revoke"),
    path("delegations/", delegations.delegations, name="delegations"),
    path("delegations/<int:pk>/", delegations.delegation_detail, name="delegation"),
    path("delegations/<int:pk>/revoke/", delegations.delegation_revoke, name="delegation_revoke"),
    path("resources/", resources.resources, name="resources"),
    path("resources/new/", resources.resource_create, name="resource_create"),
    path("resources/<int:pk>/", resources.resource_detail, name="resource"),
    path("access-requests/", access_requests.access_requests, name="access_requests"),
    path("access-requests/badge/", access_requests.access_requests_badge, name="access_requests_badge"),
    path(
        "access-requests/<int:pk>/approve/",
        access_requests.access_request_decide,
        {"verb": "approve"},
        name="access_request_approve",
    ),
    path(
        "access-requests/<int:pk>/deny/",
        access_requests.access_request_decide,
        {"verb": "deny"},
        name="access_request_deny",
    ),
    path("drift/", drift.drift, name="drift"),
    path("drift/<int:pk>/acknowledge/", drift.drift_acknowledge, name="drift_acknowledge"),
]
