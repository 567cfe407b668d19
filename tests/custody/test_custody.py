"""The chain of custody of a decision (SPEC §7): from the human through every delegation link, agent and
token to the action and what followed, each link with its status then and now, in a fixed number of
queries whatever the size of the log; sessions as trees of requests; auditors read it all and change
nothing; its evidence bundle verifies offline and fails with one byte changed."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from audit import checkpoints
from audit.services import Actor, PendingEvent, Target, audit_append_many
from audit.verify import verify_bundle
from custody.custody import custody_of
from custody.sessions import session_timeline
from governance import runtime, services
from governance.models import Delegation, DelegationStatus
from tests.factories import SYSTEM, make_admin, make_auditor, make_chain, make_chain_tokens, make_reviewer

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _checkpoint_key(settings: Any, tmp_path: Path) -> None:
    settings.CUSTOS_AUDIT_CHECKPOINT_SECRET = "checkpoint-secret-for-tests-only"
    settings.CUSTOS_AUDIT_CHECKPOINT_DIR = str(tmp_path / "checkpoints")


def decide(token: str, resource: str, *, request: str, parent: str = "", session: str = "s-1") -> str:
    result = runtime.check(
        credential=token,
        action="read",
        resource=resource,
        context={
            "intent": "answer ticket 42",
            "tool": "crm",
            "session_id": session,
            "request_id": request,
            "parent_request_id": parent,
        },
    )
    return result.decision_id


@pytest.fixture
def story() -> dict[str, Any]:
    """A human delegates to an agent, which delegates two hops further down; each holds its token. The
    root agent asks, then its sub-agent on its behalf, then the sub-sub-agent: allowed. Then the middle
    link is revoked and the sub-sub-agent asks again: denied."""
    chain = make_chain(depth=3)
    tokens = make_chain_tokens(chain)
    resource = chain["resource"].name
    first = decide(tokens["tokens"][0], resource, request="r-1")
    second = decide(tokens["tokens"][1], resource, request="r-2", parent="r-1")
    allowed = decide(tokens["tokens"][2], resource, request="r-3", parent="r-2")
    middle: Delegation = chain["links"][1]
    services.delegation_revoke(actor=SYSTEM, delegation=middle, reason="ticket closed early")
    services.agent_suspend(actor=SYSTEM, agent=chain["agents"][0], reason="drift")
    denied = decide(tokens["tokens"][2], resource, request="r-4", parent="r-2")
    return {**chain, "tokens": tokens, "first": first, "second": second, "allowed": allowed, "denied": denied}


def test_custody_of_a_sub_agent_decision_two_hops_down_lists_every_link_then_and_now(story: dict[str, Any]) -> None:
    custody = custody_of(story["allowed"])
    assert custody is not None and custody.is_decision
    assert custody.human is not None and custody.human.id == story["human"].pk
    assert [hop.delegation_id for hop in custody.hops] == [link.pk for link in story["links"]]
    assert [hop.agent.id for hop in custody.hops] == [agent.pk for agent in story["agents"]]
    # Every link stood when the decision was made.
    assert [hop.status.then for hop in custody.hops] == ["active", "active", "active"]
    # Now: the middle link was revoked, and the one below it with it; the root agent was suspended.
    assert [hop.status.now for hop in custody.hops] == ["active", "revoked", "revoked"]
    assert [hop.agent.status.then for hop in custody.hops] == ["active", "active", "active"]
    assert custody.hops[0].agent.status.now == "suspended"
    # Each hop's own token, the last one being what the acting agent presented, obtained with its key.
    assert all(hop.token is not None and hop.token.status.then == "active" for hop in custody.hops)
    assert custody.credential is not None and custody.credential is custody.hops[-1].token
    assert custody.credential.key.startswith("ck_")
    before = {(m.event.action, m.event.target_id) for m in custody.timeline if m.when == "before"}
    assert all(("delegation.create", str(link.pk)) in before for link in story["links"])
    assert custody.hops[0].hops_left == 2 and custody.hops[2].hops_left == 0
    # The request path across the three agents, and what followed: the revocation and the suspension.
    assert [r.request_id for r in custody.requests] == ["r-1", "r-2", "r-3"]
    followed = {(m.event.action, m.event.target_id) for m in custody.followed}
    assert ("delegation.revoke", str(story["links"][1].pk)) in followed
    assert ("agent.suspend", str(story["agents"][0].pk)) in followed
    assert custody.broken_now


def test_custody_of_the_denial_shows_the_link_already_revoked_then(story: dict[str, Any]) -> None:
    custody = custody_of(story["denied"])
    assert custody is not None
    assert custody.context["decision"] == "deny"
    assert [hop.status.then for hop in custody.hops] == ["active", "revoked", "revoked"]
    assert custody.hops[0].agent.status.then == "suspended"
    assert custody.hops[1].revoked_reason == "ticket closed early"


def test_custody_of_a_change_reaches_its_chain_too(story: dict[str, Any]) -> None:
    from audit.models import AuditEvent

    revoke = AuditEvent.objects.get(action="delegation.revoke", target_id=str(story["links"][1].pk))
    custody = custody_of(revoke.digest)
    assert custody is not None and not custody.is_decision
    assert [hop.delegation_id for hop in custody.hops] == [story["links"][0].pk, story["links"][1].pk]
    assert custody.hops[1].status.then == "revoked"


def _noise(count: int) -> None:
    audit_append_many(
        [
            PendingEvent(
                actor=Actor(kind="agent", label=f"noise-{i}", id=str(10_000 + i)),
                action="check.allow",
                target=Target(type="scope", id="noise", label="noise:read"),
                context={"session_id": "s-1" if i % 2 else "other", "request_id": f"n-{i}", "decision": "allow"},
            )
            for i in range(count)
        ]
    )


def test_the_custody_query_count_does_not_grow_with_the_log(story: dict[str, Any]) -> None:
    with CaptureQueriesContext(connection) as small:
        custody_of(story["allowed"])
    _noise(600)
    with CaptureQueriesContext(connection) as big:
        custody = custody_of(story["allowed"])
    assert custody is not None and len(custody.hops) == 3
    assert len(big.captured_queries) == len(small.captured_queries) <= 8


def test_a_session_is_a_tree_of_requests_across_sub_agents(story: dict[str, Any]) -> None:
    timeline = session_timeline("s-1")
    assert timeline is not None
    assert [e.context["request_id"] for e in timeline.entries] == ["r-1", "r-2", "r-3", "r-4"]
    assert [e.depth for e in timeline.entries] == [0, 1, 2, 2]
    assert [lane.label for lane in timeline.lanes] == [agent.name for agent in story["agents"]]
    assert (timeline.allowed, timeline.denied) == (3, 1)
    assert session_timeline("no-such-session") is None


def test_auditors_read_custody_sessions_and_delegations_and_change_nothing(story: dict[str, Any]) -> None:
    client = Client()
    client.force_login(make_auditor())
    page = client.get(f"/custody/{story['denied']}/")
    assert page.status_code == 200
    html = page.content.decode()
    for link in story["links"]:
        assert f'href="/delegations/{link.pk}/"' in html
    assert "/sessions/s-1/" in html and "chain no longer stands" in html
    assert client.get("/sessions/s-1/").status_code == 200
    assert client.get(f"/delegations/{story['links'][0].pk}/").status_code == 200
    api = client.get(f"/api/v1/audit/custody/{story['denied']}/")
    assert api.status_code == 200
    body = api.json()
    assert [hop["delegation"] for hop in body["chain"]] == [link.pk for link in story["links"]]
    assert [hop["status_then"] for hop in body["chain"]] == ["active", "revoked", "revoked"]
    assert body["decision"]["reason"] == "delegation_revoked"
    assert client.get("/api/v1/audit/sessions/s-1/").json()["denied"] == 1
    # An auditor cannot change what they look at.
    root = story["links"][0]
    refused = client.post(f"/delegations/{root.pk}/revoke/", {"reason": "auditor tries"})
    assert refused.status_code == 403
    root.refresh_from_db()
    assert root.status == DelegationStatus.ACTIVE
    api_refused = client.post(
        f"/api/v1/delegations/{root.pk}/revoke/", {"reason": "auditor tries"}, content_type="application/json"
    )
    assert api_refused.status_code in (403, 405)
    root.refresh_from_db()
    assert root.status == DelegationStatus.ACTIVE


def test_custody_is_for_admins_and_auditors_with_clear_errors(story: dict[str, Any]) -> None:
    client = Client()
    client.force_login(make_reviewer())
    assert client.get(f"/custody/{story['allowed']}/").status_code == 403
    assert client.get(f"/api/v1/audit/custody/{story['allowed']}/").status_code == 403
    client.force_login(make_admin())
    assert client.get(f"/custody/{story['allowed']}/").status_code == 200
    bad = client.get("/api/v1/audit/custody/not-an-id/")
    assert bad.status_code == 400 and bad.json()["code"] == "invalid"
    missing = client.get(f"/api/v1/audit/custody/{'0' * 64}/")
    assert missing.status_code == 404 and missing.json()["code"] == "not_found"
    assert client.get(f"/custody/{'0' * 64}/").status_code == 404
    assert client.get("/api/v1/audit/sessions/no-such-session/").status_code == 404


def test_the_custody_bundle_verifies_offline_and_not_with_one_byte_changed(story: dict[str, Any]) -> None:
    client = Client()
    client.force_login(make_auditor())
    response = client.get(f"/custody/{story['denied']}/bundle.json")
    assert response.status_code == 200
    assert "attachment" in response["Content-Disposition"]
    raw = response.content
    bundle = json.loads(raw)
    trusted = {checkpoints.current_fingerprint()}
    assert verify_bundle(bundle, trusted).ok
    digests = {event["digest"] for event in bundle["events"] if "digest" in event} or {
        json.loads(event["canonical"]).get("digest") for event in bundle["events"]
    }
    assert story["denied"] in raw.decode()
    assert digests
    # One byte changed in the decision's recorded content.
    tampered = raw.replace(b"delegation_revoked", b"delegation_revokeD", 1)
    assert tampered != raw
    assert not verify_bundle(json.loads(tampered), trusted).ok
