"""Custos for MCP servers: a FastMCP middleware that authorises every tool call against Custos.

``fastmcp`` is an optional extra (``pip install custos[mcp]``); nothing here imports Django, so the
package ships beside an MCP server that knows nothing of Custos's own code.

    from custos_mcp import CustosMiddleware

    custos = CustosMiddleware()  # CUSTOS_URL, CUSTOS_MCP_RESOURCE, CUSTOS_MCP_RESOURCE_URI
    mcp = FastMCP("crm", auth=custos.auth, middleware=[custos])
"""

from __future__ import annotations

from custos_mcp.middleware import CustosConfig, CustosMiddleware, Decision

__all__ = ["CustosConfig", "CustosMiddleware", "Decision"]
