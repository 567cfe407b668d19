"""API v1: humans."""

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
from governance.models import Human


def _humans(request: Request) -> QuerySet[Human]:
    return Human.objects.visible_to(request.user)


# --- Humans ---------------------------------------------------------------------------------


class HumanListApi(ApiView):
    @extend_schema(
        operation_id="humans_list",
        tags=["humans"],
        parameters=[s.HumanFilter, *PAGE_PARAMETERS],
        responses={200: s.HumanPage, **READ_ERRORS},
    )
    def get(self, request: Request) -> Response:
        filters = self.validated(s.HumanFilter, request.query_params)
        humans = _humans(request)
        if "status" in filters:
            humans = humans.filter(status=filters["status"])
        if filters.get("q"):
            humans = humans.filter(Q(name__icontains=filters["q"]) | Q(email__icontains=filters["q"]))
        return self.page(humans, s.HumanOutput)


class HumanCreateApi(ApiView):
    @extend_schema(
        operation_id="humans_create",
        tags=["humans"],
        request=s.HumanCreateInput,
        responses={201: s.HumanOutput, **CREATE_ERRORS},
    )
    def post(self, request: Request) -> Response:
        data = self.validated(s.HumanCreateInput, request.data)
        human = services.human_create(actor=Actor.of(request.user), **data)
        return Response(self.output(s.HumanOutput, human), status=status.HTTP_201_CREATED)


class HumansApi(HumanListApi, HumanCreateApi):
    pass


class HumanDetailApi(ApiView):
    @extend_schema(operation_id="humans_retrieve", tags=["humans"], responses={200: s.HumanOutput, **DETAIL_ERRORS})
    def get(self, request: Request, pk: int) -> Response:
        return Response(self.output(s.HumanOutput, get_object_or_404(_humans(request), pk=pk)))
