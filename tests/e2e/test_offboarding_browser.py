"""An admin offboards an agent in a real browser (the Debian chromium package, driven by Playwright):
the agent page's Offboard action, the preview, a reason, the confirmation, the summary with its
time-to-revoke, and the agent page afterwards."""

from __future__ import annotations

import re
from typing import Any

import pytest
from django.urls import reverse
from playwright.sync_api import expect

from governance.models import AgentStatus, Offboarding
from tests import factories
from tests.e2e.test_browser import PASSWORD, async_unsafe_allowed, chromium

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

__all__ = ["async_unsafe_allowed"]  # the fixture, imported to be used here


@pytest.mark.usefixtures("async_unsafe_allowed")
def test_an_admin_offboards_an_agent_and_sees_the_time_to_revoke(live_server: Any) -> None:
    admin = factories.make_user("admin", username="offboarding-admin", password=PASSWORD)
    agent = factories.make_agent(name="invoice-bot")
    factories.make_agent(parent=agent, name="invoice-fetcher")
    factories.make_key(agent)
    agent_path = reverse("console:agent", args=[agent.pk])

    with chromium() as browser:
        page = browser.new_page()
        page.goto(f"{live_server.url}{reverse('login')}?next={agent_path}")
        page.get_by_label("Username").fill(admin.username)
        page.get_by_label("Password").fill(PASSWORD)
        page.get_by_role("button", name="Sign in").click()
        page.wait_for_url(f"{live_server.url}{agent_path}")

        page.locator("#offboard-link").click()
        page.wait_for_url(f"{live_server.url}{reverse('console:agent_offboard', args=[agent.pk])}")
        expect(page.locator("#offboard-tree")).to_contain_text("invoice-fetcher")
        expect(page.locator("#offboard-counts")).to_contain_text("Keys")
        page.get_by_label("Reason").fill("replaced by the new billing pipeline")
        page.get_by_role("button", name="Offboard invoice-bot").click()

        summary = page.locator("#offboard-summary")
        expect(summary).to_contain_text("invoice-bot offboarded")
        expect(page.locator("#time-to-revoke")).to_have_text(re.compile(r"^\d+ ms$"))

        page.goto(f"{live_server.url}{agent_path}")
        expect(page.locator("#offboarded")).to_contain_text("time-to-revoke")
        expect(page.locator("#offboard-link")).to_have_count(0)

    agent.refresh_from_db()
    assert agent.status == AgentStatus.OFFBOARDED
    assert Offboarding.objects.get(agent=agent).reason == "replaced by the new billing pipeline"
