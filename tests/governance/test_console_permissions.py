"""The console half of the role-by-page matrix: anonymous is sent to sign in, an outsider gets 403
everywhere, an auditor reads every page and changes nothing, a reviewer reads only what they (or their
reports) sponsor and changes nothing, an admin does both."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from audit.models import AuditEvent
from governance import services
from governance.models import Agent, AgentKey, Delegation, Grant, Human, Resource
from tests import factories

pytestmark = pytest.mark.django_db

ROLES = ("admin", "reviewer", "auditor", "outsider", "anonymous")


@dataclass
class World:
    """The reviewer is linked to ``mine`` and manages ``report``; ``other`` is outside their view."""

    users: dict[str, User]
    mine: Human
    report: Human
    other: Human
    resource: Resource
    my_agent: Agent
    report_agent: Agent
    other_agent: Agent
    other_sub: Agent
    suspended_agent: Agent
    delegation: Delegation
    key: AgentKey

    def client(self, role: str) -> Client:
        client = Client()
        if role != "anonymous":
            client.force_login(self.users[role])
        return client


@pytest.fixture
def world() -> World:
    users = {
        "admin": factories.make_admin(),
        "reviewer": factories.make_reviewer(),
        "auditor": factories.make_auditor(),
        "outsider": factories.make_outsider(),
    }
    mine = factories.make_human(name="Mina Mine", user=users["reviewer"])
    report = factories.make_human(name="Rory Report", manager=mine)
    other = factories.make_human(name="Otto Other")
    resource = factories.make_resource(owner=other)
    factories.make_grant(other, resource, "read")
    other_agent = factories.make_agent(sponsor=other, name="others-agent")
    suspended_agent = factories.make_agent(sponsor=other, name="others-suspended-agent")
    services.agent_suspend(actor=factories.SYSTEM, agent=suspended_agent)
    delegation = factories.make_delegation(other_agent, [resource.scope("read")], root_human=other, max_depth=1)
    key, _secret = factories.make_key(other_agent)
    return World(
        users=users,
        mine=mine,
        report=report,
        other=other,
        resource=resource,
        my_agent=factories.make_agent(sponsor=mine, name="minas-agent"),
        report_agent=factories.make_agent(sponsor=report, name="rorys-agent"),
        other_agent=other_agent,
        other_sub=factories.make_agent(parent=other_agent, name="others-sub-agent"),
        suspended_agent=suspended_agent,
        delegation=delegation,
        key=key,
    )


# --- Pages ----------------------------------------------------------------------------------

ALL_READERS = {"admin": 200, "auditor": 200, "reviewer": 200}
OWN_ONLY = {"admin": 200, "auditor": 200, "reviewer": 404}

PAGES: dict[str, tuple[Callable[[World], str], dict[str, int]]] = {
    "home": (lambda w: reverse("console:home"), ALL_READERS),
    "humans": (lambda w: reverse("console:humans"), ALL_READERS),
    "human detail (own)": (lambda w: reverse("console:human", args=[w.mine.pk]), ALL_READERS),
    "human detail (report)": (lambda w: reverse("console:human", args=[w.report.pk]), ALL_READERS),
    "human detail (other)": (lambda w: reverse("console:human", args=[w.other.pk]), OWN_ONLY),
    "agents": (lambda w: reverse("console:agents"), ALL_READERS),
    "agents, filtered": (lambda w: reverse("console:agents") + "?q=agent&status=active&level=top", ALL_READERS),
    "agent detail (own)": (lambda w: reverse("console:agent", args=[w.my_agent.pk]), ALL_READERS),
    "agent detail (report's)": (lambda w: reverse("console:agent", args=[w.report_agent.pk]), ALL_READERS),
    "agent detail (other)": (lambda w: reverse("console:agent", args=[w.other_agent.pk]), OWN_ONLY),
    "resources": (lambda w: reverse("console:resources"), ALL_READERS),
    "resource detail": (lambda w: reverse("console:resource", args=[w.resource.pk]), ALL_READERS),
    "delegations": (lambda w: reverse("console:delegations") + "?state=all", ALL_READERS),
    "audit": (lambda w: reverse("console:audit"), {"admin": 200, "auditor": 200, "reviewer": 403}),
}


def _expected_page_status(role: str, allowed: dict[str, int]) -> int:
    if role == "anonymous":
        return 302
    return allowed.get(role, 403)


@pytest.mark.parametrize("role", ROLES)
def test_each_role_reaches_exactly_the_pages_it_may(world: World, role: str) -> None:
    client = world.client(role)
    wrong = {}
    for name, (url, allowed) in PAGES.items():
        response = client.get(url(world))
        expected = _expected_page_status(role, allowed)
        if response.status_code != expected:
            wrong[name] = (response.status_code, expected)
        if expected == 302:
            assert response.url.startswith(reverse("login")), name
    assert wrong == {}, f"{role}: (got, expected) per page"


# --- Admin-only POSTs -----------------------------------------------------------------------


def _local(delta: timedelta) -> str:
    return (timezone.now() + delta).strftime("%Y-%m-%dT%H:%M")


POSTS: dict[str, tuple[Callable[[World], str], Callable[[World], dict[str, Any]]]] = {
    "agent create": (
        lambda w: reverse("console:agent_create"),
        lambda w: {"name": "matrix-agent", "sponsor": w.other.pk, "risk_tier": "low"},
    ),
    "agent grant": (
        lambda w: reverse("console:agent_grant_create", args=[w.other_agent.pk]),
        lambda w: {"scope": w.resource.scope("write"), "expires_at": _local(timedelta(days=3))},
    ),
    "human grant": (
        lambda w: reverse("console:human_grant_create", args=[w.other.pk]),
        lambda w: {"scope": w.resource.scope("write")},
    ),
    "root delegation": (
        lambda w: reverse("console:human_delegation_create", args=[w.other.pk]),
        lambda w: {
            "delegate": w.other_agent.pk,
            "scopes": [w.resource.scope("read")],
            "expires_at": _local(timedelta(hours=6)),
            "purpose": "matrix",
            "max_depth": 0,
        },
    ),
    "child delegation": (
        lambda w: reverse("console:agent_delegation_create", args=[w.other_agent.pk]),
        lambda w: {
            "parent": w.delegation.pk,
            "delegate": w.other_sub.pk,
            "scopes": [w.resource.scope("read")],
            "expires_at": _local(timedelta(hours=6)),
            "purpose": "matrix",
            "max_depth": 0,
        },
    ),
    "key create": (lambda w: reverse("console:agent_key_create", args=[w.other_agent.pk]), lambda w: {"name": "m"}),
    "agent suspend": (lambda w: reverse("console:agent_suspend", args=[w.other_agent.pk]), lambda w: {}),
    "agent reactivate": (lambda w: reverse("console:agent_reactivate", args=[w.suspended_agent.pk]), lambda w: {}),
    "key revoke": (lambda w: reverse("console:key_revoke", args=[w.key.pk]), lambda w: {"reason": "matrix"}),
    "delegation revoke": (
        lambda w: reverse("console:delegation_revoke", args=[w.delegation.pk]),
        lambda w: {"reason": "matrix"},
    ),
}


def snapshot() -> tuple[Any, ...]:
    """Everything a console POST could change."""
    return (
        AuditEvent.objects.count(),
        list(Agent.objects.order_by("pk").values_list("pk", "status", "name")),
        list(Grant.objects.order_by("pk").values_list("pk", "status")),
        list(Delegation.objects.order_by("pk").values_list("pk", "status")),
        list(AgentKey.objects.order_by("pk").values_list("pk", "revoked_at")),
    )


@pytest.mark.parametrize("role", ["reviewer", "auditor", "outsider", "anonymous"])
def test_no_role_but_admin_can_change_anything_from_the_console(world: World, role: str) -> None:
    client = world.client(role)
    before = snapshot()
    wrong = {}
    for name, (url, payload) in POSTS.items():
        for headers in ({}, {"HX-Request": "true"}):
            response = client.post(url(world), payload(world), headers=headers)
            expected = 302 if role == "anonymous" else 403
            if response.status_code != expected:
                wrong[name] = (response.status_code, expected)
    assert wrong == {}, f"{role}: (got, expected) per POST"
    assert snapshot() == before


@pytest.mark.parametrize("name", list(POSTS))
def test_an_admin_can_make_each_change_and_it_is_audited(world: World, name: str) -> None:
    url, payload = POSTS[name]
    before_seq = AuditEvent.objects.order_by("-id").values_list("id", flat=True).first()
    response = world.client("admin").post(url(world), payload(world), headers={"HX-Request": "true"})
    assert response.status_code in (200, 201), response.content.decode()[:2000]
    assert response.status_code == 201 or response.headers.get("HX-Redirect")
    new_events = AuditEvent.objects.filter(id__gt=before_seq)
    assert new_events.exists()
    assert set(new_events.values_list("actor_label", flat=True)) == {world.users["admin"].username}


# --- What a reviewer sees -------------------------------------------------------------------


def test_a_reviewer_lists_only_agents_they_or_their_reports_sponsor(world: World) -> None:
    page = world.client("reviewer").get(reverse("console:agents")).content.decode()
    assert "minas-agent" in page
    assert "rorys-agent" in page
    assert "others-agent" not in page
    assert "others-sub-agent" not in page


def test_a_reviewer_lists_only_themselves_and_their_reports(world: World) -> None:
    page = world.client("reviewer").get(reverse("console:humans")).content.decode()
    assert "Mina Mine" in page
    assert "Rory Report" in page
    assert "Otto Other" not in page


def test_a_reviewer_sees_their_own_delegations_and_not_other_peoples(world: World) -> None:
    mine = factories.make_resource(owner=world.mine, name="minas.notes")
    factories.make_grant(world.mine, mine, "read")
    own = factories.make_delegation(world.my_agent, [mine.scope("read")], root_human=world.mine)
    response = world.client("reviewer").get(reverse("console:delegations") + "?state=all")
    assert response.status_code == 200
    listed = [link for link, _status in response.context["rows"]]
    assert listed == [own]
    page = response.content.decode()
    assert "minas-agent" in page and "Mina Mine" in page
    assert "others-agent" not in page
    assert "Otto Other" not in page


def test_an_auditor_sees_every_agent_but_no_admin_form(world: World) -> None:
    page = world.client("auditor").get(reverse("console:agents")).content.decode()
    assert "others-agent" in page
    assert "minas-agent" in page
    assert reverse("console:agent_create") not in page
    detail = world.client("auditor").get(reverse("console:agent", args=[world.other_agent.pk])).content.decode()
    assert reverse("console:agent_key_create", args=[world.other_agent.pk]) not in detail
    assert reverse("console:key_revoke", args=[world.key.pk]) not in detail


def test_the_audit_link_is_offered_only_to_roles_that_may_open_it(world: World) -> None:
    audit = reverse("console:audit")
    assert f'href="{audit}"' in world.client("auditor").get(reverse("console:home")).content.decode()
    assert f'href="{audit}"' not in world.client("reviewer").get(reverse("console:home")).content.decode()


def test_the_forbidden_page_explains_itself(world: World) -> None:
    response = world.client("outsider").get(reverse("console:agents"))
    assert response.status_code == 403
    assert "no Custos role yet" in response.content.decode()


def test_a_reviewer_sponsoring_a_sub_agent_does_not_see_the_parent_above_it(world: World) -> None:
    theirs = factories.make_agent(parent=world.other_agent, sponsor=world.mine, name="minas-sub-of-others")
    response = world.client("reviewer").get(reverse("console:agent", args=[theirs.pk]))
    assert response.status_code == 200
    assert response.context["ancestors"] == []
    assert "outside your view" in response.content.decode()
    admin_view = world.client("admin").get(reverse("console:agent", args=[theirs.pk]))
    assert admin_view.context["ancestors"] == [world.other_agent]


# --- The Django admin -----------------------------------------------------------------------


@pytest.mark.parametrize("model", ["grant", "delegation", "agentkey"])
def test_the_django_admin_cannot_create_change_or_delete_what_only_services_may(world: World, model: str) -> None:
    superuser = User.objects.create_superuser("root", "root@example.test", "pw-for-tests-only")
    client = Client()
    client.force_login(superuser)
    instance = {"grant": Grant.objects.first(), "delegation": world.delegation, "agentkey": world.key}[model]
    assert instance is not None
    base = f"/admin/governance/{model}/"
    assert client.get(base).status_code == 200  # browsable
    assert client.get(f"{base}add/").status_code == 403
    before = snapshot()
    # What an edit of each would send: the fields that decide access, changed.
    change = {
        "grant": {"status": "active", "expires_at_0": "2099-01-01", "expires_at_1": "00:00:00", "action": "write"},
        "delegation": {"status": "active", "scopes": '["everything:all"]', "max_depth": "9"},
        "agentkey": {"expires_at_0": "2099-01-01", "expires_at_1": "00:00:00", "revoked_at": ""},
    }[model]
    assert client.get(f"{base}{instance.pk}/change/").status_code == 200  # a read-only view
    assert client.post(f"{base}{instance.pk}/change/", change).status_code == 403
    assert client.post(f"{base}{instance.pk}/delete/", {"post": "yes"}).status_code == 403
    assert snapshot() == before


def test_editing_an_agent_in_the_django_admin_goes_through_the_service_and_is_audited(world: World) -> None:
    superuser = User.objects.create_superuser("root", "root@example.test", "pw-for-tests-only")
    client = Client()
    client.force_login(superuser)
    agent = world.other_agent
    response = client.post(
        f"/admin/governance/agent/{agent.pk}/change/",
        {"name": "renamed-agent", "purpose": agent.purpose, "risk_tier": "critical"},
    )
    assert response.status_code == 302
    agent.refresh_from_db()
    assert (agent.name, agent.risk_tier) == ("renamed-agent", "critical")
    event = AuditEvent.objects.order_by("-id").first()
    assert event is not None
    assert (event.action, event.actor_label) == ("agent.update", "root")
    assert event.context["changes"]["name"] == ["others-agent", "renamed-agent"]
