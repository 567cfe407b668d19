"""The API half of the role-by-endpoint matrix: admin changes things, reviewer reads what they are
accountable for, auditor reads everything and changes nothing, outsider gets nothing, anonymous is
asked to authenticate. Every refused call leaves the database exactly as it was."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest

from tests.api.support import ROLES, World, in_a_day, in_an_hour, snapshot

pytestmark = pytest.mark.django_db

READ, WRITE, AUDIT, DECIDE, AGENT_ONLY = "read", "write", "audit", "decide", "agent only"
REVIEW = "review"  # only the item's reviewer: an admin is refused by the service (not their item)


@dataclass(frozen=True)
class Endpoint:
    method: str
    path: Callable[[World], str]
    kind: str
    payload: Callable[[World], dict[str, Any]] | None = None
    created: bool = False  # an admin's successful call answers 201 rather than 200
    # The refusal code for a role whose console role passes but whom the service refuses.
    refusals: dict[str, str] = field(default_factory=dict)

    def call(self, world: World, role: str) -> Any:
        client = world.client(role)
        url = f"/api/v1/{self.path(world)}"
        if self.method == "get":
            return client.get(url)
        return client.post(url, self.payload(world) if self.payload else {}, format="json")


ENDPOINTS: dict[str, Endpoint] = {
    "humans list": Endpoint("get", lambda w: "humans/", READ),
    "humans create": Endpoint(
        "post", lambda w: "humans/", WRITE, lambda w: {"email": "new@example.test", "name": "New"}, created=True
    ),
    "human detail": Endpoint("get", lambda w: f"humans/{w.mine.pk}/", READ),
    "human offboard": Endpoint("post", lambda w: f"humans/{w.left.pk}/offboard/", WRITE, lambda w: {"reason": "t"}),
    "agents list": Endpoint("get", lambda w: "agents/", READ),
    "agents create": Endpoint(
        "post", lambda w: "agents/", WRITE, lambda w: {"name": "new-agent", "sponsor": w.mine.pk}, created=True
    ),
    "agent detail": Endpoint("get", lambda w: f"agents/{w.agent.pk}/", READ),
    "agent suspend": Endpoint("post", lambda w: f"agents/{w.agent.pk}/suspend/", WRITE, lambda w: {"reason": "t"}),
    "agent reactivate": Endpoint("post", lambda w: f"agents/{w.suspended_agent.pk}/reactivate/", WRITE),
    "agent offboard": Endpoint(
        "post", lambda w: f"agents/{w.sub_agent.pk}/offboard/", WRITE, lambda w: {"reason": "t"}
    ),
    "agent keys list": Endpoint("get", lambda w: f"agents/{w.agent.pk}/keys/", READ),
    "agent keys revoke all": Endpoint(
        "post", lambda w: f"agents/{w.agent.pk}/keys/revoke-all/", WRITE, lambda w: {"reason": "rotation drill"}
    ),
    "agent blast radius": Endpoint("get", lambda w: f"agents/{w.agent.pk}/blast-radius/", READ),
    "human blast radius": Endpoint("get", lambda w: f"humans/{w.mine.pk}/blast-radius/", READ),
    "agent keys create": Endpoint(
        "post", lambda w: f"agents/{w.agent.pk}/keys/", WRITE, lambda w: {"name": "ci"}, created=True
    ),
    "key revoke": Endpoint("post", lambda w: f"keys/{w.key.pk}/revoke/", WRITE, lambda w: {"reason": "leaked"}),
    "key rotate": Endpoint("post", lambda w: f"keys/{w.key.pk}/rotate/", WRITE, created=True),
    "resources list": Endpoint("get", lambda w: "resources/", READ),
    "resources create": Endpoint(
        "post",
        lambda w: "resources/",
        WRITE,
        lambda w: {"name": "new.res", "owner": w.mine.pk, "actions": ["read"]},
        created=True,
    ),
    "resource detail": Endpoint("get", lambda w: f"resources/{w.resource.pk}/", READ),
    "grants list": Endpoint("get", lambda w: "grants/", READ),
    "grants create": Endpoint(
        "post",
        lambda w: "grants/",
        WRITE,
        lambda w: {"holder_agent": w.agent.pk, "resource": w.resource.pk, "action": "write", "expires_at": in_a_day()},
        created=True,
    ),
    "grant detail": Endpoint("get", lambda w: f"grants/{w.human_grant.pk}/", READ),
    "grant revoke": Endpoint("post", lambda w: f"grants/{w.human_grant.pk}/revoke/", WRITE),
    "delegations list": Endpoint("get", lambda w: "delegations/", READ),
    "delegations create": Endpoint(
        "post",
        lambda w: "delegations/",
        WRITE,
        lambda w: {
            "delegate": w.sub_agent.pk,
            "parent": w.delegation.pk,
            "scopes": [w.resource.scope("read")],
            "expires_at": in_an_hour(),
            "purpose": "summarise tickets",
        },
        created=True,
    ),
    "delegation detail": Endpoint("get", lambda w: f"delegations/{w.delegation.pk}/", READ),
    "delegation revoke": Endpoint("post", lambda w: f"delegations/{w.delegation.pk}/revoke/", WRITE),
    "access requests list": Endpoint("get", lambda w: "access-requests/", READ),
    "access requests create": Endpoint(
        "post",
        lambda w: "access-requests/",
        AGENT_ONLY,
        lambda w: {"scope": w.resource.scope("write"), "justification": "t"},
    ),
    "access request detail": Endpoint("get", lambda w: f"access-requests/{w.access_request.pk}/", READ),
    "access request approve": Endpoint("post", lambda w: f"access-requests/{w.access_request.pk}/approve/", DECIDE),
    "access request deny": Endpoint("post", lambda w: f"access-requests/{w.access_request.pk}/deny/", DECIDE),
    "campaigns list": Endpoint("get", lambda w: "campaigns/", READ),
    "campaigns create": Endpoint(
        "post",
        lambda w: "campaigns/",
        WRITE,
        lambda w: {"name": "Q3 review", "subjects": ["grant"], "fallback_reviewer": w.mine.pk},
        created=True,
    ),
    "campaign detail": Endpoint("get", lambda w: f"campaigns/{w.campaign.pk}/", READ),
    "campaign preview": Endpoint("get", lambda w: f"campaigns/{w.draft_campaign.pk}/preview/", AUDIT),
    "campaign launch": Endpoint("post", lambda w: f"campaigns/{w.draft_campaign.pk}/launch/", WRITE),
    "campaign close": Endpoint("post", lambda w: f"campaigns/{w.campaign.pk}/close/", WRITE),
    "campaign items": Endpoint("get", lambda w: f"campaigns/{w.campaign.pk}/items/", READ),
    "review items list": Endpoint("get", lambda w: "review-items/", READ),
    "review item detail": Endpoint("get", lambda w: f"review-items/{w.review_item.pk}/", READ),
    "review item decide": Endpoint(
        "post",
        lambda w: f"review-items/{w.review_item.pk}/decide/",
        REVIEW,
        lambda w: {"decision": "certify"},
        refusals={"admin": "not_your_item"},
    ),
    "review item reassign": Endpoint(
        "post", lambda w: f"review-items/{w.review_item.pk}/reassign/", DECIDE, lambda w: {"reviewer": w.colleague.pk}
    ),
    # The admin certifies the unassigned item, the reviewer their own; each skips the other.
    "review items certify": Endpoint(
        "post",
        lambda w: "review-items/certify/",
        DECIDE,
        lambda w: {"items": [w.review_item.pk, w.unassigned_item.pk]},
    ),
    "audit events": Endpoint("get", lambda w: "audit/events/", AUDIT),
    "audit verify": Endpoint("get", lambda w: "audit/verify/", AUDIT),
    "audit export": Endpoint("get", lambda w: f"audit/export/?human={w.mine.pk}", AUDIT),
    "audit custody": Endpoint("get", lambda w: f"audit/custody/{_a_decision(w)[0]}/", AUDIT),
    "audit session": Endpoint("get", lambda w: f"audit/sessions/{_a_decision(w)[1]}/", AUDIT),
}


def _a_decision(world: World) -> tuple[str, str]:
    """The world's recorded decision (its id) and its session."""
    from audit.models import CHECK_ACTIONS, AuditEvent

    found = AuditEvent.objects.filter(CHECK_ACTIONS).order_by("id").first()
    assert found is not None
    return found.digest, str(found.context["session_id"])


