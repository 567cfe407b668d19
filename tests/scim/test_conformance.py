"""SCIM 2.0 conformance, judged by third parties against a live Custos (pytest-django's live server).

Two independent testers run over real HTTP with a SCIM client's bearer secret, as an identity provider would:

- ``scim2-tester`` (python-scim): reads what ``ServiceProviderConfig``, ``ResourceTypes`` and ``Schemas``
  publish, builds its models from them, then for ``User`` and ``Group`` runs create, read (by id, listed,
  with ``attributes``/``excludedAttributes``, ``POST .search``), replace, delete, and PATCH add, remove and
  replace on every writable attribute the schemas publish, extensions included.
- ``scim-sanity``: what it adds is the wire-level contract the first does not look at — the
  ``application/scim+json`` Content-Type everywhere, ``Location`` equal to ``meta.location`` on 201,
  ``ETag`` equal to ``meta.version``, an empty 204 on DELETE, ``count=0`` and ``startIndex`` paging, the
  SCIM error body on 400 and 404, ``PATCH active=false`` then the member add/remove shapes of a group.

Neither covers what Okta and Entra ID actually send; the last two tests replay their documented request
sequences, and check the effect on governance (the leaver flow), not only the SCIM answers.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from typing import Any

import httpx2
import pytest
from django.core.handlers.base import BaseHandler
from django.http import HttpRequest, HttpResponse, HttpResponseBase
from scim2_client.engines.httpx2 import SyncSCIMClient
from scim2_tester import CheckResult, Status, check_server
from scim_sanity.probe.runner import run_probe_api  # type: ignore[import-untyped]  # ships no type hints

from audit.services import Actor
from governance.models import Agent, AgentStatus, Delegation, DelegationStatus, Human, HumanStatus
from scim import services as scim_services
from tests import factories

# The live server reads what the test wrote: the data must be committed, not held in a test transaction.
pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]

SCIM_JSON = "application/scim+json"
USER = "urn:ietf:params:scim:schemas:core:2.0:User"
GROUP = "urn:ietf:params:scim:schemas:core:2.0:Group"
ENTERPRISE = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
PATCH_OP = "urn:ietf:params:scim:api:messages:2.0:PatchOp"
LIST_RESPONSE = "urn:ietf:params:scim:api:messages:2.0:ListResponse"

# scim2-tester: SUCCESS (a MUST held), COMPLIANT (a SHOULD held), ACCEPTABLE (a MAY used sensibly) pass.
# ERROR and CRITICAL break the RFC; DEVIATION departs from a SHOULD; SKIPPED means the server told the tester
# it lacks something (PATCH, an attribute to test) — every check runs here, so a skip is a gap, not a pass.
TESTER_PASSES = {Status.SUCCESS, Status.COMPLIANT, Status.ACCEPTABLE}
# scim-sanity's phases for the draft agent resource types (draft-abbey-scim-agent-extension): Custos's agents
# are governed in Custos, not provisioned by an IdP, so the server does not offer them and these are skipped.
SANITY_EXPECTED_SKIPS = {"Agent CRUD Lifecycle", "AgenticApplication CRUD Lifecycle", "Agent Rapid Lifecycle"}


# --- Set-up --------------------------------------------------------------------------------------


@pytest.fixture
def scim_secret(db: None) -> str:
    """A provisioning client created the way an admin creates one; its secret is shown once."""
    admin = factories.make_admin()
    _client, secret = scim_services.scim_client_create(actor=Actor.user(admin), name="conformance testers")
    return secret


@pytest.fixture
def scim_base_url(live_server: Any) -> str:
    return f"{live_server.url}/scim/v2"


@pytest.fixture
def scim_http(scim_base_url: str, scim_secret: str) -> Iterator[httpx2.Client]:
    """HTTP as the identity providers speak it: bearer secret, SCIM media type in and out."""
    with httpx2.Client(
        base_url=f"{scim_base_url}/",
        headers={
            "Authorization": f"Bearer {scim_secret}",
            "Accept": SCIM_JSON,
            "Content-Type": f"{SCIM_JSON}; charset=utf-8",
        },
        timeout=30,
        trust_env=False,  # a proxy from the environment must not stand between the tester and 127.0.0.1
    ) as client:
        yield client


def scim2_tester_results(http: httpx2.Client, **kwargs: Any) -> list[CheckResult]:
    return check_server(SyncSCIMClient(http), **kwargs)


def scim2_tester_failures(results: list[CheckResult]) -> list[str]:
    return [
        f"[{r.status.name}] {r.resource_type or '-'} {r.title}: {_short(r.reason)}"
        + (f"\n      data: {_short(repr(r.data), 600)}" if r.data is not None else "")
        for r in results
        if r.status not in TESTER_PASSES
    ]


def scim_sanity_report(base_url: str, secret: str, **kwargs: Any) -> dict[str, Any]:
    # Strict mode: the known real-world deviations it would downgrade to warnings in compat mode
    # (application/json, a body on 204, a Location that differs from meta.location…) count as failures.
    return run_probe_api(base_url, token=secret, strict=True, timeout=30, **kwargs)


def scim_sanity_failures(report: dict[str, Any]) -> list[str]:
    return [
        f"[{r['status']}] {r.get('phase', '')} / {r['name']}: {_short(r.get('message'))}"
        for r in report["results"]
        if r["status"] in ("fail", "error", "warn")
        or (r["status"] == "skip" and r["name"] not in SANITY_EXPECTED_SKIPS)
    ]


def _short(text: str | None, limit: int = 400) -> str:
    text = (text or "").replace("\n", " ")
    return text if len(text) <= limit else f"{text[:limit]}…"


def _listing(title: str, failures: list[str]) -> str:
    return f"{title} ({len(failures)}):\n  " + "\n  ".join(failures)


# --- The testers ---------------------------------------------------------------------------------


def test_scim2_tester_passes_every_check(scim_http: httpx2.Client) -> None:
    results = scim2_tester_results(scim_http)

    failures = scim2_tester_failures(results)
    assert not failures, _listing("scim2-tester checks that did not pass", failures)
    # Not vacuous: discovery answered, and the whole resource suite ran for both resource types.
    passed = {(r.resource_type, r.title) for r in results if r.status in TESTER_PASSES}
    for title in ("service_provider_config_endpoint", "query_all_resource_types", "query_all_schemas", "random_url"):
        assert (None, title) in passed, f"{title} did not run"
    for resource_type in ("User", "Group"):
        for title in (
            "object_creation",
            "object_query",
            "object_query_without_id",
            "object_query_with_attributes",
            "object_list_with_attributes",
            "search_with_attributes",
            "object_replacement",
            "object_deletion",
            "check_add_attribute",
            "check_remove_attribute",
            "check_replace_attribute",
        ):
            assert (resource_type, title) in passed, f"{title} did not run on {resource_type}"


def test_scim_sanity_probe_passes_in_strict_mode(scim_base_url: str, scim_secret: str) -> None:
    report = scim_sanity_report(scim_base_url, scim_secret)

    failures = scim_sanity_failures(report)
    assert not failures, _listing("scim-sanity results that did not pass", failures)
    assert report["exit_code"] == 0
    passed = {r["name"] for r in report["results"] if r["status"] == "pass"}
    for name in (
        "GET /ServiceProviderConfig",
        "POST /Users",
        "PATCH /Users/{id}",
        "GET /Users/{id} after PATCH",
        "DELETE /Users/{id}",
        "POST /Groups",
        "PATCH /Groups/{id} add member",
        "PATCH /Groups/{id} remove members",
        "GET /Users?count=0 (boundary)",
        "POST /Users missing userName (expect 400)",
    ):
        assert name in passed, f"{name} did not pass: {report['summary']}"


@pytest.fixture
def delete_does_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    """Break one endpoint from the outside: DELETE /Users/{id} answers 204 and deletes nothing. The live
    server runs in this process, so patching the handler class reaches its thread."""
    item = re.compile(r"^/scim/v2/Users/[^/]+/?$")
    original: Callable[[BaseHandler, HttpRequest], HttpResponseBase] = BaseHandler.get_response

    def get_response(self: BaseHandler, request: HttpRequest) -> HttpResponseBase:
        if request.method == "DELETE" and item.match(request.path):
            return HttpResponse(status=204)
        return original(self, request)

    monkeypatch.setattr(BaseHandler, "get_response", get_response)


@pytest.mark.usefixtures("delete_does_nothing")
def test_both_testers_catch_a_user_delete_that_deletes_nothing(
    scim_http: httpx2.Client, scim_base_url: str, scim_secret: str
) -> None:
    results = scim2_tester_results(scim_http, include_tags={"crud:delete"}, resource_types=["User"])
    failures = scim2_tester_failures(results)
    assert any("object_deletion" in f and "still exists after deletion" in f for f in failures), _listing(
        "scim2-tester did not report the delete; it reported", failures
    )

    report = scim_sanity_report(scim_base_url, scim_secret, resource_filter="User")
    failures = scim_sanity_failures(report)
    assert any("GET /Users/{id} after DELETE (expect 404)" in f for f in failures), _listing(
        "scim-sanity did not report the delete; it reported", failures
    )
    assert report["exit_code"] == 1


# --- What the identity providers send ----------------------------------------------------------


def _ok(response: httpx2.Response, status: int) -> Any:
    assert response.status_code == status, f"{response.request.method} {response.request.url}: {response.text}"
    assert response.headers["content-type"].startswith(SCIM_JSON)
    return response.json()


def _find_by_user_name(http: httpx2.Client, user_name: str) -> list[dict[str, Any]]:
    # Okta and Entra both look a user up by userName before creating it, and Okta again later.
    listed = _ok(http.get("Users", params={"filter": f'userName eq "{user_name}"', "startIndex": 1, "count": 100}), 200)
    assert listed["schemas"] == [LIST_RESPONSE]
    assert listed["totalResults"] == len(listed.get("Resources", []))
    return listed.get("Resources", [])


def _agent_acting_for(human: Human) -> tuple[Agent, Delegation]:
    """An agent the human sponsors, with a delegation rooted at them, so a leaver has something to cut."""
    resource = factories.make_resource(name=f"ledger-{human.pk}")
    factories.make_grant(human, resource, "read")
    agent = factories.make_agent(sponsor=human, name=f"assistant-of-{human.pk}")
    return agent, factories.make_delegation(agent, [f"{resource.name}:read"], root_human=human)


def test_okta_provisioning_sequence_creates_finds_and_deactivates_a_leaver(scim_http: httpx2.Client) -> None:
    """Okta's documented SCIM 2.0 flow, request bodies as its reference shows them:
    https://developer.okta.com/docs/api/openapi/okta-scim/guides/scim-20/ ("Create Users": a userName
    filter first, then POST; "Retrieve Users"; "Update a specific User (PATCH)": deactivation is a
    ``replace`` without a path whose value is ``{"active": false}``)."""
    user_name = "test.user@okta.local"

    # Okta asks whether the user exists before creating it (URL-encoded userName eq filter).
    assert _find_by_user_name(scim_http, user_name) == []

    # The documented create body, password and empty groups included (Custos keeps no password: it must
    # accept and drop it, never echo it).
    created = _ok(
        scim_http.post(
            "Users",
            json={
                "schemas": [USER],
                "userName": user_name,
                "name": {"givenName": "Test", "familyName": "User"},
                "emails": [{"primary": True, "value": user_name, "type": "work"}],
                "displayName": "Test User",
                "locale": "en-US",
                "externalId": "00ujl29u0le5T6Aj10h7",
                "groups": [],
                "password": "1mz050nq",
                "active": True,
            },
        ),
        201,
    )
    assert created["userName"] == user_name and created["active"] is True
    assert "password" not in created
    user_id = created["id"]

    [found] = _find_by_user_name(scim_http, user_name)
    assert found["id"] == user_id
    name = _ok(scim_http.get(f"Users/{user_id}"), 200)["name"]
    assert (name["givenName"], name["familyName"]) == ("Test", "User")

    human = Human.objects.get(scim__user_name=user_name)
    assert (human.email, human.status) == (user_name, HumanStatus.ACTIVE)
    agent, delegation = _agent_acting_for(human)

    # Deactivation: Okta sends no path, the attribute in the value.
    patched = _ok(
        scim_http.patch(
            f"Users/{user_id}",
            json={"schemas": [PATCH_OP], "Operations": [{"op": "replace", "value": {"active": False}}]},
        ),
        200,
    )
    assert patched["active"] is False
    assert _ok(scim_http.get(f"Users/{user_id}"), 200)["active"] is False

    # The leaver flow ran on the spot: the delegation rooted at them is revoked and, with no manager to
    # inherit it, their agent is suspended.
    human.refresh_from_db()
    delegation.refresh_from_db()
    agent.refresh_from_db()
    assert human.status == HumanStatus.LEFT
    assert delegation.status == DelegationStatus.REVOKED
    assert agent.status == AgentStatus.SUSPENDED


def _entra_user(user_name: str, external_id: str, given: str, family: str, **extra: Any) -> dict[str, Any]:
    """Entra's create body as "Create User" in its SCIM guide shows it: both schemas listed, a
    ``meta.resourceType`` the server must ignore, ``name.formatted``, an empty ``roles``."""
    return {
        "schemas": [USER, ENTERPRISE],
        "externalId": external_id,
        "userName": user_name,
        "active": True,
        "emails": [{"primary": True, "type": "work", "value": user_name}],
        "meta": {"resourceType": "User"},
        "name": {"formatted": f"{given} {family}", "familyName": family, "givenName": given},
        "roles": [],
        **extra,
    }


def test_entra_provisioning_sequence_sets_a_manager_and_department_then_deactivates_with_a_string_boolean(
    scim_http: httpx2.Client,
) -> None:
    """Microsoft Entra ID's provisioning requests:
    https://learn.microsoft.com/en-us/entra/identity/app-provisioning/use-scim-to-provision-users-and-groups
    ("Create User", "Update User [Multi-valued properties]", "Disable User"), and
    https://learn.microsoft.com/en-us/entra/identity/app-provisioning/application-provisioning-config-problem-scim-compatibility
    (without the ``aadOptscim062020`` flag Entra capitalises ``op`` and sends booleans as the strings
    "True"/"False"; enterprise attributes are patched by their full URN path)."""
    manager_name = "Test_User_manager@contoso.example"
    report_name = "Test_User_report@contoso.example"

    assert _find_by_user_name(scim_http, manager_name) == []
    manager = _ok(
        scim_http.post(
            "Users", json=_entra_user(manager_name, "0a21f0f2-8d2a-4f8e-bf98-7363c4aed4ef", "Grace", "Hopper")
        ),
        201,
    )

    # The report arrives with the enterprise extension: department and manager (by the manager's SCIM id).
    assert _find_by_user_name(scim_http, report_name) == []
    created = _ok(
        scim_http.post(
            "Users",
            json=_entra_user(
                report_name,
                "7f3e9d8b-3b5e-4c1d-9a43-2c1e0d6f8a11",
                "Alan",
                "Turing",
                **{ENTERPRISE: {"department": "Payments", "manager": {"value": manager["id"]}}},
            ),
        ),
        201,
    )
    assert created[ENTERPRISE]["department"] == "Payments"
    assert created[ENTERPRISE]["manager"]["value"] == manager["id"]
    report_id = created["id"]
    human = Human.objects.get(scim__user_name=report_name)
    boss = Human.objects.get(scim__user_name=manager_name)
    assert (human.manager_id, human.department) == (boss.pk, "Payments")

    # Entra's multi-valued and single-valued updates: a value-filtered email path, a sub-attribute, and the
    # department by its full extension URN path.
    updated = _ok(
        scim_http.patch(
            f"Users/{report_id}",
            json={
                "schemas": [PATCH_OP],
                "Operations": [
                    {"op": "Replace", "path": 'emails[type eq "work"].value', "value": "alan.turing@contoso.example"},
                    {"op": "Replace", "path": "name.familyName", "value": "Turing-Smith"},
                    {"op": "Replace", "path": f"{ENTERPRISE}:department", "value": "Treasury"},
                ],
            },
        ),
        200,
    )
    assert [e["value"] for e in updated["emails"] if e.get("type") == "work"] == ["alan.turing@contoso.example"]
    assert updated["name"]["familyName"] == "Turing-Smith"
    assert updated[ENTERPRISE]["department"] == "Treasury"
    human.refresh_from_db()
    assert human.department == "Treasury"

    agent, delegation = _agent_acting_for(human)

    # "Disable User" as Entra sends it without the flag: capitalised Replace, the boolean as a string.
    disabled = _ok(
        scim_http.patch(
            f"Users/{report_id}",
            json={"schemas": [PATCH_OP], "Operations": [{"op": "Replace", "path": "active", "value": "False"}]},
        ),
        200,
    )
    assert disabled["active"] is False

    # The leaver flow ran: the delegation rooted at them is revoked, and their agent moved to the manager.
    human.refresh_from_db()
    delegation.refresh_from_db()
    agent.refresh_from_db()
    assert human.status == HumanStatus.LEFT
    assert delegation.status == DelegationStatus.REVOKED
    assert (agent.sponsor_id, agent.status) == (boss.pk, AgentStatus.ACTIVE)
