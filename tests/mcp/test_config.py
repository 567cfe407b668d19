"""``custos_mcp`` configuration: arguments or the environment, as the peer middlewares do."""

from __future__ import annotations

import pytest

from custos_mcp import CustosConfig, CustosMiddleware, Decision


def test_the_environment_configures_the_middleware(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CUSTOS_URL", "https://custos.example.com/")
    monkeypatch.setenv("CUSTOS_MCP_RESOURCE", "crm.mcp")
    monkeypatch.setenv("CUSTOS_MCP_RESOURCE_URI", "https://mcp.example.com/mcp")
    monkeypatch.setenv("CUSTOS_CHECK_TIMEOUT", "0.5")
    monkeypatch.delenv("CUSTOS_ISSUER", raising=False)
    config = CustosMiddleware().config
    assert (config.custos_url, config.issuer, config.check_timeout) == (
        "https://custos.example.com",
        "https://custos.example.com",
        0.5,
    )
    assert config.audiences == ("https://mcp.example.com/mcp", "crm.mcp")
    # Arguments win over the environment.
    assert CustosMiddleware(resource="billing.mcp", issuer="https://id.example.com").config.issuer == (
        "https://id.example.com"
    )
    assert CustosMiddleware(resource="billing.mcp").scope("lookup") == "billing.mcp:lookup"


def test_a_missing_setting_is_an_error_at_start(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("CUSTOS_URL", "CUSTOS_MCP_RESOURCE", "CUSTOS_MCP_RESOURCE_URI"):
        monkeypatch.delenv(name, raising=False)
    with pytest.raises(ValueError, match="custos_url"):
        CustosMiddleware(resource="crm.mcp", resource_uri="https://mcp.example.com/mcp")
    with pytest.raises(ValueError, match="resource_uri"):
        CustosConfig(custos_url="https://custos.example.com", resource="crm.mcp", resource_uri="")


def test_a_denial_reads_reason_first() -> None:
    denied = Decision(False, "delegation_revoked", "delegation 4 was revoked")
    assert denied.message("tool post_message") == (
        "denied by Custos: delegation_revoked (delegation 4 was revoked) [tool post_message]"
    )
