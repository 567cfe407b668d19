"""The OpenAPI schema is complete and valid, and its interactive page works offline."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from django.contrib.staticfiles import finders
from django.core.management import call_command
from django.test import Client, override_settings

from config.urls import api_v1_patterns as urlpatterns

VENDORED = ["swagger-ui-bundle.js", "swagger-ui-standalone-preset.js", "swagger-ui.css", "favicon-32x32.png"]


def test_the_schema_validates_without_a_single_warning(tmp_path: Path) -> None:
    # --fail-on-warn turns every unresolved type, enum collision or unknown authenticator into an error.
    target = tmp_path / "schema.yaml"

    call_command("spectacular", "--validate", "--fail-on-warn", "--file", str(target))

    assert yaml.safe_load(target.read_text())["openapi"].startswith("3.")


@pytest.fixture
def schema(db: None) -> dict[str, Any]:
    response = Client().get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json")
    assert response.status_code == 200
    return yaml.safe_load(response.content)


def _schema_path(route: str) -> str:
    return "/api/v1/" + re.sub(r"<str:(\w+)>", r"{\1}", re.sub(r"<int:(\w+)>", "{id}", route))


def test_every_api_v1_operation_is_documented_with_an_id_a_tag_and_its_answers(schema: dict[str, Any]) -> None:
    operation_ids: list[str] = []
    for pattern in urlpatterns:
        view = pattern.callback.view_class  # type: ignore[attr-defined]
        path = _schema_path(str(pattern.pattern))
        assert path in schema["paths"], path
        for method in ("get", "post"):
            if not hasattr(view, method):
                continue
            operation = schema["paths"][path][method]
            operation_ids.append(operation["operationId"])
            assert operation["tags"], path
            assert {"apiToken": []} in operation["security"]
            assert any(code.startswith("2") for code in operation["responses"]), path
            assert "403" in operation["responses"] and "401" in operation["responses"], path
            if method == "post":
                assert "400" in operation["responses"], path
    assert len(operation_ids) == len(set(operation_ids))


def test_the_schema_lists_the_key_secret_only_on_key_creation(schema: dict[str, Any]) -> None:
    components = schema["components"]["schemas"]
    with_secret = {name for name, body in components.items() if "secret" in body.get("properties", {})}

    assert with_secret == {"AgentKeyCreatedOutput"}


def test_the_docs_page_loads_swagger_ui_from_our_own_static_files(db: None) -> None:
    response = Client().get("/api/docs/")

    assert response.status_code == 200
    html = response.content.decode()
    assets = re.findall(r'(?:src|href)="([^"]+)"', html)
    assert assets, html
    for name in VENDORED:
        assert f"/static/vendor/swagger-ui/{name}" in assets
    # Nothing fetched from another host: the page works offline.
    assert not [a for a in assets if a.startswith(("http:", "https:", "//"))]


@pytest.mark.parametrize("name", [*VENDORED, "LICENSE", "NOTICE"])
def test_the_vendored_swagger_ui_files_are_found_by_staticfiles(name: str) -> None:
    found = finders.find(f"vendor/swagger-ui/{name}")

    assert found and Path(str(found)).stat().st_size > 0


def test_collectstatic_with_a_manifest_resolves_every_reference_in_the_vendored_files(tmp_path: Path) -> None:
    """Production hashes static files; a CSS file naming a missing source map would fail the build."""
    storages = {
        "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
        "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.ManifestStaticFilesStorage"},
    }
    with override_settings(STATIC_ROOT=tmp_path, STORAGES=storages):
        call_command("collectstatic", "--noinput", verbosity=0)

    assert (tmp_path / "vendor" / "swagger-ui" / "swagger-ui.css").exists()
    assert list((tmp_path / "vendor" / "swagger-ui").glob("swagger-ui-bundle.*.js"))


def _parameters(schema: dict[str, Any], name: str) -> list[dict[str, Any]]:
    return [
        p
        for ops in schema["paths"].values()
        for op in ops.values()
        for p in op.get("parameters", [])
        if p["name"] == name
    ]


def test_the_schema_states_the_page_size_the_server_enforces(schema: dict[str, Any], admin_user: Any) -> None:
    limits = _parameters(schema, "limit")
    assert limits and all(
        p["schema"] == {"type": "integer", "minimum": 1, "maximum": 200, "default": 50} for p in limits
    )
    client = Client()
    client.force_login(admin_user)
    for limit, status in (("0", 400), ("1", 200), ("200", 200), ("201", 400)):
        assert client.get(f"/api/v1/agents/?limit={limit}").status_code == status, limit


def test_no_answer_is_declared_non_empty_where_it_can_be_empty(schema: dict[str, Any]) -> None:
    # Outputs carry what the data holds: an allowed check's detail, an empty purpose, a key's blank name.
    def strings_with_min_length(node: Any, where: str) -> list[str]:
        found = []
        if isinstance(node, dict):
            if node.get("type") == "string" and "minLength" in node:
                found.append(where)
            for key, value in node.items():
                found += strings_with_min_length(value, f"{where}.{key}")
        elif isinstance(node, list):
            for i, value in enumerate(node):
                found += strings_with_min_length(value, f"{where}[{i}]")
        return found

    responses = {name: body for name, body in schema["components"]["schemas"].items() if not name.endswith("Request")}
    assert strings_with_min_length(responses, "components") == []
    check = schema["components"]["schemas"]["CheckDecision"]["properties"]
    assert "minLength" not in check["detail"]


@pytest.mark.django_db
def test_every_request_field_declared_non_empty_refuses_an_empty_string(
    schema: dict[str, Any], admin_user: Any
) -> None:
    client = Client()
    client.force_login(admin_user)
    for path, ops in schema["paths"].items():
        # The check takes an agent's credential, access requests are made by agents only: both elsewhere.
        if "{" in path or "post" not in ops or path in ("/api/v1/check", "/api/v1/access-requests/"):
            continue
        body_schema = ops["post"].get("requestBody", {}).get("content", {}).get("application/json", {}).get("schema")
        if not body_schema:
            continue
        component = schema["components"]["schemas"][body_schema["$ref"].rsplit("/", 1)[1]]
        for field, spec in component.get("properties", {}).items():
            if spec.get("type") == "string" and spec.get("minLength") == 1:
                response = client.post(path, {field: ""}, content_type="application/json")
                assert response.status_code == 400, (path, field)
                assert field in response.json()["fields"], (path, field, response.json())
