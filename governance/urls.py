from __future__ import annotations

from django.urls import path

from governance import views

app_name = "console"

urlpatterns = [
    path("", views.home, name="home"),
    path("live/", views.live, name="live"),
    path("humans/", views.humans, name="humans"),
    path("humans/<int:pk>/", views.human_detail, name="human"),
    path("humans/<int:pk>/grants/new/", views.human_grant_create, name="human_grant_create"),
    path("humans/<int:pk>/delegations/new/", views.human_delegation_create, name="human_delegation_create"),
    path("agents/", views.agents, name="agents"),
    path("agents/new/", views.agent_create, name="agent_create"),
    path("agents/<int:pk>/", views.agent_detail, name="agent"),
    path("agents/<int:pk>/decisions/", views.agent_decisions, name="agent_decisions"),
    path("agents/<int:pk>/grants/new/", views.agent_grant_create, name="agent_grant_create"),
    path("agents/<int:pk>/delegations/new/", views.agent_delegation_create, name="agent_delegation_create"),
    path("agents/<int:pk>/keys/new/", views.agent_key_create, name="agent_key_create"),
    path("agents/<int:pk>/suspend/", views.agent_set_status, {"verb": "suspend"}, name="agent_suspend"),
    path("agents/<int:pk>/reactivate/", views.agent_set_status, {"verb": "reactivate"}, name="agent_reactivate"),
    path("keys/<int:pk>/revoke/", views.key_revoke, name="key_revoke"),
    path("delegations/", views.delegations, name="delegations"),
    path("delegations/<int:pk>/revoke/", views.delegation_revoke, name="delegation_revoke"),
    path("resources/", views.resources, name="resources"),
    path("resources/<int:pk>/", views.resource_detail, name="resource"),
    path("access-requests/", views.access_requests, name="access_requests"),
    path("access-requests/badge/", views.access_requests_badge, name="access_requests_badge"),
    path(
        "access-requests/<int:pk>/approve/",
        views.access_request_decide,
        {"verb": "approve"},
        name="access_request_approve",
    ),
    path("access-requests/<int:pk>/deny/", views.access_request_decide, {"verb": "deny"}, name="access_request_deny"),
    path("drift/", views.drift, name="drift"),
    path("drift/<int:pk>/acknowledge/", views.drift_acknowledge, name="drift_acknowledge"),
    path("audit/", views.audit_events, name="audit"),
]
