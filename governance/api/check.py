"""``POST /api/v1/check``: may this agent do this, right now? (SPEC §3)

The bearer is the agent's own credential (a delegation token or an agent key), not a console
session, so the view does its own credential handling: every well-formed request gets 200 with a
recorded decision, an invalid credential included (repeats of one from the same address within a
minute answer with the first one's decision id and are counted into a summary: ``governance.repeats``;
past the address's limit, 429). Malformed bodies get 400. Anything failing underneath (database,
cache, audit append) gets 503 with ``decision: deny``: never an allow.
"""

from __future__ import annotations

import logging
import re
from typing import Any

from drf_spectacular.utils import OpenApiResponse, extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from console.api.parsers import SafeJSONParser
from governance import authn, repeats, runtime

log = logging.getLogger(__name__)

_NAME = r"^[A-Za-z0-9][A-Za-z0-9._:/-]*$"
_NAME_MAX = {"action": 60, "resource": 120}
_CONTEXT_MAX = {"intent": 500, "tool": 200, "session_id": 200, "request_id": 200, "parent_request_id": 200}


def _context_field(name: str) -> serializers.CharField:
    return serializers.CharField(max_length=_CONTEXT_MAX[name], required=False, allow_blank=True, default="")


class CheckContextSerializer(serializers.Serializer[dict[str, Any]]):
    intent = _context_field("intent")
    tool = _context_field("tool")
    session_id = _context_field("session_id")
    request_id = _context_field("request_id")
    parent_request_id = _context_field("parent_request_id")


class CheckInputSerializer(serializers.Serializer[dict[str, Any]]):
    action = serializers.RegexField(_NAME, max_length=_NAME_MAX["action"])
    resource = serializers.RegexField(_NAME, max_length=_NAME_MAX["resource"])
    context = CheckContextSerializer(required=False)  # type: ignore[assignment]  # nested serializer as field


# Anchored by fullmatch: no trailing newline slips through as it would past ``$``.
_NAME_RE = re.compile(_NAME.removeprefix("^").removesuffix("$"))


def _plain_text(value: Any, limit: int) -> bool:
    # Printable (no NUL, no lone surrogate) and nothing to trim: a CharField would return it as it is.
    return isinstance(value, str) and len(value) <= limit and value.isprintable() and value.strip() == value


def plainly_valid(body: Any) -> dict[str, Any] | None:
    """The validated body when it is plainly valid, else None (then the serializer decides).

    Building and running the serializer costs more than the rest of the view's Python together, and
    agents send the same plain shape every time. This accepts only bodies the serializer accepts
    unchanged (names matching, strings within their limits with nothing to trim or coerce) and returns
    what it would; every other body, valid after coercion or not, goes through the serializer, so the
    400 answers are the serializer's.
    """
    if not isinstance(body, dict):
        return None
    data: dict[str, Any] = {}
    for name, limit in _NAME_MAX.items():
        value = body.get(name)
        if not (isinstance(value, str) and len(value) <= limit and _NAME_RE.fullmatch(value)):
            return None
        data[name] = value
    if "context" in body:
        context = body["context"]
        if not isinstance(context, dict):
            return None
        data["context"] = {name: context.get(name, "") for name in _CONTEXT_MAX}
        if not all(_plain_text(data["context"][name], limit) for name, limit in _CONTEXT_MAX.items()):
            return None
    return data


_ref = inline_serializer(
    "CheckRef", {"type": serializers.CharField(), "id": serializers.IntegerField(), "label": serializers.CharField()}
)
CheckOutputSerializer = inline_serializer(
    "CheckDecision",
    {
        "decision": serializers.ChoiceField(choices=["allow", "deny"]),
        "reason": serializers.CharField(),
        "detail": serializers.CharField(allow_blank=True, help_text="Why, for people; empty when allowed."),
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


Answer = tuple[int, dict[str, Any], dict[str, str]]


def answer(data: dict[str, Any], authorization: str | None, address: str | None) -> Answer:
    """The check's answer to a validated body, as (status, body, extra headers): whichever layer serves
    the request (this view, or the WSGI hot path in ``check_wsgi``), it answers with this."""
    try:
        credential = authn.bearer(authorization) or ""
    except authn.CredentialRefused:
        credential = ""  # then the check records a credential_invalid denial
    try:
        result = runtime.check(
            credential=credential,
            action=data["action"],
            resource=data["resource"],
            context=dict(data.get("context") or {}),
            source=repeats.source_of(address),
        )
    except repeats.Throttled as throttled:
        body = {"decision": "deny", "reason": throttled.reason, "code": "rate_limited", "detail": str(throttled)}
        return 429, body, {"Retry-After": str(throttled.retry_after)}
    except Exception:
        # Fail closed on anything underneath: the database, the cache, the audit append.
        log.exception("check could not be decided")
        body = {"decision": "deny", "reason": "unavailable", "code": "unavailable", "detail": "try again shortly"}
        return 503, body, {"Retry-After": "1"}
    return 200, result.as_response(), {}


class CheckApi(APIView):
    authentication_classes: list[Any] = []
    permission_classes = [AllowAny]
    parser_classes = [SafeJSONParser]
    throttle_classes: list[Any] = []

    @extend_schema(
        operation_id="check",
        tags=["runtime"],
        request=CheckInputSerializer,
        responses={
            200: CheckOutputSerializer,
            400: OpenApiResponse(description="Malformed body: {code, detail, fields}"),
            429: OpenApiResponse(
                description="Too many checks with credentials that identify no agent from this address in "
                "this window (code rate_limited, Retry-After); the answer is deny"
            ),
            503: OpenApiResponse(description="Custos cannot decide right now; the answer is deny"),
        },
        description="Authorise one request of an agent. The bearer is the agent's delegation token or key.",
    )
    def post(self, request: Request) -> Response:
        data = plainly_valid(request.data)
        if data is None:
            serializer = CheckInputSerializer(data=request.data)
            serializer.is_valid(raise_exception=True)
            data = serializer.validated_data
        status, body, headers = answer(data, request.headers.get("Authorization"), request.META.get("REMOTE_ADDR"))
        return Response(body, status=status, headers=headers)
