"""Every reason code of SPEC §3 reached through ``POST /api/v1/check``, each decision recorded in the
audit log with its context before the answer, ``decision_id`` being that event's digest.

``no_delegation`` is the one code no HTTP request can reach (a token's delegation is protected from
deletion); it is pinned on the pure core in ``test_runtime_decision.py``. ``chain_broken`` needs a dead
link above a live one, which no service leaves behind on its own (revocation cascades, a child never
outlives its parent); the state is written directly (see ``test_a_dead_link_above_a_live_one``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlencode

import psycopg
import pytest
import time_machine
from django.conf import settings
from django.db import connection
from django.http import HttpResponse
from django.test import Client
from django.utils import timezone

from audit.models import AuditEvent
from governance import services
from governance.decision import Reason
from governance.models import (
    Agent,
    AgentKey,
    Delegation,
    DelegationStatus,
    DelegationToken,
    Grant,
    Human,
    HumanStatus,
    Resource,
)
from tests.factories import (
    SYSTEM,
    make_agent,
    make_delegation,
    make_grant,
    make_human,
    make_key,
    make_resource,
    make_token,
)

CONTEXT = {
    "intent": "find the renewal date of the ACME contract",
    "tool": "crm.search",
    "session_id": "sess-4f1c",
    "request_id": "req-0002",
    "parent_request_id": "req-0001",
}
LEEWAY = settings.CUSTOS_TOKEN_LEEWAY

pytestmark = pytest.mark.django_db


@dataclass
class Org:
    """Rita delegates ``read`` to a top agent, which delegates it on to a sub-agent. Sam (not Rita)
    sponsors both agents, so an inactive sponsor and an inactive root human are told apart. A third,
    unrelated agent acts with its key on its own grant."""

    root: Human
    sponsor: Human
    resource: Resource
    top: Agent
    sub: Agent
    links: list[Delegation]
    root_grants: dict[str, Grant]
    keys: dict[str, str]
    tokens: dict[str, str]
    solo: Agent
    solo_key: AgentKey
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def read(self) -> str:
        return self.resource.scope("read")


@pytest.fixture
def org() -> Org:
    root, sponsor = make_human(), make_human()
    resource = make_resource(actions=("read", "write"))
    root_grants = {action: make_grant(root, resource, action) for action in ("read", "write")}
    top = make_agent(sponsor=sponsor)
    sub = make_agent(parent=top)
    top_link = make_delegation(top, [resource.scope("read")], root_human=root, max_depth=1)
    sub_link = make_delegation(sub, [resource.scope("read")], parent=top_link, expires_in=timedelta(hours=12))
    keys = {"top": make_key(top)[1], "sub": make_key(sub)[1]}
    top_token = make_token(keys["top"], top_link)
    sub_token = make_token(keys["sub"], parent_token=top_token)
    solo = make_agent(sponsor=sponsor)
    make_grant(solo, resource, "read")
    solo_key, solo_secret = make_key(solo, expires_at=timezone.now() + timedelta(hours=2))
    keys["solo"] = solo_secret
    return Org(
        root=root,
        sponsor=sponsor,
        resource=resource,
        top=top,
        sub=sub,
        links=[top_link, sub_link],
        root_grants=root_grants,
        keys=keys,
        tokens={"top": top_token, "sub": sub_token},
        solo=solo,
        solo_key=solo_key,
    )


def post_check(credential: str | None, resource: str, action: str = "read") -> HttpResponse:
    headers = {"HTTP_AUTHORIZATION": f"Bearer {credential}"} if credential is not None else {}
    body = {"action": action, "resource": resource, "context": CONTEXT}
    return Client().post("/api/v1/check", body, content_type="application/json", **headers)


def last_seq() -> int:
    return AuditEvent.objects.order_by("-id").values_list("id", flat=True).first() or 0


def assert_recorded(response: HttpResponse, decision: str, reason: str, *, since: int) -> AuditEvent:
    """The answer names exactly one reason, and exactly one check event recording it, with the
    request's context, was written before the answer: its hash is the decision id."""
    assert response.status_code == 200, response.content
    body = response.json()
    assert (body["decision"], body["reason"]) == (decision, reason), body
    events = list(AuditEvent.objects.filter(id__gt=since, action__startswith="check."))
    assert len(events) == 1, [e.action for e in events]
    event = events[0]
    assert body["decision_id"] == event.digest
    assert event.action == f"check.{decision}"
    assert (event.context["decision"], event.context["reason"]) == (decision, reason)
    assert event.context["detail"] == body["detail"]
    assert {name: event.context[name] for name in CONTEXT} == CONTEXT
    return event


