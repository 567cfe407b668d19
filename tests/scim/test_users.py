"""SCIM Users: what an identity provider creates, reads, pages, replaces, patches and deletes, and what
that does to governance (the leaver flow, reviewer routing, campaign filters)."""

from __future__ import annotations

from typing import Any

import pytest

from audit.models import AuditEvent
from governance import runtime, services
from governance.models import Agent, AgentStatus, Delegation, DelegationStatus, Human, HumanStatus, Offboarding
from reviews.models import ReviewerRule
from reviews.routing import Org
from scim.filtering import users_q
from scim.models import ScimUser
from tests.factories import SYSTEM, make_agent, make_chain, make_chain_tokens, make_human
from tests.scim.scim_support import ENTERPRISE, SCIM_JSON, USER, Idp, assert_scim_error, user_body

pytestmark = pytest.mark.django_db


@pytest.fixture
def idp() -> Idp:
    return Idp()


def check(token: str, resource: str) -> tuple[str, str]:
    result = runtime.check(credential=token, action="read", resource=resource, context={"intent": "test"})
    return ("allow" if result.outcome.allowed else "deny"), result.outcome.reason


def create(idp: Idp, email: str, **extra: Any) -> dict[str, Any]:
    response = idp.post("Users", user_body(email, **extra))
    assert response.status_code == 201, response.content
    return response.json()


# --- Create and read ------------------------------------------------------------------------------


def test_a_created_user_is_a_human_with_its_location_etag_and_enterprise_attributes(idp: Idp) -> None:
    manager = make_human(name="Grace Hopper")

    response = idp.post(
        "Users",
        user_body(
            "ada@example.com",
            displayName="Ada Lovelace",
            title="Analyst",
            externalId="okta-00u1",
            enterprise={"department": "Payments", "manager": {"value": str(manager.pk)}},
        ),
    )

    assert response.status_code == 201
    assert response["Content-Type"].startswith(SCIM_JSON)
    body = response.json()
    human = Human.objects.get(pk=int(body["id"]))
    assert (human.email, human.name, human.title, human.department, human.manager_id, human.external_id) == (
        "ada@example.com",
        "Ada Lovelace",
        "Analyst",
        "Payments",
        manager.pk,
        "okta-00u1",
    )
    assert response["Location"] == body["meta"]["location"] == f"http://testserver/scim/v2/Users/{human.pk}"
    assert response["ETag"] == body["meta"]["version"]
    assert body["meta"]["version"].startswith('W/"')
    # Only what the IdP sent: no name.formatted it did not set, no server-filled manager.displayName.
    assert body["name"] == {"givenName": "Ada", "familyName": "Lovelace"}
    assert body["displayName"] == "Ada Lovelace"
    assert body[ENTERPRISE]["manager"] == {
        "value": str(manager.pk),
        "$ref": f"http://testserver/scim/v2/Users/{manager.pk}",
    }
    assert body["schemas"] == [USER, ENTERPRISE]
    assert body["active"] is True
    assert idp.get(f"Users/{human.pk}").json() == body


def test_a_console_made_human_reads_as_a_user_with_their_email_as_user_name(idp: Idp) -> None:
    human = make_human(name="Alan Turing", email="alan@example.com", department="Research")

    body = idp.get(f"Users/{human.pk}").json()

    assert body["userName"] == "alan@example.com"
    assert body["name"] == {"formatted": "Alan Turing", "givenName": "Alan", "familyName": "Turing"}
    assert body["emails"] == [{"value": "alan@example.com", "type": "work", "primary": True}]
    assert body[ENTERPRISE] == {"department": "Research"}


def test_a_user_name_that_is_not_an_email_takes_the_primary_email(idp: Idp) -> None:
    body = user_body("x", emails=[{"value": "other@example.com"}, {"value": "ada@example.com", "primary": True}])
    body["userName"] = "ada.lovelace"

    created = idp.post("Users", body).json()

    assert created["userName"] == "ada.lovelace"
    assert Human.objects.get(pk=int(created["id"])).email == "ada@example.com"


def test_user_names_are_unique_whatever_their_case(idp: Idp) -> None:
    create(idp, "ada@example.com")
    make_human(email="grace@example.com")

    assert_scim_error(idp.post("Users", user_body("ADA@example.com")), 409, "uniqueness")
    assert_scim_error(idp.post("Users", user_body("grace@example.com")), 409, "uniqueness")


