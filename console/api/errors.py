"""Every API error is JSON ``{code, detail, fields}`` with a stable code.

``exception_handler`` (DRF's ``EXCEPTION_HANDLER``) maps domain errors and what bad input can still
provoke underneath to a 4xx; ``console.error_pages`` answers in the same shape for URLs under the API's
prefixes that no API view matched. The ``*_ERRORS`` maps describe these answers in the OpenAPI schema.
"""

from __future__ import annotations

import logging
from typing import Any

from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.core.exceptions import RequestDataTooBig, SuspiciousOperation
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import DataError, IntegrityError
from django.http import Http404
from drf_spectacular.utils import OpenApiResponse
from rest_framework import exceptions, serializers, status
from rest_framework.response import Response

from console.errors import DomainError

logger = logging.getLogger(__name__)


class RequestTooLarge(exceptions.APIException):
    status_code = status.HTTP_413_REQUEST_ENTITY_TOO_LARGE
    default_detail = "The request body is too large."
    default_code = "request_too_large"


def _flatten(detail: Any) -> dict[str, list[str]]:
    if isinstance(detail, dict):
        out: dict[str, list[str]] = {}
        for key, value in detail.items():
            if isinstance(value, dict):
                for sub, msgs in _flatten(value).items():
                    out[f"{key}.{sub}"] = msgs
            elif isinstance(value, list):
                out[str(key)] = [str(v) for v in value]
            else:
                out[str(key)] = [str(value)]
        return out
    return {}


_CODES = {
    exceptions.ValidationError: "invalid",
    exceptions.ParseError: "malformed_request",
    exceptions.AuthenticationFailed: "credential_invalid",
    exceptions.NotAuthenticated: "not_authenticated",
    exceptions.PermissionDenied: "forbidden",
    exceptions.NotFound: "not_found",
    exceptions.MethodNotAllowed: "method_not_allowed",
    exceptions.NotAcceptable: "not_acceptable",
    exceptions.UnsupportedMediaType: "unsupported_media_type",
    exceptions.Throttled: "throttled",
}


def _as_api_exception(exc: Exception) -> Exception:
    """Map the Django and database errors that bad input can still provoke to a 4xx, so the contract
    "bad input is a 4xx, never a 5xx" holds even where a check upstream was missed."""
    if isinstance(exc, Http404):
        return exceptions.NotFound()
    if isinstance(exc, DjangoPermissionDenied):
        return exceptions.PermissionDenied()
    if isinstance(exc, DjangoValidationError):
        detail = exc.message_dict if hasattr(exc, "error_dict") else {"non_field_errors": exc.messages}
        return exceptions.ValidationError(detail)
    if isinstance(exc, IntegrityError):
        # A unique constraint lost to a concurrent request: the services checked first, the database
        # had the last word. The service's transaction has already rolled back.
        logger.warning("integrity error answered as 409: %s", exc)
        return _Conflict()
    if isinstance(exc, DataError):
        logger.warning("data error answered as 400: %s", exc)
        return exceptions.ValidationError({"non_field_errors": ["A value is out of range or malformed."]})
    if isinstance(exc, RequestDataTooBig):
        return RequestTooLarge()
    if isinstance(exc, SuspiciousOperation):
        return exceptions.ParseError("The request was refused as malformed.")
    return exc


class _Conflict(exceptions.APIException):
    status_code = status.HTTP_409_CONFLICT
    default_detail = "The request conflicts with the current state; retry after reloading."
    default_code = "conflict"


def exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    if isinstance(exc, DomainError):
        return Response({"code": exc.code, "detail": exc.detail, "fields": exc.fields}, status=exc.status)
    exc = _as_api_exception(exc)
    if not isinstance(exc, exceptions.APIException):
        return None
    code = next((c for cls, c in _CODES.items() if isinstance(exc, cls)), None) or str(exc.default_code)
    if isinstance(exc, exceptions.ValidationError):
        fields = (
            _flatten(exc.detail) if isinstance(exc.detail, dict) else {"non_field_errors": [str(d) for d in exc.detail]}
        )
        body: dict[str, Any] = {"code": code, "detail": "The request has invalid fields.", "fields": fields}
    else:
        detail = exc.detail
        body = {"code": code, "detail": str(detail), "fields": {}}
    response = Response(body, status=exc.status_code)
    wait = getattr(exc, "wait", None)  # only Throttled has one
    if wait is not None:
        response["Retry-After"] = str(int(wait))
    auth_header = getattr(exc, "auth_header", None)
    if auth_header:
        response["WWW-Authenticate"] = auth_header
    if exc.status_code == status.HTTP_401_UNAUTHORIZED and "WWW-Authenticate" not in response:
        response["WWW-Authenticate"] = 'Bearer realm="custos"'
    return response


# --- The schema's description of errors ---------------------------------------------------------


class ErrorOutput(serializers.Serializer[Any]):
    code = serializers.CharField(help_text="Stable machine-readable code, e.g. sponsor_inactive.")
    detail = serializers.CharField(help_text="A sentence for people.")
    fields = serializers.DictField(  # type: ignore[assignment]  # a field named like a Serializer attribute
        child=serializers.ListField(child=serializers.CharField()),
        help_text="Messages per input field at fault (may be empty).",
    )


AUTH_ERRORS = {
    401: OpenApiResponse(ErrorOutput, description="No or invalid credentials."),
    403: OpenApiResponse(ErrorOutput, description="Your role does not allow this."),
}
READ_ERRORS = {**AUTH_ERRORS, 400: OpenApiResponse(ErrorOutput, description="Bad filter or cursor.")}
DETAIL_ERRORS = {**AUTH_ERRORS, 404: OpenApiResponse(ErrorOutput, description="No such object visible to you.")}
CREATE_ERRORS = {
    **AUTH_ERRORS,
    400: OpenApiResponse(ErrorOutput, description="Invalid input; nothing was written."),
    409: OpenApiResponse(ErrorOutput, description="Conflicts with the current state; nothing was written."),
    413: OpenApiResponse(ErrorOutput, description="Request body too large."),
}
ACTION_ERRORS = {**CREATE_ERRORS, **DETAIL_ERRORS}
