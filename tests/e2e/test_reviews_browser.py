"""A reviewer works the review queue from the keyboard in a real browser (Debian chromium, Playwright):
j moves, Enter opens the drawer, c certifies, r revokes with the justification typed; the database
records each decision."""

from __future__ import annotations

from typing import Any

import pytest
from django.urls import reverse
from playwright.sync_api import expect

from reviews import services as review_services
from reviews.models import ItemStatus, ReviewItem
from tests import factories
from tests.e2e.test_browser import PASSWORD, async_unsafe_allowed, chromium

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

__all__ = ["async_unsafe_allowed"]


@pytest.mark.usefixtures("async_unsafe_allowed")
def test_a_reviewer_certifies_and_revokes_from_the_keyboard(live_server: Any) -> None:
    reviewer = factories.make_user("reviewer", username="browser-reviewer", password=PASSWORD)
    rita = factories.make_human(name="Rita Reviewer", user=reviewer)
    fred = factories.make_human(name="Fred Fallback", user=factories.make_reviewer())
    resource = factories.make_resource()
    for _ in range(3):
        factories.make_grant(factories.make_agent(sponsor=factories.make_human()), resource, "read")
    campaign = review_services.campaign_create(
        actor=factories.SYSTEM,
        name="Browser campaign",
        subjects=["grant"],
        reviewer_rule="named",
        named_reviewer=rita,
        fallback_reviewer=fred,
        justification="revoke",
    )
    review_services.campaign_launch(actor=factories.SYSTEM, campaign=campaign)
    review_services.campaign_generate(campaign_id=campaign.pk)
    first, second, third = ReviewItem.objects.pending().assigned_to(reviewer)  # queue order (Meta.ordering)
    queue_path = reverse("console:reviews")

    with chromium() as browser:
        page = browser.new_page()
        errors: list[str] = []
        page.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)
        page.goto(f"{live_server.url}{reverse('login')}?next={queue_path}")
        page.get_by_label("Username").fill(reviewer.username)
        page.get_by_label("Password").fill(PASSWORD)
        page.get_by_role("button", name="Sign in").click()
        page.wait_for_url(f"{live_server.url}{queue_path}")
        expect(page.locator("tr.q-row")).to_have_count(3)
        expect(page.locator("#kbd-legend")).to_contain_text("certify")

        # j selects the first row, Enter opens it in the drawer.
        page.keyboard.press("j")
        expect(page.locator(f"#item-{first.pk}")).to_have_class("q-row is-current")
        page.keyboard.press("j")
        page.keyboard.press("k")
        expect(page.locator(f"#item-{first.pk}")).to_have_class("q-row is-current")
        page.keyboard.press("Enter")
        drawer = page.locator("#review-drawer")
        expect(drawer.locator(f'[data-drawer-item="{first.pk}"]')).to_be_visible()
        expect(drawer).to_contain_text("Use in the last 90 days")

        # c certifies: the row leaves and the next item opens.
        page.keyboard.press("c")
        expect(page.locator(f"#item-{first.pk}")).to_have_count(0)
        expect(drawer.locator(f'[data-drawer-item="{second.pk}"]')).to_be_visible()
        expect(drawer).to_contain_text("Certified")

        # r without a justification asks for one (the campaign requires it to revoke); typed, r revokes.
        page.keyboard.press("r")
        box = drawer.locator("textarea[data-justification]")
        expect(box).to_be_focused()
        box.fill("unused for a quarter")
        page.keyboard.press("Escape")
        page.keyboard.press("r")
        expect(page.locator(f"#item-{second.pk}")).to_have_count(0)
        expect(drawer.locator(f'[data-drawer-item="{third.pk}"]')).to_be_visible()

        # ? shows the help; Escape closes it.
        page.keyboard.press("?")
        expect(page.locator("#kbd-help")).to_be_visible()
        page.keyboard.press("Escape")
        expect(page.locator("#kbd-help")).to_be_hidden()
        assert not [e for e in errors if "Content Security Policy" in e or "Refused" in e]

    first.refresh_from_db()
    second.refresh_from_db()
    third.refresh_from_db()
    assert first.status == ItemStatus.CERTIFIED and first.opened_at is not None
    assert second.status == ItemStatus.REVOKED and second.justification == "unused for a quarter"
    assert third.status == ItemStatus.PENDING and third.opened_at is not None
