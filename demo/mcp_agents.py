"""What a simulated support agent does on the demo MCP server, with the official ``mcp`` client SDK: open
a session with its delegation token (bound to the server's URI), list its tools, and call a few; now
and then it also tries a tool it was not delegated (posting to Slack, exporting every contact), which
Custos refuses before the tool runs. Each session is one MCP session id, recorded with every decision.

``demo.simulator`` drives these steps in the agents' threads; each session runs on its own event loop.
"""

from __future__ import annotations

import asyncio
import random
import re
from dataclasses import dataclass
from typing import Any, cast

from demo.mcp_server import CHANNELS, CONTACTS, TICKETS

_DENIED = re.compile(r"denied by Custos: (\S+)")


@dataclass(frozen=True, slots=True)
class McpCall:
    tool: str
    arguments: dict[str, Any]
    intent: str


@dataclass(frozen=True, slots=True)
class McpOutcome:
    call: McpCall
    allowed: bool
    reason: str  # a refusal's reason code from Custos, "tool_error" if the tool failed, "" when it ran


def plan_calls(rng: random.Random, *, stray: bool = False) -> list[McpCall]:
    """A ticket worked through the tools: read it, look up who raised it, sometimes another contact.
    When it ``stray``s (rationed by the simulator, as drift is), it also tries what it was not delegated:
    posting the escalation to Slack or, rarely, exporting every contact."""
    ticket = rng.choice(TICKETS)
    calls = [McpCall("read_ticket", {"ticket_id": ticket.id}, f"triage ticket {ticket.id}")]
    if rng.random() < 0.8:
        calls.append(McpCall("lookup_contact", {"email": ticket.contact}, f"find who raised ticket {ticket.id}"))
    if rng.random() < 0.3:
        contact = rng.choice(CONTACTS)
        calls.append(McpCall("lookup_contact", {"email": contact.email}, "check the account owner"))
    if stray:
        if rng.random() < 0.8:
            text = f"Ticket {ticket.id} needs a person: {ticket.subject}"
            channel = rng.choice(CHANNELS)
            calls.append(McpCall("post_message", {"channel": channel, "text": text}, "escalate the ticket"))
        else:
            calls.append(McpCall("export_contacts", {}, "collect every contact for a report"))
    return calls


def run_session(url: str, token: str, calls: list[McpCall]) -> tuple[list[str], list[McpOutcome]]:
    """One MCP session at ``url``: the tools it lists, then each call's outcome."""
    return asyncio.run(_session(url, token, calls))


async def _session(url: str, token: str, calls: list[McpCall]) -> tuple[list[str], list[McpOutcome]]:
    import httpx2
    from mcp import ClientSession
    from mcp.client.streamable_http import streamable_http_client

    async with (
        httpx2.AsyncClient(headers={"Authorization": f"Bearer {token}"}, timeout=15) as http,
        streamable_http_client(url, http_client=http) as (read, write),
        ClientSession(read, write) as session,
    ):
        await session.initialize()
        listed = [tool.name for tool in (await session.list_tools()).tools]
        outcomes = []
        for call in calls:
            # The stated intent travels in the request's _meta, where custos_mcp reads it.
            result = await session.call_tool(call.tool, call.arguments, meta=cast(Any, {"intent": call.intent}))
            text = " ".join(getattr(part, "text", "") for part in result.content)
            denied = _DENIED.search(text) if result.is_error else None
            reason = denied[1] if denied else "tool_error" if result.is_error else ""
            outcomes.append(McpOutcome(call, allowed=not result.is_error, reason=reason))
        return listed, outcomes
