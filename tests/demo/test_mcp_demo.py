"""The demo's MCP server as ``make run`` runs it: rolled out through the services (``seed_demo --mcp-url``),
served by ``demo.mcp_server`` behind ``custos_mcp``, and called by the agent simulator with the official
``mcp`` client against a live Custos: the delegated tools run, the others are refused before they run,
each call is a recorded decision with its tool and MCP session, and a revocation stops the next call."""

from __future__ import annotations

import random
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from django.core.management import CommandError, call_command
from django.db import connections

from audit.models import AuditEvent
from custos_mcp import CustosMiddleware
from demo import mcp_rollout
from demo.mcp_agents import McpCall
from demo.mcp_server import DELEGATED_TOOLS, HELD_TOOLS, RESOURCE, TOOLS, build
from demo.people import PEOPLE_BY_KEY
from demo.simulator import Pace, Simulator
from governance import services
from governance.models import Delegation, Grant, Resource
from governance.selectors import human_held_scopes
from tests import factories
from tests.mcp.support import free_port, serving


def _support_org() -> dict[str, Any]:
    """Support's head (the server's owner), a support person sponsoring an active triage agent, a
    suspended triage agent and an agent of another family."""
    owner = factories.make_human(email=PEOPLE_BY_KEY[mcp_rollout.OWNER].email)
    sponsor = factories.make_human()
    triage = factories.make_agent(sponsor=sponsor, name="support-triage-emea")
    suspended = factories.make_agent(sponsor=sponsor, name="support-triage-apac")
    services.agent_suspend(actor=factories.SYSTEM, agent=suspended, reason="investigation")
    other = factories.make_agent(sponsor=sponsor, name="refund-assistant-cards")
    return {"owner": owner, "sponsor": sponsor, "triage": triage, "suspended": suspended, "other": other}


@pytest.mark.django_db
def test_the_rollout_registers_the_server_and_delegates_its_reading_tools_to_active_triage_agents() -> None:
    org = _support_org()

    said = mcp_rollout.ensure("http://127.0.0.1:8001/mcp")

    resource = Resource.objects.get(name=RESOURCE)
    assert (resource.uri, resource.kind, resource.owner_id) == ("http://127.0.0.1:8001/mcp", "mcp", org["owner"].pk)
    assert sorted(resource.actions) == sorted(TOOLS)
    assert {f"{RESOURCE}:{tool}" for tool in HELD_TOOLS} <= human_held_scopes(org["sponsor"])
    assert not Grant.objects.filter(resource=resource, action="export_contacts").exists()
    links = Delegation.objects.filter(delegate__name__startswith="support-triage")
    assert [(link.delegate_id, sorted(link.scopes)) for link in links] == [
        (org["triage"].pk, sorted(f"{RESOURCE}:{tool}" for tool in DELEGATED_TOOLS))
    ]
    assert said.endswith("delegated its reading tools to 1 agents")
    assert AuditEvent.objects.filter(action="resource.create", target_id=str(resource.pk)).count() == 1


@pytest.mark.django_db
def test_a_second_start_changes_nothing_and_a_new_port_moves_the_registration() -> None:
    org = _support_org()
    mcp_rollout.ensure("http://127.0.0.1:8001/mcp")
    link = Delegation.objects.get(delegate=org["triage"])
    # What an admin did in the console in between stays done.
    services.delegation_revoke(actor=factories.SYSTEM, delegation=link, reason="not needed")
    events = AuditEvent.objects.count()

    assert mcp_rollout.ensure("http://127.0.0.1:8001/mcp").startswith("the support MCP server support.mcp is")
    assert AuditEvent.objects.count() == events
    assert not Delegation.objects.active().filter(delegate=org["triage"]).exists()

    assert (
        mcp_rollout.ensure("http://127.0.0.1:9001/mcp")
        == f"moved the support MCP server {RESOURCE} to http://127.0.0.1:9001/mcp"
    )
    assert Resource.objects.get(name=RESOURCE).uri == "http://127.0.0.1:9001/mcp"
    assert AuditEvent.objects.filter(action="resource.move").count() == 1


@pytest.mark.django_db
def test_seed_demo_refuses_an_unusable_mcp_url_with_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    from demo import seeder

    monkeypatch.setattr(seeder, "seed", lambda: seeder.SeedResult(created=False, counts={}, logins=[]))
    _support_org()
    with pytest.raises(CommandError, match=r"seed_demo --mcp-url: The resource URI is not usable"):
        call_command("seed_demo", "--mcp-url", "ftp://127.0.0.1/mcp")
    assert not Resource.objects.filter(name=RESOURCE).exists()


# --- The server, the simulator and a live Custos ----------------------------------------------


