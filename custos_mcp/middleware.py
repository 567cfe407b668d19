"""The FastMCP middleware and the token verifier behind it.

Two layers, because MCP authorisation has two places:

- HTTP (``CustosMiddleware.auth``, a FastMCP ``RemoteAuthProvider``): every request to the MCP endpoint
  must carry a Custos delegation token, verified offline against Custos's JWKS (signature, issuer,
  audience = this server, expiry). Without one the answer is 401 with
  ``WWW-Authenticate: Bearer resource_metadata="…"`` and the RFC 9728 metadata document names Custos
  as the authorization server: what MCP clients' discovery follows.
- MCP (``CustosMiddleware`` itself, a FastMCP ``Middleware``): ``tools/list`` shows only the tools
  the token's delegation holds (``<resource>:<tool>``), and every ``tools/call`` asks Custos's
  ``POST /api/v1/check`` before the tool runs, so a revocation takes effect on the very next call and
  each call is recorded with its tool, session and chain. A denial, or Custos not answering, is an
  MCP tool error: the tool never runs (fail closed).

``resources/read`` is checked as the action ``read`` on the same resource (the resource's URI goes in
the context's ``tool``), and ``prompts/get`` as the prompt's name, like a tool.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
import weakref
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx2
import jwt
import mcp_types as mt
from fastmcp.exceptions import AuthorizationError, PromptError, ResourceError, ToolError
from fastmcp.prompts.base import Prompt, PromptResult
from fastmcp.resources.base import Resource
from fastmcp.resources.template import ResourceTemplate
from fastmcp.server.auth import AccessToken, RemoteAuthProvider, TokenVerifier
from fastmcp.server.auth.auth import TokenVerificationError
from fastmcp.server.dependencies import get_access_token
from fastmcp.server.middleware import CallNext, Middleware, MiddlewareContext
from fastmcp.tools.base import Tool, ToolResult
from pydantic import AnyHttpUrl
from starlette.middleware import Middleware as StarletteMiddleware
from starlette.responses import JSONResponse
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

log = logging.getLogger(__name__)

ALGORITHM = "EdDSA"  # Custos signs delegation tokens with Ed25519 keys only
# The check's context fields and their limits (governance/api/check.py): longer values would be a 400.
_CONTEXT_MAX = {"intent": 500, "tool": 200, "session_id": 200, "request_id": 200}
INTENT_META_KEYS = ("intent", "custos/intent")


def _env_float(name: str, default: float) -> float:
    value = os.environ.get(name, "").strip()
    return float(value) if value else default


@dataclass(frozen=True)
class CustosConfig:
    """Where Custos is and which of its resources this MCP server is.

    ``resource`` is the resource's name in Custos (the check's ``resource`` and the prefix of the
    scopes, ``<resource>:<tool>``); ``resource_uri`` is this server's RFC 8707 resource URI (its
    MCP endpoint URL), the audience tokens must be bound to. Tokens whose ``aud`` is the resource's
    name are accepted too: both name this server and no other.
    """

    custos_url: str
    resource: str
    resource_uri: str
    issuer: str = ""  # the tokens' ``iss``: Custos's CUSTOS_ISSUER, by default its URL
    check_timeout: float = 3.0
    jwks_ttl: float = 300.0
    jwks_timeout: float = 3.0
    audiences: tuple[str, ...] = field(default=())

    def __post_init__(self) -> None:
        for name in ("custos_url", "resource", "resource_uri"):
            if not getattr(self, name):
                raise ValueError(f"CustosConfig needs {name} (argument or environment)")
        object.__setattr__(self, "custos_url", self.custos_url.rstrip("/"))
        if not self.issuer:
            object.__setattr__(self, "issuer", self.custos_url)
        if not self.audiences:
            object.__setattr__(self, "audiences", (self.resource_uri, self.resource))

    @classmethod
    def from_env(cls, **overrides: Any) -> CustosConfig:
        """Arguments win over the environment: CUSTOS_URL, CUSTOS_ISSUER, CUSTOS_MCP_RESOURCE,
        CUSTOS_MCP_RESOURCE_URI, CUSTOS_CHECK_TIMEOUT, CUSTOS_JWKS_TTL (seconds)."""
        given = {name: value for name, value in overrides.items() if value is not None}
        values: dict[str, Any] = {
            "custos_url": os.environ.get("CUSTOS_URL", ""),
            "issuer": os.environ.get("CUSTOS_ISSUER", ""),
            "resource": os.environ.get("CUSTOS_MCP_RESOURCE", ""),
            "resource_uri": os.environ.get("CUSTOS_MCP_RESOURCE_URI", ""),
            "check_timeout": _env_float("CUSTOS_CHECK_TIMEOUT", 3.0),
            "jwks_ttl": _env_float("CUSTOS_JWKS_TTL", 300.0),
        }
        values.update(given)
        return cls(**values)


@dataclass(frozen=True)
class Decision:
    allowed: bool
    reason: str
    detail: str = ""
    decision_id: str = ""

    def message(self, what: str) -> str:
        # The reason code first: clients and agents match on it; the detail is for people.
        text = f"denied by Custos: {self.reason}"
        if self.detail:
            text += f" ({self.detail})"
        return f"{text} [{what}]"


UNAVAILABLE = Decision(False, "custos_unavailable", "the authorization server did not answer: fail closed")


class _Jwks:
    """Custos's public keys by ``kid``, refetched after ``ttl`` seconds or on an unknown ``kid`` (a
    rotation), at most once every ``MIN_REFRESH`` seconds: a flood of forged kids cannot hammer
    Custos, and while Custos is down requests are refused at once instead of queueing on timeouts.
    Keys older than ``ttl`` that could not be refreshed are not used: no verification, no entry."""

    MIN_REFRESH = 5.0

    def __init__(self, url: str, ttl: float, timeout: float) -> None:
        self.url, self.ttl, self.timeout = url, ttl, timeout
        self._keys: dict[str, jwt.PyJWK] = {}
        self._fetched = self._attempted = float("-inf")
        self._lock = asyncio.Lock()

    async def key(self, kid: str) -> jwt.PyJWK | None:
        if time.monotonic() - self._fetched <= self.ttl and kid in self._keys:
            return self._keys[kid]
        if time.monotonic() - self._attempted >= self.MIN_REFRESH:
            async with self._lock:
                if time.monotonic() - self._attempted >= self.MIN_REFRESH:
                    self._attempted = time.monotonic()
                    await self._refresh()
        if time.monotonic() - self._fetched > self.ttl:
            raise TokenVerificationError(f"Custos's keys could not be fetched from {self.url}")
        return self._keys.get(kid)

    async def _refresh(self) -> None:
        try:
            async with httpx2.AsyncClient(timeout=self.timeout) as client:
                response = await client.get(self.url)
                response.raise_for_status()
                document = response.json()
            keys = {
                str(jwk["kid"]): jwt.PyJWK(jwk, algorithm=ALGORITHM)
                for jwk in document.get("keys", [])
                if isinstance(jwk, dict) and jwk.get("kid")
            }
        except (httpx2.HTTPError, ValueError, KeyError, AttributeError, jwt.PyJWTError) as error:
            log.warning("custos_mcp: JWKS fetch from %s failed: %s", self.url, error)
            return
        self._keys, self._fetched = keys, time.monotonic()


class CustosTokenVerifier(TokenVerifier):
    """Offline verification of Custos delegation tokens (RFC 8693 exchange output, signed EdDSA)."""

    def __init__(self, config: CustosConfig) -> None:
        super().__init__(base_url=config.resource_uri)
        self.config = config
        self.jwks = _Jwks(f"{config.custos_url}/.well-known/jwks.json", config.jwks_ttl, config.jwks_timeout)

    async def verify_token(self, token: str) -> AccessToken | None:
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            return None
        kid = header.get("kid")
        if header.get("alg") != ALGORITHM or not isinstance(kid, str):
            return None
        key = await self.jwks.key(kid)
        if key is None:
            return None
        try:
            claims = jwt.decode(
                token,
                key,
                algorithms=[ALGORITHM],
                audience=list(self.config.audiences),
                issuer=self.config.issuer,
                options={"require": ["exp", "iat", "sub", "aud", "iss", "scope", "act"]},
                leeway=5,
            )
        except jwt.PyJWTError:
            return None
        scope = claims.get("scope")
        if not isinstance(scope, str):
            return None
        act = claims.get("act")
        agent = str(act.get("sub")) if isinstance(act, dict) and act.get("sub") else str(claims["sub"])
        return AccessToken(
            token=token,
            client_id=agent,  # the agent acting now; ``sub`` is the human it acts for
            scopes=scope.split(),
            expires_at=int(claims["exp"]),
            resource=self.config.resource_uri,
            subject=str(claims["sub"]),
            claims=claims,
        )


class CustosAuth(RemoteAuthProvider):
    """The HTTP side: 401 challenges and RFC 9728 metadata naming Custos as the authorization server.
    The resource URL advertised is the configured resource URI, not one derived from the mount path,
    so what clients discover is exactly the audience the tokens must carry."""

    def __init__(self, config: CustosConfig, verifier: CustosTokenVerifier, scopes: list[str] | None) -> None:
        super().__init__(
            token_verifier=verifier,
            authorization_servers=[AnyHttpUrl(config.issuer)],
            base_url=config.resource_uri,
            scopes_supported=scopes,
            resource_name=config.resource,
        )
        self.config = config

    def _get_resource_url(self, path: str | None = None) -> AnyHttpUrl | None:
        return AnyHttpUrl(self.config.resource_uri)

    def get_middleware(self) -> list[Any]:
        return [StarletteMiddleware(_FailClosed), *super().get_middleware()]

    def get_routes(self, mcp_path: str | None = None) -> list[Route]:
        # RFC 9728 puts the document at the well-known path followed by the resource's path (what the
        # 401 challenge points to); clients that skip the challenge also try the bare well-known path.
        routes = super().get_routes(mcp_path)
        bare = "/.well-known/oauth-protected-resource"
        if routes and all(route.path != bare for route in routes if isinstance(route, Route)):
            first = routes[0]
            routes.append(Route(bare, endpoint=first.endpoint, methods=["GET", "OPTIONS"]))
        return routes


class _FailClosed:
    """Custos's keys could not be fetched, so no token can be verified: 503 (with Retry-After) rather
    than the 500 the exception would otherwise become. Nothing behind it runs either way."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        try:
            await self.app(scope, receive, send)
        except TokenVerificationError:
            body = {"error": "temporarily_unavailable", "error_description": "the authorization server is unreachable"}
            await JSONResponse(body, status_code=503, headers={"Retry-After": "5"})(scope, receive, send)