# --- Arrangements: each leaves the org in a state and returns the check to make --------------------


@dataclass(frozen=True)
class Call:
    credential: str
    action: str = "read"
    travel_to: datetime | None = None  # make the check at this moment


def _allowed_with_the_sub_agents_token(org: Org) -> Call:
    return Call(org.tokens["sub"])


def _allowed_with_an_agents_own_key_on_its_own_grant(org: Org) -> Call:
    return Call(org.keys["solo"])


def _a_token_nobody_issued(org: Org) -> Call:
    return Call("not-a-token")


def _a_token_past_its_expiry_and_the_leeway(org: Org) -> Call:
    exp = DelegationToken.objects.get(agent=org.sub).expires_at
    return Call(org.tokens["sub"], travel_to=exp + LEEWAY + timedelta(seconds=1))


def _a_key_past_its_expiry(org: Org) -> Call:
    return Call(org.keys["solo"], travel_to=org.solo_key.expires_at + timedelta(seconds=1))


def _a_token_revoked_through_the_revocation_endpoint(org: Org) -> Call:
    response = Client().post(
        "/oauth/revoke",
        urlencode({"token": org.tokens["sub"]}),
        content_type="application/x-www-form-urlencoded",
        HTTP_AUTHORIZATION=f"Bearer {org.keys['sub']}",
    )
    assert response.status_code == 200, response.content
    return Call(org.tokens["sub"])


def _a_key_revoked_by_an_admin(org: Org) -> Call:
    services.agentkey_revoke(actor=SYSTEM, key=org.solo_key, reason="leaked in a log")
    return Call(org.keys["solo"])


def _a_token_of_a_suspended_sub_agent(org: Org) -> Call:
    services.agent_suspend(actor=SYSTEM, agent=org.sub)
    return Call(org.tokens["sub"])


def _a_token_of_a_sub_agent_whose_parent_agent_is_suspended(org: Org) -> Call:
    services.agent_suspend(actor=SYSTEM, agent=org.top)
    return Call(org.tokens["sub"])


def _a_key_of_a_suspended_agent(org: Org) -> Call:
    services.agent_suspend(actor=SYSTEM, agent=org.solo)
    return Call(org.keys["solo"])


def _a_token_whose_agents_sponsor_is_suspended(org: Org) -> Call:
    services.human_set_status(actor=SYSTEM, human=org.sponsor, status=HumanStatus.SUSPENDED)
    return Call(org.tokens["sub"])


def _a_key_whose_agents_sponsor_left(org: Org) -> Call:
    services.human_set_status(actor=SYSTEM, human=org.sponsor, status=HumanStatus.LEFT)
    return Call(org.keys["solo"])


def _a_token_acting_for_a_human_who_left(org: Org) -> Call:
    services.human_set_status(actor=SYSTEM, human=org.root, status=HumanStatus.LEFT)
    return Call(org.tokens["sub"])


def _a_token_inside_its_leeway_after_its_delegation_expired(org: Org) -> Call:
    # The token's exp never passes its delegation's, but the leeway lets the token itself verify a few
    # seconds beyond: the delegation's own timestamp still refuses it, without waiting for a sweep.
    soon = make_delegation(org.sub, [org.read], parent=org.links[0], expires_in=timedelta(minutes=5))
    short = make_token(org.keys["sub"], parent_token=org.tokens["top"], scope=org.read)
    assert DelegationToken.objects.get(jti=_jti(short)).delegation_id == soon.pk
    return Call(short, travel_to=soon.expires_at + min(LEEWAY / 2, timedelta(seconds=5)))