@pytest.fixture
def demo_server(live_server: Any, settings: Any) -> Iterator[dict[str, Any]]:
    """The roll-out at a free port, the demo server serving there, a simulator pointed at the live Custos."""
    settings.CUSTOS_ISSUER = live_server.url
    org = _support_org()
    port = free_port()
    uri = f"http://127.0.0.1:{port}/mcp"
    mcp_rollout.ensure(uri)
    middleware = CustosMiddleware(
        custos_url=live_server.url, issuer=live_server.url, resource=RESOURCE, resource_uri=uri, check_timeout=5
    )
    posted: list[dict[str, str]] = []
    with serving(build(middleware, posted=posted).http_app(path="/mcp"), port):
        yield {"org": org, "uri": uri, "posted": posted, "simulator": Simulator(live_server.url, Pace())}
        middleware.close()


def _decisions() -> list[dict[str, Any]]:
    return [event.context for event in AuditEvent.objects.filter(action__startswith="check.").order_by("pk")]


@pytest.mark.django_db(transaction=True)
def test_the_simulated_agent_calls_the_demo_server_and_custos_decides_each_call(
    demo_server: dict[str, Any], monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    simulator: Simulator = demo_server["simulator"]
    sims = simulator.prepare_mcp(5)
    # Only the active triage agent holds a delegation on the server.
    assert [(sim.name, sim.mcp_url) for sim in sims] == [("support-triage-emea via MCP", demo_server["uri"])]
    calls = [
        McpCall("read_ticket", {"ticket_id": 4101}, "triage ticket 4101"),
        McpCall("lookup_contact", {"email": "ops@brightline-cafe.example"}, "find who raised ticket 4101"),
        McpCall("post_message", {"channel": "#support-escalations", "text": "help"}, "escalate the ticket"),
        McpCall("export_contacts", {}, "collect every contact for a report"),
    ]
    monkeypatch.setattr("demo.simulator.plan_calls", lambda rng, stray=False: calls)

    with caplog.at_level("INFO", logger="demo.simulator"):
        simulator.step(sims[0], random.Random(1))

    assert "support-triage-emea via MCP: MCP session, tools listed: lookup_contact read_ticket" in caplog.text
    assert "MCP post_message refused: scope_not_delegated" in caplog.text
    assert demo_server["posted"] == []  # the refused tool never ran
    decisions = _decisions()
    assert [(d["decision"], d["tool"], d["scope"]) for d in decisions] == [
        ("allow", "read_ticket", f"{RESOURCE}:read_ticket"),
        ("allow", "lookup_contact", f"{RESOURCE}:lookup_contact"),
        ("deny", "post_message", f"{RESOURCE}:post_message"),
        ("deny", "export_contacts", f"{RESOURCE}:export_contacts"),
    ]
    assert decisions[0]["intent"] == "triage ticket 4101"
    # One MCP session, named in each decision, and each decision chained back to the sponsor.
    assert len({d["session_id"] for d in decisions}) == 1 and decisions[0]["session_id"]
    link = Delegation.objects.get(delegate=demo_server["org"]["triage"])
    assert all(d["delegation_chain"] == [link.pk] for d in decisions)
    assert simulator.tally.take() == {"mcp_allow": 2, "mcp_deny": 2}


@pytest.mark.django_db(transaction=True)
def test_a_delegation_revoked_in_custos_refuses_the_agents_next_mcp_call(
    demo_server: dict[str, Any], monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    simulator: Simulator = demo_server["simulator"]
    (sim,) = simulator.prepare_mcp(1)
    only = [McpCall("read_ticket", {"ticket_id": 4102}, "triage ticket 4102")]
    monkeypatch.setattr("demo.simulator.plan_calls", lambda rng, stray=False: only)
    simulator.step(sim, random.Random(1))
    assert sim.token is not None  # the same token is used for the next session

    try:
        link = Delegation.objects.get(pk=sim.delegation_id)
        services.delegation_revoke(actor=factories.SYSTEM, delegation=link, reason="left the team")
    finally:
        connections.close_all()
    with caplog.at_level("INFO", logger="demo.simulator"):
        simulator.step(sim, random.Random(2))

    assert "MCP read_ticket refused: delegation_revoked" in caplog.text
    assert [(d["decision"], d["reason"]) for d in _decisions()] == [
        ("allow", "allowed"),
        ("deny", "delegation_revoked"),
    ]
    assert simulator.tally.take() == {"mcp_allow": 1, "mcp_deny": 1}


@pytest.mark.django_db(transaction=True)
def test_the_server_down_is_one_warning_line_and_the_agent_carries_on(
    demo_server: dict[str, Any], caplog: pytest.LogCaptureFixture
) -> None:
    simulator: Simulator = demo_server["simulator"]
    (sim,) = simulator.prepare_mcp(1)
    sim.token = sim.client.exchange_delegation(sim.delegation_id, audience=sim.mcp_url)
    sim.mcp_url = f"http://127.0.0.1:{free_port()}/mcp"  # the server went away
    stop = threading.Event()

    with caplog.at_level("INFO", logger="demo.simulator"):
        simulator.step_safely(sim, random.Random(1), stop)

    failed = [record for record in caplog.records if "MCP server at" in record.getMessage()]
    assert len(failed) == 1 and failed[0].levelname == "WARNING" and failed[0].exc_info is None
    assert simulator.tally.take() == {"failed": 1}
    assert sim.token is None and _decisions() == []  # a fresh token next time
