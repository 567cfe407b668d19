"""A delegation's page (its chain up and down, the tokens issued under it, the decisions made with it,
its history) and the Delegations list (paged, searchable, filtered by status)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.test import Client
from django.urls import reverse

from audit import links
from audit.models import AuditEvent
from console.paging import PAGE_SIZE
from governance import runtime, services
from governance.models import Delegation
from tests import factories

pytestmark = pytest.mark.django_db

HTMX = {"HX-Request": "true"}


def _client(user: User) -> Client:
    client = Client()
    client.force_login(user)
    return client


def _page(user: User, link: Delegation, query: str = "", **kwargs: Any) -> Any:
    response = _client(user).get(reverse("console:delegation", args=[link.pk]) + query, **kwargs)
    assert response.status_code == 200
    return response


def _check(credential: str, resource: Any, action: str = "read", session_id: str = "") -> str:
    result = runtime.check(
        credential=credential, action=action, resource=resource.name, context={"session_id": session_id}
    )
    assert result.decision_id
    return result.decision_id


def _used_chain() -> dict[str, Any]:
    """human → first agent (#0) → second agent (#1) → third agent (#2), each with a token; the second
    agent has made a decision with its token under #1 and others (its own key, a token of another
    delegation it holds) that are not made with #1."""
    chain = factories.make_chain(depth=3)
    issued = factories.make_chain_tokens(chain)
    resource, second = chain["resource"], chain["agents"][1]
    chain["with_link"] = _check(issued["tokens"][1], resource, session_id="sess-42")
    chain["with_link_denied"] = _check(issued["tokens"][1], resource, action="write")
    chain["with_own_key"] = _check(issued["keys"][1], resource)
    # The same agent, acting through another link (a root link from the same human).
    other = factories.make_delegation(second, chain["scopes"], root_human=chain["human"])
    chain["other_link"] = other
    chain["with_other_link"] = _check(factories.make_token(issued["keys"][1], other), resource)
    chain["by_another_agent"] = _check(issued["tokens"][2], resource)
    return chain


def test_the_page_shows_the_chain_up_and_down_its_tokens_and_the_decisions_made_with_it(
    auditor_user: User,
) -> None:
    chain = _used_chain()
    above, link, below = chain["links"]
    response = _page(auditor_user, link)
    rows = response.context["chain"]
    assert [(row.link, row.level, row.current) for row in rows] == [
        (above, 0, False),
        (link, 1, True),
        (below, 2, False),
    ]
    page = response.content.decode()
    # Each other link of the chain is linked to its own page, by number.
    for other in (above, below):
        assert f'<a href="{reverse("console:delegation", args=[other.pk])}">#{other.pk}</a>' in page
    assert chain["human"].name in page

    tokens = [token for token, _status in response.context["tokens"]]
    assert [t.agent for t in tokens] == [chain["agents"][1]] and tokens[0].delegation == link
    assert tokens[0].jti[:10] in page
    assert response.context["token_count"] == 1

    decided = [d.decision_id for d in response.context["decisions"]]
    assert decided == [chain["with_link_denied"], chain["with_link"]]  # newest first
    for elsewhere in ("with_own_key", "with_other_link", "by_another_agent"):
        assert chain[elsewhere] not in decided and chain[elsewhere] not in page
    assert reverse("console:custody", args=[chain["with_link"]]) in page
    assert reverse("console:session", args=["sess-42"]) in page


def test_the_other_link_of_the_same_agent_shows_only_its_own_decisions(auditor_user: User) -> None:
    chain = _used_chain()
    decided = [d.decision_id for d in _page(auditor_user, chain["other_link"]).context["decisions"]]
    assert decided == [chain["with_other_link"]]


def test_the_history_lists_the_links_events_and_a_revoke_takes_a_reason(admin_user: User) -> None:
    chain = _used_chain()
    link = chain["links"][1]
    page = _page(admin_user, link).content.decode()
    assert reverse("console:delegation_revoke", args=[link.pk]) in page and 'name="reason"' in page
    response = _client(admin_user).post(
        reverse("console:delegation_revoke", args=[link.pk]),
        {"reason": "left the project", "next": reverse("console:delegation", args=[link.pk])},
    )
    assert response.status_code == 302 and response["Location"] == reverse("console:delegation", args=[link.pk])
    after = _page(admin_user, link)
    assert [e.action for e in after.context["events"]] == ["delegation.revoke", "delegation.create"]
    body = after.content.decode()
    assert "left the project" in body and "st-revoked" in body
    # Revoked: no revoke form any more; the link below went with it.
    assert reverse("console:delegation_revoke", args=[link.pk]) not in body
    assert [row.status for row in after.context["chain"]] == ["active", "revoked", "revoked"]


