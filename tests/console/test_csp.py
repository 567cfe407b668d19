"""The console sends a Content-Security-Policy that allows only its own scripts, styles and images,
and its pages need nothing more: no inline script, no inline style, no eval (htmx is told so)."""

from __future__ import annotations

import re

import pytest
from django.test import Client
from django.urls import reverse

from tests import factories

pytestmark = pytest.mark.django_db


def _policy(header: str) -> dict[str, list[str]]:
    return {d.split()[0]: d.split()[1:] for d in (part.strip() for part in header.split(";")) if d}


def test_console_pages_forbid_inline_script_style_and_foreign_origins() -> None:
    client = Client()
    client.force_login(factories.make_admin())
    agent = factories.make_agent()
    chain = factories.make_chain(depth=2)
    pages = [
        reverse("login"),
        reverse("console:home"),
        reverse("console:agents"),
        reverse("console:agent", args=[agent.pk]),
        reverse("console:agent", args=[chain["agents"][0].pk]),
        reverse("console:human", args=[chain["human"].pk]),
        reverse("console:delegations"),
        reverse("console:audit"),
        reverse("console:frameworks"),
        "/no/such/page/",
    ]
    for path in pages:
        response = client.get(path)
        policy = _policy(response["Content-Security-Policy"])
        assert policy["script-src"] == ["'self'"], path
        assert policy["style-src"] == ["'self'"], path
        assert policy["default-src"] == ["'self'"] and policy["frame-ancestors"] == ["'none'"], path
        html = response.content.decode()
        assert "{#" not in html and "{%" not in html, f"template syntax leaked into {path}"
        # What the policy would block: inline handlers, inline styles, inline scripts.
        assert not re.search(r"\sstyle=", html), path
        assert not re.search(r"\son[a-z]+=", html), path
        # JSON data blocks (Django's json_script, which the overview's charts read) are never executed.
        assert not re.search(r"<script(?![^>]*\ssrc=)(?![^>]*type=\"application/json\")[^>]*>", html), path
        assert "document.hidden" not in html, path  # hx-trigger filters are evaluated JavaScript


def test_htmx_is_configured_to_need_no_eval_and_no_injected_styles() -> None:
    client = Client()
    client.force_login(factories.make_admin())
    html = client.get(reverse("console:home")).content.decode()
    config = re.search(r'<meta name="htmx-config" content=\'([^\']*)\'', html)
    assert config is not None
    assert '"allowEval": false' in config.group(1)
    assert '"includeIndicatorStyles": false' in config.group(1)


def test_only_the_api_docs_page_may_use_inline_styles_for_swagger_ui() -> None:
    response = Client().get("/api/docs/")
    policy = _policy(response["Content-Security-Policy"])
    assert policy["style-src"] == ["'self'", "'unsafe-inline'"]
    assert policy["script-src"] == ["'self'"]
    # Swagger UI's start-up script is a file of its own, not inline.
    assert not re.search(r"<script(?![^>]*\ssrc=)[^>]*>", response.content.decode())
