"""Take the README's screenshots of a running console (`make run` first).

    .venv/bin/python scripts/screenshots.py [--url http://127.0.0.1:8000] [--out docs/screenshots]

Drives Debian's Chromium through pip's playwright, logs in as the demo admin and saves one PNG per page,
then as the demo reviewer for the review queue with an item open.
"""

from __future__ import annotations

import argparse
import re
from pathlib import Path

from playwright.sync_api import Page, sync_playwright

PAGES = [
    ("dashboard", "/"),
    ("agents", "/agents/"),
    ("agent", None),  # the first agent with sub-agents, found from the list
    ("delegations", "/delegations/"),
    ("access-requests", "/access-requests/"),
    ("drift", "/drift/"),
    ("audit", "/audit/"),
    ("campaign", None),  # the newest campaign with items, found from the list
    ("frameworks", "/frameworks/"),
]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--url", default="http://127.0.0.1:8000")
    parser.add_argument("--out", default="docs/screenshots")
    parser.add_argument("--user", default="admin")
    parser.add_argument("--reviewer", default="reviewer")
    parser.add_argument("--password", default="custos-demo")
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path="/usr/bin/chromium",
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"],
        )
        page = browser.new_page(viewport={"width": 1440, "height": 900})
        login(page, args.url, args.user, args.password)
        for name, path in PAGES:
            if name == "campaign":
                page.goto(f"{args.url}/campaigns/")
                links = page.eval_on_selector_all(
                    "a[href^='/campaigns/']", "els => els.map(e => e.getAttribute('href'))"
                )
                path = next((h for h in links if re.fullmatch(r"/campaigns/\d+/", h or "")), "/campaigns/")
            elif path is None:
                # The agent with the most recent runtime decision, as the live panel lists them.
                page.goto(f"{args.url}/")
                links = page.eval_on_selector_all("a[href^='/agents/']", "els => els.map(e => e.getAttribute('href'))")
                path = next((h for h in links if re.fullmatch(r"/agents/\d+/", h or "")), "/agents/")
            page.goto(f"{args.url}{path}")
            page.wait_for_load_state("networkidle")
            page.screenshot(path=str(out / f"{name}.png"), full_page=False)
            print(out / f"{name}.png")
        custody(page, args.url, out)
        page.context.clear_cookies()
        login(page, args.url, args.reviewer, args.password)
        page.goto(f"{args.url}/reviews/")
        page.wait_for_load_state("networkidle")
        page.keyboard.press("j")
        page.keyboard.press("Enter")
        page.wait_for_timeout(1000)
        page.screenshot(path=str(out / "reviews.png"), full_page=False)
        print(out / "reviews.png")
        browser.close()


def custody(page: Page, url: str, out: Path) -> None:
    """The chain of custody of the newest denial of a sub-agent acting two hops below its human, and its
    session's timeline."""
    page.goto(f"{url}/audit/?action=check.deny")
    rows = page.locator("#audit-rows tbody tr")
    for i in range(rows.count()):
        if rows.nth(i).inner_text().count("→") >= 2:
            rows.nth(i).get_by_role("link", name="Custody").click()
            break
    page.wait_for_load_state("networkidle")
    page.screenshot(path=str(out / "custody.png"), full_page=False)
    print(out / "custody.png")
    page.locator("#session-link").click()
    page.wait_for_load_state("networkidle")
    page.screenshot(path=str(out / "session.png"), full_page=False)
    print(out / "session.png")


def login(page: Page, url: str, user: str, password: str) -> None:
    page.goto(f"{url}/login/")
    page.fill("input[name=username]", user)
    page.fill("input[name=password]", password)
    page.click("button[type=submit], input[type=submit]")
    page.wait_for_load_state("networkidle")


if __name__ == "__main__":
    main()
