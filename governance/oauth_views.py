"""HTTP front door of the OAuth services: RFC 8693 token exchange, RFC 7662 introspection,
RFC 7009 revocation, the JWKS and RFC 8414 metadata. Errors are RFC 6749 §5.2 JSON."""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db import DatabaseError
from django.http import HttpRequest, JsonResponse
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.cache import cache_control
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET, require_POST

from audit.services import Actor
from console import roles
from governance import authn, tokens
from governance.models import DelegationToken
from governance.oauth import (
    GRANT_TYPE_TOKEN_EXCHANGE,
    SUBJECT_TOKEN_TYPES,
    TOKEN_TYPE_AGENT_KEY,
    TOKEN_TYPE_JWT,
    OAuthError,
    authenticate_actor,
    token_exchange,
    token_introspect,
    token_owner_may_revoke,
)
from governance.services import token_revoke

log = logging.getLogger(__name__)

_NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}
MAX_FORM_VALUE = 8192


def _error(exc: OAuthError) -> JsonResponse:
    response = JsonResponse(exc.as_dict(), status=exc.status, headers=_NO_STORE)
    if exc.status == 401:
        response["WWW-Authenticate"] = 'Bearer realm="custos"'
    return response


def _unavailable() -> JsonResponse:
    return JsonResponse(
        {"error": "temporarily_unavailable", "error_description": "try again shortly"}, status=503, headers=_NO_STORE
    )


def _form_value(request: HttpRequest, name: str, *, required: bool = False) -> str | None:
    values = request.POST.getlist(name)
    if len(values) > 1:
        raise OAuthError("invalid_request", f"{name} given more than once")
    value = values[0] if values else None
    if value is not None and len(value) > MAX_FORM_VALUE:
        raise OAuthError("invalid_request", f"{name} is too long")
    if value is not None and "\x00" in value:
        # No parameter can hold one, and PostgreSQL refuses it in text: a 400 here, not a 503 later.
        raise OAuthError("invalid_request", f"{name} contains a NUL character")
    if required and not value:
        raise OAuthError("invalid_request", f"{name} is required")
    return value


def _resource_indicator(request: HttpRequest) -> str | None:
    """RFC 8707 ``resource``. The RFC allows several, for a token good at all of them; Custos mints a
    token for one audience, so more than one is ``invalid_target`` (§2), as is an empty one."""
    if len(request.POST.getlist("resource")) > 1:
        raise OAuthError("invalid_target", "name one resource: a Custos token is good at one audience")
    resource = _form_value(request, "resource")
    if resource is not None and not resource.strip():
        raise OAuthError("invalid_target", "resource is empty")
    return resource


def _form_request(request: HttpRequest) -> None:
    content_type = request.content_type or ""
    if content_type != "application/x-www-form-urlencoded":
        raise OAuthError("invalid_request", "send the parameters as application/x-www-form-urlencoded")


@csrf_exempt
@require_POST
def token(request: HttpRequest) -> JsonResponse:
    try:
        _form_request(request)
        grant_type = _form_value(request, "grant_type", required=True)
        if grant_type != GRANT_TYPE_TOKEN_EXCHANGE:
            raise OAuthError("unsupported_grant_type", f"only {GRANT_TYPE_TOKEN_EXCHANGE} is supported")
        audience = _form_value(request, "audience")
        resource = _resource_indicator(request)
        requested_type = _form_value(request, "requested_token_type")
        if requested_type not in (None, "", TOKEN_TYPE_JWT):
            raise OAuthError("invalid_request", f"requested_token_type must be {TOKEN_TYPE_JWT}")
        lifetime_raw = _form_value(request, "expires_in")
        lifetime = None
        if lifetime_raw:
            # ASCII digits only ("²".isdigit() is true, int() refuses it); a huge value would overflow
            # timedelta, so anything past a billion seconds counts as that (it is capped much lower anyway).
            significant = lifetime_raw.lstrip("0")
            if not (lifetime_raw.isascii() and lifetime_raw.isdigit()) or not significant:
                raise OAuthError("invalid_request", "expires_in must be a positive number of seconds")
            lifetime = timedelta(seconds=int(significant) if len(significant) <= 9 else 10**9)
        issued = token_exchange(
            actor_token=_form_value(request, "actor_token", required=True) or "",
            actor_token_type=_form_value(request, "actor_token_type", required=True) or "",
            subject_token=_form_value(request, "subject_token", required=True) or "",
            subject_token_type=_form_value(request, "subject_token_type", required=True) or "",
            scope=_form_value(request, "scope"),
            audience=audience,
            resource=resource,
            requested_lifetime=lifetime,
        )
    except OAuthError as exc:
        return _error(exc)
    except DatabaseError:
        log.exception("token exchange failed on the database")
        return _unavailable()
    return JsonResponse(issued.as_response(), headers=_NO_STORE)