# Who may do what, by the kind of endpoint. 401 is the anonymous answer everywhere.
ALLOWED = {
    READ: {"admin", "reviewer", "auditor"},
    WRITE: {"admin"},
    AUDIT: {"admin", "auditor"},
    # The reviewer is linked to the human who sponsors the asking agent, and so decides its requests.
    DECIDE: {"admin", "reviewer"},
    AGENT_ONLY: set(),  # agents ask for access (tests/api/test_access_requests.py); people decide
    REVIEW: {"reviewer"},
}


def expected_status(endpoint: Endpoint, role: str) -> int:
    if role == "anonymous":
        return 401
    if role not in ALLOWED[endpoint.kind]:
        return 403
    return 201 if endpoint.created else 200


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("name", ENDPOINTS)
def test_each_role_gets_exactly_what_its_role_allows(world: World, name: str, role: str) -> None:
    endpoint = ENDPOINTS[name]
    before = snapshot()

    response = endpoint.call(world, role)

    assert response.status_code == expected_status(endpoint, role), response.content
    body = response.json()
    if response.status_code >= 400:
        assert body["code"] == (
            "not_authenticated" if role == "anonymous" else endpoint.refusals.get(role, "forbidden")
        )
        assert set(body) == {"code", "detail", "fields"}
        # Refused means refused: no row, no status change, no audit event.
        assert snapshot() == before
    if role == "anonymous":
        assert response["WWW-Authenticate"].startswith("Bearer")
    if endpoint.kind not in (WRITE, DECIDE, REVIEW):
        # Reading never writes, not even an audit event.
        assert snapshot() == before
    elif response.status_code < 300:
        assert snapshot()["counts"]["AuditEvent"] > before["counts"]["AuditEvent"]


