"""API v1: grants."""

from __future__ import annotations

from django.db.models import QuerySet
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
from governance import services
from governance.api import serializers as s
from governance.models import Grant


def _grants(request: Request) -> QuerySet[Grant]:
    return Grant.objects.visible_to(request.user).select_related("resource")


# --- Grants ---------------------------------------------------------------------------------


class GrantListApi(ApiView):
    @extend_schema(
        operation_id="grants_list",
        tags=["grants"],
        parameters=[s.GrantFilter, *PAGE_PARAMETERS],
        responses={200: s.GrantPage, **READ_ERRORS},
    )
    def get(self, request: Request) -> Response:
        filters = self.validated(s.GrantFilter, request.query_params)
        grants = _grants(request)
        if "status" in filters:
            grants = grants.filter(status=filters["status"])
        for field in ("holder_human", "holder_agent", "resource"):
            if field in filters:
                grants = filter_by_reference(grants, field, filters[field], request.user)
        return self.page(grants, s.GrantOutput)


class GrantCreateApi(ApiView):
    @extend_schema(
        operation_id="grants_create",
        tags=["grants"],
        request=s.GrantCreateInput,
        responses={201: s.GrantOutput, **CREATE_ERRORS},
        description="Give exactly one of holder_human and holder_agent. An agent's grant must expire.",
    )
    def post(self, request: Request) -> Response:
        data = self.validated(s.GrantCreateInput, request.data)
        human, agent = data.pop("holder_human"), data.pop("holder_agent")
        grant = services.grant_create(actor=Actor.of(request.user), holder=human or agent, **data)
        return Response(self.output(s.GrantOutput, grant), status=status.HTTP_201_CREATED)


class GrantsApi(GrantListApi, GrantCreateApi):
    pass


class GrantDetailApi(ApiView):
    @extend_schema(operation_id="grants_retrieve", tags=["grants"], responses={200: s.GrantOutput, **DETAIL_ERRORS})
    def get(self, request: Request, pk: int) -> Response:
        return Response(self.output(s.GrantOutput, get_object_or_404(_grants(request), pk=pk)))


class GrantRevokeApi(ApiView):
    @extend_schema(
        operation_id="grants_revoke",
        tags=["grants"],
        request=s.ReasonInput,
        responses={200: s.GrantOutput, **ACTION_ERRORS},
        description="Revoke a grant (idempotent). A human's delegations relying on it stop being usable.",
    )
    def post(self, request: Request, pk: int) -> Response:
        grant = get_object_or_404(_grants(request), pk=pk)
        data = self.validated(s.ReasonInput, request.data)
        grant = services.grant_revoke(actor=Actor.of(request.user), grant=grant, **data)
        return Response(self.output(s.GrantOutput, grant))
