"""API v1, mounted at /api/v1/ (config/urls.py)."""

from __future__ import annotations

from django.urls import URLPattern, path

from governance.api import access_requests, views

app_name = "api"

urlpatterns: list[URLPattern] = [
    path("humans/", views.HumansApi.as_view(), name="humans"),
    path("humans/<int:pk>/", views.HumanDetailApi.as_view(), name="human"),
    path("agents/", views.AgentsApi.as_view(), name="agents"),
    path("agents/<int:pk>/", views.AgentDetailApi.as_view(), name="agent"),
    path("agents/<int:pk>/suspend/", views.AgentSuspendApi.as_view(), name="agent-suspend"),
    path("agents/<int:pk>/reactivate/", views.AgentReactivateApi.as_view(), name="agent-reactivate"),
    path("agents/<int:pk>/keys/", views.AgentKeysApi.as_view(), name="agent-keys"),
    path("keys/<int:pk>/revoke/", views.KeyRevokeApi.as_view(), name="key-revoke"),
    path("keys/<int:pk>/rotate/", views.KeyRotateApi.as_view(), name="key-rotate"),
    path("resources/", views.ResourcesApi.as_view(), name="resources"),
    path("resources/<int:pk>/", views.ResourceDetailApi.as_view(), name="resource"),
    path("grants/", views.GrantsApi.as_view(), name="grants"),
    path("grants/<int:pk>/", views.GrantDetailApi.as_view(), name="grant"),
    path("grants/<int:pk>/revoke/", views.GrantRevokeApi.as_view(), name="grant-revoke"),
    path("delegations/", views.DelegationsApi.as_view(), name="delegations"),
    path("delegations/<int:pk>/", views.DelegationDetailApi.as_view(), name="delegation"),
    path("delegations/<int:pk>/revoke/", views.DelegationRevokeApi.as_view(), name="delegation-revoke"),
    path("access-requests/", access_requests.AccessRequestsApi.as_view(), name="access-requests"),
    path("access-requests/<int:pk>/", access_requests.AccessRequestDetailApi.as_view(), name="access-request"),
    path(
        "access-requests/<int:pk>/approve/",
        access_requests.AccessRequestApproveApi.as_view(),
        name="access-request-approve",
    ),
    path("access-requests/<int:pk>/deny/", access_requests.AccessRequestDenyApi.as_view(), name="access-request-deny"),
    path("audit/events/", views.AuditEventListApi.as_view(), name="audit-events"),
    path("audit/verify/", views.AuditVerifyApi.as_view(), name="audit-verify"),
]