def _clip(value: Any, name: str) -> str:
    return str(value or "").strip()[: _CONTEXT_MAX[name]]


class CustosMiddleware(Middleware):
    """Authorise an MCP server's tools, resources and prompts with Custos. Give the server both halves:
    ``FastMCP(..., auth=custos.auth, middleware=[custos])``.

    Arguments override the environment (see ``CustosConfig.from_env``). ``scopes_supported`` is what
    the protected-resource metadata advertises; by default the scopes of the tools the server has are
    not known at construction, so it is ``None`` unless given.
    """

    def __init__(
        self,
        *,
        custos_url: str | None = None,
        resource: str | None = None,
        resource_uri: str | None = None,
        issuer: str | None = None,
        check_timeout: float | None = None,
        jwks_ttl: float | None = None,
        scopes_supported: list[str] | None = None,
        read_action: str = "read",
    ) -> None:
        self.config = CustosConfig.from_env(
            custos_url=custos_url,
            resource=resource,
            resource_uri=resource_uri,
            issuer=issuer,
            check_timeout=check_timeout,
            jwks_ttl=jwks_ttl,
        )
        self.read_action = read_action
        self.verifier = CustosTokenVerifier(self.config)
        self.auth = CustosAuth(self.config, self.verifier, scopes_supported)
        self._clients: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, httpx2.AsyncClient] = (
            weakref.WeakKeyDictionary()
        )

    def _client(self) -> httpx2.AsyncClient:
        # One pooled client per event loop (a client is bound to the loop it first ran on): a check
        # then costs a request on a kept-alive connection, not a new connection and TLS context.
        loop = asyncio.get_running_loop()
        client = self._clients.get(loop)
        if client is None:
            client = self._clients[loop] = httpx2.AsyncClient(timeout=self.config.check_timeout)
        return client

    async def aclose(self) -> None:
        """Close the pooled connection to Custos of the running event loop (at the server's shutdown)."""
        client = self._clients.pop(asyncio.get_running_loop(), None)
        if client is not None:
            await client.aclose()

    def close(self, timeout: float = 5.0) -> None:
        """From outside the server's loops (a test, a signal handler): close every pooled connection."""
        for loop, client in list(self._clients.items()):
            if loop.is_running() and not loop.is_closed():
                asyncio.run_coroutine_threadsafe(client.aclose(), loop).result(timeout)
        self._clients.clear()

    def scope(self, action: str) -> str:
        return f"{self.config.resource}:{action}"

    # --- The check -----------------------------------------------------------------------------

    async def check(self, token: str, action: str, context: dict[str, str]) -> Decision:
        """Custos's decision for this call; anything but a well-formed answer is a denial."""
        body = {"action": action, "resource": self.config.resource, "context": context}
        try:
            response = await self._client().post(
                f"{self.config.custos_url}/api/v1/check", json=body, headers={"Authorization": f"Bearer {token}"}
            )
            answer = response.json()
        except (httpx2.HTTPError, ValueError) as error:
            log.warning("custos_mcp: check for %s failed: %s", action, error)
            return UNAVAILABLE
        if not isinstance(answer, dict):
            return UNAVAILABLE
        if response.status_code == 200:
            return Decision(
                allowed=answer.get("decision") == "allow",
                reason=str(answer.get("reason") or "denied"),
                detail=str(answer.get("detail") or ""),
                decision_id=str(answer.get("decision_id") or ""),
            )
        # 400 (a body Custos refused), 429 (throttled), 503 (Custos could not decide): all refusals.
        reason = answer.get("reason") or answer.get("code") or f"custos_http_{response.status_code}"
        return Decision(False, str(reason), str(answer.get("detail") or ""))

    def _call_context(self, context: MiddlewareContext[Any], tool: str) -> dict[str, str]:
        session_id = request_id = ""
        ctx = context.fastmcp_context
        if ctx is not None:
            try:
                session_id = ctx.session_id
            except RuntimeError:
                session_id = ""
            try:
                request_id = ctx.request_id
            except RuntimeError:
                request_id = ""
        # FastMCP lifts the request's ``_meta`` onto the request context; the params keep it only
        # when the middleware is called some other way.
        meta = getattr(context.message, "meta", None)
        if not meta and ctx is not None and ctx.request_context is not None:
            meta = getattr(ctx.request_context, "meta", None)
        intent = ""
        if isinstance(meta, dict):
            intent = next((str(meta[key]) for key in INTENT_META_KEYS if meta.get(key)), "")
        return {
            "session_id": _clip(session_id, "session_id"),
            "request_id": _clip(request_id, "request_id"),
            "tool": _clip(tool, "tool"),
            "intent": _clip(intent, "intent"),
        }

    def _token(self) -> AccessToken:
        token = get_access_token()
        if token is None:
            # The HTTP layer answers 401 first; this is for a server run without ``auth=custos.auth``.
            raise AuthorizationError("denied by Custos: credential_missing (no delegation token)")
        return token

    def _allows(self, token: AccessToken | None, action: str) -> bool:
        return token is not None and self.scope(action) in token.scopes

    # --- Tools ---------------------------------------------------------------------------------

    async def on_list_tools(
        self, context: MiddlewareContext[mt.ListToolsRequest], call_next: CallNext[mt.ListToolsRequest, Sequence[Tool]]
    ) -> Sequence[Tool]:
        tools = await call_next(context)
        token = get_access_token()
        return [tool for tool in tools if self._allows(token, tool.name)]

    async def on_call_tool(
        self,
        context: MiddlewareContext[mt.CallToolRequestParams],
        call_next: CallNext[mt.CallToolRequestParams, ToolResult],
    ) -> ToolResult:
        name = context.message.name
        token = self._token()
        decision = await self.check(token.token, name, self._call_context(context, name))
        if not decision.allowed:
            raise ToolError(decision.message(f"tool {name}"))
        return await call_next(context)

    # --- Resources and prompts -----------------------------------------------------------------

    async def on_list_resources(
        self,
        context: MiddlewareContext[mt.ListResourcesRequest],
        call_next: CallNext[mt.ListResourcesRequest, Sequence[Resource]],
    ) -> Sequence[Resource]:
        resources = await call_next(context)
        return resources if self._allows(get_access_token(), self.read_action) else []

    async def on_list_resource_templates(
        self,
        context: MiddlewareContext[mt.ListResourceTemplatesRequest],
        call_next: CallNext[mt.ListResourceTemplatesRequest, Sequence[ResourceTemplate]],
    ) -> Sequence[ResourceTemplate]:
        templates = await call_next(context)
        return templates if self._allows(get_access_token(), self.read_action) else []

    async def check_resource_access(self, context: MiddlewareContext[mt.ReadResourceRequestParams]) -> None:
        uri = str(context.message.uri)
        token = self._token()
        decision = await self.check(token.token, self.read_action, self._call_context(context, uri))
        if not decision.allowed:
            raise ResourceError(decision.message(f"resource {uri}"))

    async def on_list_prompts(
        self,
        context: MiddlewareContext[mt.ListPromptsRequest],
        call_next: CallNext[mt.ListPromptsRequest, Sequence[Prompt]],
    ) -> Sequence[Prompt]:
        prompts = await call_next(context)
        token = get_access_token()
        return [prompt for prompt in prompts if self._allows(token, prompt.name)]

    async def on_get_prompt(
        self,
        context: MiddlewareContext[mt.GetPromptRequestParams],
        call_next: CallNext[mt.GetPromptRequestParams, PromptResult],
    ) -> PromptResult:
        name = context.message.name
        token = self._token()
        decision = await self.check(token.token, name, self._call_context(context, name))
        if not decision.allowed:
            raise PromptError(decision.message(f"prompt {name}"))
        return await call_next(context)
