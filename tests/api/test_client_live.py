"""``custos_client`` end to end against a real server (pytest-django's live server, plain HTTP): the
calls an agent makes are the contract the API serves."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from audit.models import AuditEvent
from audit.services import Actor
from custos_client import CustosClient, CustosError
from governance import services
from governance.models import AccessRequest, Agent, AgentKey, Delegation
from tests import factories

# The live server reads what the test wrote: the data must be committed, not held in a test transaction.
pytestmark = pytest.mark.django_db(transaction=True)


def test_an_agent_and_its_sub_agent_work_through_the_client(live_server: Any) -> None:
    approver = factories.make_reviewer()
    human = factories.make_human(user=approver)
    resource = factories.make_resource(name="crm.contacts", actions=("read", "write", "delete"))
    for action in resource.actions:
        factories.make_grant(human, resource, action)
    agent = factories.make_agent(sponsor=human, name="support-bot")
    delegation = factories.make_delegation(
        agent, ["crm.contacts:read", "crm.contacts:write"], root_human=human, max_depth=1, expires_in=timedelta(days=1)
    )
    key_record, key = factories.make_key(agent)
    client = CustosClient(live_server.url, agent_key=key)

    # The agent exchanges its delegation and checks a tool call.
    token = client.exchange_delegation(delegation.pk)
    assert token.scope == ("crm.contacts:read", "crm.contacts:write")
    decision = client.check("read", "crm.contacts", token=token.access_token, intent="answer a ticket", tool="crm")
    assert (decision.allowed, decision.reason) == (True, "allowed")

    # It spawns a sub-agent, gives it a key and delegates a narrower, shorter part of its delegation.
    sub = client.spawn_sub_agent("support-bot-researcher", purpose="look things up", token=token.access_token)
    assert (sub["parent"], sub["sponsor"]) == (agent.pk, human.pk)
    sub_key = client.issue_sub_agent_key(int(sub["id"]), token=token.access_token)
    link = client.delegate(
        token=token.access_token,
        parent_delegation=delegation.pk,
        sub_agent_id=int(sub["id"]),
        scopes=["crm.contacts:read"],
        expires_in=3600,
        purpose="look up the customer",
    )
    assert (link["parent"], link["scopes"]) == (delegation.pk, ["crm.contacts:read"])

    # The sub-agent exchanges its parent's token and acts within what it was given.
    sub_client = CustosClient(live_server.url, agent_key=sub_key)
    sub_token = sub_client.exchange_parent_token(token.access_token)
    allowed = sub_client.check("read", "crm.contacts", token=sub_token.access_token, parent_request_id="r-1")
    assert allowed.allowed
    assert [actor["id"] for actor in allowed.actors] == [int(sub["id"]), agent.pk]
    refused = sub_client.check("write", "crm.contacts", token=sub_token.access_token)
    assert (refused.allowed, refused.reason) == (False, "scope_not_delegated")
    with pytest.raises(CustosError) as widened:
        sub_client.delegate(
            token=sub_token.access_token,
            parent_delegation=delegation.pk,
            sub_agent_id=int(sub["id"]),
            scopes=["crm.contacts:read"],
            expires_in=600,
            purpose="x",
        )
    assert (widened.value.status, widened.value.code) == (403, "parent_not_token_delegation")

    # The agent asks for a scope it lacks; the human it acts for approves; the agent exchanges the result.
    asked = client.request_access(
        "crm.contacts:delete", justification="a duplicate contact", intent="merge duplicates", token=token.access_token
    )
    assert (asked.status, asked.resulting_delegation) == ("pending", None)
    services.access_request_approve(
        actor=Actor.user(approver), user=approver, request=AccessRequest.objects.get(pk=asked.id), note="once"
    )
    polled = client.access_request(asked.id)
    assert polled.status == "approved"
    assert polled.resulting_delegation is not None
    jit_token = client.exchange_delegation(polled.resulting_delegation)
    assert client.check("delete", "crm.contacts", token=jit_token.access_token).allowed

    # It rotates its own key and carries on with the new one.
    rotated = client.rotate_key(key_record.pk, overlap_seconds=60)
    assert client.agent_key == rotated.secret != key
    assert client.exchange_delegation(delegation.pk).access_token

    actions = set(
        AuditEvent.objects.filter(actor_kind="agent", actor_id=str(agent.pk)).values_list("action", flat=True)
    )
    assert {
        "token.issue",
        "check.allow",
        "agent.create",
        "agentkey.create",
        "delegation.create",
        "accessrequest.create",
        "agentkey.rotate",
    } <= actions
    assert Agent.objects.get(pk=sub["id"]).parent_id == agent.pk
    assert Delegation.objects.filter(parent=delegation, delegate_id=sub["id"]).count() == 1
    assert AgentKey.objects.filter(agent_id=sub["id"]).count() == 1
