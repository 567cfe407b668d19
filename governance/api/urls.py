"""Governance's part of API v1, mounted at /api/v1/ with the other apps' (config/urls.py)."""

from __future__ import annotations

from django.urls import URLPattern, path

from governance.api import access_requests, agents, blast, delegations, grants, humans, keys, offboarding, resources

urlpatterns: list[URLPattern] = [
    path("humans/", humans.HumansApi.as_view(), name="humans"),
    path("humans/<int:pk>/", humans.HumanDetailApi.as_view(), name="human"),
    path("humans/<int:pk>/offboard/", offboarding.HumanOffboardApi.as_view(), name="human-offboard"),
    path("humans/<int:pk>/blast-radius/", blast.HumanBlastRadiusApi.as_view(), name="human-blast-radius"),
    path("agents/", agents.AgentsApi.as_view(), name="agents"),
    path("agents/<int:pk>/", agents.AgentDetailApi.as_view(), name="agent"),
    path("agents/<int:pk>/suspend/", agents.AgentSuspendApi.as_view(), name="agent-suspend"),
    path("agents/<int:pk>/reactivate/", agents.AgentReactivateApi.as_view(), name="agent-reactivate"),
    path("agents/<int:pk>/offboard/", offboarding.AgentOffboardApi.as_view(), name="agent-offboard"),
    path("agents/<int:pk>/keys/", keys.AgentKeysApi.as_view(), name="agent-keys"),
    path("agents/<int:pk>/keys/revoke-all/", keys.AgentKeysRevokeAllApi.as_view(), name="agent-keys-revoke-all"),
    path("agents/<int:pk>/blast-radius/", blast.AgentBlastRadiusApi.as_view(), name="agent-blast-radius"),
    path("keys/<int:pk>/revoke/", keys.KeyRevokeApi.as_view(), name="key-revoke"),
    path("keys/<int:pk>/rotate/", keys.KeyRotateApi.as_view(), name="key-rotate"),
    path("resources/", resources.ResourcesApi.as_view(), name="resources"),
    path("resources/<int:pk>/", resources.ResourceDetailApi.as_view(), name="resource"),
    path("grants/", grants.GrantsApi.as_view(), name="grants"),
    path("grants/<int:pk>/", grants.GrantDetailApi.as_view(), name="grant"),
    path("grants/<int:pk>/revoke/", grants.GrantRevokeApi.as_view(), name="grant-revoke"),
    path("delegations/", delegations.DelegationsApi.as_view(), name="delegations"),
    path("delegations/<int:pk>/", delegations.DelegationDetailApi.as_view(), name="delegation"),
    path("delegations/<int:pk>/revoke/", delegations.DelegationRevokeApi.as_view(), name="delegation-revoke"),
    path("access-requests/", access_requests.AccessRequestsApi.as_view(), name="access-requests"),
    path("access-requests/<int:pk>/", access_requests.AccessRequestDetailApi.as_view(), name="access-request"),
    path(
        "access-requests/<int:pk>/approve/",
        access_requests.AccessRequestApproveApi.as_view(),
        name="access-request-approve",
    ),
    path(
        "access-requests/<int:pk>/deny/",
        access_requests.AccessRequestDenyApi.as_view(),
        name="access-request-deny",
    ),
]