# --- Lists: paging, filters, attributes -----------------------------------------------------------


def test_lists_page_from_a_one_based_start_index(idp: Idp) -> None:
    ids = [create(idp, f"p{n}@example.com")["id"] for n in range(5)]

    page = idp.get("Users?startIndex=2&count=2").json()

    assert page["schemas"] == ["urn:ietf:params:scim:api:messages:2.0:ListResponse"]
    assert (page["totalResults"], page["startIndex"], page["itemsPerPage"]) == (5, 2, 2)
    assert [r["id"] for r in page["Resources"]] == ids[1:3]
    assert idp.get("Users?count=0").json()["Resources"] == []
    assert idp.get("Users?startIndex=0&count=1").json()["startIndex"] == 1
    assert_scim_error(idp.get("Users?count=lots"), 400, "invalidValue")


def test_a_filter_selects_users_and_a_bad_one_is_invalid_filter(idp: Idp) -> None:
    ada = create(idp, "ada@example.com")
    create(idp, "grace@example.com")

    found = idp.get('Users?filter=userName eq "ADA@example.com"').json()

    assert [r["id"] for r in found["Resources"]] == [ada["id"]]
    assert_scim_error(idp.get("Users?filter=userName zz 1"), 400, "invalidFilter")
    assert_scim_error(idp.get('Users?filter=shoeSize eq "9"'), 400, "invalidFilter")


def test_a_search_request_posted_to_dot_search_answers_like_a_get(idp: Idp) -> None:
    ada = create(idp, "ada@example.com")
    create(idp, "grace@example.com")

    response = idp.post(
        "Users/.search",
        {
            "schemas": ["urn:ietf:params:scim:api:messages:2.0:SearchRequest"],
            "filter": 'userName sw "ada"',
            "attributes": ["userName"],
        },
    )

    # No enterprise attribute in the answer, so no enterprise URN in its schemas (RFC 7643 §3).
    assert response.json()["Resources"] == [{"schemas": [USER], "id": ada["id"], "userName": "ada@example.com"}]


def test_attributes_and_excluded_attributes_shape_the_answer(idp: Idp) -> None:
    ada = create(idp, "ada@example.com", enterprise={"department": "Payments"})

    only = idp.get(f"Users/{ada['id']}?attributes=userName,name.givenName,{ENTERPRISE}:department").json()
    without = idp.get(f"Users/{ada['id']}?excludedAttributes=emails,name.familyName,meta").json()

    assert only == {
        "schemas": [USER, ENTERPRISE],
        "id": ada["id"],
        "userName": "ada@example.com",
        "name": {"givenName": "Ada"},
        ENTERPRISE: {"department": "Payments"},
    }
    assert "emails" not in without and "meta" not in without
    assert without["name"] == {"givenName": "Ada"}
    no_extension = idp.get(f"Users/{ada['id']}?excludedAttributes={ENTERPRISE}:department").json()
    assert ENTERPRISE not in no_extension and no_extension["schemas"] == [USER]
    assert without["id"] == ada["id"]


# --- Replace, patch, versions ---------------------------------------------------------------------


def test_put_replaces_and_if_match_refuses_a_stale_version(idp: Idp) -> None:
    ada = create(idp, "ada@example.com", title="Analyst")
    stale = ada["meta"]["version"]
    body = user_body("ada@example.com", title="Lead analyst")

    replaced = idp.put(f"Users/{ada['id']}", body, **{"If-Match": stale})

    assert replaced.status_code == 200
    assert replaced.json()["title"] == "Lead analyst"
    assert replaced["ETag"] != stale
    assert_scim_error(idp.put(f"Users/{ada['id']}", body, **{"If-Match": stale}), 412, None)
    assert idp.get(f"Users/{ada['id']}", **{"If-None-Match": replaced["ETag"]}).status_code == 304


def test_a_patch_as_entra_sends_it_renames_and_moves_the_department(idp: Idp) -> None:
    ada = create(idp, "ada@example.com")

    response = idp.patch(
        f"Users/{ada['id']}",
        [
            {"op": "Replace", "path": "displayName", "value": "Ada King"},
            {"op": "Add", "path": f"{ENTERPRISE}:department", "value": "Risk"},
        ],
    )

    assert response.status_code == 200, response.content
    human = Human.objects.get(pk=int(ada["id"]))
    assert (human.name, human.department) == ("Ada King", "Risk")
    event = AuditEvent.objects.filter(action="human.update", target_id=ada["id"]).latest("id")
    assert event.context["changes"] == {"name": ["Ada Lovelace", "Ada King"], "department": ["", "Risk"]}


