"""API v1: the resource catalogue."""

from __future__ import annotations

from django.db.models import Q, QuerySet
from django.shortcuts import get_object_or_404
from drf_spectacular.utils import extend_schema
from rest_framework import status
from rest_framework.request import Request
from rest_framework.response import Response

from audit.services import Actor
from console.api.errors import CREATE_ERRORS, DETAIL_ERRORS, READ_ERRORS
from console.api.pagination import PARAMETERS as PAGE_PARAMETERS
from console.api.views import ApiView
from governance import services
from governance.api import serializers as s
from governance.models import Resource


def _resources(request: Request) -> QuerySet[Resource]:
    return Resource.objects.visible_to(request.user)


# --- Resources ------------------------------------------------------------------------------


class ResourceListApi(ApiView):
    @extend_schema(
        operation_id="resources_list",
        tags=["resources"],
        parameters=[s.ResourceFilter, *PAGE_PARAMETERS],
        responses={200: s.ResourcePage, **READ_ERRORS},
    )
    def get(self, request: Request) -> Response:
        filters = self.validated(s.ResourceFilter, request.query_params)
        resources = _resources(request)
        for field in ("kind", "sensitivity"):
            if field in filters:
                resources = resources.filter(**{field: filters[field]})
        if filters.get("q"):
            resources = resources.filter(Q(name__icontains=filters["q"]) | Q(description__icontains=filters["q"]))
        return self.page(resources, s.ResourceOutput)


class ResourceCreateApi(ApiView):
    @extend_schema(
        operation_id="resources_create",
        tags=["resources"],
        request=s.ResourceCreateInput,
        responses={201: s.ResourceOutput, **CREATE_ERRORS},
    )
    def post(self, request: Request) -> Response:
        data = self.validated(s.ResourceCreateInput, request.data)
        resource = services.resource_create(actor=Actor.of(request.user), **data)
        return Response(self.output(s.ResourceOutput, resource), status=status.HTTP_201_CREATED)


class ResourcesApi(ResourceListApi, ResourceCreateApi):
    pass


class ResourceDetailApi(ApiView):
    @extend_schema(
        operation_id="resources_retrieve", tags=["resources"], responses={200: s.ResourceOutput, **DETAIL_ERRORS}
    )
    def get(self, request: Request, pk: int) -> Response:
        return Response(self.output(s.ResourceOutput, get_object_or_404(_resources(request), pk=pk)))
