"""``GET /api/v1/health``: is this process up and answering?

A liveness probe for load balancers and orchestrators, and the bare baseline the runtime-check
benchmark compares against (``bench/check_http.py``): it runs the same middleware and DRF machinery as
every API view and nothing else.
"""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView


class HealthApi(APIView):
    """Liveness only: touches no database, cache or file, so a slow dependency cannot get a healthy
    process restarted. Whether the process can serve (database reachable, migrations applied) is a
    readiness question, for a separate probe."""

    authentication_classes: list[Any] = []
    permission_classes = [AllowAny]
    throttle_classes: list[Any] = []

    @extend_schema(
        operation_id="health",
        tags=["operations"],
        responses={200: inline_serializer("Health", {"status": serializers.CharField()})},
        description='Liveness probe: 200 with {"status": "ok"} while the process answers. No authentication.',
    )
    def get(self, request: Request) -> Response:
        return Response({"status": "ok"})
