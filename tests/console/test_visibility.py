"""The one presenter of references (``console.visibility`` and ``{% ref %}``): an object outside the
viewer's ``visible_to`` is named by its kind only, asked at most once per model per request, and not at
all for viewers who read everything."""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth.models import User
from django.template import Context, Template
from django.test import RequestFactory

from audit.models import AuditEvent
from console.roles import roles_of
from console.visibility import Visibility, placeholder, visibility_of
from governance.models import Agent, Delegation, Human
from tests import factories

pytestmark = pytest.mark.django_db


def _render(source: str, user: User, **context: Any) -> str:
    request = RequestFactory().get("/")
    request.user = user
    return Template("{% load refs %}" + source).render(Context({"request": request, **context}))


@pytest.fixture
def line(reviewer_user: User) -> dict[str, Any]:
    """The reviewer's own agent, a sub-agent of it someone else sponsors, and that someone."""
    mine = factories.make_human(name="Mina Mine", user=reviewer_user)
    other = factories.make_human(name="Otto Other")
    agent = factories.make_agent(sponsor=mine, name="minas-agent")
    hidden = factories.make_agent(parent=agent, sponsor=other, name="ottos-sub-agent")
    return {"mine": mine, "other": other, "agent": agent, "hidden": hidden}


def test_an_object_outside_the_view_is_named_by_its_kind_only(reviewer_user: User, line: dict[str, Any]) -> None:
    hidden = line["hidden"]
    page = _render("{% ref a %}|{% refname a %}|{% ref h %}", reviewer_user, a=hidden, h=line["other"])
    assert page == (
        '<span class="outside-view">an agent outside your view</span>|an agent outside your view|'
        '<span class="outside-view">a human outside your view</span>'
    )
    assert "ottos" not in page and str(hidden.pk) not in page


def test_a_visible_object_is_a_link_to_its_page_by_its_name(reviewer_user: User, line: dict[str, Any]) -> None:
    agent = line["agent"]
    page = _render('{% ref a %} {% ref a "label" css="strong" anchor="keys" %}', reviewer_user, a=agent)
    assert page == (
        f'<a href="/agents/{agent.pk}/">minas-agent</a> <a href="/agents/{agent.pk}/#keys" class="strong">label</a>'
    )


def test_a_link_is_referred_to_by_its_number_never_by_the_names_at_its_ends(admin_user: User) -> None:
    chain = factories.make_chain(depth=1)
    link = chain["links"][0]
    # Linked to its own page, which a viewer who sees the link may open.
    assert _render("{% ref d %}", admin_user, d=link) == f'<a href="/delegations/{link.pk}/">#{link.pk}</a>'
    assert _render("{% ref none %}{% ref missing.path %}", admin_user, none=None) == ""


def test_an_attribution_that_names_a_hidden_agent_is_replaced(reviewer_user: User, line: dict[str, Any]) -> None:
    hidden, agent = line["hidden"], line["agent"]
    assert _render("{% byline t a %}", reviewer_user, t=hidden.name, a=hidden) == "an agent outside your view"
    assert _render("{% byline t a %}", reviewer_user, t=agent.name, a=agent) == agent.name
    assert _render("{% byline t a %}", reviewer_user, t="admin1", a=hidden) == "admin1"


def test_a_reviewer_costs_one_query_per_model_and_someone_who_reads_everything_none(
    reviewer_user: User, auditor_user: User, line: dict[str, Any], django_assert_num_queries: Any
) -> None:
    more = [factories.make_agent(sponsor=line["other"]) for _ in range(5)]
    refs = [line["agent"], line["hidden"], *more]
    roles_of(reviewer_user), roles_of(auditor_user)  # read once per user, before any of this
    seen = Visibility(reviewer_user)
    with django_assert_num_queries(2):
        assert [seen.sees(a) for a in refs] == [True] + [False] * 6
        assert [seen.sees(h) for h in (line["mine"], line["other"])] == [True, False]
    everything = Visibility(auditor_user)
    with django_assert_num_queries(0):
        assert all(everything.sees(obj) for obj in [*refs, line["other"]])


def test_the_answers_are_kept_for_the_request(reviewer_user: User) -> None:
    request = RequestFactory().get("/")
    request.user = reviewer_user
    assert visibility_of(request) is visibility_of(request)
    assert not visibility_of(None).sees(factories.make_human())  # no request: nobody to show it to


def test_a_model_nobody_scoped_cannot_be_referred_to(admin_user: User) -> None:
    with pytest.raises(TypeError, match="no visible_to"):
        Visibility(admin_user).sees(AuditEvent.objects.first() or AuditEvent())


def test_placeholders_take_their_article_from_the_model() -> None:
    assert placeholder(Agent) == "an agent outside your view"
    assert placeholder(Human) == "a human outside your view"
    assert placeholder(Delegation) == "a delegation outside your view"
