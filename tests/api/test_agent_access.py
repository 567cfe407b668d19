"""Agents calling API v1 with their own key or delegation token (SPEC §9): they may register their own
sub-agents, issue them keys, delegate to them within their chain, rotate their own keys and ask for
access; nothing else. Refused means refused: no row, no status change, no audit event."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any
from urllib.parse import urlencode

import pytest
import time_machine
from django.conf import settings
from django.test import Client
from django.utils import timezone
from rest_framework.test import APIClient

from audit.models import AuditEvent
from audit.services import Actor
from console.errors import ValidationFailed
from governance import oauth, services, tokens
from governance.models import Agent, AgentKey, Delegation, HumanStatus
from governance.usage import usage
from tests import factories
from tests.api.support import World, in_a_day, in_an_hour, snapshot

pytestmark = pytest.mark.django_db

FORM = "application/x-www-form-urlencoded"


@dataclass
class Caller:
    """``world.agent`` with a key of its own and a token for ``world.delegation`` (read and write,
    one further hop allowed)."""

    agent: Agent
    key: str
    key_record: AgentKey
    token: str

    def client(self, via: str) -> APIClient:
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {self.key if via == 'key' else self.token}")
        return client


@pytest.fixture
def caller(world: World) -> Caller:
    key_record, key = factories.make_key(world.agent)
    return Caller(world.agent, key, key_record, factories.make_token(key, world.delegation))


def _bearer(credential: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {credential}")
    return client


def _events_since(seq: int) -> list[AuditEvent]:
    return list(AuditEvent.objects.filter(id__gt=seq).order_by("id"))


def _head() -> int:
    last = AuditEvent.objects.order_by("-id").first()
    return last.id if last else 0


def _exchange(actor_key: str, subject: str, subject_type: str, **extra: str) -> Any:
    form = {
        "grant_type": oauth.GRANT_TYPE_TOKEN_EXCHANGE,
        "actor_token": actor_key,
        "actor_token_type": oauth.TOKEN_TYPE_AGENT_KEY,
        "subject_token": subject,
        "subject_token_type": subject_type,
        **extra,
    }
    return Client().post("/oauth/token", urlencode(form), content_type=FORM)


def _check(credential: str, scope: str) -> dict[str, Any]:
    resource, _, action = scope.partition(":")
    response = _bearer(credential).post("/api/v1/check", {"action": action, "resource": resource}, format="json")
    assert response.status_code == 200, response.content
    return dict(response.json())


# --- The matrix: every route and method, with a key and with a token ----------------------------

KEY, TOKEN = "key", "token"


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


def _sub_delegation(world: World, caller: Caller) -> dict[str, Any]:
    return {
        "parent": world.delegation.pk,
        "delegate": world.sub_agent.pk,
        "scopes": [world.resource.scope("read")],
        "expires_at": in_an_hour(),
        "purpose": "summarise tickets",
    }


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
        "post", lambda w, c: "delegations/", _sub_delegation, allowed=(TOKEN,), refusal="token_required"
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
    before, head = snapshot(), _head()

    response = endpoint.call(world, caller, via)

    body = response.json()
    if via in endpoint.allowed:
        assert response.status_code == endpoint.status, body
        if endpoint.method == "post":
            written = _events_since(head)
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
    client = _bearer(credential)
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
    return _bearer(credential).post("/api/v1/agents/", {"name": "helper"}, format="json")


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
    head = _head()

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
    (event,) = _events_since(head)
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


# --- Delegating within its chain --------------------------------------------------------------


def test_an_agent_delegates_a_narrower_shorter_part_and_its_sub_agent_acts_on_it(world: World, caller: Caller) -> None:
    read, write = world.resource.scope("read"), world.resource.scope("write")
    agent_client = caller.client(TOKEN)
    head = _head()

    sub = agent_client.post("/api/v1/agents/", {"name": "summariser"}, format="json").json()
    sub_key = agent_client.post(f"/api/v1/agents/{sub['id']}/keys/", {}, format="json").json()["secret"]
    expires_at = timezone.now() + timedelta(hours=2)
    response = agent_client.post(
        "/api/v1/delegations/",
        {
            "parent": world.delegation.pk,
            "delegate": sub["id"],
            "scopes": [read],
            "expires_at": expires_at.isoformat(),
            "purpose": "summarise the tickets",
        },
        format="json",
    )

    assert response.status_code == 201, response.content
    link = response.json()
    assert (link["parent"], link["delegate"], link["root_human"], link["scopes"], link["depth"]) == (
        world.delegation.pk,
        sub["id"],
        world.mine.pk,
        [read],
        1,
    )
    assert [(e.action, e.actor_id) for e in _events_since(head)] == [
        ("agent.create", str(caller.agent.pk)),
        ("agentkey.create", str(caller.agent.pk)),
        ("delegation.create", str(caller.agent.pk)),
    ]

    exchanged = _exchange(sub_key, caller.token, oauth.TOKEN_TYPE_JWT)
    assert exchanged.status_code == 200, exchanged.content
    sub_token = exchanged.json()["access_token"]
    assert exchanged.json()["scope"] == read

    allowed = _check(sub_token, read)
    assert (allowed["decision"], allowed["reason"]) == ("allow", "allowed")
    assert [a["id"] for a in allowed["actors"]] == [sub["id"], caller.agent.pk]
    assert allowed["subject"]["id"] == world.mine.pk
    denied = _check(sub_token, write)
    assert (denied["decision"], denied["reason"]) == ("deny", "scope_not_delegated")


def _delegate(caller: Caller, world: World, via: str = TOKEN, **changes: Any) -> Any:
    body = _sub_delegation(world, caller) | changes
    return caller.client(via).post("/api/v1/delegations/", body, format="json")


@pytest.mark.parametrize(
    ("changes", "status", "code"),
    [
        (lambda w: {"scopes": [w.resource.scope("read"), "other.res:read"]}, 403, "scope_not_delegated"),
        (lambda w: {"parent": w.leaf_delegation.pk}, 403, "parent_not_token_delegation"),
        (lambda w: {"parent": w.other_delegation.pk}, 403, "parent_not_token_delegation"),
        (lambda w: {"root_human": w.mine.pk}, 403, "agent_scope_exceeded"),
        (lambda w: {"delegate": w.other_agent.pk}, 400, "delegate_not_sub_agent"),
        (lambda w: {"delegate": w.agent.pk}, 400, "delegate_not_sub_agent"),
        (lambda w: {"delegate": 999_999}, 400, "delegate_not_sub_agent"),
        (lambda w: {"expires_at": (timezone.now() + timedelta(days=3)).isoformat()}, 400, "expiry_exceeds_parent"),
        (lambda w: {"max_depth": 1}, 400, "depth_exceeds_parent"),
        (lambda w: {"scopes": []}, 400, "invalid"),
    ],
    ids=[
        "a scope outside the token",
        "its other delegation as parent",
        "another agent's delegation as parent",
        "a root link",
        "another agent as delegate",
        "itself as delegate",
        "no such delegate",
        "an expiry beyond the parent",
        "more depth than the parent leaves",
        "no scope",
    ],
)
def test_an_agent_cannot_widen_its_chain(world: World, caller: Caller, changes: Any, status: int, code: str) -> None:
    before = snapshot()

    response = _delegate(caller, world, **changes(world))

    assert response.status_code == status, response.content
    assert response.json()["code"] == code
    assert snapshot() == before


def test_a_token_carrying_less_than_its_delegation_delegates_only_what_it_carries(world: World, caller: Caller) -> None:
    narrow = factories.make_token(caller.key, world.delegation, scope=world.resource.scope("read"))
    before = snapshot()

    response = _bearer(narrow).post(
        "/api/v1/delegations/",
        _sub_delegation(world, caller) | {"scopes": [world.resource.scope("write")]},
        format="json",
    )

    assert response.status_code == 403
    assert response.json()["code"] == "scope_not_delegated"
    assert snapshot() == before


def test_an_agent_cannot_delegate_under_another_agents_delegation(world: World, caller: Caller) -> None:
    _, other_key = factories.make_key(world.other_agent)
    other_token = factories.make_token(other_key, world.other_delegation)
    before = snapshot()

    response = _bearer(other_token).post("/api/v1/delegations/", _sub_delegation(world, caller), format="json")

    assert response.status_code == 403
    assert response.json()["code"] == "parent_not_token_delegation"
    assert snapshot() == before


def test_an_agent_with_its_key_alone_has_nothing_to_delegate(world: World, caller: Caller) -> None:
    before = snapshot()

    response = _delegate(caller, world, via=KEY)

    assert response.status_code == 403
    assert response.json()["code"] == "token_required"
    assert snapshot() == before


# --- Key rotation -----------------------------------------------------------------------------


def _rotate(credential: str, key: AgentKey, **body: Any) -> Any:
    return _bearer(credential).post(f"/api/v1/keys/{key.pk}/rotate/", body, format="json")


@pytest.mark.parametrize("via", [KEY, TOKEN])
def test_an_agent_rotates_its_key_and_both_work_during_the_overlap_only(world: World, caller: Caller, via: str) -> None:
    head = _head()
    read = world.resource.scope("read")  # the agent holds it by its own grant: a key check allows it
    credential = caller.key if via == KEY else caller.token

    response = _rotate(credential, caller.key_record, overlap_seconds=600)

    assert response.status_code == 201, response.content
    body = response.json()
    new_key, previous = body["key"]["secret"], body["previous"]
    assert body["key"]["agent"] == previous["agent"] == caller.agent.pk
    assert previous["id"] == caller.key_record.pk
    # A fresh secret, not more time: the new key ends when the old one would have.
    assert AgentKey.objects.get(pk=body["key"]["id"]).expires_at == caller.key_record.expires_at
    assert [(e.action, e.actor_kind, e.actor_id) for e in _events_since(head)] == [
        ("agentkey.create", "agent", str(caller.agent.pk)),
        ("agentkey.rotate", "agent", str(caller.agent.pk)),
    ]
    rotation = _events_since(head)[-1]
    assert rotation.target_id == str(caller.key_record.pk)
    assert rotation.context["overlap_seconds"] == 600
    assert rotation.context["replaced_by"] == body["key"]["id"]

    assert _check(caller.key, read)["decision"] == "allow"
    assert _check(new_key, read)["decision"] == "allow"
    with time_machine.travel(timezone.now() + timedelta(seconds=601)):
        old = _check(caller.key, read)
        new = _check(new_key, read)
    assert (old["decision"], old["reason"]) == ("deny", "credential_expired")
    assert new["decision"] == "allow"


def test_the_overlap_defaults_to_the_configured_one_and_never_lengthens_a_key(world: World, caller: Caller) -> None:
    soon = timezone.now() + settings.CUSTOS_KEY_ROTATION_OVERLAP / 2
    short, _ = factories.make_key(world.agent, expires_at=soon)
    before = timezone.now()

    first = _rotate(caller.key, caller.key_record)
    second = _rotate(caller.key, short)

    assert first.status_code == second.status_code == 201
    caller.key_record.refresh_from_db()
    short.refresh_from_db()
    overlap = settings.CUSTOS_KEY_ROTATION_OVERLAP
    assert before + overlap <= caller.key_record.expires_at <= timezone.now() + overlap
    assert short.expires_at == soon


def test_an_admin_rotates_any_key_and_may_end_the_old_one_at_once(world: World) -> None:
    response = world.client("admin").post(f"/api/v1/keys/{world.key.pk}/rotate/", {"overlap_seconds": 0}, format="json")

    assert response.status_code == 201, response.content
    body = response.json()
    world.key.refresh_from_db()
    assert world.key.expires_at <= timezone.now()
    assert body["previous"]["status"] == "expired"
    new = AgentKey.objects.get(pk=body["key"]["id"])
    assert new.agent_id == world.agent.pk
    # An admin's rotation gives the configured lifetime afresh.
    assert new.expires_at > timezone.now() + settings.CUSTOS_KEY_TTL - timedelta(minutes=1)
    event = AuditEvent.objects.get(action="agentkey.rotate", target_id=str(world.key.pk))
    assert (event.actor_kind, event.actor_id) == ("user", str(world.users["admin"].pk))


def test_an_agent_cannot_rotate_another_agents_key(world: World, caller: Caller) -> None:
    before = snapshot()

    response = _rotate(caller.token, world.other_key)

    assert response.status_code == 404
    assert snapshot() == before


@pytest.mark.parametrize(
    ("spoil", "code"),
    [
        (lambda k: services.agentkey_revoke(actor=factories.SYSTEM, key=k), "key_revoked"),
        (lambda k: AgentKey.objects.filter(pk=k.pk).update(expires_at=timezone.now()), "key_expired"),
    ],
    ids=["revoked", "expired"],
)
def test_a_dead_key_is_not_rotated(world: World, spoil: Any, code: str) -> None:
    spoil(world.key)
    before = snapshot()

    response = world.client("admin").post(f"/api/v1/keys/{world.key.pk}/rotate/", {}, format="json")

    assert response.status_code == 409
    assert response.json()["code"] == code
    assert snapshot() == before


def test_a_negative_overlap_is_refused(world: World) -> None:
    response = world.client("admin").post(
        f"/api/v1/keys/{world.key.pk}/rotate/", {"overlap_seconds": -1}, format="json"
    )

    assert response.status_code == 400
    assert "overlap_seconds" in response.json()["fields"]


def test_the_rotation_service_refuses_a_negative_overlap() -> None:
    agent = factories.make_agent()
    key, _ = factories.make_key(agent)

    with pytest.raises(ValidationFailed) as refused:
        services.agentkey_rotate(actor=Actor.system("t"), key=key, overlap=timedelta(seconds=-1))

    assert refused.value.code == "invalid_overlap"


# --- Usage ------------------------------------------------------------------------------------


def test_api_use_shows_as_the_keys_last_use_and_the_agents_last_activity(world: World, caller: Caller) -> None:
    usage.flush()
    # The caller's key obtained its token when the world was built: that was a use already.
    before = AgentKey.objects.get(pk=caller.key_record.pk).last_used_at

    caller.client(KEY).get(f"/api/v1/access-requests/{world.access_request.pk}/")
    usage.flush()

    caller.key_record.refresh_from_db()
    world.agent.refresh_from_db()
    assert caller.key_record.last_used_at is not None
    assert before is None or caller.key_record.last_used_at > before
    assert world.agent.last_activity_at is not None
    assert world.agent.last_activity_at >= caller.key_record.last_used_at


def test_a_delegation_that_allows_no_further_hop_is_not_delegated_from(world: World, caller: Caller) -> None:
    leaf_token = factories.make_token(caller.key, world.leaf_delegation)
    before = snapshot()

    response = _bearer(leaf_token).post(
        "/api/v1/delegations/",
        _sub_delegation(world, caller) | {"parent": world.leaf_delegation.pk},
        format="json",
    )

    assert response.status_code == 400
    assert response.json()["code"] == "depth_exhausted"
    assert snapshot() == before
    assert Delegation.objects.filter(parent=world.leaf_delegation).count() == 0
