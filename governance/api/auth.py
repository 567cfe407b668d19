"""Personal API tokens for console users: ``Authorization: Bearer cu_<prefix>_<secret>``."""

from __future__ import annotations

from typing import Any

from django.utils import timezone
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework import exceptions
from rest_framework.authentication import BaseAuthentication, get_authorization_header
from rest_framework.request import Request

from governance import credentials
from governance.models import ApiToken

# Recording every use would add a write to every request; once a minute is enough to see activity.
LAST_USED_RESOLUTION_SECONDS = 60


class ApiTokenAuthentication(BaseAuthentication):
    keyword = b"bearer"

    def authenticate(self, request: Request) -> tuple[Any, ApiToken] | None:
        parts = get_authorization_header(request).split()
        if not parts or parts[0].lower() != self.keyword:
            return None
        if len(parts) != 2:
            raise exceptions.AuthenticationFailed("Malformed Authorization header.", code="credential_invalid")
        try:
            presented = parts[1].decode("ascii")
        except UnicodeDecodeError:
            raise exceptions.AuthenticationFailed("Invalid token.", code="credential_invalid") from None
        if not presented.startswith("cu_"):
            return None  # not ours: an agent credential or another scheme
        prefix = credentials.parse_prefix("cu", presented)
        token = (
            ApiToken.objects.select_related("user").filter(prefix=prefix, revoked_at__isnull=True).first()
            if prefix
            else None
        )
        if token is None or not credentials.matches(presented, token.hashed) or not token.user.is_active:
            raise exceptions.AuthenticationFailed("Invalid or revoked token.", code="credential_invalid")
        now = timezone.now()
        if token.last_used_at is None or (now - token.last_used_at).total_seconds() > LAST_USED_RESOLUTION_SECONDS:
            ApiToken.objects.filter(pk=token.pk).update(last_used_at=now)
        return token.user, token

    def authenticate_header(self, request: Request) -> str:
        return 'Bearer realm="custos"'


class ApiTokenScheme(OpenApiAuthenticationExtension):
    """Describes the token in the OpenAPI schema, so the docs page offers an "Authorize" box."""

    target_class = ApiTokenAuthentication
    name = "apiToken"

    def get_security_definition(self, auto_schema: Any) -> dict[str, str]:
        return {
            "type": "http",
            "scheme": "bearer",
            "description": "A personal API token (`manage.py api_token USERNAME`): `Bearer cu_<prefix>_<secret>`.",
        }