def test_a_manager_change_is_what_reviewer_routing_sees(idp: Idp) -> None:
    first, second = make_human(), make_human()
    ada = create(idp, "ada@example.com", enterprise={"manager": {"value": str(first.pk)}})
    agent = make_agent(sponsor=Human.objects.get(pk=int(ada["id"])))
    assert Org.load().candidate(ReviewerRule.SPONSOR_MANAGER, agent.pk) == first.pk

    idp.patch(
        f"Users/{ada['id']}", [{"op": "replace", "path": f"{ENTERPRISE}:manager", "value": {"value": str(second.pk)}}]
    )

    assert Org.load().candidate(ReviewerRule.SPONSOR_MANAGER, agent.pk) == second.pk


def test_a_department_change_is_what_campaign_filters_see(idp: Idp) -> None:
    ada = create(idp, "ada@example.com", enterprise={"department": "Payments"})

    idp.patch(f"Users/{ada['id']}", [{"op": "replace", "path": f"{ENTERPRISE}:department", "value": "Risk"}])

    assert Org.load().humans[int(ada["id"])].department == "Risk"


def test_a_manager_display_name_sent_is_accepted_and_never_answered(idp: Idp) -> None:
    boss, other = make_human(name="Grace Hopper"), make_human(name="Alan Turing")
    ada = create(idp, "ada@example.com", enterprise={"manager": {"value": str(boss.pk), "displayName": "Whoever"}})

    patched = idp.patch(
        f"Users/{ada['id']}",
        [{"op": "replace", "path": f"{ENTERPRISE}:manager", "value": {"value": str(other.pk), "displayName": "X"}}],
    )

    assert ada[ENTERPRISE]["manager"] == {"value": str(boss.pk), "$ref": f"http://testserver/scim/v2/Users/{boss.pk}"}
    assert patched.status_code == 200, patched.content
    assert patched.json()[ENTERPRISE]["manager"] == {
        "value": str(other.pk),
        "$ref": f"http://testserver/scim/v2/Users/{other.pk}",
    }
    assert Human.objects.get(pk=int(ada["id"])).manager_id == other.pk
    schema = idp.get(f"Schemas/{ENTERPRISE}").json()
    manager = next(a for a in schema["attributes"] if a["name"] == "manager")
    assert [s["name"] for s in manager["subAttributes"]] == ["value", "$ref"]


def test_removed_names_read_back_absent_while_the_console_keeps_a_name(idp: Idp) -> None:
    ada = create(idp, "ada@example.com", displayName="Ada L.", name={"givenName": "Ada", "formatted": "Ada Lovelace"})
    assert (ada["displayName"], ada["name"]) == ("Ada L.", {"givenName": "Ada", "formatted": "Ada Lovelace"})

    no_display = idp.patch(f"Users/{ada['id']}", [{"op": "remove", "path": "displayName"}]).json()
    assert "displayName" not in no_display and idp.get(f"Users/{ada['id']}").json().get("displayName") is None
    assert Human.objects.get(pk=int(ada["id"])).name == "Ada Lovelace"  # name.formatted, next in line

    no_name = idp.patch(f"Users/{ada['id']}", [{"op": "remove", "path": "name"}]).json()
    assert "name" not in no_name and "name" not in idp.get(f"Users/{ada['id']}").json()
    human = Human.objects.get(pk=int(ada["id"]))
    assert human.name == "ada@example.com"  # never empty: the userName, last in line
    assert not Human.objects.filter(users_q("displayName pr")).filter(pk=human.pk).exists()

    blank = idp.put(f"Users/{ada['id']}", {**user_body("ada@example.com"), "displayName": ""}).json()
    assert "displayName" not in blank and blank["name"] == {"givenName": "Ada", "familyName": "Lovelace"}
    assert Human.objects.get(pk=human.pk).name == "Ada Lovelace"
    profile = ScimUser.objects.get(human=human)
    assert (profile.display_name, profile.formatted_name) == ("", "")


