"""Bad input on every create (and state-changing) endpoint: a 4xx with a stable code, never a 5xx,
and nothing written — no row, no status change, no audit event.

Each endpoint has one valid payload (checked to succeed, so a bad case fails for its own reason) and
a list of mutations of it; every endpoint also gets the same hostile raw bodies.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone

from tests.api.support import World, in_a_day, in_an_hour, snapshot

pytestmark = pytest.mark.django_db

DROP = object()  # as a value in a mutation: remove the field


def _future(**delta: float) -> str:
    return (timezone.now() + timedelta(**delta)).isoformat()


def _past() -> str:
    return (timezone.now() - timedelta(hours=1)).isoformat()


def _naive() -> str:
    return (timezone.now() + timedelta(days=1)).replace(tzinfo=None).isoformat()


# A mutation: (label, {field: value or DROP, …}, the field the error should name or None).
Case = tuple[str, Callable[[World], dict[str, Any]], str | None]

COMMON_ID_CASES: list[tuple[str, Any]] = [
    ("unknown id", 999_999),
    ("id as text", "1"),
    ("negative id", -1),
    ("id past bigint", 10**30),
    ("boolean id", True),
    ("fractional id", 1.5),
    ("id as list", [1]),
]


def _id_cases(name: str) -> list[Case]:
    return [(f"{name}: {label}", lambda w, v=value: {name: v}, name) for label, value in COMMON_ID_CASES]


def _text_cases(name: str, max_length: int, *, required: bool) -> list[Case]:
    cases: list[Case] = [
        (f"{name}: too long", lambda w: {name: "x" * (max_length + 1)}, name),
        (f"{name}: a number", lambda w: {name: 42}, name),
        (f"{name}: a list", lambda w: {name: ["x"]}, name),
        (f"{name}: an object", lambda w: {name: {"x": 1}}, name),
        (f"{name}: a NUL character", lambda w: {name: "a\x00b"}, name),
        (f"{name}: huge", lambda w: {name: "x" * 1_000_000}, name),
    ]
    if required:
        cases += [
            (f"{name}: missing", lambda w: {name: DROP}, name),
            (f"{name}: null", lambda w: {name: None}, name),
            (f"{name}: blank", lambda w: {name: "   "}, name),
        ]
    return cases


def _time_cases(name: str) -> list[Case]:
    return [
        (f"{name}: naive", lambda w: {name: _naive()}, name),
        (f"{name}: in the past", lambda w: {name: _past()}, name),
        (f"{name}: not a time", lambda w: {name: "tomorrow"}, name),
        (f"{name}: a date only", lambda w: {name: "2031-01-01"}, name),
        (f"{name}: epoch seconds", lambda w: {name: 1_900_000_000}, name),
        (f"{name}: year 10000 after the offset", lambda w: {name: "9999-12-31T23:59:59-23:59"}, name),
        (f"{name}: far future", lambda w: {name: "9999-12-31T23:59:59Z"}, name),
    ]


@dataclass(frozen=True)
class Endpoint:
    path: Callable[[World], str]
    valid: Callable[[World], dict[str, Any]]
    cases: list[Case] = field(default_factory=list)
    status: int = 201

    def url(self, world: World) -> str:
        return f"/api/v1/{self.path(world)}"

    def payload(self, world: World, changes: dict[str, Any]) -> dict[str, Any]:
        body = self.valid(world)
        for key, value in changes.items():
            if value is DROP:
                body.pop(key, None)
            else:
                body[key] = value
        return body


ENDPOINTS: dict[str, Endpoint] = {
    "humans": Endpoint(
        lambda w: "humans/",
        lambda w: {"email": "new.person@example.test", "name": "New Person", "manager": w.mine.pk},
        [
            ("email: not an address", lambda w: {"email": "not-an-address"}, "email"),
            ("email: missing", lambda w: {"email": DROP}, "email"),
            ("email: too long", lambda w: {"email": "a" * 250 + "@example.test"}, "email"),
            ("email: a number", lambda w: {"email": 7}, "email"),
            ("email: taken", lambda w: {"email": w.mine.email}, "email"),
            ("external_id: an object", lambda w: {"external_id": {"a": 1}}, "external_id"),
            *_text_cases("name", 200, required=True),
            *_text_cases("department", 120, required=False),
            *_id_cases("manager"),
        ],
    ),
    "agents": Endpoint(
        lambda w: "agents/",
        lambda w: {"name": "new-agent", "sponsor": w.mine.pk, "risk_tier": "high", "purpose": "triage"},
        [
            *_text_cases("name", 120, required=True),
            *_text_cases("purpose", 2000, required=False),
            *_id_cases("sponsor"),
            ("sponsor: missing without a parent", lambda w: {"sponsor": DROP}, "sponsor"),
            ("sponsor: has left", lambda w: {"sponsor": w.left.pk}, "sponsor"),
            ("parent: suspended", lambda w: {"parent": w.suspended_agent.pk}, "parent"),
            *_id_cases("parent"),
            ("risk_tier: unknown", lambda w: {"risk_tier": "extreme"}, "risk_tier"),
            ("risk_tier: null", lambda w: {"risk_tier": None}, "risk_tier"),
            ("risk_tier: a list", lambda w: {"risk_tier": ["high"]}, "risk_tier"),
        ],
    ),
    "resources": Endpoint(
        lambda w: "resources/",
        lambda w: {"name": "new.res", "owner": w.mine.pk, "actions": ["read", "write"], "sensitivity": "high"},
        [
            *_text_cases("name", 120, required=True),
            ("name: upper case and spaces", lambda w: {"name": "Bad Name"}, "name"),
            ("name: taken", lambda w: {"name": w.resource.name}, "name"),
            *_id_cases("owner"),
            ("owner: missing", lambda w: {"owner": DROP}, "owner"),
            ("actions: a string", lambda w: {"actions": "read"}, "actions"),
            ("actions: empty", lambda w: {"actions": []}, "actions"),
            ("actions: only blanks", lambda w: {"actions": [" "]}, "actions.0"),
            ("actions: bad characters", lambda w: {"actions": ["Read It"]}, "actions"),
            ("actions: numbers", lambda w: {"actions": [1]}, "actions.0"),
            ("actions: an object", lambda w: {"actions": {"read": True}}, "actions"),
            ("actions: too many", lambda w: {"actions": [f"a{i}" for i in range(101)]}, "actions"),
            ("kind: unknown", lambda w: {"kind": "widget"}, "kind"),
            ("sensitivity: unknown", lambda w: {"sensitivity": "secret"}, "sensitivity"),
            *_text_cases("description", 2000, required=False),
            ("uri: relative", lambda w: {"uri": "/mcp"}, "uri"),
            ("uri: not http", lambda w: {"uri": "ftp://files.example/mcp"}, "uri"),
            ("uri: a fragment", lambda w: {"uri": "https://mcp.example/mcp#tools"}, "uri"),
            ("uri: credentials", lambda w: {"uri": "https://me:pw@mcp.example/mcp"}, "uri"),
            ("uri: no host", lambda w: {"uri": "https:///mcp"}, "uri"),
            ("uri: bad port", lambda w: {"uri": "https://mcp.example:99999/mcp"}, "uri"),
            ("uri: too long", lambda w: {"uri": "https://mcp.example/" + "a" * 500}, "uri"),
            ("uri: a number", lambda w: {"uri": 5}, "uri"),
        ],
    ),
    "agent grants": Endpoint(
        lambda w: "grants/",
        lambda w: {"holder_agent": w.agent.pk, "resource": w.resource.pk, "action": "write", "expires_at": in_a_day()},
        [
            ("holder: both", lambda w: {"holder_human": w.mine.pk}, "holder"),
            ("holder: neither", lambda w: {"holder_agent": DROP}, "holder"),
            ("holder: suspended agent", lambda w: {"holder_agent": w.suspended_agent.pk}, "holder"),
            ("holder: already holds it", lambda w: {"action": "read"}, "action"),
            *_id_cases("holder_agent"),
            *_id_cases("resource"),
            ("action: unknown", lambda w: {"action": "delete"}, "action"),
            *_text_cases("action", 60, required=True),
            ("expires_at: missing for an agent", lambda w: {"expires_at": DROP}, "expires_at"),
            ("expires_at: past the maximum", lambda w: {"expires_at": _future(days=400)}, "expires_at"),
            *_time_cases("expires_at"),
            ("valid_from: after the expiry", lambda w: {"valid_from": _future(days=2)}, "expires_at"),
            ("valid_from: naive", lambda w: {"valid_from": _naive()}, "valid_from"),
            ("source: unknown", lambda w: {"source": "magic"}, "source"),
            *_text_cases("justification", 2000, required=False),
        ],
    ),
    "human grants": Endpoint(
        lambda w: "grants/",
        lambda w: {"holder_human": w.other_human.pk, "resource": w.resource.pk, "action": "read"},
        [
            ("holder: has left", lambda w: {"holder_human": w.left.pk}, "holder"),
            *_id_cases("holder_human"),
            ("expires_at: in the past", lambda w: {"expires_at": _past()}, "expires_at"),
            ("expires_at: naive", lambda w: {"expires_at": _naive()}, "expires_at"),
        ],
    ),
    "root delegations": Endpoint(
        lambda w: "delegations/",
        lambda w: {
            "delegate": w.agent.pk,
            "root_human": w.mine.pk,
            "scopes": [w.resource.scope("read")],
            "expires_at": in_a_day(),
            "purpose": "answer support tickets",
            "max_depth": 1,
        },
        [
            ("scopes: a string", lambda w: {"scopes": w.resource.scope("read")}, "scopes"),
            ("scopes: empty", lambda w: {"scopes": []}, "scopes"),
            ("scopes: numbers", lambda w: {"scopes": [1]}, "scopes.0"),
            ("scopes: not resource:action", lambda w: {"scopes": ["nonsense"]}, "scopes"),
            ("scopes: unknown resource", lambda w: {"scopes": ["nope.res:read"]}, "scopes"),
            ("scopes: unknown action", lambda w: {"scopes": [w.resource.scope("delete")]}, "scopes"),
            ("scopes: not held by the human", lambda w: {"scopes": [w.other_grant.scope]}, "scopes"),
            ("scopes: too many", lambda w: {"scopes": [f"r{i}:read" for i in range(101)]}, "scopes"),
            ("delegator: both root and parent", lambda w: {"parent": w.delegation.pk}, "parent"),
            ("delegator: neither", lambda w: {"root_human": DROP}, "root_human"),
            ("max_depth: negative", lambda w: {"max_depth": -1}, "max_depth"),
            ("max_depth: text", lambda w: {"max_depth": "two"}, "max_depth"),
            ("max_depth: huge", lambda w: {"max_depth": 10**20}, "max_depth"),
            ("max_depth: past the maximum", lambda w: {"max_depth": 9}, "max_depth"),
            ("max_depth: fractional", lambda w: {"max_depth": 1.5}, "max_depth"),
            ("expires_at: missing", lambda w: {"expires_at": DROP}, "expires_at"),
            ("expires_at: past the maximum", lambda w: {"expires_at": _future(days=60)}, "expires_at"),
            *_time_cases("expires_at"),
            *_text_cases("purpose", 2000, required=True),
            *_id_cases("delegate"),
            ("delegate: suspended", lambda w: {"delegate": w.suspended_agent.pk}, "delegate"),
            *_id_cases("root_human"),
            ("root_human: has left", lambda w: {"root_human": w.left.pk}, "root_human"),
        ],
    ),
    "sub-delegations": Endpoint(
        lambda w: "delegations/",
        lambda w: {
            "delegate": w.sub_agent.pk,
            "parent": w.delegation.pk,
            "scopes": [w.resource.scope("read")],
            "expires_at": in_an_hour(),
            "purpose": "summarise one ticket",
        },
        [
            ("scopes: wider than the parent", lambda w: {"scopes": [w.other_grant.scope]}, "scopes"),
            ("expires_at: after the parent", lambda w: {"expires_at": _future(days=3)}, "expires_at"),
            ("delegate: not a sub-agent", lambda w: {"delegate": w.other_agent.pk}, "delegate"),
            ("delegate: the parent's own delegate", lambda w: {"delegate": w.agent.pk}, "delegate"),
            ("max_depth: more than the parent allows", lambda w: {"max_depth": 1}, "max_depth"),
            ("parent: allows no further hop", lambda w: {"parent": w.leaf_delegation.pk}, "parent"),
            *_id_cases("parent"),
        ],
    ),
    "agent keys": Endpoint(
        lambda w: f"agents/{w.agent.pk}/keys/",
        lambda w: {"name": "ci", "expires_at": in_a_day()},
        [
            *_text_cases("name", 120, required=False),
            ("expires_at: past the maximum", lambda w: {"expires_at": _future(days=400)}, "expires_at"),
            *_time_cases("expires_at"),
        ],
    ),
    "keys of a suspended agent": Endpoint(
        lambda w: f"agents/{w.suspended_agent.pk}/keys/",
        lambda w: {"name": "ci"},
        status=400,  # even the valid payload is refused: the agent is not active
    ),
    "grant revoke": Endpoint(lambda w: f"grants/{w.human_grant.pk}/revoke/", lambda w: {"reason": "r"}, status=200),
    "delegation revoke": Endpoint(
        lambda w: f"delegations/{w.delegation.pk}/revoke/", lambda w: {"reason": "r"}, status=200
    ),
    "key revoke": Endpoint(lambda w: f"keys/{w.key.pk}/revoke/", lambda w: {"reason": "r"}, status=200),
    "agent suspend": Endpoint(lambda w: f"agents/{w.agent.pk}/suspend/", lambda w: {"reason": "r"}, status=200),
    "agent reactivate": Endpoint(
        lambda w: f"agents/{w.suspended_agent.pk}/reactivate/", lambda w: {"reason": "r"}, status=200
    ),
}
for _name in ("grant revoke", "delegation revoke", "key revoke", "agent suspend", "agent reactivate"):
    ENDPOINTS[_name].cases.extend(_text_cases("reason", 2000, required=False))

# Bodies that are not a usable JSON object at all: (label, raw bytes, content type, status, code).
RAW_BODIES: list[tuple[str, bytes, str, int, str]] = [
    ("malformed json", b'{"name": ', "application/json", 400, "malformed_request"),
    ("trailing garbage", b'{"name": "x"} x', "application/json", 400, "malformed_request"),
    ("NaN", b'{"name": NaN}', "application/json", 400, "malformed_request"),
    ("not utf-8", b'{"name": "\xff\xfe"}', "application/json", 400, "malformed_request"),
    ("nested too deeply", b"[" * 100_000 + b"]" * 100_000, "application/json", 400, "malformed_request"),
    ("a json array", b"[]", "application/json", 400, "invalid"),
    ("a json string", b'"x"', "application/json", 400, "invalid"),
    ("a json number", b"7", "application/json", 400, "invalid"),
    ("json null", b"null", "application/json", 400, "invalid"),
    ("form encoded", b"name=x", "application/x-www-form-urlencoded", 415, "unsupported_media_type"),
    ("plain text", b"name", "text/plain", 415, "unsupported_media_type"),
    ("larger than the limit", b'{"name": "' + b"x" * 3_000_000 + b'"}', "application/json", 413, "request_too_large"),
    ("an unknown charset", b"{}", "application/json; charset=bz2_codec", 400, "malformed_request"),
]


def _field_cases() -> list[Any]:
    return [
        pytest.param(name, label, make, field_name, id=f"{name} | {label}")
        for name, endpoint in ENDPOINTS.items()
        for label, make, field_name in endpoint.cases
    ]


def _raw_cases() -> list[Any]:
    return [
        pytest.param(name, body, content_type, status, code, id=f"{name} | {label}")
        for name in ENDPOINTS
        for label, body, content_type, status, code in RAW_BODIES
    ]


@pytest.mark.parametrize("name", ENDPOINTS)
def test_the_valid_payload_of_each_endpoint_is_accepted(world: World, name: str) -> None:
    """The baseline the bad cases mutate: without it, a bad case could pass for the wrong reason."""
    endpoint = ENDPOINTS[name]
    events_before = snapshot()["counts"]["AuditEvent"]

    response = world.client("admin").post(endpoint.url(world), endpoint.valid(world), format="json")

    assert response.status_code == endpoint.status, response.content
    if endpoint.status < 300:
        assert snapshot()["counts"]["AuditEvent"] > events_before


@pytest.mark.parametrize(("name", "label", "make", "field_name"), _field_cases())
def test_a_bad_field_gives_a_4xx_naming_it_and_writes_nothing(
    world: World, name: str, label: str, make: Callable[[World], dict[str, Any]], field_name: str | None
) -> None:
    endpoint = ENDPOINTS[name]
    before = snapshot()

    response = world.client("admin").post(endpoint.url(world), endpoint.payload(world, make(world)), format="json")

    assert 400 <= response.status_code < 500, response.content
    body = response.json()
    assert isinstance(body["code"], str) and body["code"]
    assert isinstance(body["detail"], str) and body["detail"]
    if field_name is not None:
        assert field_name in body["fields"], body
    assert snapshot() == before


@pytest.mark.parametrize(("name", "raw", "content_type", "status", "code"), _raw_cases())
def test_a_body_that_is_not_a_json_object_gives_a_4xx_and_writes_nothing(
    world: World, name: str, raw: bytes, content_type: str, status: int, code: str
) -> None:
    endpoint = ENDPOINTS[name]
    before = snapshot()

    response = world.client("admin").post(endpoint.url(world), raw, content_type=content_type)

    assert response.status_code == status, response.content
    assert response.json()["code"] == code
    assert snapshot() == before


@pytest.mark.parametrize(
    "path",
    [
        "grants/999999/revoke/",
        "delegations/999999/revoke/",
        "keys/999999/revoke/",
        "agents/999999/keys/",
        "agents/999999/suspend/",
        "agents/99999999999999999999999/reactivate/",
    ],
)
def test_an_unknown_object_in_the_path_is_a_404_and_writes_nothing(world: World, path: str) -> None:
    before = snapshot()

    response = world.client("admin").post(f"/api/v1/{path}", {}, format="json")

    assert response.status_code == 404
    assert response.json()["code"] == "not_found"
    assert snapshot() == before


def test_a_conflict_names_its_code_and_field(world: World) -> None:
    response = world.client("admin").post(
        "/api/v1/humans/", {"email": world.mine.email.upper(), "name": "Twin"}, format="json"
    )

    assert response.status_code == 409
    assert response.json()["code"] == "duplicate_email"
    assert "email" in response.json()["fields"]


def test_a_field_error_lists_every_bad_field_at_once(world: World) -> None:
    response = world.client("admin").post(
        "/api/v1/agents/", {"name": 1, "risk_tier": "x", "sponsor": "y"}, format="json"
    )

    assert response.status_code == 400
    assert response.json()["code"] == "invalid"
    assert set(response.json()["fields"]) == {"name", "risk_tier", "sponsor"}


@pytest.mark.parametrize(
    ("path", "query"),
    [
        ("agents/", "status=nope"),
        ("agents/", "risk_tier=ultra"),
        ("agents/", "sponsor=abc"),
        ("agents/", "parent=-3"),
        ("agents/", f"q={'x' * 300}"),
        ("agents/", "limit=0"),
        ("agents/", "limit=100000"),
        ("agents/", "cursor=not-a-cursor"),
        ("agents/", "cursor=eyJrIjogLTEsICJkIjogIm4ifQ"),  # a well-formed cursor with a negative key
        ("grants/", "status=maybe"),
        ("delegations/", "delegate=x"),
        ("humans/", "status=gone"),
        ("resources/", "sensitivity=secret"),
        ("audit/events/", "since=2030-01-01T00:00:00"),
        ("audit/events/", "until=yesterday"),
        ("audit/events/", "actor_kind=robot"),
    ],
)
def test_a_bad_filter_or_cursor_is_a_400(world: World, path: str, query: str) -> None:
    response = world.client("admin").get(f"/api/v1/{path}?{query}")

    assert response.status_code == 400, response.content
    assert response.json()["code"] == "invalid"
    assert response.json()["fields"]