def test_the_matrix_covers_every_api_v1_route_and_method(world: World) -> None:
    from django.urls import resolve

    from config.urls import api_v1_patterns as urlpatterns

    routes = {
        (str(pattern.pattern), method)
        for pattern in urlpatterns
        for method in ("get", "post")
        if hasattr(pattern.callback.view_class, method)  # type: ignore[attr-defined]
    }
    in_matrix = {
        (resolve(f"/api/v1/{e.path(world)}".partition("?")[0]).route.removeprefix("api/v1/"), e.method)
        for e in ENDPOINTS.values()
    }
    assert in_matrix == routes


# --- What a reviewer sees ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "path",
    [
        lambda w: f"humans/{w.other_human.pk}/",
        lambda w: f"agents/{w.other_agent.pk}/",
        lambda w: f"agents/{w.other_agent.pk}/keys/",
        lambda w: f"grants/{w.other_grant.pk}/",
        lambda w: f"delegations/{w.other_delegation.pk}/",
    ],
    ids=["human", "agent", "agent keys", "grant", "delegation"],
)
def test_a_reviewer_gets_404_for_what_they_are_not_accountable_for(world: World, path: Any) -> None:
    assert world.client("reviewer").get(f"/api/v1/{path(world)}").status_code == 404
    # The same object is there for an auditor: the 404 is scoping, not absence.
    assert world.client("auditor").get(f"/api/v1/{path(world)}").status_code == 200


@pytest.mark.parametrize(
    ("path", "mine", "other"),
    [
        ("humans/", lambda w: w.mine.pk, lambda w: w.other_human.pk),
        ("agents/", lambda w: w.agent.pk, lambda w: w.other_agent.pk),
        ("grants/", lambda w: w.human_grant.pk, lambda w: w.other_grant.pk),
        ("delegations/", lambda w: w.delegation.pk, lambda w: w.other_delegation.pk),
    ],
)
def test_a_reviewers_lists_hold_only_what_they_are_accountable_for(
    world: World, path: str, mine: Any, other: Any
) -> None:
    reviewer_ids = {row["id"] for row in world.client("reviewer").get(f"/api/v1/{path}").json()["results"]}
    auditor_ids = {row["id"] for row in world.client("auditor").get(f"/api/v1/{path}").json()["results"]}

    assert mine(world) in reviewer_ids
    assert other(world) not in reviewer_ids
    assert {mine(world), other(world)} <= auditor_ids


def test_a_reviewer_reads_the_whole_resource_catalogue(world: World) -> None:
    response = world.client("reviewer").get("/api/v1/resources/")

    assert response.status_code == 200
    assert len(response.json()["results"]) == 2


def test_a_revoked_token_is_refused_with_401(world: World) -> None:
    from django.utils import timezone

    from governance.models import ApiToken

    ApiToken.objects.filter(user=world.users["admin"]).update(revoked_at=timezone.now())

    response = world.client("admin").get("/api/v1/agents/")

    assert response.status_code == 401
    assert response.json()["code"] == "credential_invalid"


def test_a_console_session_works_for_reads(world: World) -> None:
    from rest_framework.test import APIClient

    client = APIClient()
    client.force_login(world.users["auditor"])

    assert client.get("/api/v1/agents/").status_code == 200
    assert client.post("/api/v1/agents/", {"name": "x", "sponsor": world.mine.pk}, format="json").status_code == 403
