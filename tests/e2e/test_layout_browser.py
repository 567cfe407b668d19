"""No console page scrolls sideways on a laptop screen: the main pages, opened by an admin at 1280 px
wide on the demo organisation with some very long names, ids and texts added, neither widen the page nor
overflow a card (a table too wide for its card would be clipped or scroll inside it); the human page
holds at 1440 px as well."""

from __future__ import annotations

import io
from datetime import timedelta
from typing import Any

import pytest
from django.core.management import call_command
from django.urls import reverse
from playwright.sync_api import Page

from governance import runtime, services
from reviews.models import Campaign
from tests import factories
from tests.e2e.test_browser import PASSWORD, async_unsafe_allowed, chromium
from tests.governance import visibility_org as vo

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

__all__ = ["async_unsafe_allowed"]

LONG_HUMAN = "Maximiliana Alexandra Konstantinopoulou-Featherstonehaugh de la Vega y Villanueva-Castellanos"
LONG_AGENT = "customer-identity-verification-orchestrator-for-payments-risk-and-compliance-emea-west"
LONG_SUB_AGENT = "sanctions-and-politically-exposed-persons-screening-sub-agent-for-identity-verification"
LONG_RESOURCE = "warehouse.customer_personally_identifiable_information_archive_for_regulatory_reporting"
LONG_ACTION = "export_all_records_to_external_partner"
LONG_TEXT = (
    "Verifies the identity documents of new business customers against the registry, screens every "
    "director and ultimate beneficial owner, and files a report for the compliance team before onboarding; "
) * 3

# Whether the page or any card on it is wider than what it shows, and which (for the failure message).
OVERFLOW = """() => {
  const page = document.documentElement.scrollWidth > window.innerWidth
    ? [`page ${document.documentElement.scrollWidth} > ${window.innerWidth}`] : [];
  const cards = Array.from(document.querySelectorAll('.card'))
    .filter(card => card.scrollWidth > card.clientWidth + 1)
    .map(card => `card ${card.id || card.querySelector('h2')?.textContent.trim() || card.className}: `
                 + `${card.scrollWidth} > ${card.clientWidth}`);
  return page.concat(cards);
}"""


def _long_named_organisation() -> dict[str, Any]:
    """Beside the demo organisation: a human, an agent, a sub-agent and a resource with the longest names
    the fields allow, holding and delegating long scopes, with decisions, drift and an access request."""
    human = factories.make_human(
        name=LONG_HUMAN,
        email="maximiliana.konstantinopoulou-featherstonehaugh@compliance.example.test",
        department="Global Payments Infrastructure, Identity Assurance and Regulatory Reporting",
    )
    resource = factories.make_resource(name=LONG_RESOURCE, actions=("read", LONG_ACTION), owner=human)
    scopes = [resource.scope("read"), resource.scope(LONG_ACTION)]
    for action in ("read", LONG_ACTION):
        factories.make_grant(human, resource, action, justification=LONG_TEXT[:400])
    agent = factories.make_agent(sponsor=human, name=LONG_AGENT, purpose=LONG_TEXT)
    sub_agent = factories.make_agent(parent=agent, name=LONG_SUB_AGENT, purpose=LONG_TEXT)
    factories.make_grant(agent, resource, "read")
    link = factories.make_delegation(agent, scopes, root_human=human, max_depth=1, purpose=LONG_TEXT)
    sub_link = factories.make_delegation(
        sub_agent, scopes[:1], parent=link, expires_in=timedelta(hours=12), purpose=LONG_TEXT
    )
    key = factories.make_key(agent, name="primary key for the identity verification orchestrator")[1]
    token = factories.make_token(key, link)
    context = {"intent": LONG_TEXT[:480], "tool": "mcp.document-classification-and-redaction-service-v2"}
    for n in range(3):
        session = f"onboarding-session-{n}-" + "0123456789abcdef" * 8
        runtime.check(
            credential=token, action="read", resource=resource.name, context={**context, "session_id": session}
        )
    # Denials enough to raise drift.
    for _ in range(6):
        runtime.check(credential=key, action="delete", resource=resource.name, context=context)
    extra = factories.make_resource(name=LONG_RESOURCE[:-10] + "_sandbox", actions=("read",))
    services.access_request_create(
        actor=factories.SYSTEM, agent=agent, scope=extra.scope("read"), justification=LONG_TEXT[:480]
    )
    return {"human": human, "agent": agent, "resource": resource, "link": link, "sub_link": sub_link}


def _overflow(page: Page, url: str) -> list[str]:
    page.goto(url)
    page.wait_for_load_state("load")
    return [f"{url}: {found}" for found in page.evaluate(OVERFLOW)]


@pytest.mark.usefixtures("async_unsafe_allowed")
def test_no_main_page_scrolls_sideways_at_1280_px_nor_the_human_page_at_1440(live_server: Any) -> None:
    call_command("seed_demo", stdout=io.StringIO())
    admin = factories.make_user("admin", username="layout-admin", password=PASSWORD)
    # Ids as long as a busy installation's (seven digits), which the "#" columns and links print: a table
    # that fits with the short ids of a fresh test database may not with these.
    previous = vo.spread_ids()
    try:
        made = _long_named_organisation()
    finally:
        vo.restore_ids(previous)
    campaign = Campaign.objects.order_by("id").first()
    assert campaign is not None
    paths = [
        reverse("console:home"),
        reverse("console:agents"),
        reverse("console:agent", args=[made["agent"].pk]),
        reverse("console:humans"),
        reverse("console:human", args=[made["human"].pk]),
        reverse("console:resources"),
        reverse("console:resource", args=[made["resource"].pk]),
        reverse("console:delegations"),
        reverse("console:delegation", args=[made["link"].pk]),
        reverse("console:delegation", args=[made["sub_link"].pk]),
        reverse("console:drift"),
        reverse("console:access_requests"),
        reverse("console:reviews") + "?show=all",
        reverse("console:campaigns"),
        reverse("console:campaign", args=[campaign.pk]),
        reverse("console:audit"),
    ]

    with chromium() as browser:
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        page.goto(f"{live_server.url}{reverse('login')}")
        page.get_by_label("Username").fill(admin.username)
        page.get_by_label("Password").fill(PASSWORD)
        page.get_by_role("button", name="Sign in").click()
        page.wait_for_url(f"{live_server.url}/")
        # The long names are on the pages measured (else the test would measure nothing long).
        page.goto(f"{live_server.url}{paths[2]}")
        assert LONG_AGENT in page.content() and LONG_HUMAN in page.content()
        overflowing = [found for path in paths for found in _overflow(page, f"{live_server.url}{path}")]
        page.set_viewport_size({"width": 1440, "height": 900})
        overflowing += _overflow(page, f"{live_server.url}{paths[4]}")
    assert not overflowing, "\n".join(overflowing)
