"""``POST /api/v1/check``: may this agent do this, right now? (SPEC §3)

The bearer is the agent's own credential (a delegation token or an agent key), not a console
session, so the view does its own credential handling: every well-formed request gets 200 with a
recorded decision, an invalid credential included. Malformed bodies get 400. Anything failing
underneath (database, cache, audit append) gets 503 with ``decision: deny``: never an allow.
"""

from __future__ import annotations

import logging
from typing import Any

from drf_spectacular.utils import OpenApiResponse, extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from governance import runtime

log = logging.getLogger(__name__)

_NAME = r"^[A-Za-z0-9][A-Za-z0-9._:/-]*$"


class CheckContextSerializer(serializers.Serializer[dict[str, Any]]):
    intent = serializers.CharField(max_length=500, required=False, allow_blank=True, default="")
    tool = serializers.CharField(max_length=200, required=False, allow_blank=True, default="")
    session_id = serializers.CharField(max_length=200, required=False, allow_blank=True, default="")
    request_id = serializers.CharField(max_length=200, required=False, allow_blank=True, default="")
    parent_request_id = serializers.CharField(max_length=200, required=False, allow_blank=True, default="")


class CheckInputSerializer(serializers.Serializer[dict[str, Any]]):
    action = serializers.RegexField(_NAME, max_length=60)
    resource = serializers.RegexField(_NAME, max_length=120)
    context = CheckContextSerializer(required=False)  # type: ignore[assignment]  # nested serializer as field


_ref = inline_serializer(
    "CheckRef", {"type": serializers.CharField(), "id": serializers.IntegerField(), "label": serializers.CharField()}
)
CheckOutputSerializer = inline_serializer(
    "CheckDecision",
    {
        "decision": serializers.ChoiceField(choices=["allow", "deny"]),
        "reason": serializers.CharField(),
        "detail": serializers.CharField(),
        "decision_id": serializers.CharField(help_text="The hash of the audit event recording this decision."),
        "subject": inline_serializer(
            "CheckSubject",
            {"type": serializers.CharField(), "id": serializers.IntegerField(), "label": serializers.CharField()},
            allow_null=True,
        ),
        "actors": serializers.ListField(child=_ref, help_text="The acting agent first, then those it acts for."),
        "delegation_chain": serializers.ListField(child=serializers.DictField(), help_text="Root link first."),
    },
)


def _bearer(request: Request) -> str:
    header = request.headers.get("Authorization", "")
    scheme, _, value = header.partition(" ")
    return value.strip() if scheme.lower() == "bearer" else ""


class CheckApi(APIView):
    authentication_classes: list[Any] = []
    permission_classes = [AllowAny]
    throttle_classes: list[Any] = []

    @extend_schema(
        operation_id="check",
        tags=["runtime"],
        request=CheckInputSerializer,
        responses={
            200: CheckOutputSerializer,
            400: OpenApiResponse(description="Malformed body: {code, detail, fields}"),
            503: OpenApiResponse(description="Custos cannot decide right now; the answer is deny"),
        },
        description="Authorise one request of an agent. The bearer is the agent's delegation token or key.",
    )
    def post(self, request: Request) -> Response:
        body = CheckInputSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        data = body.validated_data
        try:
            result = runtime.check(
                credential=_bearer(request),
                action=data["action"],
                resource=data["resource"],
                context=dict(data.get("context") or {}),
            )
        except Exception:
            # Fail closed on anything underneath: the database, the cache, the audit append.
            log.exception("check could not be decided")
            return Response(
                {"decision": "deny", "reason": "unavailable", "code": "unavailable", "detail": "try again shortly"},
                status=503,
                headers={"Retry-After": "1"},
            )
        return Response(result.as_response())
