"""List pages cost a fixed number of queries, however many rows they show (no N+1), and page with a
keyset rather than an OFFSET."""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth.models import User
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from console.paging import PAGE_SIZE
from governance import runtime, services
from tests import factories

pytestmark = pytest.mark.django_db

HTMX = {"HX-Request": "true"}


def _client(user: User) -> Client:
    client = Client()
    client.force_login(user)
    return client


def _add_agents(count: int) -> None:
    """Agents with everything a row shows: a sponsor with a manager, a parent, sub-agents, keys."""
    manager = factories.make_human()
    for _ in range(count):
        sponsor = factories.make_human(manager=manager)
        agent = factories.make_agent(sponsor=sponsor)
        factories.make_key(agent)
        factories.make_agent(parent=agent)


def _queries(client: Client, url: str, **kwargs: Any) -> int:
    with CaptureQueriesContext(connection) as captured:
        response = client.get(url, **kwargs)
    assert response.status_code == 200
    return len(captured.captured_queries)


# Session, user, roles; then the page's own reads.
# A full page for someone who decides access requests (admin, reviewer) also counts the nav badges:
# access requests awaiting them, and their review items plus unread review notifications.
NAV_BADGE = 2
AGENTS_PAGE_FOR_AN_AUDITOR = 3 + 3  # count, rows, sponsor filter choices
# The create form's sponsor and parent choices.
AGENTS_PAGE_FOR_AN_ADMIN = AGENTS_PAGE_FOR_AN_AUDITOR + 2 + NAV_BADGE
AGENT_ROWS_FRAGMENT = 3 + 2  # count, rows
HUMANS_PAGE = 3 + 2  # count, rows
AUDIT_PAGE = 3 + 2  # one page of events, the verification badge (the latest recorded verification)


