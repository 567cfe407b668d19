"""Just-in-time access through API v1: an agent asks for a scope mid-task, the human it acts for (or its
sponsor, or an admin) approves or denies, the agent polls its request and exchanges the resulting
delegation for a token. Unanswered requests lapse; everything leaves its evidence."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import pytest
import time_machine
from django.conf import settings
from django.contrib.auth.models import User
from django.utils import timezone
from rest_framework.test import APIClient

from audit.models import AuditEvent
from audit.services import Actor
from governance import oauth, services
from governance.models import AccessRequest, Agent, Delegation, Human, Resource
from tests import factories
from tests.api.agent_calls import bearer, check_scope, exchange
from tests.api.support import World, snapshot

pytestmark = pytest.mark.django_db


@dataclass
class Scene:
    """``root`` delegates read to ``agent`` (sponsored by someone else, ``sponsor``) and holds write and
    delete too. Each human is linked to a reviewer user; ``stranger`` is a reviewer linked to neither."""

    root: Human
    sponsor: Human
    resource: Resource
    agent: Agent
    delegation: Delegation
    key: str
    token: str
    root_user: User
    sponsor_user: User
    stranger: User

    def scope(self, action: str) -> str:
        return self.resource.scope(action)

    def as_user(self, user: User) -> APIClient:
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {factories.make_api_token(user)}")
        return client


@pytest.fixture
def scene() -> Scene:
    root_user, sponsor_user, stranger = factories.make_reviewer(), factories.make_reviewer(), factories.make_reviewer()
    root = factories.make_human(user=root_user)
    sponsor = factories.make_human(user=sponsor_user)
    factories.make_human(user=stranger)
    resource = factories.make_resource(actions=("read", "write", "delete"))
    for action in resource.actions:
        factories.make_grant(root, resource, action)
    agent = factories.make_agent(sponsor=sponsor)
    delegation = factories.make_delegation(agent, [resource.scope("read")], root_human=root, max_depth=1)
    _, key = factories.make_key(agent)
    token = factories.make_token(key, delegation)
    return Scene(root, sponsor, resource, agent, delegation, key, token, root_user, sponsor_user, stranger)


def _ask(credential: str, scope: str, **extra: Any) -> Any:
    body = {"scope": scope, "justification": "the report needs it", "intent": "file the weekly report", **extra}
    return bearer(credential).post("/api/v1/access-requests/", body, format="json")


def _exchange_delegation(key: str, delegation_id: int) -> Any:
    return exchange(key, str(delegation_id), oauth.TOKEN_TYPE_DELEGATION)


# --- Asking -----------------------------------------------------------------------------------


def test_an_agent_with_its_token_asks_the_human_it_acts_for(scene: Scene) -> None:
    response = _ask(scene.token, scene.scope("write"), session_id="s-1", duration_seconds=600)

    assert response.status_code == 201, response.content
    body = response.json()
    assert {k: body[k] for k in ("status", "scope", "approver", "agent", "delegation", "resulting_delegation")} == {
        "status": "pending",
        "scope": scene.scope("write"),
        "approver": scene.root.pk,
        "agent": scene.agent.pk,
        "delegation": scene.delegation.pk,
        "resulting_delegation": None,
    }
    assert (body["duration_seconds"], body["session_id"], body["intent"]) == (600, "s-1", "file the weekly report")
    event = AuditEvent.objects.get(action="accessrequest.create", target_id=str(body["id"]))
    assert (event.actor_kind, event.actor_id) == ("agent", str(scene.agent.pk))
    assert event.context["justification"] == "the report needs it"


def test_an_agent_with_its_key_asks_its_sponsor(scene: Scene) -> None:
    response = _ask(scene.key, scene.scope("write"))

    assert response.status_code == 201, response.content
    assert (response.json()["approver"], response.json()["delegation"]) == (scene.sponsor.pk, None)


@pytest.mark.parametrize(
    ("change", "status", "code"),
    [
        ({"scope": "nope.res:read"}, 400, "unknown_resource"),
        ({"scope": "not a scope"}, 400, "invalid_scope"),
        ({"justification": "   "}, 400, "invalid"),
        ({"justification": None}, 400, "invalid"),
        ({"duration_seconds": 0}, 400, "invalid"),
        ({"duration_seconds": 24 * 3600}, 400, "lifetime_exceeds_maximum"),
        ({"intent": "x" * 501}, 400, "invalid"),
    ],
    ids=[
        "unknown resource",
        "not a scope",
        "blank justification",
        "no justification",
        "no time",
        "too long",
        "intent too long",
    ],
)
def test_a_bad_request_for_access_is_a_400_and_writes_nothing(
    scene: Scene, change: dict[str, Any], status: int, code: str
) -> None:
    before = snapshot()

    body = {"scope": scene.scope("write"), "justification": "the report needs it"} | change
    response = bearer(scene.token).post("/api/v1/access-requests/", body, format="json")

    assert response.status_code == status, response.content
    assert response.json()["code"] == code
    assert snapshot() == before


def test_asking_twice_for_the_same_scope_is_a_conflict(scene: Scene) -> None:
    assert _ask(scene.token, scene.scope("write")).status_code == 201
    before = snapshot()

    again = _ask(scene.key, scene.scope("write"))

    assert again.status_code == 409
    assert again.json()["code"] == "duplicate_request"
    assert snapshot() == before


def test_console_users_do_not_ask_for_access(scene: Scene, admin_user: User) -> None:
    response = scene.as_user(admin_user).post(
        "/api/v1/access-requests/", {"scope": scene.scope("write"), "justification": "x"}, format="json"
    )

    assert response.status_code == 403
    assert not AccessRequest.objects.exists()


# --- Approving --------------------------------------------------------------------------------


def test_the_human_it_acts_for_approves_and_the_agent_exchanges_the_narrow_delegation(scene: Scene) -> None:
    write = scene.scope("write")
    assert check_scope(scene.token, write)["reason"] == "scope_not_delegated"
    asked = _ask(scene.token, write, duration_seconds=900).json()

    approved = scene.as_user(scene.root_user).post(
        f"/api/v1/access-requests/{asked['id']}/approve/", {"note": "for this report only"}, format="json"
    )

    assert approved.status_code == 200, approved.content
    assert approved.json()["status"] == "approved"
    assert approved.json()["decision_note"] == "for this report only"
    polled = bearer(scene.key).get(f"/api/v1/access-requests/{asked['id']}/").json()
    assert polled["status"] == "approved"
    delegation = Delegation.objects.get(pk=polled["resulting_delegation"])
    assert (delegation.root_human_id, delegation.delegate_id, delegation.scopes, delegation.max_depth) == (
        scene.root.pk,
        scene.agent.pk,
        [write],
        0,
    )
    assert delegation.expires_at <= timezone.now() + timedelta(seconds=900)
    event = AuditEvent.objects.get(action="accessrequest.approve", target_id=str(asked["id"]))
    assert (event.actor_kind, event.actor_id) == ("user", str(scene.root_user.pk))

    exchanged = _exchange_delegation(scene.key, delegation.pk)
    assert exchanged.status_code == 200, exchanged.content
    decision = check_scope(exchanged.json()["access_token"], write)
    assert (decision["decision"], decision["reason"]) == ("allow", "allowed")
    assert decision["delegation_chain"][0]["id"] == delegation.pk


def test_the_agents_sponsor_and_an_admin_may_also_decide(scene: Scene, admin_user: User) -> None:
    first = _ask(scene.token, scene.scope("write")).json()
    second = _ask(scene.token, scene.scope("delete")).json()

    by_sponsor = scene.as_user(scene.sponsor_user).post(f"/api/v1/access-requests/{first['id']}/approve/")
    by_admin = scene.as_user(admin_user).post(f"/api/v1/access-requests/{second['id']}/deny/")

    assert by_sponsor.status_code == 200, by_sponsor.content
    assert by_sponsor.json()["resulting_delegation"] is not None
    assert by_admin.status_code == 200, by_admin.content
    assert by_admin.json()["status"] == "denied"


def test_an_approver_who_no_longer_holds_the_scope_cannot_grant_it(scene: Scene) -> None:
    asked = _ask(scene.token, scene.scope("write")).json()
    grant = scene.root.grants.get(action="write")
    services.grant_revoke(actor=factories.SYSTEM, grant=grant)
    approver = scene.as_user(scene.root_user)
    before = snapshot()

    response = approver.post(f"/api/v1/access-requests/{asked['id']}/approve/")

    assert response.status_code == 400
    assert response.json()["code"] == "delegator_lacks_grant"
    assert snapshot() == before
    assert AccessRequest.objects.get(pk=asked["id"]).status == "pending"


# --- Denying, deciding twice, lapsing ---------------------------------------------------------


def test_a_denied_request_stays_denied(scene: Scene) -> None:
    asked = _ask(scene.token, scene.scope("write")).json()
    approver = scene.as_user(scene.root_user)

    denied = approver.post(f"/api/v1/access-requests/{asked['id']}/deny/", {"note": "not for this task"}, format="json")
    again = approver.post(f"/api/v1/access-requests/{asked['id']}/approve/")

    assert denied.status_code == 200
    assert again.status_code == 409
    assert again.json()["code"] == "request_decided"
    polled = bearer(scene.token).get(f"/api/v1/access-requests/{asked['id']}/").json()
    assert (polled["status"], polled["resulting_delegation"], polled["decision_note"]) == (
        "denied",
        None,
        "not for this task",
    )
    assert AuditEvent.objects.filter(action="accessrequest.deny", target_id=str(asked["id"])).count() == 1


def test_an_unanswered_request_lapses(scene: Scene, admin_user: User) -> None:
    asked = _ask(scene.token, scene.scope("write")).json()
    later = timezone.now() + settings.CUSTOS_JIT_REQUEST_TTL + timedelta(seconds=1)

    with time_machine.travel(later):
        approve = scene.as_user(scene.root_user).post(f"/api/v1/access-requests/{asked['id']}/approve/")
        polled = bearer(scene.key).get(f"/api/v1/access-requests/{asked['id']}/").json()
        listed = scene.as_user(admin_user).get("/api/v1/access-requests/?status=expired").json()["results"]
        pending = scene.as_user(admin_user).get("/api/v1/access-requests/?status=pending").json()["results"]
        swept = services.access_request_expire_due(actor=Actor.system("tests"))

    assert approve.status_code == 409
    assert approve.json()["code"] == "request_expired"
    # Lapsed by its timestamp before any sweep has run.
    assert polled["status"] == "expired"
    assert asked["id"] in [row["id"] for row in listed]
    assert asked["id"] not in [row["id"] for row in pending]
    assert swept == 1
    assert AccessRequest.objects.get(pk=asked["id"]).status == "expired"
    assert AuditEvent.objects.filter(action="accessrequest.expire", target_id=str(asked["id"])).exists()
    assert not Delegation.objects.filter(delegate=scene.agent, scopes=[scene.scope("write")]).exists()


# --- Who sees and decides what ----------------------------------------------------------------


def test_an_unrelated_reviewer_neither_sees_nor_decides(scene: Scene) -> None:
    asked = _ask(scene.token, scene.scope("write")).json()
    stranger = scene.as_user(scene.stranger)
    before = snapshot()

    detail = stranger.get(f"/api/v1/access-requests/{asked['id']}/")
    approve = stranger.post(f"/api/v1/access-requests/{asked['id']}/approve/")
    deny = stranger.post(f"/api/v1/access-requests/{asked['id']}/deny/")
    listed = stranger.get("/api/v1/access-requests/").json()["results"]

    assert (detail.status_code, approve.status_code, deny.status_code) == (404, 404, 404)
    assert listed == []
    assert snapshot() == before


def test_an_auditor_reads_every_request_and_decides_none(scene: Scene, auditor_user: User) -> None:
    asked = _ask(scene.token, scene.scope("write")).json()
    auditor = scene.as_user(auditor_user)
    before = snapshot()

    detail = auditor.get(f"/api/v1/access-requests/{asked['id']}/")
    approve = auditor.post(f"/api/v1/access-requests/{asked['id']}/approve/")

    assert detail.status_code == 200
    assert approve.status_code == 403
    assert snapshot() == before


def test_a_reviewer_lists_the_requests_they_decide_with_filters(scene: Scene, admin_user: User) -> None:
    write = _ask(scene.token, scene.scope("write")).json()
    other_agent = factories.make_agent(sponsor=scene.sponsor)
    _, other_key = factories.make_key(other_agent)
    by_key = _ask(other_key, scene.scope("delete")).json()  # to other_agent's sponsor, not to root
    scene.as_user(admin_user).post(f"/api/v1/access-requests/{by_key['id']}/deny/")

    def ids(client: APIClient, query: str = "") -> list[int]:
        response = client.get(f"/api/v1/access-requests/{query}")
        assert response.status_code == 200, response.content
        return [row["id"] for row in response.json()["results"]]

    root, sponsor = scene.as_user(scene.root_user), scene.as_user(scene.sponsor_user)
    assert ids(root) == [write["id"]]
    assert ids(sponsor) == [by_key["id"], write["id"]]
    assert ids(sponsor, "?status=denied") == [by_key["id"]]
    assert ids(sponsor, "?status=pending") == [write["id"]]
    assert ids(sponsor, f"?agent={other_agent.pk}") == [by_key["id"]]
    assert scene.as_user(admin_user).get("/api/v1/access-requests/?status=maybe").status_code == 400


def test_an_agent_reads_only_its_own_requests_and_decides_none(scene: Scene, world: World) -> None:
    mine = _ask(scene.token, scene.scope("write")).json()
    _, other_key = factories.make_key(world.agent)
    before = snapshot()

    other = bearer(other_key).get(f"/api/v1/access-requests/{mine['id']}/")
    own_list = bearer(scene.key).get("/api/v1/access-requests/")
    approve_own = bearer(scene.token).post(f"/api/v1/access-requests/{mine['id']}/approve/")

    assert other.status_code == 404
    assert own_list.status_code == 403
    assert approve_own.status_code == 403
    assert snapshot() == before