def _a_token_whose_own_delegation_was_revoked(org: Org) -> Call:
    services.delegation_revoke(actor=SYSTEM, delegation=org.links[1], reason="task finished")
    return Call(org.tokens["sub"])


def _a_sub_agents_token_after_the_root_delegation_was_revoked(org: Org) -> Call:
    # Revocation cascades down the chain, so the sub-agent's own link is revoked too.
    services.delegation_revoke(actor=SYSTEM, delegation=org.links[0], reason="Rita changed her mind")
    return Call(org.tokens["sub"])


def _a_dead_link_above_a_live_one(org: Org) -> Call:
    # No service writes this on its own; it is what a crash between two statements, a restore of an
    # inconsistent backup, or a sub-delegation created while its parent was being revoked would leave
    # (services.delegation_revoke reads the descendants before it locks them). The check must still
    # refuse from the chain it reads, not trust the leaf's status.
    Delegation.objects.filter(pk=org.links[0].pk).update(status=DelegationStatus.REVOKED, revoked_at=timezone.now())
    return Call(org.tokens["sub"])


def _a_scope_that_was_never_delegated(org: Org) -> Call:
    return Call(org.tokens["sub"], action="write")


def _a_key_asking_for_a_scope_its_agent_holds_no_grant_for(org: Org) -> Call:
    return Call(org.keys["solo"], action="write")


def _a_token_after_the_root_human_lost_the_grant(org: Org) -> Call:
    services.grant_revoke(actor=SYSTEM, grant=org.root_grants["read"], reason="moved teams")
    return Call(org.tokens["sub"])


CASES: list[tuple[str, str, Callable[[Org], Call]]] = [
    (Reason.ALLOWED, "allow", _allowed_with_the_sub_agents_token),
    (Reason.ALLOWED, "allow", _allowed_with_an_agents_own_key_on_its_own_grant),
    (Reason.CREDENTIAL_INVALID, "deny", _a_token_nobody_issued),
    (Reason.CREDENTIAL_EXPIRED, "deny", _a_token_past_its_expiry_and_the_leeway),
    (Reason.CREDENTIAL_EXPIRED, "deny", _a_key_past_its_expiry),
    (Reason.CREDENTIAL_REVOKED, "deny", _a_token_revoked_through_the_revocation_endpoint),
    (Reason.CREDENTIAL_REVOKED, "deny", _a_key_revoked_by_an_admin),
    (Reason.AGENT_INACTIVE, "deny", _a_token_of_a_suspended_sub_agent),
    (Reason.AGENT_INACTIVE, "deny", _a_token_of_a_sub_agent_whose_parent_agent_is_suspended),
    (Reason.AGENT_INACTIVE, "deny", _a_key_of_a_suspended_agent),
    (Reason.SPONSOR_INACTIVE, "deny", _a_token_whose_agents_sponsor_is_suspended),
    (Reason.SPONSOR_INACTIVE, "deny", _a_key_whose_agents_sponsor_left),
    (Reason.HUMAN_INACTIVE, "deny", _a_token_acting_for_a_human_who_left),
    (Reason.DELEGATION_EXPIRED, "deny", _a_token_inside_its_leeway_after_its_delegation_expired),
    (Reason.DELEGATION_REVOKED, "deny", _a_token_whose_own_delegation_was_revoked),
    (Reason.DELEGATION_REVOKED, "deny", _a_sub_agents_token_after_the_root_delegation_was_revoked),
    (Reason.CHAIN_BROKEN, "deny", _a_dead_link_above_a_live_one),
    (Reason.SCOPE_NOT_DELEGATED, "deny", _a_scope_that_was_never_delegated),
    (Reason.SCOPE_NOT_GRANTED, "deny", _a_key_asking_for_a_scope_its_agent_holds_no_grant_for),
    (Reason.DELEGATOR_LACKS_GRANT, "deny", _a_token_after_the_root_human_lost_the_grant),
]


def _jti(token: str) -> str:
    import jwt

    return str(jwt.decode(token, options={"verify_signature": False})["jti"])


