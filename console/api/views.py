"""The base of every API view: the JSON parser that fails as a 4xx, role permissions, and the two
things every operation does (validate an input serializer, page a queryset)."""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet
from rest_framework import serializers
from rest_framework.response import Response
from rest_framework.views import APIView

from console import roles
from console.api.pagination import KeysetPagination
from console.api.parsers import SafeJSONParser
from console.api.permissions import ConsoleRole


class ApiView(APIView):
    parser_classes = [SafeJSONParser]
    permission_classes = [ConsoleRole]
    read_roles: tuple[str, ...] = roles.ROLES
    write_roles: tuple[str, ...] = (roles.ADMIN,)
    # HTTP methods an agent's own credential may call; none unless an operation says so.
    agent_methods: frozenset[str] = frozenset()

    def validated(self, serializer_class: type[serializers.Serializer[Any]], data: Any) -> dict[str, Any]:
        serializer = serializer_class(data=data, context={"request": self.request})
        serializer.is_valid(raise_exception=True)
        return dict(serializer.validated_data)

    def output(self, serializer_class: type[serializers.Serializer[Any]], instance: Any) -> Any:
        """``instance`` as the caller may see it: the request goes along, for the fields that leave out
        what lies outside the caller's view (``console.api.fields``)."""
        return serializer_class(instance, context={"request": self.request}).data

    def page(self, queryset: QuerySet[Any], output: type[serializers.Serializer[Any]], *, key: str = "id") -> Response:
        paginator = KeysetPagination(key=key)
        rows = paginator.paginate_queryset(queryset, self.request)
        return paginator.get_paginated_response(list(output(rows, many=True, context={"request": self.request}).data))
