"""``custos_mcp`` end to end: a FastMCP server with three tools behind ``CustosMiddleware``, served over
streamable HTTP (uvicorn in a thread), against a live Custos (pytest-django's live server), driven by
the official ``mcp`` client SDK with delegation tokens from the real RFC 8693 exchange."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, cast

import httpx2
import jwt
import pytest
from django.db import connections
from fastmcp import FastMCP
from mcp import ClientSession
from mcp.client.auth.utils import extract_resource_metadata_from_www_auth, handle_protected_resource_response
from mcp.client.streamable_http import streamable_http_client
from mcp_types import RequestParamsMeta

from audit.models import AuditEvent
from custos_mcp import CustosMiddleware
from governance import services
from tests import factories
from tests.mcp.support import free_port, serving

# The live server reads what the test wrote: the data must be committed, not held in a test transaction.
pytestmark = pytest.mark.django_db(transaction=True)

RESOURCE = "mcp.crm"
TOOLS = ("lookup_contact", "read_ticket", "post_message")


@dataclass
class McpServer:
    url: str
    base: str
    middleware: CustosMiddleware
    ran: list[str] = field(default_factory=list)  # the tools' side effect: what actually ran


def _build(middleware: CustosMiddleware, ran: list[str]) -> FastMCP:
    mcp = FastMCP("crm-tools", auth=middleware.auth, middleware=[middleware])

    @mcp.tool
    def lookup_contact(email: str) -> str:
        ran.append("lookup_contact")
        return f"contact {email}: Ada Lovelace"

    @mcp.tool
    def read_ticket(ticket: int) -> str:
        ran.append("read_ticket")
        return f"ticket {ticket}: printer on fire"

    @mcp.tool
    def post_message(channel: str, text: str) -> str:
        ran.append("post_message")
        return f"posted to {channel}"

    @mcp.prompt
    def triage(ticket: int) -> str:
        ran.append("triage")
        return f"Triage ticket {ticket}."

    @mcp.resource("crm://stats")
    def stats() -> str:
        ran.append("stats")
        return "42 contacts"

    return mcp


@pytest.fixture
def mcp_base() -> str:
    """Where the (first) MCP server listens: known before it starts, to register its URI in Custos."""
    return f"http://127.0.0.1:{free_port()}"


@pytest.fixture
def serve(live_server: Any, settings: Any, mcp_base: str) -> Iterator[Callable[..., McpServer]]:
    """Start MCP servers behind the middleware, the first at ``mcp_base``; ``serve(custos_url=...)``
    points one elsewhere."""
    # Tokens name the live server as their issuer, as a deployed Custos names itself.
    settings.CUSTOS_ISSUER = live_server.url
    started: list[McpServer] = []
    with contextlib.ExitStack() as running:

        def start(custos_url: str | None = None) -> McpServer:
            base = mcp_base if not started else f"http://127.0.0.1:{free_port()}"
            middleware = CustosMiddleware(
                custos_url=custos_url or live_server.url,
                issuer=live_server.url,
                resource=RESOURCE,
                resource_uri=f"{base}/mcp",
                check_timeout=2.0,
                scopes_supported=[f"{RESOURCE}:{tool}" for tool in TOOLS],
            )
            ran: list[str] = []
            running.enter_context(serving(_build(middleware, ran).http_app(path="/mcp"), int(base.rsplit(":", 1)[1])))
            # Closed before its server stops: its kept-alive connections hold live-server threads, each
            # with a database session.
            running.callback(middleware.close)
            started.append(McpServer(url=f"{base}/mcp", base=base, middleware=middleware, ran=ran))
            return started[-1]

        yield start


@pytest.fixture
def agent(mcp_base: str) -> dict[str, Any]:
    """A human holding every tool of the MCP server, who delegates two of the three to an agent; the
    agent's token is for the server's RFC 8707 URI, as an MCP client asks for it."""
    human = factories.make_human()
    resource = factories.make_resource(
        name=RESOURCE, actions=(*TOOLS, "read", "triage"), kind="mcp", uri=f"{mcp_base}/mcp"
    )
    for action in resource.actions:
        factories.make_grant(human, resource, action)
    bot = factories.make_agent(sponsor=human, name="support-bot")
    delegation = factories.make_delegation(
        bot, [f"{RESOURCE}:lookup_contact", f"{RESOURCE}:read_ticket"], root_human=human, expires_in=timedelta(days=1)
    )
    _, key = factories.make_key(bot)
    token = factories.make_token(key, delegation, audience=f"{mcp_base}/mcp")
    assert jwt.decode(token, options={"verify_signature": False})["aud"] == f"{mcp_base}/mcp"
    return {"human": human, "agent": bot, "delegation": delegation, "key": key, "token": token}


def _with_session[T](url: str, token: str | None, work: Callable[[ClientSession], Awaitable[T]]) -> T:
    async def run() -> T:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        async with (
            httpx2.AsyncClient(headers=headers, timeout=15) as http,
            streamable_http_client(url, http_client=http) as (read, write),
            ClientSession(read, write) as session,
        ):
            await session.initialize()
            return await work(session)

    return asyncio.run(run())


def _text(result: Any) -> str:
    return " ".join(getattr(part, "text", "") for part in result.content)


def _decisions() -> list[dict[str, Any]]:
    return [event.context for event in AuditEvent.objects.filter(action__startswith="check.").order_by("pk")]


def test_tools_are_listed_and_called_as_the_delegation_allows(serve: Callable[..., McpServer], agent: Any) -> None:
    server = serve()

    async def work(session: ClientSession) -> dict[str, Any]:
        listed = await session.list_tools()
        # The caller's stated intent travels in the request's _meta (custos_mcp.middleware.INTENT_META_KEYS).
        intent = cast(RequestParamsMeta, {"intent": "answer ticket 7"})
        allowed = await session.call_tool("lookup_contact", {"email": "ada@example.com"}, meta=intent)
        again = await session.call_tool("read_ticket", {"ticket": 7})
        refused = await session.call_tool("post_message", {"channel": "#general", "text": "hello"})
        return {"listed": listed, "allowed": allowed, "again": again, "refused": refused}

    got = _with_session(server.url, agent["token"], work)

    # tools/list: only what the delegation holds.
    assert sorted(tool.name for tool in got["listed"].tools) == ["lookup_contact", "read_ticket"]
    # The allowed calls ran, the refused one never did.
    assert not got["allowed"].is_error and "Ada Lovelace" in _text(got["allowed"])
    assert not got["again"].is_error
    assert got["refused"].is_error
    assert "scope_not_delegated" in _text(got["refused"])
    assert server.ran == ["lookup_contact", "read_ticket"]

    # Each call is a decision in Custos with its tool, session, JSON-RPC id and stated intent.
    decisions = _decisions()
    assert [(d["decision"], d["tool"], d["scope"]) for d in decisions] == [
        ("allow", "lookup_contact", f"{RESOURCE}:lookup_contact"),
        ("allow", "read_ticket", f"{RESOURCE}:read_ticket"),
        ("deny", "post_message", f"{RESOURCE}:post_message"),
    ]
    assert decisions[0]["intent"] == "answer ticket 7"
    sessions = {d["session_id"] for d in decisions}
    assert len(sessions) == 1 and "" not in sessions  # one MCP session, named in every decision
    request_ids = [d["request_id"] for d in decisions]
    assert all(request_ids) and len(set(request_ids)) == 3
    assert decisions[0]["delegation_chain"] == [agent["delegation"].pk]


def test_resources_and_prompts_are_checked(serve: Callable[..., McpServer], agent: Any) -> None:
    server = serve()

    async def refusal(call: Awaitable[Any]) -> str:
        try:
            await call
        except Exception as error:  # the SDK raises the server's JSON-RPC error
            return str(error)
        return "ran"

    async def work(session: ClientSession) -> dict[str, Any]:
        return {
            "resources": await session.list_resources(),
            "prompts": await session.list_prompts(),
            "read": await refusal(session.read_resource("crm://stats")),
            "prompt": await refusal(session.get_prompt("triage", {"ticket": "7"})),
        }

    got = _with_session(server.url, agent["token"], work)
    # The delegation holds neither mcp.crm:read nor mcp.crm:triage.
    assert got["resources"].resources == [] and got["prompts"].prompts == []
    assert "scope_not_delegated" in got["read"] and "scope_not_delegated" in got["prompt"]
    assert server.ran == []
    assert [(d["decision"], d["scope"], d["tool"]) for d in _decisions()] == [
        ("deny", f"{RESOURCE}:read", "crm://stats"),
        ("deny", f"{RESOURCE}:triage", "triage"),
    ]


def test_a_revoked_delegation_fails_the_very_next_call(serve: Callable[..., McpServer], agent: Any) -> None:
    server = serve()

    def revoke() -> None:
        # Off the event loop (Django refuses ORM calls in async code), in a thread whose connection
        # is closed after, or the test database could not be dropped.
        try:
            services.delegation_revoke(actor=factories.SYSTEM, delegation=agent["delegation"], reason="left")
        finally:
            connections.close_all()

    async def work(session: ClientSession) -> tuple[Any, Any]:
        before = await session.call_tool("lookup_contact", {"email": "ada@example.com"})
        await asyncio.to_thread(revoke)
        after = await session.call_tool("lookup_contact", {"email": "ada@example.com"})
        return before, after

    before, after = _with_session(server.url, agent["token"], work)
    assert not before.is_error
    assert after.is_error and "delegation_revoked" in _text(after)
    assert server.ran == ["lookup_contact"]
    assert [d["decision"] for d in _decisions()] == ["allow", "deny"]


def test_tokens_for_another_server_or_for_custos_are_refused(serve: Callable[..., McpServer], agent: Any) -> None:
    server = serve()
    other = factories.make_resource(
        name="mcp.billing", actions=("lookup_contact",), kind="mcp", uri="http://127.0.0.1:1/mcp"
    )
    factories.make_grant(agent["human"], other, "lookup_contact")
    delegation = factories.make_delegation(
        agent["agent"], ["mcp.billing:lookup_contact"], root_human=agent["human"], expires_in=timedelta(days=1)
    )
    for_billing = factories.make_token(agent["key"], delegation, audience="http://127.0.0.1:1/mcp")
    for_billing_by_name = factories.make_token(agent["key"], delegation, audience="mcp.billing")
    for_custos = factories.make_token(agent["key"], agent["delegation"])  # aud: Custos itself
    forged = agent["token"][:-4] + ("AAAA" if not agent["token"].endswith("AAAA") else "BBBB")

    for token in (for_billing, for_billing_by_name, for_custos, forged, "not-a-jwt"):
        response = httpx2.post(server.url, headers={"Authorization": f"Bearer {token}"}, json=_initialize())
        assert response.status_code == 401, token
        assert 'error="invalid_token"' in response.headers["WWW-Authenticate"]
    with pytest.raises(Exception):  # noqa: B017 the SDK's error for a 401 is transport-specific
        _with_session(server.url, for_billing, lambda session: session.list_tools())
    assert server.ran == []
    assert _decisions() == []  # refused before any check

    # A token naming this server's resource by its name (not its URI) is for this server too.
    by_name = factories.make_token(agent["key"], agent["delegation"], audience=RESOURCE)
    listed = _with_session(server.url, by_name, lambda session: session.list_tools())
    assert sorted(tool.name for tool in listed.tools) == ["lookup_contact", "read_ticket"]


def test_custos_down_refuses_every_call(serve: Callable[..., McpServer], agent: Any, live_server: Any) -> None:
    closed = f"http://127.0.0.1:{free_port()}"

    # Custos's keys were fetched, then Custos stopped answering: the checks fail closed.
    server = serve(custos_url=closed)
    server.middleware.verifier.jwks.url = f"{live_server.url}/.well-known/jwks.json"

    async def work(session: ClientSession) -> list[Any]:
        return [
            await session.call_tool("lookup_contact", {"email": "ada@example.com"}),
            await session.call_tool("read_ticket", {"ticket": 7}),
        ]

    for result in _with_session(server.url, agent["token"], work):
        assert result.is_error and "custos_unavailable" in _text(result)

    # Never reached at all: not even the token can be verified, so nothing gets in.
    dark = serve(custos_url=closed)
    response = httpx2.post(dark.url, headers={"Authorization": f"Bearer {agent['token']}"}, json=_initialize())
    assert (response.status_code, response.headers["Retry-After"]) == (503, "5")
    assert response.json()["error"] == "temporarily_unavailable"
    assert server.ran == [] and dark.ran == []


def _initialize() -> dict[str, Any]:
    return {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "initialize",
        "params": {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}},
    }


def test_discovery_finds_custos_from_the_401_challenge(serve: Callable[..., McpServer], live_server: Any) -> None:
    server = serve()
    challenge = httpx2.post(server.url, json=_initialize(), headers={"Accept": "application/json, text/event-stream"})
    assert challenge.status_code == 401
    # RFC 6750 §3.1: no credential, no error code; just where to find out how to get one (RFC 9728 §5.1).
    metadata_at = f"{server.base}/.well-known/oauth-protected-resource/mcp"
    assert challenge.headers["WWW-Authenticate"] == f'Bearer resource_metadata="{metadata_at}"'
    # What the SDK's OAuth flow does: read resource_metadata from the challenge, fetch it, parse it.
    metadata_url = extract_resource_metadata_from_www_auth(challenge)
    assert metadata_url == metadata_at
    document = httpx2.get(metadata_url)
    metadata = asyncio.run(handle_protected_resource_response(document))
    assert metadata is not None
    assert str(metadata.resource) == server.url
    assert [str(url).rstrip("/") for url in metadata.authorization_servers] == [live_server.url]
    assert metadata.bearer_methods_supported == ["header"]
    assert metadata.scopes_supported == [f"{RESOURCE}:{tool}" for tool in TOOLS]
    # Clients that skip the challenge try the bare well-known path: the same document.
    assert httpx2.get(f"{server.base}/.well-known/oauth-protected-resource").json() == document.json()