def _caller(request: HttpRequest) -> tuple[str, Any]:
    """Who is calling introspection or revocation: ("agent", AgentPrincipal) with an agent key, or
    ("user", User) with a console user's API token."""
    try:
        presented = authn.bearer(request.headers.get("Authorization"))
    except authn.CredentialRefused as refused:
        raise OAuthError("invalid_client", refused.detail, status=401) from None
    if presented is None:
        raise OAuthError("invalid_client", "authenticate with an agent key or a console API token", status=401)
    if authn.kind_of(presented) == "agent_key":
        return "agent", authenticate_actor(presented, timezone.now())
    try:
        user, _token = authn.authenticate_api_token(presented)
    except authn.CredentialRefused:
        raise OAuthError("invalid_client", "the credential is not valid", status=401) from None
    if not roles.has_any_role(user):
        raise OAuthError("unauthorized_client", "this console user has no role", status=403)
    return "user", user


@csrf_exempt
@require_POST
def introspect(request: HttpRequest) -> JsonResponse:
    try:
        _form_request(request)
        _kind, who = _caller(request)
        presented = _form_value(request, "token", required=True) or ""
        return JsonResponse(token_introspect(presented, caller=who), headers=_NO_STORE)
    except OAuthError as exc:
        return _error(exc)
    except DatabaseError:
        log.exception("introspection failed on the database")
        return _unavailable()


@csrf_exempt
@require_POST
def revoke(request: HttpRequest) -> JsonResponse:
    try:
        _form_request(request)
        kind, who = _caller(request)
        presented = _form_value(request, "token", required=True) or ""
        try:
            verified = tokens.verify(presented)
        except tokens.TokenExpired:
            return JsonResponse({}, headers=_NO_STORE)  # already unusable: nothing to do (RFC 7009 §2.2)
        except tokens.TokenInvalid:
            return JsonResponse({}, headers=_NO_STORE)
        record = DelegationToken.objects.select_related("agent__parent").filter(jti=verified.jti).first()
        if record is None:
            return JsonResponse({}, headers=_NO_STORE)
        if kind == "agent":
            if not token_owner_may_revoke(who.agent, record):
                raise OAuthError(
                    "unauthorized_client", "an agent may revoke only its own or its sub-agents' tokens", status=403
                )
            actor = Actor.agent(who.agent)
        else:
            if not roles.is_admin(who):
                raise OAuthError("unauthorized_client", "only admins revoke tokens", status=403)
            actor = Actor.user(who)
        token_revoke(actor=actor, jti=record.jti, reason=_form_value(request, "reason") or "revoked via RFC 7009")
        return JsonResponse({}, headers=_NO_STORE)
    except OAuthError as exc:
        return _error(exc)
    except DatabaseError:
        log.exception("revocation failed on the database")
        return _unavailable()


@require_GET
@cache_control(public=True, max_age=300)
def jwks(request: HttpRequest) -> JsonResponse:
    return JsonResponse(tokens.jwks())


@require_GET
@cache_control(public=True, max_age=3600)
def metadata(request: HttpRequest) -> JsonResponse:
    """RFC 8414 metadata, the document an MCP client fetches once the MCP server's RFC 9728 metadata
    names Custos in ``authorization_servers``.

    What mainstream MCP clients read (the official Python and TypeScript SDKs): ``issuer`` (compared
    verbatim with the one they discovered), ``token_endpoint``, ``grant_types_supported``,
    ``token_endpoint_auth_methods_supported``, ``scopes_supported``, and for their interactive
    authorization-code flow ``authorization_endpoint``, ``code_challenge_methods_supported`` and
    ``registration_endpoint``. Custos has no authorization endpoint — agents do not log in through a
    browser; they exchange their key and a delegation for a token (RFC 8693) — so, as RFC 8414 §2
    allows when no grant uses it, none is listed; an SDK's authorization-code helper therefore cannot
    drive Custos, and an agent passes the exchanged token as its bearer header instead.

    Resource indicators (RFC 8707) are accepted at the token endpoint (``resource=<MCP server URI>``
    binds ``aud``), but neither RFC 8707 nor the IANA registry defines a metadata name that says so
    (``resource_indicators_supported`` is not registered), and the clients send ``resource`` from the
    MCP server's own metadata without looking here. RFC 9728 §4's ``protected_resources`` would list
    the registered URIs, but this document is public and the resource catalogue is not, so it is left
    out.
    """
    issuer = settings.CUSTOS_ISSUER.rstrip("/")
    return JsonResponse(
        {
            "issuer": settings.CUSTOS_ISSUER,
            "token_endpoint": issuer + reverse("oauth-token"),
            "introspection_endpoint": issuer + reverse("oauth-introspect"),
            "revocation_endpoint": issuer + reverse("oauth-revoke"),
            "jwks_uri": issuer + reverse("jwks"),
            "grant_types_supported": [GRANT_TYPE_TOKEN_EXCHANGE],
            # The client is the agent, authenticated by the actor token (its key) in the request body.
            "token_endpoint_auth_methods_supported": ["none"],
            "introspection_endpoint_auth_methods_supported": ["bearer"],
            "revocation_endpoint_auth_methods_supported": ["bearer"],
            "response_types_supported": [],
            "scopes_supported": [],
            "token_exchange_subject_token_types_supported": list(SUBJECT_TOKEN_TYPES),
            "token_exchange_actor_token_types_supported": [TOKEN_TYPE_AGENT_KEY],
            "authorization_details_types_supported": [],
        }
    )
