"""One real browser (the Debian chromium package, driven by Playwright) through the real login form."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from django.urls import reverse
from playwright.sync_api import Browser, expect, sync_playwright

from tests import factories

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

CHROMIUM = "/usr/bin/chromium"
PASSWORD = "a-browser-test-password"


@pytest.fixture
def async_unsafe_allowed(monkeypatch: pytest.MonkeyPatch) -> None:
    # Playwright's sync API runs an event loop in this thread, which makes Django refuse ORM calls
    # from it unless told that this is deliberate.
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")


@contextmanager
def chromium() -> Iterator[Browser]:
    """Start it only after the test data is written: database work done while Playwright's loop runs
    gets a connection of its own that the test's teardown never closes."""
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"]
        )
        try:
            yield browser
        finally:
            browser.close()


@pytest.mark.usefixtures("async_unsafe_allowed")
def test_an_admin_signs_in_and_sees_an_agent_with_its_sub_agent(live_server: Any) -> None:
    admin = factories.make_user("admin", username="browser-admin", password=PASSWORD)
    agent = factories.make_agent(name="ledger-reconciler", purpose="Reconcile the ledger nightly")
    sub_agent = factories.make_agent(parent=agent, name="ledger-fetcher")
    agent_path = reverse("console:agent", args=[agent.pk])
    sub_agent_path = reverse("console:agent", args=[sub_agent.pk])

    with chromium() as browser:
        page = browser.new_page()
        page.goto(f"{live_server.url}{reverse('login')}?next={agent_path}")
        page.get_by_label("Username").fill(admin.username)
        page.get_by_label("Password").fill(PASSWORD)
        page.get_by_role("button", name="Sign in").click()

        page.wait_for_url(f"{live_server.url}{agent_path}")
        expect(page.locator("h1")).to_contain_text("ledger-reconciler")
        tree = page.locator(".tree")
        expect(tree.get_by_role("link", name="ledger-fetcher")).to_be_visible()
        expect(page.locator(".usermenu")).to_contain_text("browser-admin")

        tree.get_by_role("link", name="ledger-fetcher").click()
        page.wait_for_url(f"{live_server.url}{sub_agent_path}")
        expect(page.locator(".crumbs")).to_contain_text("ledger-reconciler")
