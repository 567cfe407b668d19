"""The console's runtime pages: just-in-time access requests (list, badge, approve, deny), drift, the
agent page's decisions and tokens, and the dashboard's live panel. Who may see and do what, that a
decision goes through the same services as the API and is audited, and that refusals come back inline."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import pytest
import time_machine
from django.contrib.auth.models import User
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from audit.models import AuditEvent
from governance import runtime, services
from governance.models import (
    AccessRequest,
    AccessRequestStatus,
    Agent,
    Delegation,
    DelegationToken,
    DriftEvent,
    Grant,
    Human,
    Resource,
)
from governance.usage import usage
from tests import factories

pytestmark = pytest.mark.django_db

HTMX = {"HX-Request": "true"}
ROLES = ("admin", "approver", "stranger", "auditor", "outsider", "anonymous")
BADGE_RE = re.compile(r'<span id="jit-badge"[^>]*>(.*?)</span>\s*(?:</a>|</template>|$)', re.S)


@dataclass
class World:
    """``dana`` (the approver's own Human) holds read and write on crm.contacts and delegates read to
    ``helper`` (sponsored by Owen, so outside the approver's agent view); ``helper`` asks her for write.
    ``dana_bot`` (sponsored by Dana) asks her, as sponsor, for read. ``otto_bot`` asks Otto; only admins
    and auditors see that one. The stranger is a reviewer linked to nobody involved."""

    users: dict[str, User]
    dana: Human
    otto: Human
    resource: Resource
    helper: Agent
    dana_bot: Agent
    otto_bot: Agent
    otto_key: str
    dana_key: str
    delegation: Delegation
    to_dana: AccessRequest
    to_dana_as_sponsor: AccessRequest
    to_otto: AccessRequest

    def client(self, role: str) -> Client:
        client = Client()
        if role != "anonymous":
            client.force_login(self.users[role])
        return client


@pytest.fixture
def world() -> World:
    users = {
        "admin": factories.make_admin(),
        "approver": factories.make_reviewer(),
        "stranger": factories.make_reviewer(),
        "auditor": factories.make_auditor(),
        "outsider": factories.make_outsider(),
    }
    dana = factories.make_human(name="Dana Delegator", user=users["approver"])
    factories.make_human(name="Sam Stranger", user=users["stranger"])
    owen = factories.make_human(name="Owen Owner")
    otto = factories.make_human(name="Otto Other")
    resource = factories.make_resource(name="crm.contacts", owner=otto, sensitivity="high")
    for holder in (dana, otto):
        factories.make_grant(holder, resource, "read")
        factories.make_grant(holder, resource, "write")
    helper = factories.make_agent(sponsor=owen, name="crm-helper")
    dana_bot = factories.make_agent(sponsor=dana, name="dana-bot")
    otto_bot = factories.make_agent(sponsor=otto, name="otto-bot")
    factories.make_grant(dana_bot, resource, "read")
    factories.make_grant(otto_bot, resource, "read")
    delegation = factories.make_delegation(helper, [resource.scope("read")], root_human=dana)
    ask = factories.SYSTEM

    def request(agent: Agent, scope: str, **kwargs: Any) -> AccessRequest:
        return services.access_request_create(
            actor=ask, agent=agent, scope=scope, justification=f"{agent.name} needs {scope}", **kwargs
        )

    return World(
        users=users,
        dana=dana,
        otto=otto,
        resource=resource,
        helper=helper,
        dana_bot=dana_bot,
        otto_bot=otto_bot,
        otto_key=factories.make_key(otto_bot)[1],
        dana_key=factories.make_key(dana_bot)[1],
        delegation=delegation,
        to_dana=request(
            helper,
            resource.scope("write"),
            delegation=delegation,
            intent="record the outcome of the call",
            session_id="sess-helper-1",
            duration=timedelta(minutes=20),
        ),
        to_dana_as_sponsor=request(dana_bot, resource.scope("write")),
        to_otto=request(otto_bot, resource.scope("write")),
    )


def _check(key: str, resource: Resource, action: str, **context: str) -> runtime.CheckResult:
    return runtime.check(credential=key, action=action, resource=resource.name, context=context)


def _last_seq() -> int:
    return AuditEvent.objects.order_by("-id").values_list("id", flat=True).first() or 0


def _badge(html: str) -> str | None:
    """The badge's text, or None when the page has no badge at all."""
    match = BADGE_RE.search(html)
    return None if match is None else re.sub(r"<[^>]+>|,|awaiting your decision", "", match.group(1)).strip()


def snapshot() -> tuple[Any, ...]:
    return (
        AuditEvent.objects.count(),
        list(AccessRequest.objects.order_by("pk").values_list("pk", "status", "decision_note")),
        Delegation.objects.count(),
        list(DriftEvent.objects.order_by("pk").values_list("pk", "acknowledged_at")),
    )


# --- Who reaches which page -----------------------------------------------------------------

EVERY_ROLE = {"admin": 200, "approver": 200, "stranger": 200, "auditor": 200}

PAGES: dict[str, tuple[Callable[[World], str], dict[str, int]]] = {
    "access requests": (lambda w: reverse("console:access_requests"), EVERY_ROLE),
    "access requests, all": (lambda w: reverse("console:access_requests") + "?status=all&q=crm", EVERY_ROLE),
    "badge": (lambda w: reverse("console:access_requests_badge"), EVERY_ROLE),
    "drift": (lambda w: reverse("console:drift") + "?state=all", EVERY_ROLE),
    "live panel": (lambda w: reverse("console:live"), EVERY_ROLE),
    "decisions of dana-bot": (
        lambda w: reverse("console:agent_decisions", args=[w.dana_bot.pk]),
        {"admin": 200, "approver": 200, "stranger": 404, "auditor": 200},
    ),
    "decisions of otto-bot": (
        lambda w: reverse("console:agent_decisions", args=[w.otto_bot.pk]),
        {"admin": 200, "approver": 404, "stranger": 404, "auditor": 200},
    ),
}


@pytest.mark.parametrize("role", ROLES)
def test_each_persona_reaches_exactly_the_runtime_pages_it_may(world: World, role: str) -> None:
    client = world.client(role)
    wrong = {}
    for name, (url, allowed) in PAGES.items():
        response = client.get(url(world))
        expected = 302 if role == "anonymous" else allowed.get(role, 403)
        if response.status_code != expected:
            wrong[name] = (response.status_code, expected)
        if expected == 302:
            assert response["Location"].startswith(reverse("login")), name
    assert wrong == {}, f"{role}: (got, expected) per page"


def _listed(world: World, role: str, query: str = "") -> set[int]:
    response = world.client(role).get(reverse("console:access_requests") + query)
    return {row.request.pk for row in response.context["rows"]}


def test_a_reviewer_lists_the_requests_they_approve_or_whose_agent_they_sponsor(world: World) -> None:
    assert _listed(world, "approver") == {world.to_dana.pk, world.to_dana_as_sponsor.pk}
    assert _listed(world, "stranger") == set()
    everything = {world.to_dana.pk, world.to_dana_as_sponsor.pk, world.to_otto.pk}
    assert _listed(world, "admin") == everything
    assert _listed(world, "auditor") == everything


def test_an_approver_sees_the_request_but_no_link_to_an_agent_page_they_cannot_open(world: World) -> None:
    page = world.client("approver").get(reverse("console:access_requests")).content.decode()
    assert "crm-helper" in page
    assert reverse("console:agent", args=[world.helper.pk]) not in page
    assert reverse("console:agent", args=[world.dana_bot.pk]) in page


def test_an_auditor_reads_every_request_and_is_offered_no_decision(world: World) -> None:
    response = world.client("auditor").get(reverse("console:access_requests"))
    page = response.content.decode()
    assert "otto-bot" in page and "crm-helper" in page
    assert "/approve/" not in page and "/deny/" not in page
    assert not any(row.can_decide for row in response.context["rows"])


def test_the_list_shows_what_a_decider_needs(world: World) -> None:
    response = world.client("approver").get(reverse("console:access_requests"))
    page = response.content.decode()
    for text in ("crm.contacts:write", "record the outcome of the call", "sess-helper-1", "20 min", "Dana Delegator"):
        assert text in page, text
    assert "scope-high" in page  # the scope wears its resource's sensitivity
    assert "lapses in" in page
    assert reverse("console:access_request_approve", args=[world.to_dana.pk]) in page


def test_the_status_filter_separates_pending_decided_and_lapsed_requests(world: World) -> None:
    services.access_request_deny(actor=factories.SYSTEM, user=world.users["admin"], request=world.to_otto)
    assert _listed(world, "admin") == {world.to_dana.pk, world.to_dana_as_sponsor.pk}
    assert _listed(world, "admin", "?status=denied") == {world.to_otto.pk}
    assert _listed(world, "admin", "?status=approved") == set()
    assert _listed(world, "admin", f"?agent={world.helper.pk}") == {world.to_dana.pk}
    with time_machine.travel(world.to_dana.expires_at + timedelta(seconds=1)):
        # Lapsed by its timestamp, before any sweep has run.
        assert _listed(world, "admin") == set()
        assert _listed(world, "admin", "?status=expired") == {world.to_dana.pk, world.to_dana_as_sponsor.pk}


def test_filtering_with_htmx_returns_only_the_rows(world: World) -> None:
    response = world.client("admin").get(reverse("console:access_requests") + "?status=all", headers=HTMX)
    page = response.content.decode()
    assert "<html" not in page
    assert 'id="request-' in page


# --- Deciding -------------------------------------------------------------------------------

DECISIONS = ("approve", "deny")


def _decide_url(verb: str, request: AccessRequest) -> str:
    return reverse(f"console:access_request_{verb}", args=[request.pk])


@pytest.mark.parametrize(
    ("role", "expected"), [("stranger", 404), ("auditor", 403), ("outsider", 403), ("anonymous", 302)]
)
def test_no_one_but_the_approver_the_sponsor_or_an_admin_can_decide(world: World, role: str, expected: int) -> None:
    client = world.client(role)
    before = snapshot()
    for verb in DECISIONS:
        for headers in ({}, HTMX):
            response = client.post(_decide_url(verb, world.to_dana), {"note": "no"}, headers=headers)
            assert response.status_code == expected, (verb, headers)
    assert snapshot() == before


def test_a_reviewer_cannot_decide_a_request_outside_their_view(world: World) -> None:
    before = snapshot()
    response = world.client("approver").post(_decide_url("approve", world.to_otto), headers=HTMX)
    assert response.status_code == 404
    assert snapshot() == before


def test_approving_from_the_console_delegates_exactly_that_scope_for_that_time_and_is_audited(world: World) -> None:
    since = _last_seq()
    started = timezone.now()
    response = world.client("approver").post(
        _decide_url("approve", world.to_dana), {"note": "for this call only"}, headers=HTMX
    )
    assert response.status_code == 200
    world.to_dana.refresh_from_db()
    assert world.to_dana.status == AccessRequestStatus.APPROVED
    assert world.to_dana.decision_note == "for this call only"
    link = world.to_dana.resulting_delegation
    assert link is not None
    assert (link.root_human, link.delegate, link.scopes, link.max_depth) == (
        world.dana,
        world.helper,
        [world.resource.scope("write")],
        0,
    )
    assert started + timedelta(minutes=20) <= link.expires_at <= timezone.now() + timedelta(minutes=20)
    events = list(AuditEvent.objects.filter(id__gt=since).order_by("id"))
    assert [e.action for e in events] == ["delegation.create", "accessrequest.approve"]
    assert {e.actor_label for e in events} == {world.users["approver"].username}
    # The row comes back in place, decided, with no buttons; the badge drops to the one left.
    page = response.content.decode()
    assert f'id="request-{world.to_dana.pk}"' in page
    assert "Approved" in page and f"#{link.pk}" in page
    assert "/approve/" not in page
    assert 'hx-swap-oob="true"' in page
    assert _badge(page) == "1"


def test_denying_records_the_note_creates_nothing_and_is_audited(world: World) -> None:
    since = _last_seq()
    delegations = Delegation.objects.count()
    response = world.client("admin").post(
        _decide_url("deny", world.to_otto), {"note": "not for this task"}, headers=HTMX
    )
    assert response.status_code == 200
    world.to_otto.refresh_from_db()
    assert (world.to_otto.status, world.to_otto.decision_note) == (AccessRequestStatus.DENIED, "not for this task")
    assert world.to_otto.resulting_delegation is None
    assert Delegation.objects.count() == delegations
    event = AuditEvent.objects.get(id__gt=since)
    assert (event.action, event.actor_label, event.context["note"]) == (
        "accessrequest.deny",
        world.users["admin"].username,
        "not for this task",
    )
    assert "Denied" in response.content.decode()


def test_the_sponsor_may_decide_a_request_that_goes_to_them(world: World) -> None:
    response = world.client("approver").post(_decide_url("deny", world.to_dana_as_sponsor), headers=HTMX)
    assert response.status_code == 200
    world.to_dana_as_sponsor.refresh_from_db()
    assert world.to_dana_as_sponsor.status == AccessRequestStatus.DENIED


def test_a_lapsed_request_cannot_be_approved_and_the_row_says_why(world: World) -> None:
    before = snapshot()
    with time_machine.travel(world.to_dana.expires_at + timedelta(minutes=1)):
        response = world.client("approver").post(_decide_url("approve", world.to_dana), headers=HTMX)
    assert response.status_code == 422  # swapped by htmx (base.html), unlike other 4xx
    page = response.content.decode()
    assert "request_expired" in page and "lapsed before it was answered" in page
    assert "Lapsed" in page
    assert "/approve/" not in page
    assert snapshot() == before


def test_an_approver_who_no_longer_holds_the_scope_sees_the_refusal_inline(world: World) -> None:
    write = Grant.objects.get(holder_human=world.dana, action="write")
    services.grant_revoke(actor=factories.SYSTEM, grant=write, reason="moved team")
    before = snapshot()
    response = world.client("approver").post(_decide_url("approve", world.to_dana), headers=HTMX)
    assert response.status_code == 422
    page = response.content.decode()
    assert "delegator_lacks_grant" in page and "does not hold crm.contacts:write" in page
    assert 'role="alert"' in page
    # Still pending and still decidable: denying remains possible.
    assert _decide_url("deny", world.to_dana) in page
    assert snapshot() == before


def test_a_request_decided_meanwhile_comes_back_decided_with_the_reason(world: World) -> None:
    services.access_request_deny(actor=factories.SYSTEM, user=world.users["admin"], request=world.to_dana, note="first")
    response = world.client("approver").post(_decide_url("approve", world.to_dana), headers=HTMX)
    assert response.status_code == 422
    page = response.content.decode()
    assert "request_decided" in page and "Denied" in page
    world.to_dana.refresh_from_db()
    assert world.to_dana.status == AccessRequestStatus.DENIED


def test_without_javascript_a_decision_redirects_back_with_a_message(world: World) -> None:
    client = world.client("approver")
    back = reverse("console:access_requests") + "?status=all"
    response = client.post(_decide_url("approve", world.to_dana), {"next": back}, follow=True)
    assert response.redirect_chain[-1][0] == back
    assert "Approved" in response.content.decode()
    refused = client.post(_decide_url("approve", world.to_dana), {"next": back}, follow=True)
    assert "already approved" in refused.content.decode()


# --- The badge ------------------------------------------------------------------------------


@pytest.mark.parametrize(("role", "expected"), [("admin", "3"), ("approver", "2"), ("stranger", ""), ("auditor", None)])
def test_the_badge_counts_the_pending_requests_each_persona_may_decide(
    world: World, role: str, expected: str | None
) -> None:
    page = world.client(role).get(reverse("console:home")).content.decode()
    assert _badge(page) == expected


def test_the_badge_fragment_polls_and_forgets_decided_and_lapsed_requests(world: World) -> None:
    client = world.client("approver")
    url = reverse("console:access_requests_badge")
    fragment = client.get(url, headers=HTMX).content.decode()
    assert _badge(fragment) == "2"
    assert 'hx-trigger="every 15s' in fragment and "<html" not in fragment
    services.access_request_deny(actor=factories.SYSTEM, user=world.users["admin"], request=world.to_dana)
    assert _badge(client.get(url, headers=HTMX).content.decode()) == "1"
    with time_machine.travel(world.to_dana_as_sponsor.expires_at + timedelta(seconds=1)):
        assert _badge(client.get(url, headers=HTMX).content.decode()) == ""


# --- Drift ----------------------------------------------------------------------------------


@pytest.fixture
def drifted(world: World, settings: Any) -> World:
    """Both bots try to write, which they were never granted, until each raises a drift event."""
    settings.CUSTOS_DRIFT_THRESHOLD = 3
    for key in (world.otto_key, world.dana_key):
        for n in range(3):
            result = _check(key, world.resource, "write", intent="tidy the contact list", tool="crm_update")
            assert result.outcome.reason == "scope_not_granted", n
    assert DriftEvent.objects.count() == 2
    return world


def _drift_listed(world: World, role: str, query: str = "") -> set[str]:
    response = world.client(role).get(reverse("console:drift") + query)
    return {event.agent.name for event in response.context["drift_events"]}


def test_drift_is_listed_for_the_agents_each_persona_can_see(drifted: World) -> None:
    assert _drift_listed(drifted, "admin") == {"otto-bot", "dana-bot"}
    assert _drift_listed(drifted, "auditor") == {"otto-bot", "dana-bot"}
    assert _drift_listed(drifted, "approver") == {"dana-bot"}
    assert _drift_listed(drifted, "stranger") == set()
    page = drifted.client("admin").get(reverse("console:drift")).content.decode()
    for text in ("scope_not_granted", "crm.contacts:write", "tidy the contact list", "crm_update", "3"):
        assert text in page, text


def test_an_admin_acknowledges_drift_in_place_and_it_is_audited(drifted: World) -> None:
    event = DriftEvent.objects.get(agent=drifted.otto_bot)
    since = _last_seq()
    response = drifted.client("admin").post(reverse("console:drift_acknowledge", args=[event.pk]), headers=HTMX)
    assert response.status_code == 200
    event.refresh_from_db()
    assert event.acknowledged_at is not None
    assert event.acknowledged_by == drifted.users["admin"].username
    audit = AuditEvent.objects.get(id__gt=since)
    assert (audit.action, audit.context["drift_event"]) == ("drift.acknowledge", event.pk)
    page = response.content.decode()
    assert f'id="drift-{event.pk}"' in page and "<html" not in page
    assert "/acknowledge/" not in page
    assert _drift_listed(drifted, "admin") == {"dana-bot"}
    assert _drift_listed(drifted, "admin", "?state=acknowledged") == {"otto-bot"}


@pytest.mark.parametrize(
    ("role", "expected"),
    [("approver", 403), ("stranger", 403), ("auditor", 403), ("outsider", 403), ("anonymous", 302)],
)
def test_no_one_but_an_admin_acknowledges_drift(drifted: World, role: str, expected: int) -> None:
    event = DriftEvent.objects.get(agent=drifted.dana_bot)
    before = snapshot()
    response = drifted.client(role).post(reverse("console:drift_acknowledge", args=[event.pk]), headers=HTMX)
    assert response.status_code == expected
    assert snapshot() == before
    page = drifted.client("auditor").get(reverse("console:drift")).content.decode()
    assert "/acknowledge/" not in page


# --- The agent page -------------------------------------------------------------------------


def test_the_agent_page_shows_the_decisions_it_recorded(world: World) -> None:
    _check(world.dana_key, world.resource, "read", intent="look up the customer", tool="crm_lookup", session_id="s-77")
    _check(world.dana_key, world.resource, "delete", intent="remove a duplicate", tool="crm_delete", session_id="s-77")
    response = world.client("approver").get(reverse("console:agent", args=[world.dana_bot.pk]))
    decisions = response.context["decisions"]
    assert [(d.allowed, d.reason, d.scope) for d in decisions] == [
        (False, "scope_not_granted", "crm.contacts:delete"),
        (True, "allowed", "crm.contacts:read"),
    ]
    page = response.content.decode()
    for text in (
        "look up the customer",
        "crm_lookup",
        "s-77",
        "verdict-allow",
        "verdict-deny",
        "scope_not_granted",
        "own key",
    ):
        assert text in page, text


def test_a_decision_made_through_the_api_shows_on_the_agent_page_and_the_dashboard(world: World) -> None:
    body = {
        "action": "read",
        "resource": world.resource.name,
        "context": {"intent": "find the latest figures", "tool": "crm_search", "session_id": "api-sess-9"},
    }
    answer = Client().post(
        "/api/v1/check", body, content_type="application/json", HTTP_AUTHORIZATION=f"Bearer {world.otto_key}"
    )
    assert answer.status_code == 200 and answer.json()["decision"] == "allow"
    page = world.client("auditor").get(reverse("console:agent", args=[world.otto_bot.pk])).content.decode()
    assert "find the latest figures" in page and "api-sess-9" in page
    live = world.client("auditor").get(reverse("console:live"), headers=HTMX)
    assert live.context["live_allowed"] == 1
    assert "api-sess-9" in live.content.decode()


def test_the_agent_page_lists_tokens_in_force_and_when_each_key_was_last_used(admin_user: User) -> None:
    chain = factories.make_chain(depth=2)
    top = chain["agents"][0]
    issued = factories.make_chain_tokens(chain)
    tokens = list(DelegationToken.objects.filter(agent=top))
    assert len(tokens) == 1
    second_key = factories.make_key(top)[1]
    factories.make_token(second_key, chain["links"][0])
    idle_key, _ = factories.make_key(top)
    revoked = DelegationToken.objects.filter(agent=top).exclude(pk=tokens[0].pk).get()
    services.token_revoke(actor=factories.SYSTEM, jti=revoked.jti, reason="leaked")
    for credential in (issued["tokens"][0], issued["keys"][0]):
        runtime.check(credential=credential, action="read", resource=chain["resource"].name, context={})
    usage.flush()  # last use is buffered in memory and written in batches
    client = Client()
    client.force_login(admin_user)
    response = client.get(reverse("console:agent", args=[top.pk]))
    assert [t.jti for t in response.context["tokens"]] == [tokens[0].jti]
    page = response.content.decode()
    assert tokens[0].jti[:10] in page
    assert revoked.jti[:10] not in page
    used = {k.prefix for k in response.context["keys"] if k.last_used_at}
    # Obtaining a token is a use of the key that obtained it, as a check with the key is.
    assert used == {issued["keys"][0].split("_")[1], second_key.split("_")[1]}
    assert idle_key.prefix not in used and "never" in page
    # The decision made with it, for its human (a link: the admin may open the human's page).
    assert f'token for <a href="{reverse("console:human", args=[chain["human"].pk])}">{chain["human"].name}</a>' in page


def test_the_agent_page_shows_its_drift_and_pending_requests(drifted: World) -> None:
    page = drifted.client("approver").get(reverse("console:agent", args=[drifted.dana_bot.pk])).content.decode()
    assert "Pending access requests" in page
    assert drifted.to_dana_as_sponsor.justification in page
    assert "3 denials in" in page
    assert reverse("console:access_requests") + f"?agent={drifted.dana_bot.pk}" in page


# --- The dashboard's live panel -------------------------------------------------------------


def test_the_live_panel_counts_the_last_hour_and_shows_only_what_the_persona_may_see(world: World) -> None:
    _check(world.otto_key, world.resource, "read", session_id="otto-session")
    _check(world.otto_key, world.resource, "write", session_id="otto-session")
    _check(world.dana_key, world.resource, "read", session_id="dana-session")
    with time_machine.travel(timezone.now() - timedelta(hours=2)):
        _check(world.dana_key, world.resource, "read", session_id="old-session")
    for role, allowed, denied, sessions in (
        ("auditor", 2, 1, {"otto-session", "dana-session", "old-session"}),
        ("admin", 2, 1, {"otto-session", "dana-session", "old-session"}),
        # A reviewer's panel holds only the agents they can see.
        ("approver", 1, 0, {"dana-session", "old-session"}),
        ("stranger", 0, 0, set()),
    ):
        response = world.client(role).get(reverse("console:live"), headers=HTMX)
        assert (response.context["live_allowed"], response.context["live_denied"]) == (allowed, denied), role
        assert {d.session_id for d in response.context["live_decisions"]} == sessions, role
        assert sum(b.allow + b.deny for b in response.context["live_bars"]) == allowed + denied
    home = world.client("auditor").get(reverse("console:home")).content.decode()
    assert 'hx-trigger="every 5s' in home and reverse("console:live") in home


def test_the_dashboard_counts_pending_requests_and_open_drift(drifted: World) -> None:
    admin = drifted.client("admin").get(reverse("console:home"))
    assert (admin.context["requests_pending"], admin.context["drift_open"]) == (3, 2)
    approver = drifted.client("approver").get(reverse("console:home"))
    assert (approver.context["requests_pending"], approver.context["drift_open"]) == (2, 1)
