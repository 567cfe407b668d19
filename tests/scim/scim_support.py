"""Calling the SCIM endpoints as an identity provider would, in the test client."""

from __future__ import annotations

import json
from typing import Any

from django.test import Client

from audit.services import Actor
from scim import services
from scim.models import ScimClient

USER = "urn:ietf:params:scim:schemas:core:2.0:User"
ENTERPRISE = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
GROUP = "urn:ietf:params:scim:schemas:core:2.0:Group"
PATCH_OP = "urn:ietf:params:scim:api:messages:2.0:PatchOp"
ERROR = "urn:ietf:params:scim:api:messages:2.0:Error"
SCIM_JSON = "application/scim+json"
ADMIN = Actor(kind="user", label="scim-tests-admin", id="1")


class Idp:
    """A SCIM client and its secret, with a test client that sends it as the bearer."""

    def __init__(self, name: str = "Okta") -> None:
        self.client_row: ScimClient
        self.client_row, self.secret = services.scim_client_create(actor=ADMIN, name=name)
        self.http = Client(HTTP_AUTHORIZATION=f"Bearer {self.secret}")

    def get(self, path: str, **headers: Any) -> Any:
        return self.http.get(f"/scim/v2/{path}", headers=headers)

    def send(self, method: str, path: str, body: Any, **headers: Any) -> Any:
        data = body if isinstance(body, str | bytes) else json.dumps(body)
        return getattr(self.http, method)(f"/scim/v2/{path}", data, content_type=SCIM_JSON, headers=headers)

    def post(self, path: str, body: Any, **headers: Any) -> Any:
        return self.send("post", path, body, **headers)

    def put(self, path: str, body: Any, **headers: Any) -> Any:
        return self.send("put", path, body, **headers)

    def patch(self, path: str, operations: list[dict[str, Any]], **headers: Any) -> Any:
        return self.send("patch", path, {"schemas": [PATCH_OP], "Operations": operations}, **headers)

    def delete(self, path: str, **headers: Any) -> Any:
        return self.http.delete(f"/scim/v2/{path}", headers=headers)


def user_body(email: str, *, given: str = "Ada", family: str = "Lovelace", **extra: Any) -> dict[str, Any]:
    enterprise = extra.pop("enterprise", None)
    body: dict[str, Any] = {
        "schemas": [USER, ENTERPRISE] if enterprise else [USER],
        "userName": email,
        "name": {"givenName": given, "familyName": family},
        "emails": [{"value": email, "type": "work", "primary": True}],
        "active": True,
        **extra,
    }
    if enterprise:
        body[ENTERPRISE] = enterprise
    return body


def assert_scim_error(response: Any, status: int, scim_type: str | None) -> dict[str, Any]:
    assert response.status_code == status, response.content
    assert response["Content-Type"].startswith(SCIM_JSON)
    body = response.json()
    assert body["schemas"] == [ERROR]
    assert body["status"] == str(status)
    assert body.get("scimType") == scim_type
    assert body["detail"]
    return body
