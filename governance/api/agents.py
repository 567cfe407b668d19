"""API v1: agents. An agent (its key or token) may register its own sub-agents here (SPEC §9)."""

from __future__ import annotations

from django.db.models import Q, QuerySet
from django.shortcuts import get_object_or_404
from drf_spectacular.utils import extend_schema
from rest_framework import status
from rest_framework.request import Request
from rest_framework.response import Response

from audit.services import Actor
from console.api.errors import ACTION_ERRORS, CREATE_ERRORS, DETAIL_ERRORS, READ_ERRORS
from console.api.pagination import PARAMETERS as PAGE_PARAMETERS
from console.api.views import ApiView
from console.visibility import filter_by_reference
from governance import authn, services
from governance.api import serializers as s
from governance.models import Agent


def _agents(request: Request) -> QuerySet[Agent]:
    return Agent.objects.visible_to(request.user).select_related("sponsor")


# --- Agents ---------------------------------------------------------------------------------


class AgentListApi(ApiView):
    @extend_schema(
        operation_id="agents_list",
        tags=["agents"],
        parameters=[s.AgentFilter, *PAGE_PARAMETERS],
        responses={200: s.AgentPage, **READ_ERRORS},
    )
    def get(self, request: Request) -> Response:
        filters = self.validated(s.AgentFilter, request.query_params)
        agents = _agents(request)
        for field in ("status", "risk_tier"):
            if field in filters:
                agents = agents.filter(**{field: filters[field]})
        for field in ("sponsor", "parent"):
            if field in filters:
                agents = filter_by_reference(agents, field, filters[field], request.user)
        if filters.get("q"):
            agents = agents.filter(Q(name__icontains=filters["q"]) | Q(purpose__icontains=filters["q"]))
        return self.page(agents, s.AgentOutput)


class AgentCreateApi(ApiView):
    agent_methods = frozenset({"POST"})

    @extend_schema(
        operation_id="agents_create",
        tags=["agents"],
        request=s.AgentCreateInput,
        responses={201: s.AgentOutput, **CREATE_ERRORS},
        description=(
            "An admin registers any agent. An agent (its key or token) registers a sub-agent of its own: "
            "`parent` is the caller and `sponsor` the caller's sponsor; naming anyone else is refused "
            "(403 `agent_scope_exceeded`)."
        ),
    )
    def post(self, request: Request) -> Response:
        principal = authn.agent_principal(request.user)
        if principal is not None:
            data = self.validated(s.SubAgentCreateInput, request.data)
            agent = services.agent_create_by_agent(
                principal=principal, parent_id=data.pop("parent"), sponsor_id=data.pop("sponsor"), **data
            )
        else:
            data = self.validated(s.AgentCreateInput, request.data)
            agent = services.agent_create(actor=Actor.of(request.user), **data)
        return Response(self.output(s.AgentOutput, agent), status=status.HTTP_201_CREATED)


class AgentsApi(AgentListApi, AgentCreateApi):
    pass


class AgentDetailApi(ApiView):
    @extend_schema(operation_id="agents_retrieve", tags=["agents"], responses={200: s.AgentOutput, **DETAIL_ERRORS})
    def get(self, request: Request, pk: int) -> Response:
        return Response(self.output(s.AgentOutput, get_object_or_404(_agents(request), pk=pk)))


class AgentSuspendApi(ApiView):
    @extend_schema(
        operation_id="agents_suspend",
        tags=["agents"],
        request=s.ReasonInput,
        responses={200: s.AgentOutput, **ACTION_ERRORS},
        description="Suspend an agent: its delegations stop being usable at the next check.",
    )
    def post(self, request: Request, pk: int) -> Response:
        agent = get_object_or_404(_agents(request), pk=pk)
        data = self.validated(s.ReasonInput, request.data)
        agent = services.agent_suspend(actor=Actor.of(request.user), agent=agent, **data)
        return Response(self.output(s.AgentOutput, agent))


class AgentReactivateApi(ApiView):
    @extend_schema(
        operation_id="agents_reactivate",
        tags=["agents"],
        request=s.ReasonInput,
        responses={200: s.AgentOutput, **ACTION_ERRORS},
    )
    def post(self, request: Request, pk: int) -> Response:
        agent = get_object_or_404(_agents(request), pk=pk)
        data = self.validated(s.ReasonInput, request.data)
        agent = services.agent_reactivate(actor=Actor.of(request.user), agent=agent, **data)
        return Response(self.output(s.AgentOutput, agent))