@pytest.mark.parametrize(("reason", "decision", "arrange"), CASES, ids=[a.__name__.strip("_") for _, _, a in CASES])
def test_the_check_answers_and_records_the_reason_for_each_state(
    org: Org, reason: str, decision: str, arrange: Callable[[Org], Call]
) -> None:
    call = arrange(org)
    since = last_seq()
    if call.travel_to is None:
        response = post_check(call.credential, org.resource.name, call.action)
    else:
        with time_machine.travel(call.travel_to, tick=False):
            response = post_check(call.credential, org.resource.name, call.action)
    assert_recorded(response, decision, reason, since=since)


def test_every_reason_code_but_no_delegation_is_reached_through_http() -> None:
    codes = {value for name, value in vars(Reason).items() if name.isupper()}
    assert {reason for reason, _, _ in CASES} == codes - {Reason.NO_DELEGATION}


# --- What an answer carries -----------------------------------------------------------------


def test_an_allow_names_the_human_the_acting_agent_first_and_the_chain_root_first(org: Org) -> None:
    since = last_seq()
    response = post_check(org.tokens["sub"], org.resource.name)
    event = assert_recorded(response, "allow", Reason.ALLOWED, since=since)
    body = response.json()
    assert body["subject"] == {"type": "human", "id": org.root.pk, "label": org.root.name}
    assert [(a["type"], a["id"]) for a in body["actors"]] == [("agent", org.sub.pk), ("agent", org.top.pk)]
    assert [link["id"] for link in body["delegation_chain"]] == [org.links[0].pk, org.links[1].pk]
    # The event says who acted, for whom, through which links and with which credential.
    assert (event.actor_kind, event.actor_id) == ("agent", str(org.sub.pk))
    assert [(ref["type"], ref["id"]) for ref in event.on_behalf_of] == [("human", org.root.pk), ("agent", org.top.pk)]
    assert event.context["delegation_chain"] == [org.links[0].pk, org.links[1].pk]
    assert event.context["credential"] == {"kind": "delegation_token", "jti": _jti(org.tokens["sub"])}
    assert event.context["scope"] == org.read
    assert event.target_label == org.read


def test_a_denial_of_an_unknown_credential_is_recorded_without_an_identity(org: Org) -> None:
    since = last_seq()
    response = post_check(None, org.resource.name)
    event = assert_recorded(response, "deny", Reason.CREDENTIAL_INVALID, since=since)
    assert response.json()["subject"] is None and response.json()["actors"] == []
    assert event.actor_id == "" and event.on_behalf_of == []


def test_each_check_gets_its_own_decision_id(org: Org) -> None:
    ids = {post_check(org.tokens["sub"], org.resource.name).json()["decision_id"] for _ in range(3)}
    assert len(ids) == 3


def test_a_resource_name_longer_than_an_audit_target_id_is_still_a_recorded_decision(org: Org) -> None:
    # Resource names may be 120 characters; the event's target id holds 64. This was a 503.
    long_name = "r" * 64 + ".long-resource-name." + "x" * 30
    since = last_seq()
    event = assert_recorded(post_check(org.keys["solo"], long_name), "deny", Reason.SCOPE_NOT_GRANTED, since=since)
    assert event.context["scope"] == f"{long_name}:read"
    resource = make_resource(name=long_name, actions=("read",))
    make_grant(org.solo, resource, "read")
    since = last_seq()
    assert_recorded(post_check(org.keys["solo"], long_name), "allow", Reason.ALLOWED, since=since)


@pytest.mark.django_db(transaction=True)
def test_the_decision_is_committed_before_the_answer_leaves(org: Org) -> None:
    """Seen from another connection the moment the response is in hand: the event is not waiting for
    the end of some request transaction."""
    response = post_check(org.tokens["sub"], org.resource.name)
    assert response.status_code == 200
    db = connection.settings_dict
    with psycopg.connect(
        host=db["HOST"] or None,
        port=db["PORT"] or None,
        user=db["USER"],
        password=db["PASSWORD"] or None,
        dbname=db["NAME"],
    ) as other:
        row = other.execute(
            "SELECT action, context->>'reason', context->>'request_id' FROM audit_auditevent WHERE digest = %s",
            [response.json()["decision_id"]],
        ).fetchone()
    assert row == ("check.allow", Reason.ALLOWED, CONTEXT["request_id"])