def test_the_agents_page_costs_the_same_for_three_rows_as_for_a_full_page(
    auditor_user: User, admin_user: User, django_assert_num_queries: Any
) -> None:
    auditor, admin = _client(auditor_user), _client(admin_user)
    url = reverse("console:agents")
    _add_agents(3)
    with django_assert_num_queries(AGENTS_PAGE_FOR_AN_AUDITOR):
        auditor.get(url)
    _add_agents(PAGE_SIZE // 2)  # 3 + 2·25 agents: more than one page
    with django_assert_num_queries(AGENTS_PAGE_FOR_AN_AUDITOR):
        auditor.get(url)
    with django_assert_num_queries(AGENTS_PAGE_FOR_AN_ADMIN):
        admin.get(url)
    with django_assert_num_queries(AGENT_ROWS_FRAGMENT):
        auditor.get(url + "?q=agent&status=active", headers=HTMX)


# A reviewer's rows name sponsors and parents they may or may not see: which, is asked once per model
# for the whole page (console.visibility): the humans they see, the agents they see.
AGENTS_PAGE_FOR_A_REVIEWER = AGENTS_PAGE_FOR_AN_AUDITOR + 2 + NAV_BADGE


def test_a_reviewers_agents_page_asks_what_they_may_see_once_whatever_its_length(
    reviewer_user: User, django_assert_num_queries: Any
) -> None:
    reviewer = _client(reviewer_user)
    mine = factories.make_human(user=reviewer_user)
    others = factories.make_agent(name="another-lines-parent")  # the parent every row names, outside the view

    def add(count: int) -> None:
        for _ in range(count):
            factories.make_agent(parent=others, sponsor=mine)

    add(3)
    with django_assert_num_queries(AGENTS_PAGE_FOR_A_REVIEWER):
        response = reviewer.get(reverse("console:agents"))
    assert response.content.decode().count("an agent outside your view") == 3
    add(PAGE_SIZE)
    with django_assert_num_queries(AGENTS_PAGE_FOR_A_REVIEWER):
        response = reviewer.get(reverse("console:agents"))
    assert response.content.decode().count("an agent outside your view") == PAGE_SIZE
    assert others.name not in response.content.decode()


def test_the_humans_page_costs_the_same_whatever_its_length(auditor_user: User, django_assert_num_queries: Any) -> None:
    auditor = _client(auditor_user)
    _add_agents(2)
    with django_assert_num_queries(HUMANS_PAGE):
        auditor.get(reverse("console:humans"))
    _add_agents(20)
    with django_assert_num_queries(HUMANS_PAGE):
        auditor.get(reverse("console:humans"))
    with django_assert_num_queries(HUMANS_PAGE):
        auditor.get(reverse("console:humans") + "?q=person&status=active", headers=HTMX)


def test_the_audit_page_costs_one_query_for_its_events(auditor_user: User, django_assert_num_queries: Any) -> None:
    auditor = _client(auditor_user)
    _add_agents(2)
    with django_assert_num_queries(AUDIT_PAGE):
        auditor.get(reverse("console:audit"))
    _add_agents(30)
    with django_assert_num_queries(AUDIT_PAGE):
        auditor.get(reverse("console:audit") + "?action=agent.&actor_kind=system&since=2000-01-01")


def test_the_agent_page_builds_its_sub_agent_tree_without_a_query_per_node(admin_user: User) -> None:
    admin = _client(admin_user)
    root = factories.make_agent(name="root")
    url = reverse("console:agent", args=[root.pk])
    child = factories.make_agent(parent=root)
    small = _queries(admin, url)
    for _ in range(3):
        factories.make_agent(parent=factories.make_agent(parent=child))
    factories.make_agent(parent=root)
    assert _queries(admin, url) == small


def test_the_agent_page_costs_a_bounded_number_of_queries_per_delegation_it_holds(admin_user: User) -> None:
    admin = _client(admin_user)
    chain = factories.make_chain(depth=2)
    top = chain["agents"][0]
    url = reverse("console:agent", args=[top.pk])
    one = _queries(admin, url)
    factories.make_delegation(top, chain["scopes"], root_human=chain["human"])
    two = _queries(admin, url)
    factories.make_delegation(top, chain["scopes"], root_human=chain["human"])
    three = _queries(admin, url)
    # Usability reads each link afresh and the root human's grants: a few queries per delegation,
    # the same for each, and only for the agent's own delegations.
    assert three - two == two - one
    assert two - one <= 3


def test_agent_pages_follow_a_keyset_from_one_page_to_the_next(auditor_user: User) -> None:
    auditor = _client(auditor_user)
    sponsor = factories.make_human()
    names = [f"bot-{n:03d}" for n in range(PAGE_SIZE + 7)]
    for name in reversed(names):
        services.agent_create(actor=factories.SYSTEM, name=name, sponsor=sponsor)
    first = auditor.get(reverse("console:agents"), {"q": "bot-"})
    assert first.context["agents"][0].name == "bot-000"
    assert len(first.context["agents"]) == PAGE_SIZE
    next_query = first.context["page"].next_query
    assert next_query and "after=" in next_query and "q=bot-" in next_query
    second = auditor.get(reverse("console:agents") + "?" + next_query)
    assert [a.name for a in second.context["agents"]] == names[PAGE_SIZE:]
    assert second.context["page"].next_query is None


def test_audit_pages_go_back_in_sequence_order(auditor_user: User) -> None:
    auditor = _client(auditor_user)
    for _ in range(PAGE_SIZE + 5):
        factories.make_human()
    first = auditor.get(reverse("console:audit"))
    seqs = [row.event.id for row in first.context["events"]]
    assert seqs == sorted(seqs, reverse=True)
    second = auditor.get(reverse("console:audit") + "?" + first.context["page"].next_query)
    older = [row.event.id for row in second.context["events"]]
    assert older and max(older) == seqs[-1] - 1


def test_sub_agents_are_listed_under_their_parent_in_the_tree(admin_user: User) -> None:
    root = factories.make_agent(name="root-agent")
    a = factories.make_agent(parent=root, name="a-child")
    b = factories.make_agent(parent=root, name="b-child")
    a1 = factories.make_agent(parent=a, name="a-grandchild")
    response = _client(admin_user).get(reverse("console:agent", args=[root.pk]))
    rows = [(row.node.name, row.level) for row in response.context["tree"]]
    assert rows == [(a.name, 0), (a1.name, 1), (b.name, 0)]


# --- Runtime pages ----------------------------------------------------------------------------

# For an agent holding one delegation in force: the agent, its delegations, that one's usability (its
# chain, the root human's grants), ancestors, drift events, sub-agent tree, onward delegations,
# grants, keys, tokens in force, recent decisions, pending access requests, recent changes; its blast
# radius (governance.blast: the subtree, grants, delegations, root humans' grants, resources, keys, tokens).
AGENT_PAGE_FOR_AN_AUDITOR = 3 + 14 + 7
ACCESS_REQUESTS_PAGE_FOR_AN_AUDITOR = 3 + 2  # rows (agent, sponsor, approver joined), their resources
# A reviewer's rows also need their Human (who may decide) and which agents and approvers they may open.
ACCESS_REQUESTS_PAGE_FOR_A_REVIEWER = ACCESS_REQUESTS_PAGE_FOR_AN_AUDITOR + 3 + NAV_BADGE
DRIFT_PAGE_FOR_AN_AUDITOR = 3 + 1  # rows (agent and sponsor joined)
LIVE_PANEL = 3 + 2  # decisions per minute over the hour (one GROUP BY), the latest ten
# The overview (custody/views/overview.py): agents, delegations, pending requests, drift, decisions per
# day, offboardings, keys (figures and list), reviews, campaigns, recent events, and the live panel.
HOME_FOR_AN_AUDITOR = 3 + 11 + 2


def _drifting_agent(settings: Any) -> tuple[Any, str, Any]:
    """An agent with a key, a grant to read a resource, and a threshold low enough to drift."""
    settings.CUSTOS_DRIFT_THRESHOLD = 2
    chain = factories.make_chain(depth=1)
    agent, resource = chain["agents"][0], chain["resource"]
    factories.make_grant(agent, resource, "read")
    return agent, factories.make_key(agent)[1], resource


def _traffic(agent: Any, key: str, resource: Any, rounds: int) -> None:
    """Allowed and denied checks (the denials raise drift), tokens, and access requests."""
    for n in range(rounds):
        for action in ("read", "write"):
            runtime.check(credential=key, action=action, resource=resource.name, context={"session_id": f"s{n}"})
        factories.make_token(key, agent.delegations.first())
        extra = factories.make_resource(actions=("read",))
        services.access_request_create(
            actor=factories.SYSTEM, agent=agent, scope=extra.scope("read"), justification="needs it"
        )


def test_the_agent_page_costs_the_same_however_much_runtime_history_it_shows(
    auditor_user: User, settings: Any, django_assert_num_queries: Any
) -> None:
    auditor = _client(auditor_user)
    agent, key, resource = _drifting_agent(settings)
    url = reverse("console:agent", args=[agent.pk])
    with django_assert_num_queries(AGENT_PAGE_FOR_AN_AUDITOR):
        auditor.get(url)
    _traffic(agent, key, resource, rounds=30)
    response = auditor.get(url)
    assert len(response.context["decisions"]) == 25
    assert response.context["tokens"] and response.context["drift_events"] and response.context["access_requests"]
    with django_assert_num_queries(AGENT_PAGE_FOR_AN_AUDITOR):
        auditor.get(url)


def test_the_agent_page_reads_its_decisions_in_one_query_down_the_actor_index(auditor_user: User) -> None:
    auditor = _client(auditor_user)
    agent = factories.make_agent()
    with CaptureQueriesContext(connection) as captured:
        auditor.get(reverse("console:agent_decisions", args=[agent.pk]), headers=HTMX)
    decisions = [q["sql"] for q in captured.captured_queries if "audit_auditevent" in q["sql"]]
    assert len(decisions) == 1
    assert '"actor_kind" = ' in decisions[0] and '"actor_id" = ' in decisions[0]
    assert decisions[0].rstrip().endswith('ORDER BY "audit_auditevent"."id" DESC LIMIT 25')


def _add_requests(count: int, approver: Any) -> None:
    """``count`` requests that go to ``approver`` (the sponsor) and as many that go to others."""
    resource = factories.make_resource(actions=("read",))
    for _ in range(count):
        for sponsor in (approver, factories.make_human()):
            agent = factories.make_agent(sponsor=sponsor)
            services.access_request_create(
                actor=factories.SYSTEM, agent=agent, scope=resource.scope("read"), justification="mid-task"
            )


def test_the_access_requests_page_costs_the_same_whatever_its_length(
    auditor_user: User, reviewer_user: User, django_assert_num_queries: Any
) -> None:
    auditor, reviewer = _client(auditor_user), _client(reviewer_user)
    approver = factories.make_human(user=reviewer_user)
    url = reverse("console:access_requests")
    _add_requests(2, approver)
    with django_assert_num_queries(ACCESS_REQUESTS_PAGE_FOR_AN_AUDITOR):
        auditor.get(url)
    with django_assert_num_queries(ACCESS_REQUESTS_PAGE_FOR_A_REVIEWER):
        reviewer.get(url)
    _add_requests(PAGE_SIZE // 2, approver)
    with django_assert_num_queries(ACCESS_REQUESTS_PAGE_FOR_AN_AUDITOR):
        response = auditor.get(url)
    assert len(response.context["rows"]) == PAGE_SIZE and response.context["page"].next_query
    with django_assert_num_queries(ACCESS_REQUESTS_PAGE_FOR_A_REVIEWER):
        response = reviewer.get(url)
    assert len(response.context["rows"]) == PAGE_SIZE // 2 + 2
    assert all(row.can_decide for row in response.context["rows"])


def test_the_drift_page_and_the_live_panel_cost_the_same_whatever_the_traffic(
    auditor_user: User, settings: Any, django_assert_num_queries: Any
) -> None:
    auditor = _client(auditor_user)
    agent, key, resource = _drifting_agent(settings)
    _traffic(agent, key, resource, rounds=2)
    with django_assert_num_queries(DRIFT_PAGE_FOR_AN_AUDITOR):
        auditor.get(reverse("console:drift") + "?state=all")
    with django_assert_num_queries(LIVE_PANEL):
        auditor.get(reverse("console:live"), headers=HTMX)
    with django_assert_num_queries(HOME_FOR_AN_AUDITOR):
        auditor.get(reverse("console:home"))
    for _ in range(3):
        other, other_key, other_resource = _drifting_agent(settings)
        _traffic(other, other_key, other_resource, rounds=3)
    with django_assert_num_queries(DRIFT_PAGE_FOR_AN_AUDITOR):
        response = auditor.get(reverse("console:drift") + "?state=all")
    assert len(response.context["drift_events"]) == 4
    with django_assert_num_queries(LIVE_PANEL):
        response = auditor.get(reverse("console:live"), headers=HTMX)
    assert response.context["live_allowed"] + response.context["live_denied"] == 2 * (2 + 3 * 3)
    with django_assert_num_queries(HOME_FOR_AN_AUDITOR):
        auditor.get(reverse("console:home"))
