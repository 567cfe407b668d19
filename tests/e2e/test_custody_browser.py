"""An auditor follows a sub-agent's denied decision in a real browser (Debian's chromium, driven by
Playwright): from the audit log to its chain of custody (the picture from the human to the action and the
timeline), on to a delegation's page, to the session's timeline, and downloads the evidence bundle, which
the standalone verifier accepts and refuses with one byte changed."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from django.urls import reverse
from playwright.sync_api import expect

from audit import checkpoints
from audit.verify import verify_bundle
from governance import runtime, services
from tests import factories
from tests.e2e.test_browser import PASSWORD, async_unsafe_allowed, chromium

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

__all__ = ["async_unsafe_allowed"]  # the fixture, imported to be used here


def _decide(token: str, resource: str, request: str, parent: str = "") -> str:
    context = {"intent": "reply to ticket 7", "session_id": "sess-e2e", "request_id": request}
    return runtime.check(
        credential=token, action="read", resource=resource, context={**context, "parent_request_id": parent}
    ).decision_id


@pytest.mark.usefixtures("async_unsafe_allowed")
def test_an_auditor_follows_a_denied_decision_to_the_human_and_exports_its_bundle(
    live_server: Any, settings: Any, tmp_path: Path
) -> None:
    settings.CUSTOS_AUDIT_CHECKPOINT_SECRET = "checkpoint-secret-for-tests-only"
    settings.CUSTOS_AUDIT_CHECKPOINT_DIR = str(tmp_path / "checkpoints")
    auditor = factories.make_user("auditor", username="custody-auditor", password=PASSWORD)
    chain = factories.make_chain(depth=3)
    issued = factories.make_chain_tokens(chain)
    resource = chain["resource"].name
    _decide(issued["tokens"][0], resource, "r-1")
    _decide(issued["tokens"][1], resource, "r-2", "r-1")
    services.delegation_revoke(actor=factories.SYSTEM, delegation=chain["links"][2], reason="task finished")
    denied = _decide(issued["tokens"][2], resource, "r-3", "r-2")
    human, links, leaf = chain["human"], chain["links"], chain["agents"][2]
    audit = f"{reverse('console:audit')}?action=check.deny"

    with chromium() as browser:
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        page.goto(f"{live_server.url}{reverse('login')}?next={audit}")
        page.get_by_label("Username").fill(auditor.username)
        page.get_by_label("Password").fill(PASSWORD)
        page.get_by_role("button", name="Sign in").click()
        page.wait_for_url(f"{live_server.url}{audit}")

        # The denial's row in the audit log leads to its chain of custody.
        page.locator(f"a[href='{reverse('console:custody', args=[denied])}']").first.click()
        page.wait_for_url(f"{live_server.url}{reverse('console:custody', args=[denied])}")
        picture = page.locator("#custody-picture svg")
        expect(picture).to_contain_text(human.name)
        for agent in chain["agents"]:
            expect(picture).to_contain_text(agent.name)
        for link in links:
            expect(picture).to_contain_text(f"#{link.pk}")
        expect(picture).to_contain_text("denied: delegation_revoked")
        expect(page.locator("#custody-links")).to_contain_text("revoked")
        expect(page.locator("#custody-timeline")).to_contain_text("delegation.revoke")
        expect(page.locator("#custody-requests")).to_contain_text(chain["agents"][0].name)

        # A delegation on the chain has its own page.
        page.locator(f"#custody-picture a[href='{reverse('console:delegation', args=[links[1].pk])}']").click()
        page.wait_for_url(f"{live_server.url}{reverse('console:delegation', args=[links[1].pk])}")
        expect(page.locator("h1")).to_contain_text(f"#{links[1].pk}")
        page.go_back()

        # The session's timeline, every agent's request under its parent's.
        page.locator("#session-link").click()
        expect(page.locator("#session-decisions")).to_contain_text(leaf.name)
        expect(page.locator("#session-decisions tbody tr")).to_have_count(3)
        page.go_back()

        with page.expect_download() as download:
            page.locator("#bundle-link").click()
        raw = Path(download.value.path()).read_bytes()

    bundle = json.loads(raw)
    trusted = {checkpoints.current_fingerprint()}
    assert verify_bundle(bundle, trusted).ok
    assert denied in raw.decode()
    tampered = raw.replace(b"task finished", b"task finishee", 1)
    assert tampered != raw
    assert not verify_bundle(json.loads(tampered), trusted).ok
