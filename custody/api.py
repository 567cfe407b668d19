"""API v1 of the chain of custody (placeholder, built next)."""

from __future__ import annotations

from rest_framework.exceptions import NotFound
from rest_framework.request import Request
from rest_framework.response import Response

from console import roles
from console.api.views import ApiView


class CustodyApi(ApiView):
    read_roles = (roles.ADMIN, roles.AUDITOR)

    def get(self, request: Request, digest: str) -> Response:
        raise NotFound


class SessionApi(ApiView):
    read_roles = (roles.ADMIN, roles.AUDITOR)

    def get(self, request: Request, session_id: str) -> Response:
        raise NotFound
