"""The rules on grants and agent keys the delegation model stands on: expiry and caps, no duplicate
active grants, constraints that hold against direct ORM writes, key format and hashing, and suspension
cascading down an agent tree."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

import pytest
import time_machine
from django.db import IntegrityError, transaction
from django.test import Client
from django.utils import timezone

from audit.models import AuditEvent
from console.errors import Conflict
from governance import credentials, services
from governance.models import (
    Agent,
    AgentKey,
    AgentStatus,
    Delegation,
    DelegationStatus,
    Grant,
    GrantStatus,
)
from tests.factories import SYSTEM, make_agent, make_grant, make_human, make_key, make_resource
from tests.governance.delegation_world import (
    DAY,
    Org,
    refused,
)

pytestmark = pytest.mark.django_db


# --- Grants -----------------------------------------------------------------------------------------


def test_an_agents_grant_must_expire(org: Org) -> None:
    refused(
        "required", lambda: services.grant_create(actor=SYSTEM, holder=org.top, resource=org.resource, action="read")
    )


def test_an_agents_grant_is_capped_by_the_configured_maximum(
    org: Org, settings: Any, frozen: time_machine.Traveller
) -> None:
    settings.CUSTOS_GRANT_MAX_LIFETIME = timedelta(days=10)
    now = timezone.now()
    refused(
        "lifetime_exceeds_maximum",
        lambda: make_grant(org.top, org.resource, "read", expires_at=now + timedelta(days=10, seconds=1)),
    )
    grant = make_grant(org.top, org.resource, "read", expires_at=now + timedelta(days=10))
    assert grant.expires_at == now + timedelta(days=10)


def test_a_humans_grant_may_be_open_ended(org: Org) -> None:
    grant = make_grant(make_human(), org.resource, "admin")
    assert grant.expires_at is None
    assert grant.is_in_force()


def test_a_duplicate_active_grant_is_refused_until_the_first_ends(org: Org, frozen: time_machine.Traveller) -> None:
    refused("duplicate_grant", lambda: make_grant(org.human, org.resource, "read"), error=Conflict)
    services.grant_revoke(actor=SYSTEM, grant=org.grants["read"])
    assert make_grant(org.human, org.resource, "read").is_in_force()

    make_grant(org.top, org.resource, "read", expires_at=timezone.now() + timedelta(hours=1))
    refused("duplicate_grant", lambda: make_grant(org.top, org.resource, "read"), error=Conflict)
    frozen.shift(timedelta(hours=2))  # expired by its timestamp; no sweep needed
    assert make_grant(org.top, org.resource, "read").is_in_force()


def test_grants_go_to_active_holders_for_real_actions(org: Org) -> None:
    refused("unknown_action", lambda: make_grant(org.human, org.resource, "delete"))
    services.agent_suspend(actor=SYSTEM, agent=org.other)
    refused("holder_inactive", lambda: make_grant(org.other, org.resource, "read"))


@pytest.mark.parametrize(
    "fields",
    [
        pytest.param({"holder": "agent", "expires_at": None}, id="agent-grant-without-expiry"),
        pytest.param({"holder": "both"}, id="two-holders"),
        pytest.param({"holder": "none"}, id="no-holder"),
        pytest.param({"holder": "human", "expires_before_start": True}, id="expires-before-start"),
        pytest.param({"holder": "human", "status": GrantStatus.REVOKED}, id="revoked-without-time"),
    ],
)
def test_grant_constraints_hold_against_direct_orm_writes(org: Org, fields: dict[str, Any]) -> None:
    now = timezone.now()
    row: dict[str, Any] = {"resource": org.resource, "action": "read", "granted_by": "direct write", "valid_from": now}
    holder = fields["holder"]
    if holder in ("human", "both"):
        row["holder_human"] = org.human
    if holder in ("agent", "both"):
        row["holder_agent"] = org.top
    row["expires_at"] = fields.get("expires_at", now + DAY)
    if fields.get("expires_before_start"):
        row["expires_at"] = now - timedelta(seconds=1)
    row["status"] = fields.get("status", GrantStatus.ACTIVE)
    with transaction.atomic(), pytest.raises(IntegrityError):
        Grant.objects.create(**row)
    assert not Grant.objects.filter(granted_by="direct write").exists()


def test_delegation_constraints_hold_against_direct_orm_writes(org: Org) -> None:
    now = timezone.now()
    base: dict[str, Any] = {
        "root_human": org.human,
        "delegate": org.top,
        "purpose": "x",
        "scopes": [org.read],
        "created_by": "direct",
    }
    with transaction.atomic(), pytest.raises(IntegrityError):
        Delegation.objects.create(**base, depth=1, expires_at=now + DAY)  # a root link one level down
    with transaction.atomic(), pytest.raises(IntegrityError):
        Delegation.objects.create(**base, expires_at=now - DAY)  # expired before it was made
    with transaction.atomic(), pytest.raises(IntegrityError):
        Delegation.objects.create(**base, expires_at=now + DAY, status=DelegationStatus.REVOKED)  # revoked, but when?
    assert not Delegation.objects.filter(created_by="direct").exists()


def test_agent_constraints_hold_against_direct_orm_writes(org: Org) -> None:
    with transaction.atomic(), pytest.raises(IntegrityError):
        Agent.objects.filter(pk=org.top.pk).update(parent=org.top.pk, depth=1)
    with transaction.atomic(), pytest.raises(IntegrityError):
        Agent.objects.create(name="orphan-depth", sponsor=org.sponsor, depth=1)


# --- Agent keys -------------------------------------------------------------------------------------

KEY_RE = re.compile(r"^ck_(?P<prefix>[a-z0-9]{8,16})_(?P<secret>[A-Za-z0-9]{20,})$")


def test_a_key_has_the_documented_format_and_only_its_keyed_hash_is_stored(org: Org) -> None:
    key, full = make_key(org.top, name="ci runner")
    match = KEY_RE.match(full)
    assert match, full
    secret = match["secret"]
    assert key.prefix == match["prefix"]

    row = AgentKey.objects.filter(pk=key.pk).values().get()
    stored = " ".join(str(value) for value in row.values())
    assert secret not in stored and full not in stored
    assert row["hashed"] == credentials.keyed_hash(full) != full

    event = AuditEvent.objects.get(action="agentkey.create", target_id=str(key.pk))
    event_row = AuditEvent.objects.filter(pk=event.pk).values().get()
    assert secret not in str(event_row)
    assert event.context["prefix"] == key.prefix


def test_two_keys_never_share_a_prefix_or_secret(org: Org) -> None:
    keys = [make_key(org.top) for _ in range(5)]
    assert len({key.prefix for key, _ in keys}) == 5
    assert len({full for _, full in keys}) == 5


def test_a_presented_key_matches_only_its_own_hash(org: Org) -> None:
    key, full = make_key(org.top)
    _, other_full = make_key(org.top)
    assert credentials.parse_prefix("ck", full) == key.prefix
    assert credentials.matches(full, key.hashed)
    assert not credentials.matches(other_full, key.hashed)
    tampered = full[:-1] + ("a" if full[-1] != "a" else "b")
    assert not credentials.matches(tampered, key.hashed)
    assert credentials.parse_prefix("ck", "cu_" + full[3:]) is None
    assert credentials.parse_prefix("ck", full + "_extra") is None
    assert credentials.parse_prefix("ck", "ck_" + "x" * 100) is None


def test_key_comparison_is_constant_time(org: Org, monkeypatch: pytest.MonkeyPatch) -> None:
    key, full = make_key(org.top)
    compared: list[tuple[Any, Any]] = []
    real = credentials.hmac.compare_digest

    def spy(a: Any, b: Any) -> bool:
        compared.append((a, b))
        return real(a, b)

    monkeypatch.setattr(credentials.hmac, "compare_digest", spy)
    assert credentials.matches(full, key.hashed)
    assert compared == [(credentials.keyed_hash(full), key.hashed)]


def test_a_key_expires_by_default_and_never_past_the_maximum(
    org: Org, settings: Any, frozen: time_machine.Traveller
) -> None:
    settings.CUSTOS_KEY_TTL = timedelta(days=2)
    settings.CUSTOS_KEY_MAX_TTL = timedelta(days=5)
    now = timezone.now()
    key, _ = make_key(org.top)
    assert key.expires_at == now + timedelta(days=2)
    refused("lifetime_exceeds_maximum", lambda: make_key(org.top, expires_at=now + timedelta(days=5, seconds=1)))
    refused("expiry_in_past", lambda: make_key(org.top, expires_at=now - timedelta(seconds=1)))
    assert make_key(org.top, expires_at=now + timedelta(days=5))[0].expires_at == now + timedelta(days=5)
    frozen.shift(timedelta(days=2))
    assert key.status_at() == "expired"
    assert not AgentKey.objects.active().filter(pk=key.pk).exists()


def test_keys_go_to_active_agents_only(org: Org) -> None:
    services.agent_suspend(actor=SYSTEM, agent=org.other)
    refused("agent_inactive", lambda: make_key(org.other))


def test_suspending_an_agent_suspends_every_sub_agent_below_it_and_their_checks_deny() -> None:
    top = make_agent()
    child = make_agent(parent=top)
    grandchild = make_agent(parent=child)
    resource = make_resource()
    make_grant(grandchild, resource, "read")
    _, secret = make_key(grandchild)
    before = AuditEvent.objects.filter(action="agent.suspend").count()

    services.agent_suspend(actor=SYSTEM, agent=top, reason="incident")

    for agent in (top, child, grandchild):
        agent.refresh_from_db()
        assert agent.status == AgentStatus.SUSPENDED
    assert AuditEvent.objects.filter(action="agent.suspend").count() == before + 3
    answer = (
        Client()
        .post(
            "/api/v1/check",
            {"action": "read", "resource": resource.name},
            content_type="application/json",
            HTTP_AUTHORIZATION=f"Bearer {secret}",
        )
        .json()
    )
    assert (answer["decision"], answer["reason"]) == ("deny", "agent_inactive")


def test_a_sub_agent_cannot_be_reactivated_while_its_parent_is_suspended() -> None:
    top = make_agent()
    child = make_agent(parent=top)
    services.agent_suspend(actor=SYSTEM, agent=top)

    with pytest.raises(Conflict) as refused:
        services.agent_reactivate(actor=SYSTEM, agent=child)
    assert refused.value.code == "parent_inactive"
    services.agent_reactivate(actor=SYSTEM, agent=top)
    services.agent_reactivate(actor=SYSTEM, agent=child)
    child.refresh_from_db()
    assert child.status == AgentStatus.ACTIVE