def test_a_manager_loop_and_an_unknown_manager_are_invalid_values(idp: Idp) -> None:
    boss = create(idp, "boss@example.com")
    ada = create(idp, "ada@example.com", enterprise={"manager": {"value": boss["id"]}})
    loop = {"op": "replace", "path": f"{ENTERPRISE}:manager", "value": {"value": ada["id"]}}

    assert_scim_error(idp.patch(f"Users/{boss['id']}", [loop]), 400, "invalidValue")
    assert_scim_error(
        idp.post("Users", user_body("x@example.com", enterprise={"manager": {"value": "999999"}})), 400, "invalidValue"
    )
    assert Human.objects.get(pk=int(boss["id"])).manager_id is None


def test_bad_bodies_answer_each_scim_type(idp: Idp) -> None:
    ada = create(idp, "ada@example.com")

    assert_scim_error(idp.post("Users", "{not json"), 400, "invalidSyntax")
    assert_scim_error(idp.post("Users", {"schemas": [USER]}), 400, "invalidValue")
    assert_scim_error(idp.post("Users", user_body("ada2@example.com", active="perhaps")), 400, "invalidValue")
    assert_scim_error(
        idp.patch(f"Users/{ada['id']}", [{"op": "replace", "path": "shoeSize", "value": 9}]), 400, "invalidPath"
    )
    assert_scim_error(
        idp.patch(f"Users/{ada['id']}", [{"op": "replace", "path": "id", "value": "7"}]), 400, "mutability"
    )
    assert_scim_error(
        idp.patch(f"Users/{ada['id']}", [{"op": "replace", "path": 'emails[type eq "home"].value', "value": 1}]),
        400,
        "invalidValue",
    )
    assert_scim_error(idp.send("put", f"Users/{ada['id']}", {"op": "x"}), 400, "invalidValue")
    assert_scim_error(idp.get("Users/999999"), 404, None)
    assert_scim_error(idp.get("Users/not-a-number"), 404, None)
    assert_scim_error(idp.get("Bogus"), 404, None)
    assert_scim_error(idp.send("post", f"Users/{ada['id']}", {}), 405, None)


# --- Deactivation and deletion: the leaver flow ---------------------------------------------------


def test_active_false_offboards_the_human_as_a_leaver_at_once(idp: Idp) -> None:
    chain = make_chain(depth=2)
    tokens = make_chain_tokens(chain)
    human = chain["human"]
    manager = make_human()
    # (scim2-models refuses emails on reserved domains such as the factories' example.test.)
    services.human_update(actor=SYSTEM, human=human, manager=manager, email=f"leaver{human.pk}@example.com")
    resource = chain["resource"].name
    assert check(tokens["tokens"][1], resource) == ("allow", "allowed")

    response = idp.patch(f"Users/{human.pk}", [{"op": "replace", "value": {"active": False}}])

    assert response.status_code == 200, response.content
    assert response.json()["active"] is False
    human.refresh_from_db()
    assert human.status == HumanStatus.LEFT
    assert check(tokens["tokens"][1], resource)[0] == "deny"
    assert set(Delegation.objects.filter(root_human=human).values_list("status", flat=True)) == {
        DelegationStatus.REVOKED
    }
    assert Agent.objects.get(pk=chain["agents"][0].pk).sponsor_id == manager.pk
    offboarding = Offboarding.objects.get(human=human)
    assert offboarding.actor_label == f"scim: {idp.client_row.name}"


def test_a_leaver_reactivated_by_the_idp_is_active_and_can_leave_again(idp: Idp) -> None:
    ada = create(idp, "ada@example.com")
    idp.patch(f"Users/{ada['id']}", [{"op": "replace", "path": "active", "value": False}])

    back = idp.patch(f"Users/{ada['id']}", [{"op": "replace", "path": "active", "value": True}])
    human = Human.objects.get(pk=int(ada["id"]))
    assert back.json()["active"] is True and human.status == HumanStatus.ACTIVE
    agent = make_agent(sponsor=human)
    idp.patch(f"Users/{ada['id']}", [{"op": "replace", "path": "active", "value": False}])

    assert Human.objects.get(pk=human.pk).status == HumanStatus.LEFT
    assert Offboarding.objects.filter(human=human).count() == 2
    assert Agent.objects.get(pk=agent.pk).status == AgentStatus.SUSPENDED  # no manager: suspended


