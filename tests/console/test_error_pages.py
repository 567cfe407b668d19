"""Every API error is JSON ``{code, detail, fields}``, even for a URL no API view matches; the console
keeps its own pages."""

from __future__ import annotations

import pytest
from django.test import Client

from tests import factories

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize(
    "path",
    [
        "/api/v1/agents/abc/",
        "/api/v1/no-such-thing/",
        "/api/v1/agents/1/nothing/",
        "/oauth/nothing",
        "/.well-known/nothing",
    ],
)
def test_an_api_url_no_view_matches_is_a_json_404(path: str) -> None:
    client = Client()
    client.force_login(factories.make_admin())
    response = client.get(path)
    assert response.status_code == 404
    assert response["Content-Type"] == "application/json"
    assert response.json() == {"code": "not_found", "detail": "No such endpoint or object.", "fields": {}}


def test_a_console_url_no_view_matches_is_the_consoles_404_page() -> None:
    client = Client()
    client.force_login(factories.make_admin())
    response = client.get("/agents/abc/")
    assert response.status_code == 404
    assert response["Content-Type"].startswith("text/html")
    assert "Nothing here" in response.content.decode()


def test_the_api_docs_page_is_a_page() -> None:
    response = Client().get("/api/docs/")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/html")
