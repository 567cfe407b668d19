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

from governance import services
from governance.views import PAGE_SIZE
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
AGENTS_PAGE_FOR_AN_AUDITOR = 3 + 3  # count, rows, sponsor filter choices
AGENTS_PAGE_FOR_AN_ADMIN = AGENTS_PAGE_FOR_AN_AUDITOR + 2  # the create form's sponsor and parent choices
AGENT_ROWS_FRAGMENT = 3 + 2  # count, rows
HUMANS_PAGE = 3 + 2  # count, rows
AUDIT_PAGE = 3 + 1  # one page of events


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
    next_query = first.context["next_query"]
    assert next_query and "after=" in next_query and "q=bot-" in next_query
    second = auditor.get(reverse("console:agents") + "?" + next_query)
    assert [a.name for a in second.context["agents"]] == names[PAGE_SIZE:]
    assert second.context["next_query"] is None


def test_audit_pages_go_back_in_sequence_order(auditor_user: User) -> None:
    auditor = _client(auditor_user)
    for _ in range(PAGE_SIZE + 5):
        factories.make_human()
    first = auditor.get(reverse("console:audit"))
    seqs = [row.event.seq for row in first.context["events"]]
    assert seqs == sorted(seqs, reverse=True)
    second = auditor.get(reverse("console:audit") + "?" + first.context["next_query"])
    older = [row.event.seq for row in second.context["events"]]
    assert older and max(older) == seqs[-1] - 1


def test_sub_agents_are_listed_under_their_parent_in_the_tree(admin_user: User) -> None:
    root = factories.make_agent(name="root-agent")
    a = factories.make_agent(parent=root, name="a-child")
    b = factories.make_agent(parent=root, name="b-child")
    a1 = factories.make_agent(parent=a, name="a-grandchild")
    response = _client(admin_user).get(reverse("console:agent", args=[root.pk]))
    rows = [(row.node.name, row.level) for row in response.context["tree"]]
    assert rows == [(a.name, 0), (a1.name, 1), (b.name, 0)]
