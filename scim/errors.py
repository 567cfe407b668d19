"""SCIM error responses (RFC 7644 §3.12): every 4xx carries ``schemas``, ``status``, ``scimType`` where one
applies, and ``detail``; built with scim2-models' ``Error`` so the body is what SCIM clients parse."""

from __future__ import annotations

import json

from django.http import HttpResponse
from scim2_models import Context, Error

from console.errors import DomainError

CONTENT_TYPE = "application/scim+json"

# Custos's domain error codes that mean "this value is already taken" (RFC 7644: 409 uniqueness).
_UNIQUENESS = {"duplicate_email", "duplicate_external_id", "uniqueness"}


class ScimError(Exception):
    def __init__(self, status: int, scim_type: str | None, detail: str) -> None:
        super().__init__(detail)
        self.status = status
        self.scim_type = scim_type
        self.detail = detail

    @classmethod
    def from_domain(cls, error: DomainError) -> ScimError:
        if error.code in _UNIQUENESS:
            return cls(409, "uniqueness", error.detail)
        if error.status == 409:
            return cls(409, None, error.detail)
        if error.status == 403:
            return cls(403, None, error.detail)
        return cls(400, "invalidValue", error.detail)

    def response(self) -> HttpResponse:
        return error_response(self.status, self.scim_type, self.detail)


def error_response(status: int, scim_type: str | None, detail: str) -> HttpResponse:
    body = Error(status=status, scim_type=scim_type, detail=detail).model_dump(scim_ctx=Context.DEFAULT)
    # RFC 7644 §3.12 writes the status as a string; scim2-models dumps it so already.
    body["status"] = str(status)
    response = HttpResponse(json.dumps(body), status=status, content_type=CONTENT_TYPE)
    if status == 401:
        response["WWW-Authenticate"] = 'Bearer realm="scim"'
    return response
