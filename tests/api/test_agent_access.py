"""Agents calling API v1 with their own key or delegation token (SPEC §9): they may register their own
sub-agents, issue them keys, delegate to them within their chain, rotate their own keys and ask for
access; nothing else. Refused means refused: no row, no status change, no audit event."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import pytest
import time_machine
from django.conf import settings
from django.utils import timezone

from governance import services, tokens
from governance.models import Agent, AgentKey, HumanStatus
from tests import factories
from tests.api.agent_calls import (
    KEY,
    TOKEN,
    Caller,
    audit_head,
    bearer,
    events_since,
    sub_delegation,
)
from tests.api.support import World, in_a_day, snapshot

pytestmark = pytest.mark.django_db


# --- The matrix: every route and method, with a key and with a token ----------------------------


@dataclass(frozen=True)
class Endpoint:
    method: str
    path: Callable[[World, Caller], str]
    payload: Callable[[World, Caller], dict[str, Any]] | None = None
    allowed: tuple[str, ...] = ()  # the credentials that may call it
    status: int = 201  # the answer when allowed
    refusal: str = "forbidden"  # the code when refused

    def call(self, world: World, caller: Caller, via: str) -> Any:
        client = caller.client(via)
        url = f"/api/v1/{self.path(world, caller)}"
        if self.method == "get":
            return client.get(url)
        return client.post(url, self.payload(world, caller) if self.payload else {}, format="json")


ENDPOINTS: dict[str, Endpoint] = {
    "humans list": Endpoint("get", lambda w, c: "humans/"),
    "humans create": Endpoint("post", lambda w, c: "humans/", lambda w, c: {"email": "n@example.test", "name": "N"}),
    "human detail": Endpoint("get", lambda w, c: f"humans/{w.mine.pk}/"),
    "human offboard": Endpoint("post", lambda w, c: f"humans/{w.left.pk}/offboard/", lambda w, c: {"reason": "t"}),
    "agents list": Endpoint("get", lambda w, c: "agents/"),
    "agents create": Endpoint("post", lambda w, c: "agents/", lambda w, c: {"name": "helper"}, allowed=(KEY, TOKEN)),
    "agent detail": Endpoint("get", lambda w, c: f"agents/{w.agent.pk}/"),
    "agent suspend": Endpoint("post", lambda w, c: f"agents/{w.sub_agent.pk}/suspend/"),
    "agent reactivate": Endpoint("post", lambda w, c: f"agents/{w.suspended_agent.pk}/reactivate/"),
    "agent offboard": Endpoint("post", lambda w, c: f"agents/{w.sub_agent.pk}/offboard/", lambda w, c: {"reason": "t"}),
    "agent keys list": Endpoint("get", lambda w, c: f"agents/{w.agent.pk}/keys/"),
    "agent keys revoke all": Endpoint("post", lambda w, c: f"agents/{w.agent.pk}/keys/revoke-all/"),
    "agent blast radius": Endpoint("get", lambda w, c: f"agents/{w.agent.pk}/blast-radius/"),
    "human blast radius": Endpoint("get", lambda w, c: f"humans/{w.mine.pk}/blast-radius/"),
    "agent keys create": Endpoint("post", lambda w, c: f"agents/{w.sub_agent.pk}/keys/", allowed=(KEY, TOKEN)),
    "key revoke": Endpoint("post", lambda w, c: f"keys/{c.key_record.pk}/revoke/"),
    "key rotate": Endpoint("post", lambda w, c: f"keys/{c.key_record.pk}/rotate/", allowed=(KEY, TOKEN)),
    "resources list": Endpoint("get", lambda w, c: "resources/"),
    "resources create": Endpoint(
        "post", lambda w, c: "resources/", lambda w, c: {"name": "new.res", "owner": w.mine.pk, "actions": ["read"]}
    ),
    "resource detail": Endpoint("get", lambda w, c: f"resources/{w.resource.pk}/"),
    "grants list": Endpoint("get", lambda w, c: "grants/"),
    "grants create": Endpoint(
        "post",
        lambda w, c: "grants/",
        lambda w, c: {
            "holder_agent": w.agent.pk,
            "resource": w.resource.pk,
            "action": "write",
            "expires_at": in_a_day(),
        },
    ),
    "grant detail": Endpoint("get", lambda w, c: f"grants/{w.agent_grant.pk}/"),
    "grant revoke": Endpoint("post", lambda w, c: f"grants/{w.agent_grant.pk}/revoke/"),
    "delegations list": Endpoint("get", lambda w, c: "delegations/"),
    "delegations create": Endpoint(
        "post", lambda w, c: "delegations/", sub_delegation, allowed=(TOKEN,), refusal="token_required"
    ),
    "delegation detail": Endpoint("get", lambda w, c: f"delegations/{w.delegation.pk}/"),
    "delegation revoke": Endpoint("post", lambda w, c: f"delegations/{w.delegation.pk}/revoke/"),
    "access requests list": Endpoint("get", lambda w, c: "access-requests/"),
    "access requests create": Endpoint(
        "post",
        lambda w, c: "access-requests/",
        # world.access_request already asks for write: another one would be a duplicate.
        lambda w, c: {"scope": w.resource.scope("read"), "justification": "to read the ledger"},
        allowed=(KEY, TOKEN),
    ),
    "access request detail": Endpoint(
        "get", lambda w, c: f"access-requests/{w.access_request.pk}/", allowed=(KEY, TOKEN), status=200
    ),
    "access request approve": Endpoint("post", lambda w, c: f"access-requests/{w.access_request.pk}/approve/"),
    "access request deny": Endpoint("post", lambda w, c: f"access-requests/{w.access_request.pk}/deny/"),
    "campaigns list": Endpoint("get", lambda w, c: "campaigns/"),
    "campaigns create": Endpoint(
        "post",
        lambda w, c: "campaigns/",
        lambda w, c: {"name": "r", "subjects": ["grant"], "fallback_reviewer": w.mine.pk},
    ),
    "campaign detail": Endpoint("get", lambda w, c: f"campaigns/{w.campaign.pk}/"),
    "campaign preview": Endpoint("get", lambda w, c: f"campaigns/{w.draft_campaign.pk}/preview/"),
    "campaign launch": Endpoint("post", lambda w, c: f"campaigns/{w.draft_campaign.pk}/launch/"),
    "campaign close": Endpoint("post", lambda w, c: f"campaigns/{w.campaign.pk}/close/"),
    "campaign items": Endpoint("get", lambda w, c: f"campaigns/{w.campaign.pk}/items/"),
    "review items list": Endpoint("get", lambda w, c: "review-items/"),
    "review item detail": Endpoint("get", lambda w, c: f"review-items/{w.review_item.pk}/"),
    "review item decide": Endpoint(
        "post", lambda w, c: f"review-items/{w.review_item.pk}/decide/", lambda w, c: {"decision": "certify"}
    ),
    "review item reassign": Endpoint(
        "post", lambda w, c: f"review-items/{w.review_item.pk}/reassign/", lambda w, c: {"reviewer": w.colleague.pk}
    ),
    "review items certify": Endpoint(
        "post", lambda w, c: "review-items/certify/", lambda w, c: {"items": [w.review_item.pk]}
    ),
    "audit events": Endpoint("get", lambda w, c: "audit/events/"),
    "audit verify": Endpoint("get", lambda w, c: "audit/verify/"),
    "audit export": Endpoint("get", lambda w, c: "audit/export/?since=2000-01-01T00:00:00Z"),
    "audit custody": Endpoint("get", lambda w, c: f"audit/custody/{'0' * 64}/"),
    "audit session": Endpoint("get", lambda w, c: "audit/sessions/any-session/"),
}


@pytest.mark.parametrize("via", [KEY, TOKEN])
@pytest.mark.parametrize("name", ENDPOINTS)
def test_an_agent_may_call_only_the_operations_of_its_own_chain(
    world: World, caller: Caller, name: str, via: str
) -> None:
    endpoint = ENDPOINTS[name]
    before, head = snapshot(), audit_head()

    response = endpoint.call(world, caller, via)

    body = response.json()
    if via in endpoint.allowed:
        assert response.status_code == endpoint.status, body
        if endpoint.method == "post":
            written = events_since(head)
            assert written, "an allowed change leaves its evidence"
            assert {(e.actor_kind, e.actor_id) for e in written} == {("agent", str(caller.agent.pk))}
    else:
        assert response.status_code == 403, body
        assert body["code"] == endpoint.refusal
        assert set(body) == {"code", "detail", "fields"}
    if endpoint.method == "get" or response.status_code >= 400:
        assert snapshot() == before


def test_the_agent_matrix_covers_every_api_v1_route_and_method(world: World, caller: Caller) -> None:
    from django.urls import resolve

    from config.urls import api_v1_patterns as urlpatterns

    routes = {
        (str(pattern.pattern), method)
        for pattern in urlpatterns
        for method in ("get", "post")
        if hasattr(pattern.callback.view_class, method)  # type: ignore[attr-defined]
    }
    in_matrix = {
        (resolve(f"/api/v1/{e.path(world, caller)}".partition("?")[0]).route.removeprefix("api/v1/"), e.method)
        for e in ENDPOINTS.values()
    }
    assert in_matrix == routes


def _revoked_key(world: World, caller: Caller) -> str:
    services.agentkey_revoke(actor=factories.SYSTEM, key=caller.key_record)
    return caller.key


def _revoked_token(world: World, caller: Caller) -> str:
    jti = tokens.verify(caller.token).jti
    services.token_revoke(actor=factories.SYSTEM, jti=jti)
    return caller.token


def _token_of_a_revoked_delegation(world: World, caller: Caller) -> str:
    services.delegation_revoke(actor=factories.SYSTEM, delegation=world.delegation)
    return caller.token


BAD_CREDENTIALS: dict[str, tuple[Callable[[World, Caller], str], str]] = {
    "revoked key": (_revoked_key, "credential_revoked"),
    "revoked token": (_revoked_token, "credential_revoked"),
    "token of a revoked delegation": (_token_of_a_revoked_delegation, "delegation_revoked"),
    "not a credential": (lambda w, c: "not-a-token", "credential_invalid"),
    "a key with a wrong secret": (lambda w, c: c.key[:-4] + "AAAA", "credential_invalid"),
}


@pytest.mark.parametrize("bad", BAD_CREDENTIALS)
@pytest.mark.parametrize("name", ENDPOINTS)
def test_an_unusable_agent_credential_is_a_401_everywhere_and_writes_nothing(
    world: World, caller: Caller, name: str, bad: str
) -> None:
    make_bad, code = BAD_CREDENTIALS[bad]
    credential = make_bad(world, caller)
    endpoint = ENDPOINTS[name]
    before = snapshot()
    client = bearer(credential)
    url = f"/api/v1/{endpoint.path(world, caller)}"

    if endpoint.method == "get":
        response = client.get(url)
    else:
        response = client.post(url, endpoint.payload(world, caller) if endpoint.payload else {}, format="json")

    assert response.status_code == 401, response.content
    assert response.json()["code"] == code
    assert response["WWW-Authenticate"].startswith("Bearer")
    assert snapshot() == before


# --- Why a credential is refused --------------------------------------------------------------


def _post_agent(credential: str) -> Any:
    return bearer(credential).post("/api/v1/agents/", {"name": "helper"}, format="json")


def test_an_expired_token_is_refused_as_expired(caller: Caller) -> None:
    with time_machine.travel(timezone.now() + settings.CUSTOS_TOKEN_MAX_LIFETIME + timedelta(minutes=5)):
        response = _post_agent(caller.token)

    assert response.status_code == 401
    assert response.json()["code"] == "credential_expired"


def test_an_expired_key_is_refused(caller: Caller) -> None:
    with time_machine.travel(caller.key_record.expires_at + timedelta(seconds=1)):
        response = _post_agent(caller.key)

    assert response.status_code == 401
    assert response.json()["code"] == "credential_expired"


def test_a_token_minted_for_one_resource_is_not_good_at_the_api(world: World, caller: Caller) -> None:
    token = factories.make_token(caller.key, world.delegation, audience=world.resource.name)

    response = _post_agent(token)

    assert response.status_code == 401
    assert response.json()["code"] == "credential_invalid"


@pytest.mark.parametrize(
    ("breaks", "code"),
    [
        (lambda w: services.agent_suspend(actor=factories.SYSTEM, agent=w.agent), "agent_inactive"),
        (
            lambda w: services.human_set_status(actor=factories.SYSTEM, human=w.mine, status=HumanStatus.SUSPENDED),
            "sponsor_inactive",
        ),
        (lambda w: services.grant_revoke(actor=factories.SYSTEM, grant=w.human_grant), None),
    ],
    ids=["agent suspended", "sponsor suspended", "a grant of the root human revoked"],
)
def test_a_token_is_refused_when_its_chain_is_not_usable_right_now(
    world: World, caller: Caller, breaks: Any, code: str | None
) -> None:
    breaks(world)

    response = _post_agent(caller.token)

    if code is None:
        # Creating a sub-agent uses no scope: a grant lost by the root human does not stop it.
        assert response.status_code == 201
    else:
        assert response.status_code == 401
        assert response.json()["code"] == code


def test_a_console_token_still_goes_to_the_console_authentication(world: World) -> None:
    response = world.client("auditor").get("/api/v1/agents/")

    assert response.status_code == 200


# --- Registering sub-agents -------------------------------------------------------------------


@pytest.mark.parametrize("via", [KEY, TOKEN])
def test_an_agent_registers_a_sub_agent_of_its_own_with_its_sponsor(world: World, caller: Caller, via: str) -> None:
    head = audit_head()

    response = caller.client(via).post(
        "/api/v1/agents/",
        {"name": "researcher", "purpose": "find sources", "risk_tier": "low", "parent": caller.agent.pk},
        format="json",
    )

    assert response.status_code == 201, response.content
    body = response.json()
    assert (body["parent"], body["sponsor"], body["depth"], body["risk_tier"]) == (
        caller.agent.pk,
        world.mine.pk,
        1,
        "low",
    )
    (event,) = events_since(head)
    assert (event.action, event.actor_kind, event.actor_id, event.target_id) == (
        "agent.create",
        "agent",
        str(caller.agent.pk),
        str(body["id"]),
    )


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("parent", lambda w: w.other_agent.pk),
        ("parent", lambda w: w.sub_agent.pk),
        ("sponsor", lambda w: w.other_human.pk),
        ("sponsor", lambda w: 999_999),
    ],
    ids=["another agent as parent", "its own sub-agent as parent", "another sponsor", "an unknown sponsor"],
)
def test_an_agent_cannot_register_an_agent_outside_its_own_tree(
    world: World, caller: Caller, field: str, value: Any
) -> None:
    before = snapshot()

    response = caller.client(TOKEN).post("/api/v1/agents/", {"name": "x", field: value(world)}, format="json")

    assert response.status_code == 403
    assert response.json()["code"] == "agent_scope_exceeded"
    assert response.json()["fields"] == {field: [response.json()["detail"]]}
    assert snapshot() == before


# --- Keys for sub-agents ----------------------------------------------------------------------


def test_a_sub_agents_key_never_outlives_its_parents_keys(world: World, caller: Caller) -> None:
    AgentKey.objects.filter(agent=caller.agent).update(expires_at=timezone.now() + timedelta(days=3))

    response = caller.client(TOKEN).post(f"/api/v1/agents/{world.sub_agent.pk}/keys/", {}, format="json")

    assert response.status_code == 201, response.content
    body = response.json()
    assert body["agent"] == world.sub_agent.pk
    assert body["secret"].startswith(f"ck_{body['prefix']}_")
    assert response["Cache-Control"] == "no-store"
    issued = AgentKey.objects.get(pk=body["id"])
    latest = max(AgentKey.objects.filter(agent=caller.agent).values_list("expires_at", flat=True))
    assert issued.expires_at == latest


def test_a_sub_agents_key_is_bounded_by_the_configured_lifetime(world: World, caller: Caller) -> None:
    AgentKey.objects.filter(agent=caller.agent).update(expires_at=timezone.now() + settings.CUSTOS_KEY_MAX_TTL)
    before = timezone.now()

    response = caller.client(KEY).post(f"/api/v1/agents/{world.sub_agent.pk}/keys/", {}, format="json")
    too_long = caller.client(KEY).post(
        f"/api/v1/agents/{world.sub_agent.pk}/keys/",
        {"expires_at": (timezone.now() + settings.CUSTOS_KEY_TTL + timedelta(days=1)).isoformat()},
        format="json",
    )

    expires_at = AgentKey.objects.get(pk=response.json()["id"]).expires_at
    assert before + settings.CUSTOS_KEY_TTL <= expires_at <= timezone.now() + settings.CUSTOS_KEY_TTL
    assert too_long.status_code == 400
    assert too_long.json()["code"] == "lifetime_exceeds_maximum"


def test_a_key_asked_to_outlive_the_callers_keys_is_refused(world: World, caller: Caller) -> None:
    AgentKey.objects.filter(agent=caller.agent).update(expires_at=timezone.now() + timedelta(days=3))
    before = snapshot()

    response = caller.client(KEY).post(
        f"/api/v1/agents/{world.sub_agent.pk}/keys/",
        {"expires_at": (timezone.now() + timedelta(days=4)).isoformat()},
        format="json",
    )

    assert response.status_code == 400
    assert response.json()["code"] == "expiry_exceeds_caller"
    assert snapshot() == before


@pytest.mark.parametrize(
    "target",
    [
        lambda w: factories.make_agent(parent=w.other_agent),
        lambda w: w.other_agent,
        lambda w: factories.make_agent(parent=w.sub_agent),
        lambda w: w.agent,
        lambda w: Agent(pk=999_999),
    ],
    ids=["another agent's sub-agent", "another agent", "its sub-agent's sub-agent", "itself", "no such agent"],
)
def test_an_agent_issues_keys_only_to_its_direct_sub_agents(world: World, caller: Caller, target: Any) -> None:
    agent = target(world)
    before = snapshot()

    response = caller.client(TOKEN).post(f"/api/v1/agents/{agent.pk}/keys/", {}, format="json")

    assert response.status_code == 404
    assert snapshot() == before
