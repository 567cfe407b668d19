"""DRF authentication for API v1: thin adapters over ``governance.authn``.

- ``ApiTokenAuthentication``: ``Authorization: Bearer cu_<prefix>_<secret>``, a console user's
  personal API token;
- ``AgentAuthentication``: ``Bearer ck_…`` (an agent key, the agent acting as itself) or
  ``Bearer <JWT>`` (a delegation token issued for Custos, the agent acting within its chain).

The agent's principal holds no console role, so every ``visible_to`` shows it nothing and
``ConsoleRole`` refuses it everywhere except on the operations that name it in ``agent_methods``.
"""

from __future__ import annotations

from typing import Any

from django.utils import timezone
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework import exceptions, status
from rest_framework.authentication import BaseAuthentication, get_authorization_header
from rest_framework.request import Request

from governance import authn
from governance.decision import Reason
from governance.models import ApiToken
from governance.usage import usage

REALM = 'Bearer realm="custos"'


class RefusedCredential(exceptions.APIException):
    """401 naming why the credential was refused (``credential_expired``, ``delegation_revoked``…): an
    agent deserves the precise reason, the same one the check would give."""

    status_code = status.HTTP_401_UNAUTHORIZED
    default_detail = "The credential is not valid."
    default_code = Reason.CREDENTIAL_INVALID

    def __init__(self, refused: authn.CredentialRefused) -> None:
        super().__init__(refused.detail, refused.reason)
        # The exception handler reads default_code for exceptions it does not map itself.
        self.default_code = refused.reason


def _presented(request: Request) -> str | None:
    try:
        return authn.bearer(get_authorization_header(request))
    except authn.CredentialRefused as refused:
        raise RefusedCredential(refused) from None


class ApiTokenAuthentication(BaseAuthentication):
    def authenticate(self, request: Request) -> tuple[Any, ApiToken] | None:
        presented = _presented(request)
        if presented is None or authn.kind_of(presented) != "api_token":
            return None  # not ours: no bearer, or an agent's credential
        try:
            return authn.authenticate_api_token(presented)
        except authn.CredentialRefused as refused:
            raise RefusedCredential(refused) from None

    def authenticate_header(self, request: Request) -> str:
        return REALM


class AgentAuthentication(BaseAuthentication):
    """Runs after ``ApiTokenAuthentication``, which takes the ``cu_`` bearers."""

    def authenticate(self, request: Request) -> tuple[authn.AgentPrincipal, None] | None:
        presented = _presented(request)
        if presented is None or authn.kind_of(presented) == "api_token":
            return None
        at = timezone.now()
        try:
            principal = authn.authenticate_agent(presented, at)
        except authn.CredentialRefused as refused:
            raise RefusedCredential(refused) from None
        # Last use and last activity, buffered: no database write per request.
        usage.record(agent_id=principal.agent.pk, key_id=principal.key_id, at=at)
        return principal, None

    def authenticate_header(self, request: Request) -> str:
        return REALM


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


class AgentCredentialScheme(OpenApiAuthenticationExtension):
    target_class = AgentAuthentication
    name = "agentCredential"

    def get_security_definition(self, auto_schema: Any) -> dict[str, str]:
        return {
            "type": "http",
            "scheme": "bearer",
            "description": (
                "An agent's own key (`Bearer ck_<prefix>_<secret>`) or a delegation token from `/oauth/token`. "
                "Agents may only register their sub-agents, issue their keys, delegate within their chain, "
                "rotate their own keys and ask for access."
            ),
        }