def test_audit_events_on_a_delegation_link_to_its_page(admin_user: User) -> None:
    link = factories.make_chain(depth=1)["links"][0]
    event = AuditEvent.objects.for_target("delegation", link.pk).get()
    assert links.target_url(event) == reverse("console:delegation", args=[link.pk])


def test_a_reviewer_gets_404_for_a_link_outside_their_view_and_sees_their_own(reviewer_user: User) -> None:
    mine = factories.make_human(name="Mina Mine", user=reviewer_user)
    theirs = factories.make_chain(depth=2)
    client = _client(reviewer_user)
    for link in theirs["links"]:
        assert client.get(reverse("console:delegation", args=[link.pk])).status_code == 404
    resource = factories.make_resource()
    factories.make_grant(mine, resource, "read")
    own = factories.make_delegation(factories.make_agent(sponsor=mine), [resource.scope("read")], root_human=mine)
    assert client.get(reverse("console:delegation", args=[own.pk])).status_code == 200
    assert client.get(reverse("console:delegation", args=[999_999])).status_code == 404


def test_a_reviewer_sees_a_link_above_outside_their_view_as_a_placeholder(reviewer_user: User) -> None:
    chain = factories.make_chain(depth=2)
    # The reviewer sponsors the sub-agent only: they see the second link, not the human or the first.
    mine = factories.make_human(name="Mina Mine", user=reviewer_user)
    sub = factories.make_agent(parent=chain["agents"][0], sponsor=mine, name="minas-sub-agent")
    link = factories.make_delegation(sub, chain["scopes"], parent=chain["links"][0], expires_in=timedelta(hours=1))
    response = _page(reviewer_user, link)
    page = response.content.decode()
    assert [row.link for row in response.context["chain"]] == [None, link]
    assert "a link above, outside your view" in page
    assert chain["human"].name not in page and chain["agents"][0].name not in page
    assert f"#{chain['links'][0].pk}<" not in page


def test_a_reviewer_reads_the_decisions_without_links_to_pages_only_auditors_open(reviewer_user: User) -> None:
    chain = _used_chain()
    link = chain["links"][1]
    services.agent_update(
        actor=factories.SYSTEM, agent=chain["agents"][1], sponsor=factories.make_human(user=reviewer_user)
    )
    response = _page(reviewer_user, link)
    decided = response.context["decisions"]
    assert [d.decision_id for d in decided] == [chain["with_link_denied"], chain["with_link"]]
    assert all(d.links == {} for d in decided)
    page = response.content.decode()
    assert "/custody/" not in page and "/sessions/" not in page and "sess-42" in page


def test_the_page_costs_the_same_however_long_the_log(auditor_user: User, django_assert_num_queries: Any) -> None:
    chain = factories.make_chain(depth=3)
    link = chain["links"][1]
    # Session, user, roles; the link; the chain above and below; tokens counted and listed; one page of
    # decisions; the history.
    expected = 3 + 1 + 2 + 2 + 1 + 1
    url = reverse("console:delegation", args=[link.pk])
    client = _client(auditor_user)
    with django_assert_num_queries(expected):
        assert client.get(url).status_code == 200
    issued = factories.make_chain_tokens(chain)
    for _ in range(3):
        issued = factories.make_chain_tokens(chain)
        for n in range(10):
            _check(issued["tokens"][1], chain["resource"], session_id=f"s{n}")
    for _ in range(3):
        below = factories.make_agent(parent=chain["agents"][1])
        factories.make_delegation(below, chain["scopes"], parent=link, expires_in=timedelta(hours=2))
    with django_assert_num_queries(expected):
        response = client.get(url)
    assert len(response.context["decisions"]) == 25 and response.context["page"].next_query
    assert response.context["token_count"] == 4 and len(response.context["chain"]) == 6
    with django_assert_num_queries(expected):
        older = client.get(url + "?" + response.context["page"].next_query, headers=HTMX)
    assert older.status_code == 200 and len(older.context["decisions"]) == 5