def test_active_true_reactivates_a_suspended_human(idp: Idp) -> None:
    human = make_human(email="suspended@example.com")
    services.human_set_status(actor=SYSTEM, human=human, status=HumanStatus.SUSPENDED)

    idp.patch(f"Users/{human.pk}", [{"op": "replace", "path": "active", "value": True}])

    assert Human.objects.get(pk=human.pk).status == HumanStatus.ACTIVE


def test_a_leaver_is_never_reactivated_unless_the_idp_says_active_true(idp: Idp) -> None:
    ada = create(idp, "ada@example.com", displayName="Ada Lovelace")
    left = idp.patch(f"Users/{ada['id']}", [{"op": "replace", "path": "active", "value": False}]).json()
    assert Human.objects.get(pk=int(ada["id"])).status == HumanStatus.LEFT
    without_active = {k: v for k, v in left.items() if k not in ("meta", "active")}

    put = idp.put(f"Users/{ada['id']}", {**without_active, "title": "Gone"})
    renamed = idp.patch(f"Users/{ada['id']}", [{"op": "replace", "path": "displayName", "value": "Ada King"}])
    removal = idp.patch(f"Users/{ada['id']}", [{"op": "remove", "path": "active"}])
    unassigned = idp.patch(f"Users/{ada['id']}", [{"op": "replace", "path": "active", "value": None}])

    assert put.status_code == 200 and put.json()["active"] is False and put.json()["title"] == "Gone"
    assert renamed.status_code == 200 and renamed.json()["active"] is False
    assert_scim_error(removal, 400, "mutability")
    assert_scim_error(unassigned, 400, "mutability")
    human = Human.objects.get(pk=int(ada["id"]))
    assert (human.status, human.name, human.title) == (HumanStatus.LEFT, "Ada King", "Gone")
    assert not AuditEvent.objects.filter(target_type="human", target_id=ada["id"], action="human.active").exists()
    assert Offboarding.objects.filter(human=human).count() == 1
    # A POST without active still creates an active human; /Schemas says active is required so that no
    # client tries to remove it.
    body = user_body("grace@example.com")
    del body["active"]
    assert idp.post("Users", body).json()["active"] is True
    schema = idp.get(f"Schemas/{USER}").json()
    assert next(a for a in schema["attributes"] if a["name"] == "active")["required"] is True


def test_a_suspended_human_stays_suspended_through_a_put_without_active(idp: Idp) -> None:
    human = make_human(email="suspended@example.com", name="Sue Pended")
    services.human_set_status(actor=SYSTEM, human=human, status=HumanStatus.SUSPENDED)
    body = user_body("suspended@example.com")
    del body["active"]

    response = idp.put(f"Users/{human.pk}", body)

    assert response.status_code == 200 and response.json()["active"] is False
    assert Human.objects.get(pk=human.pk).status == HumanStatus.SUSPENDED


def test_delete_offboards_and_the_user_is_gone_from_scim(idp: Idp) -> None:
    ada = create(idp, "ada@example.com")

    response = idp.delete(f"Users/{ada['id']}")

    assert response.status_code == 204 and response.content == b""
    assert Human.objects.get(pk=int(ada["id"])).status == HumanStatus.LEFT
    assert_scim_error(idp.get(f"Users/{ada['id']}"), 404, None)
    assert idp.get("Users").json()["totalResults"] == 0
    assert ScimUser.objects.get(human_id=int(ada["id"])).deleted_at is not None
    assert_scim_error(idp.delete(f"Users/{ada['id']}"), 404, None)


def test_every_change_is_audited_with_the_client_as_actor(idp: Idp) -> None:
    ada = create(idp, "ada@example.com")
    idp.patch(f"Users/{ada['id']}", [{"op": "replace", "path": "title", "value": "Lead"}])
    idp.delete(f"Users/{ada['id']}")

    events = AuditEvent.objects.filter(target_type="human", target_id=ada["id"]).exclude(actor_label="tests")
    assert {e.action for e in events} >= {
        "human.create",
        "human.update",
        "human.offboard",
        "human.left",
        "scimuser.delete",
    }
    assert {(e.actor_kind, e.actor_label, e.actor_id) for e in events} == {
        ("system", "scim: Okta", f"scimclient:{idp.client_row.pk}")
    }
