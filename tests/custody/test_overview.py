"""The overview (the console's home page): its figures on a small organisation, each scoped to what the
viewer may see (a reviewer's review figures are their own queue), a fixed number of queries whatever the
traffic, and the charts' data carried as JSON (no inline script)."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, time, timedelta
from typing import Any

import pytest
import time_machine
from django.contrib.auth.models import User
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from audit.services import Actor
from governance import runtime, services
from governance.models import AgentKey
from reviews.models import ReviewItem
from tests import factories
from tests.reviews.support import Org, launch, make_org

pytestmark = pytest.mark.django_db


def _client(user: User) -> Client:
    client = Client()
    client.force_login(user)
    return client


def _check(org: Org, action: str) -> None:
    runtime.check(credential=org.key_secret, action=action, resource=org.resource.name, context={})


@pytest.fixture
def org(settings: Any, django_capture_on_commit_callbacks: Any) -> Org:
    """Sam's agent: one check allowed today, two denied yesterday; a campaign launched three weeks ago
    (its items overdue, reviewed by Sam's manager); a key past the maximum age; one offboarding."""
    settings.CUSTOS_KEY_MAX_AGE = timedelta(days=10)
    today = timezone.now().date()
    with time_machine.travel(timezone.now() - timedelta(days=21)):
        org = make_org()
        old_key, _ = factories.make_key(org.agent, expires_at=timezone.now() + timedelta(days=60))
        launch(org)
    org.old_key = old_key  # type: ignore[attr-defined]
    factories.make_grant(org.agent, org.resource, "read")  # the one made with the organisation has lapsed
    with time_machine.travel(datetime.combine(today - timedelta(days=1), time(12), tzinfo=UTC)):
        _check(org, "write")
        _check(org, "write")
    _check(org, "read")
    with django_capture_on_commit_callbacks(execute=True):
        services.agent_offboard(actor=Actor.user(org.admin), agent=factories.make_agent(), reason="retired")
    return org


def _bars(response: Any) -> dict[str, tuple[int, int]]:
    return {d.day.isoformat(): (d.allowed, d.denied) for d in response.context["days"]}


def test_the_home_page_is_the_overview_for_every_role(org: Org) -> None:
    for user in (org.admin, factories.make_auditor(), org.manager_user):
        response = _client(user).get(reverse("console:home"))
        assert response.status_code == 200
        assert response.templates[0].name == "custody/overview.html"
    assert _client(factories.make_outsider()).get(reverse("console:home")).status_code == 403


def test_two_denials_yesterday_show_in_yesterdays_bar_and_todays_check_in_todays(org: Org) -> None:
    response = _client(factories.make_auditor()).get(reverse("console:home"))
    bars = _bars(response)
    today = timezone.now().date()
    assert len(bars) == 30 and max(bars) == today.isoformat()
    assert bars[(today - timedelta(days=1)).isoformat()] == (0, 2)
    assert bars[today.isoformat()] == (1, 0)
    assert sum(a + d for a, d in bars.values()) == 3
    assert (response.context["denied_7"], response.context["denied_30"], response.context["decisions_30"]) == (2, 2, 3)
    # The chart's data is JSON in the page, each bar linking to its day in the audit log.
    html = response.content.decode()
    block = re.search(r'<script id="chart-decisions-data" type="application/json">(.*?)</script>', html, re.S)
    assert block is not None
    data = json.loads(block[1])
    yesterday = (today - timedelta(days=1)).isoformat()
    index = data["labels"].index(yesterday)
    assert (data["allowed"][index], data["denied"][index]) == (0, 2)
    assert f"since={yesterday}" in data["links"][index] and data["links"][index].startswith(reverse("console:audit"))


def test_key_figures_count_keys_expiring_and_past_the_maximum_age(org: Org) -> None:
    response = _client(org.admin).get(reverse("console:home"))
    keys = response.context["keys"]
    # The fixture's key made three weeks ago (maximum age 10 days) and make_org's key, both in force.
    assert keys["active"] == AgentKey.objects.active().count() == 2
    assert keys["past_max_age"] == 2
    expiring_30 = AgentKey.objects.active().filter(expires_at__lte=timezone.now() + timedelta(days=30)).count()
    assert keys["expiring_30"] == expiring_30
    rows = {row.key.pk: row.past_max_age for row in response.context["key_rows"]}
    assert rows[org.old_key.pk] is True  # type: ignore[attr-defined]
    assert 'href="#keys"' in response.content.decode()


def test_overdue_review_items_count_and_link_to_the_overdue_queue(org: Org) -> None:
    pending = ReviewItem.objects.filter(status="pending")
    assert pending.exists()
    auditor = _client(factories.make_auditor()).get(reverse("console:home"))
    assert auditor.context["reviews"]["pending"] == pending.count()
    assert auditor.context["reviews"]["overdue"] == pending.filter(due_at__lt=timezone.now()).count() > 0
    assert f"{reverse('console:reviews')}?show=all&amp;overdue=on" in auditor.content.decode()


def test_a_reviewer_counts_only_their_own_queue_and_their_agents(org: Org) -> None:
    # Sam's manager reviews the campaign's items; Otto reviews nothing and sees none of Sam's agents.
    manager = _client(org.manager_user).get(reverse("console:home"))
    mine = ReviewItem.objects.filter(status="pending", reviewer=org.manager).count()
    assert mine > 0 and manager.context["reviews"]["overdue"] == mine
    assert f"{reverse('console:reviews')}?show=mine&amp;overdue=on" in manager.content.decode()
    other = _client(org.other_user).get(reverse("console:home"))
    assert other.context["reviews"] == {"pending": 0, "overdue": 0, "due_7": 0}
    assert other.context["campaigns_active"] == 0
    assert other.context["keys"]["active"] == 0 and other.context["key_rows"] == []
    assert sum(d.denied + d.allowed for d in other.context["days"]) == 0
    # The offboarded agent's sponsor is nobody Otto sees: no time to revoke for him, no audit links.
    assert other.context["revoke"].measured == 0
    assert reverse("console:audit") not in other.content.decode()
    # Sam sees his agent's checks (he sponsors it) but not the audit log.
    sam = _client(org.sponsor_user).get(reverse("console:home"))
    assert sum(d.denied for d in sam.context["days"]) == 2
    assert all(link is None for link in sam.context["charts"]["decisions"]["links"])


def test_time_to_revoke_is_the_offboardings_median(org: Org) -> None:
    response = _client(org.admin).get(reverse("console:home"))
    revoke = response.context["revoke"]
    assert revoke.measured == 1 and revoke.median_ms == revoke.recent[0].ms >= 0
    assert response.context["charts"]["revocations"]["ms"] == [revoke.median_ms]


# Session, user, roles; agents, delegations, pending requests, drift, decisions per day, offboardings,
# keys (figures and list), reviews, campaigns, recent events; the live panel (per minute, latest ten).
OVERVIEW_FOR_AN_AUDITOR = 3 + 11 + 2
# No recent events; the nav badges (access requests to decide, review items and notifications); which of
# the agents the page names they may see, asked once for the page (console.visibility).
OVERVIEW_FOR_A_REVIEWER = 3 + 10 + 2 + 2 + 1


def test_the_overview_costs_the_same_whatever_the_traffic(org: Org, django_assert_num_queries: Any) -> None:
    auditor, reviewer = _client(factories.make_auditor()), _client(org.manager_user)
    with django_assert_num_queries(OVERVIEW_FOR_AN_AUDITOR):
        auditor.get(reverse("console:home"))
    with django_assert_num_queries(OVERVIEW_FOR_A_REVIEWER):
        reviewer.get(reverse("console:home"))
    for _ in range(3):
        agent = factories.make_agent(sponsor=org.sponsor)
        factories.make_key(agent)
        with time_machine.travel(timezone.now() - timedelta(days=3)):
            _check(org, "write")
        _check(org, "read")
    launch(org, name="Another")
    with django_assert_num_queries(OVERVIEW_FOR_AN_AUDITOR):
        response = auditor.get(reverse("console:home"))
    assert response.context["decisions_30"] == 3 + 6
    with django_assert_num_queries(OVERVIEW_FOR_A_REVIEWER):
        reviewer.get(reverse("console:home"))


def test_no_card_of_the_twelve_is_left_alone_on_a_row(org: Org) -> None:
    html = _client(org.admin).get(reverse("console:home")).content.decode()
    stats = html.split('<div class="stats stats-12">', 1)[1].split("</div>", 1)[0]
    # 6, 4, 3 or 2 to a row (static/app.css .stats-12): twelve divides by each.
    assert stats.count('class="stat ') == 12
    assert all('href="' in card for card in stats.split('class="stat ')[1:])


# --- In a browser -----------------------------------------------------------------------------------

CARD_ROWS = """() => { const tops = [...document.querySelectorAll('.stats-12 .stat')].map(e => e.getBoundingClientRect().top);
  return [...new Set(tops)].map(t => tops.filter(x => x === t).length); }"""
CHARTS_DRAWN = (
    "() => [...document.querySelectorAll('canvas[data-chart]')].map(c => !!(window.Chart && Chart.getChart(c)))"
)


@pytest.mark.e2e
@pytest.mark.django_db(transaction=True)
def test_in_a_browser_the_charts_draw_under_the_csp_and_again_after_an_htmx_swap(
    live_server: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from playwright.sync_api import sync_playwright

    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")  # Playwright's loop runs in this thread
    factories.make_user("auditor", username="browser-auditor", password="a-browser-test-password")
    agent = factories.make_agent()
    factories.make_key(agent)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path="/usr/bin/chromium",
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"],
        )
        try:
            page = browser.new_page(viewport={"width": 1440, "height": 900})
            problems: list[str] = []
            page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
            page.on("pageerror", lambda e: problems.append(str(e)))
            page.goto(f"{live_server.url}{reverse('login')}")
            page.get_by_label("Username").fill("browser-auditor")
            page.get_by_label("Password").fill("a-browser-test-password")
            page.get_by_role("button", name="Sign in").click()
            page.wait_for_url(f"{live_server.url}/")
            page.wait_for_function("() => window.Chart && document.querySelector('canvas[data-chart]')")
            page.wait_for_function(f"() => ({CHARTS_DRAWN})().every(Boolean)")
            assert page.evaluate(CARD_ROWS) == [6, 6]
            page.set_viewport_size({"width": 1280, "height": 900})
            assert page.evaluate(CARD_ROWS) == [6, 6]
            # htmx brings the page in again (as a boosted navigation would): the new canvas is drawn, the
            # old chart is gone with its canvas.
            page.evaluate("() => { document.querySelector('canvas[data-chart]').dataset.old = '1'; }")
            page.evaluate("() => htmx.ajax('GET', '/', {target: 'main', select: 'main', swap: 'outerHTML'})")
            page.wait_for_function(
                "() => { const c = document.querySelector('canvas[data-chart]:not([data-old])'); return c && Chart.getChart(c); }"
            )
            assert page.evaluate("() => Object.keys(Chart.instances).length") == 1
            assert page.evaluate(CHARTS_DRAWN) == [True]
            assert problems == []
        finally:
            browser.close()
