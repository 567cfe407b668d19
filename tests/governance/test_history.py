"""Whole histories (governance.history): the events about an agent, a human or a resource, matched by id,
never by name; one query for a page of them however long the log."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.db.models import Q
from django.test import Client
from django.urls import reverse

from audit import links
from audit.models import AuditEvent
from audit.services import Actor
from governance import history, runtime, services
from governance.models import Agent, AgentKey, Delegation, DelegationToken, Human, Resource
from tests import factories

pytestmark = pytest.mark.django_db


@dataclass
class World:
    kwame: Human
    other: Human
    resource: Resource
    triage: Agent  # "support-triage", acting for Kwame
    latam: Agent  # "support-triage-latam", its sub-agent, with its own key and token
    tone: Agent  # "tone-checker-latam", two hops below Kwame
    links: list[Delegation]  # Kwame → triage → latam → tone
    other_link: Delegation  # Other → latam, straight
    keys: dict[str, str]  # agent name → its ck_… key
    tokens: dict[str, str]  # agent name → its token under Kwame's chain


def _check(credential: str, resource: Resource, action: str = "read") -> runtime.CheckResult:
    return runtime.check(credential=credential, action=action, resource=resource.name, context={})


def _world() -> World:
    kwame = factories.make_human(name="Kwame Boateng", user=factories.make_admin())
    other = factories.make_human(name="Other Person")
    resource = factories.make_resource("crm.contacts", actions=("read", "write"))
    for human in (kwame, other):
        factories.make_grant(human, resource, "read")
    scope = [resource.scope("read")]
    triage = factories.make_agent(sponsor=kwame, name="support-triage")
    latam = factories.make_agent(parent=triage, name="support-triage-latam")
    tone = factories.make_agent(parent=latam, name="tone-checker-latam")
    top = factories.make_delegation(triage, scope, root_human=kwame, max_depth=2, expires_in=timedelta(days=2))
    middle = factories.make_delegation(latam, scope, parent=top, max_depth=1, expires_in=timedelta(hours=20))
    bottom = factories.make_delegation(tone, scope, parent=middle, expires_in=timedelta(hours=10))
    other_link = factories.make_delegation(latam, scope, root_human=other)
    factories.make_grant(triage, resource, "read")
    factories.make_grant(latam, resource, "read")
    keys = {agent.name: factories.make_key(agent)[1] for agent in (triage, latam, tone)}
    tokens = {"support-triage": factories.make_token(keys["support-triage"], top)}
    tokens["support-triage-latam"] = factories.make_token(
        keys["support-triage-latam"], parent_token=tokens["support-triage"]
    )
    tokens["tone-checker-latam"] = factories.make_token(
        keys["tone-checker-latam"], parent_token=tokens["support-triage-latam"]
    )
    for token in tokens.values():
        assert _check(token, resource).outcome.allowed
    # latam acting for the other human too, with a token of its own under that human's delegation.
    assert _check(factories.make_token(keys["support-triage-latam"], other_link), resource).outcome.allowed
    # And a denial of latam's, by name the likeliest to leak into "support-triage".
    assert not _check(tokens["support-triage-latam"], resource, "write").outcome.allowed
    return World(kwame, other, resource, triage, latam, tone, [top, middle, bottom], other_link, keys, tokens)


@pytest.fixture
def world() -> World:
    return _world()


def _events(condition: Any) -> list[AuditEvent]:
    return list(AuditEvent.objects.filter(condition))


def _about_agent(event: AuditEvent, agent: Agent) -> bool:
    """Whether ``event`` concerns ``agent`` itself, decided from the objects, not through history."""
    if event.actor_kind == "agent" and event.actor_id == str(agent.pk):
        return True
    owned = {
        "agent": {str(agent.pk)},
        "agentkey": {str(pk) for pk in AgentKey.objects.filter(agent=agent).values_list("pk", flat=True)},
        "delegationtoken": set(DelegationToken.objects.filter(agent=agent).values_list("jti", flat=True)),
        "delegation": {str(pk) for pk in Delegation.objects.filter(delegate=agent).values_list("pk", flat=True)},
        "grant": {str(pk) for pk in agent.grants.values_list("pk", flat=True)},
    }
    return event.target_id in owned.get(event.target_type, set())


def test_an_agents_history_is_its_keys_delegations_tokens_and_decisions_and_nothing_of_its_sub_agents(
    world: World,
) -> None:
    events = _events(history.agent_events(world.triage.pk))
    expected = [e for e in AuditEvent.objects.all() if _about_agent(e, world.triage)]
    assert {e.pk for e in events} == {e.pk for e in expected}
    actions = {e.action for e in events}
    assert {"agent.create", "agentkey.create", "delegation.create", "grant.create", "token.issue", "check.allow"} <= (
        actions
    )
    # The sub-agent made decisions, obtained tokens and was delegated to: none of it is the parent's.
    assert all(e.actor_label != "support-triage-latam" for e in events)
    assert all("support-triage-latam" not in e.target_label for e in events)
    assert not any(e.action == "check.deny" for e in events)


def test_a_sub_agents_history_is_its_own_whatever_its_parent_does(world: World) -> None:
    events = _events(history.agent_events(world.latam.pk))
    assert {e.pk for e in events} == {e.pk for e in AuditEvent.objects.all() if _about_agent(e, world.latam)}
    decisions = [e for e in events if e.action.startswith("check.")]
    # Its three: for Kwame (allowed, then denied write) and for the other human.
    assert len(decisions) == 3
    assert {e.actor_id for e in decisions} == {str(world.latam.pk)}


def test_an_agents_history_follows_its_key_and_token_revocations_and_its_offboarding(world: World) -> None:
    admin = Actor.of(factories.make_admin())
    key = AgentKey.objects.get(agent=world.triage)
    services.agentkey_revoke(actor=admin, key=key, reason="rotated")
    services.agent_offboard(actor=admin, agent=world.triage, reason="retired")
    actions = [e.action for e in _events(history.agent_events(world.triage.pk))]
    assert "agentkey.revoke" in actions
    assert "token.revoke" in actions
    assert "delegation.revoke" in actions
    # Its sub-agents were offboarded with it: that much of theirs is its history ...
    offboarded = _events(history.agent_events(world.triage.pk) & Q(action="agent.offboard"))
    assert {e.target_id for e in offboarded} == {str(a.pk) for a in (world.triage, world.latam, world.tone)}
    # ... but not the sub-agents' own keys and links that the offboarding cut.
    for event in _events(history.agent_events(world.triage.pk) & ~Q(action="agent.offboard")):
        assert _about_agent(event, world.triage)


def test_a_humans_history_has_the_decisions_made_for_them_two_hops_down_and_not_anothers(world: World) -> None:
    events = _events(history.human_events(world.kwame.pk))
    decisions = {(e.actor_id, e.action) for e in events if e.action.startswith("check.")}
    assert decisions == {
        (str(world.triage.pk), "check.allow"),
        (str(world.latam.pk), "check.allow"),
        (str(world.latam.pk), "check.deny"),
        (str(world.tone.pk), "check.allow"),  # two hops below Kwame
    }
    # Every decision of theirs was made with a token of Kwame's chains; latam's for the other human is not here.
    jtis = set(DelegationToken.objects.filter(delegation__root_human=world.kwame).values_list("jti", flat=True))
    assert all(e.context["credential"]["jti"] in jtis for e in events if e.action.startswith("check."))
    targets = {(e.target_type, e.target_id) for e in events}
    assert ("human", str(world.kwame.pk)) in targets
    assert {("delegation", str(link.pk)) for link in world.links} <= targets
    assert ("delegation", str(world.other_link.pk)) not in targets
    assert all(e.on_behalf_of[:1] != [{"type": "human", "id": world.other.pk, "label": "Other Person"}] for e in events)
    assert {("delegationtoken", jti) for jti in jtis} <= targets
    # Nothing of the other human's: their record, grant or delegation.
    others = {e.pk for e in _events(history.human_events(world.other.pk))}
    assert others, "the other human has a history of their own"
    assert not others & {e.pk for e in events}


def test_a_humans_history_has_what_they_did_through_their_login(world: World) -> None:
    user = world.kwame.user
    assert user is not None
    services.agentkey_revoke(actor=Actor.of(user), key=AgentKey.objects.get(agent=world.tone), reason="done")
    mine = [e for e in _events(history.human_events(world.kwame.pk)) if e.actor_kind == "user"]
    # The key and the token it obtained.
    assert sorted(e.action for e in mine) == ["agentkey.revoke", "token.revoke"]
    assert {e.actor_id for e in mine} == {str(user.pk)}
    assert not [e for e in _events(history.human_events(world.other.pk)) if e.actor_kind == "user"]


def test_a_resources_history_is_its_grants_decisions_and_requests_not_a_similarly_named_ones(world: World) -> None:
    lookalike = factories.make_resource("crm.contacts-eu", actions=("read",))
    factories.make_grant(world.kwame, lookalike, "read")
    factories.make_grant(world.triage, lookalike, "read")
    for name in ("crm.contacts-eu", "crm.contacts"):
        services.access_request_create(
            actor=factories.SYSTEM,
            agent=world.tone,
            scope=f"{name}:{'read' if name.endswith('eu') else 'write'}",
            justification="mid-task",
        )
    assert _check(world.keys["support-triage"], lookalike).outcome.allowed
    events = _events(history.resource_events(world.resource.pk))
    assert {e.target_label for e in events if e.target_type == "accessrequest"} == {
        "tone-checker-latam asks crm.contacts:write"
    }
    decisions = [e for e in events if e.action.startswith("check.")]
    assert len(decisions) == 5  # the world's, not the one on the lookalike
    assert {e.context["scope"].split(":")[0] for e in decisions} == {"crm.contacts"}
    assert all("crm.contacts-eu" not in e.target_label for e in events)
    assert ("resource", str(world.resource.pk)) in {(e.target_type, e.target_id) for e in events}
    assert {e.target_id for e in events if e.target_type == "grant"} == {
        str(pk) for pk in world.resource.grants.values_list("pk", flat=True)
    }


def test_recent_reads_the_latest_of_a_history_newest_first_like_the_whole_condition(world: World) -> None:
    for arms, condition in (
        (history.agent_arms(world.latam.pk), history.agent_events(world.latam.pk)),
        (history.human_arms(world.kwame.pk), history.human_events(world.kwame.pk)),
        (history.resource_arms(world.resource.pk), history.resource_events(world.resource.pk)),
    ):
        whole = list(AuditEvent.objects.filter(condition).order_by("-id"))
        assert [e.pk for e in history.recent(arms, 5)] == [e.pk for e in whole[:5]]
        assert [e.pk for e in history.recent(arms, 500)] == [e.pk for e in whole]


def test_the_audit_browser_finds_the_histories_by_subject() -> None:
    assert {"agent", "human", "resource"} <= set(links.subjects())
    condition = links.subject_filter("agent", 7)
    assert condition is not None
    assert AuditEvent.objects.filter(condition).count() == 0


def _more_traffic(world: World, rounds: int) -> None:
    """More of everything an agent's and a human's history read: keys, tokens, decisions, links."""
    for _ in range(rounds):
        key = factories.make_key(world.triage)[1]
        token = factories.make_token(key, world.links[0])
        _check(token, world.resource)
        _check(token, world.resource, "write")
        sub = factories.make_token(world.keys["tone-checker-latam"], parent_token=world.tokens["support-triage-latam"])
        _check(sub, world.resource)
        factories.make_delegation(world.latam, [world.resource.scope("read")], root_human=world.other)


def test_reading_a_page_of_history_costs_the_same_however_long_the_log(
    world: World, django_assert_num_queries: Any
) -> None:
    def read_pages() -> None:
        for arms, condition in (
            (history.agent_arms(world.triage.pk), history.agent_events(world.triage.pk)),
            (history.human_arms(world.kwame.pk), history.human_events(world.kwame.pk)),
            (history.resource_arms(world.resource.pk), history.resource_events(world.resource.pk)),
        ):
            history.recent(arms, 10)
            list(AuditEvent.objects.filter(condition)[:50])

    with django_assert_num_queries(6):
        read_pages()
    _more_traffic(world, rounds=8)
    assert AuditEvent.objects.filter(history.human_events(world.kwame.pk)).count() > 50
    with django_assert_num_queries(6):
        read_pages()


def _client(user: User) -> Client:
    client = Client()
    client.force_login(user)
    return client


def test_pages_link_to_their_whole_history_in_the_audit_log(world: World, auditor_user: User) -> None:
    client = _client(auditor_user)
    admin = Actor.of(factories.make_admin())
    services.agentkey_revoke(actor=admin, key=AgentKey.objects.get(agent=world.triage), reason="rotated")
    audit = reverse("console:audit")
    page = client.get(reverse("console:agent", args=[world.triage.pk])).content.decode()
    assert f'href="{audit}?agent={world.triage.pk}"' in page
    assert f'href="{audit}?agent={world.triage.pk}&amp;action=check."' in page
    assert "actor=support-triage" not in page
    # The key's revocation is among its recent changes, the sub-agent's doings are not.
    recent = page[page.index("<h2>Recent changes</h2>") :]
    assert "agentkey.revoke" in recent
    assert "support-triage-latam" not in recent
    page = client.get(reverse("console:human", args=[world.kwame.pk])).content.decode()
    assert f'href="{audit}?human={world.kwame.pk}"' in page
    assert f'href="{audit}?human={world.kwame.pk}&amp;action=check."' in page
    assert "delegation.create" in page[page.index("<h2>Recent changes</h2>") :]
    page = client.get(reverse("console:resource", args=[world.resource.pk])).content.decode()
    assert f'href="{audit}?resource={world.resource.pk}"' in page
    assert "grant.create" in page[page.index("<h2>Recent changes</h2>") :]


def test_those_who_do_not_read_the_audit_log_get_no_history_card(world: World, reviewer_user: User) -> None:
    factories.make_human(name="Reviewer Self", user=reviewer_user)
    client = _client(reviewer_user)
    page = client.get(reverse("console:resource", args=[world.resource.pk]))
    assert page.status_code == 200
    assert "Recent changes" not in page.content.decode()
    assert "?resource=" not in page.content.decode()
