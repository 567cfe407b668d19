"""Agents calling API v1 with their own key or delegation token (SPEC §9), continued: delegating a
narrower part of their chain to their sub-agents, rotating their keys, and the usage their calls leave.
Refused means refused: no row, no status change, no audit event."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
import time_machine
from django.conf import settings
from django.utils import timezone

from audit.models import AuditEvent
from audit.services import Actor
from console.errors import ValidationFailed
from governance import oauth, services
from governance.models import AgentKey, Delegation
from governance.usage import usage
from tests import factories
from tests.api.agent_calls import (
    KEY,
    TOKEN,
    Caller,
    audit_head,
    bearer,
    check_scope,
    events_since,
    exchange,
    sub_delegation,
)
from tests.api.support import World, snapshot

pytestmark = pytest.mark.django_db


# --- Delegating within its chain --------------------------------------------------------------


def test_an_agent_delegates_a_narrower_shorter_part_and_its_sub_agent_acts_on_it(world: World, caller: Caller) -> None:
    read, write = world.resource.scope("read"), world.resource.scope("write")
    agent_client = caller.client(TOKEN)
    head = audit_head()

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
    assert [(e.action, e.actor_id) for e in events_since(head)] == [
        ("agent.create", str(caller.agent.pk)),
        ("agentkey.create", str(caller.agent.pk)),
        ("delegation.create", str(caller.agent.pk)),
    ]

    exchanged = exchange(sub_key, caller.token, oauth.TOKEN_TYPE_JWT)
    assert exchanged.status_code == 200, exchanged.content
    sub_token = exchanged.json()["access_token"]
    assert exchanged.json()["scope"] == read

    allowed = check_scope(sub_token, read)
    assert (allowed["decision"], allowed["reason"]) == ("allow", "allowed")
    assert [a["id"] for a in allowed["actors"]] == [sub["id"], caller.agent.pk]
    assert allowed["subject"]["id"] == world.mine.pk
    denied = check_scope(sub_token, write)
    assert (denied["decision"], denied["reason"]) == ("deny", "scope_not_delegated")


def _delegate(caller: Caller, world: World, via: str = TOKEN, **changes: Any) -> Any:
    body = sub_delegation(world, caller) | changes
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

    response = bearer(narrow).post(
        "/api/v1/delegations/",
        sub_delegation(world, caller) | {"scopes": [world.resource.scope("write")]},
        format="json",
    )

    assert response.status_code == 403
    assert response.json()["code"] == "scope_not_delegated"
    assert snapshot() == before


def test_an_agent_cannot_delegate_under_another_agents_delegation(world: World, caller: Caller) -> None:
    _, other_key = factories.make_key(world.other_agent)
    other_token = factories.make_token(other_key, world.other_delegation)
    before = snapshot()

    response = bearer(other_token).post("/api/v1/delegations/", sub_delegation(world, caller), format="json")

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
    return bearer(credential).post(f"/api/v1/keys/{key.pk}/rotate/", body, format="json")


@pytest.mark.parametrize("via", [KEY, TOKEN])
def test_an_agent_rotates_its_key_and_both_work_during_the_overlap_only(world: World, caller: Caller, via: str) -> None:
    head = audit_head()
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
    assert [(e.action, e.actor_kind, e.actor_id) for e in events_since(head)] == [
        ("agentkey.create", "agent", str(caller.agent.pk)),
        ("agentkey.rotate", "agent", str(caller.agent.pk)),
    ]
    rotation = events_since(head)[-1]
    assert rotation.target_id == str(caller.key_record.pk)
    assert rotation.context["overlap_seconds"] == 600
    assert rotation.context["replaced_by"] == body["key"]["id"]

    assert check_scope(caller.key, read)["decision"] == "allow"
    assert check_scope(new_key, read)["decision"] == "allow"
    with time_machine.travel(timezone.now() + timedelta(seconds=601)):
        old = check_scope(caller.key, read)
        new = check_scope(new_key, read)
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

    response = bearer(leaf_token).post(
        "/api/v1/delegations/",
        sub_delegation(world, caller) | {"parent": world.leaf_delegation.pk},
        format="json",
    )

    assert response.status_code == 400
    assert response.json()["code"] == "depth_exhausted"
    assert snapshot() == before
    assert Delegation.objects.filter(parent=world.leaf_delegation).count() == 0