# --- The list -------------------------------------------------------------------------------------


def test_the_list_pages_newest_first(auditor_user: User) -> None:
    chain = factories.make_chain(depth=1)
    agent, human = chain["agents"][0], chain["human"]
    made = [factories.make_delegation(agent, chain["scopes"], root_human=human) for _ in range(PAGE_SIZE)]
    everything = [*reversed(made), chain["links"][0]]
    client = _client(auditor_user)
    first = client.get(reverse("console:delegations"))
    assert [link for link, _s in first.context["rows"]] == everything[:PAGE_SIZE]
    assert first.context["total"] == PAGE_SIZE + 1
    second = client.get(reverse("console:delegations") + "?" + first.context["page"].next_query, headers=HTMX)
    assert [link for link, _s in second.context["rows"]] == everything[PAGE_SIZE:]
    assert second.context["page"].next_query is None
    # Every number links to its link's page.
    page = first.content.decode()
    assert f'href="{reverse("console:delegation", args=[made[-1].pk])}"' in page
    assert client.get(reverse("console:delegations") + "?before=abc").status_code == 400


def test_the_list_searches_by_number_names_purpose_and_scope(auditor_user: User) -> None:
    one = factories.make_chain(depth=2)
    two = factories.make_chain(depth=1)
    target = one["links"][1]
    client = _client(auditor_user)

    def found(q: str) -> set[int]:
        response = client.get(reverse("console:delegations"), {"q": q}, headers=HTMX)
        assert response.status_code == 200
        return {link.pk for link, _s in response.context["rows"]}

    assert found(f"#{target.pk}") == {target.pk}
    assert found(one["agents"][1].name) == {target.pk}
    assert found(one["human"].name) == {link.pk for link in one["links"]}
    assert found(two["scopes"][0]) == {two["links"][0].pk}
    assert found("test purpose") == {link.pk for link in [*one["links"], *two["links"]]}
    assert found("nothing-like-this") == set()


def test_the_list_filters_by_status(auditor_user: User, admin_user: User) -> None:
    chain = factories.make_chain(depth=2)
    top, below = chain["links"]
    services.delegation_revoke(actor=factories.SYSTEM, delegation=below, reason="done")
    client = _client(auditor_user)

    def listed(state: str) -> list[Delegation]:
        return [link for link, _s in client.get(reverse("console:delegations"), {"state": state}).context["rows"]]

    assert listed("") == [top]
    assert listed("revoked") == [below]
    assert listed("expired") == []
    assert listed("all") == [below, top]


def test_a_reviewer_searching_a_hidden_name_finds_nothing(reviewer_user: User) -> None:
    chain = factories.make_chain(depth=2)
    mine = factories.make_human(name="Mina Mine", user=reviewer_user)
    sub = factories.make_agent(parent=chain["agents"][0], sponsor=mine, name="minas-sub-agent")
    link = factories.make_delegation(sub, chain["scopes"], parent=chain["links"][0], expires_in=timedelta(hours=1))
    client = _client(reviewer_user)

    def found(q: str) -> list[Delegation]:
        return [row for row, _s in client.get(reverse("console:delegations"), {"q": q}).context["rows"]]

    assert found("minas-sub") == [link]
    assert found(chain["human"].name) == []
    assert found(f"#{chain['links'][0].pk}") == []
    page = client.get(reverse("console:delegations")).content.decode()
    assert "minas-sub-agent" in page and "outside your view" in page
    assert chain["agents"][0].name not in page and chain["human"].name not in page


def test_the_list_costs_the_same_for_one_link_as_for_a_full_page(
    auditor_user: User, django_assert_num_queries: Any
) -> None:
    chain = factories.make_chain(depth=2)
    client = _client(auditor_user)
    expected = 3 + 2  # session, user, roles; count, rows
    with django_assert_num_queries(expected):
        client.get(reverse("console:delegations"))
    for _ in range(PAGE_SIZE):
        factories.make_delegation(chain["agents"][0], chain["scopes"], root_human=chain["human"])
    with django_assert_num_queries(expected):
        client.get(reverse("console:delegations"))
