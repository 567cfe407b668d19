"""scim.patching: RFC 7644 §3.5.2 PATCH on a SCIM resource held as JSON, with the request bodies Okta
and Microsoft Entra ID document. Pure: no database."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from scim.patching import ENTERPRISE_USER, GROUP_SCHEMA, PATCH_OP, USER_SCHEMA, ScimPatchError, apply_patch

OKTA_SCIM_20 = "https://developer.okta.com/docs/api/openapi/okta-scim/guides/scim-20"
ENTRA_SCIM_TUTORIAL = (
    "https://learn.microsoft.com/en-us/entra/identity/app-provisioning/use-scim-to-provision-users-and-groups"
)
ENTRA_KNOWN_ISSUES = (
    "https://learn.microsoft.com/en-us/entra/identity/app-provisioning/"
    "application-provisioning-config-problem-scim-compatibility"
)

META = {
    "resourceType": "User",
    "created": "2024-01-01T00:00:00Z",
    "lastModified": "2024-01-02T00:00:00Z",
    "location": "https://custos.example.com/scim/v2/Users/42",
    "version": 'W/"3"',
}


def a_user() -> dict[str, Any]:
    return {
        "schemas": [USER_SCHEMA, ENTERPRISE_USER],
        "id": "42",
        "externalId": "00ujl29u0le5T6Aj10h7",
        "userName": "ann.lee@example.com",
        "name": {"givenName": "Ann", "familyName": "Lee", "formatted": "Ann Lee"},
        "displayName": "Ann Lee",
        "title": "Engineer",
        "active": True,
        "emails": [{"value": "ann.lee@example.com", "type": "work", "primary": True}],
        ENTERPRISE_USER: {"department": "Payments", "manager": {"value": "7", "displayName": "Bob Stone"}},
        "meta": dict(META),
    }


def a_group() -> dict[str, Any]:
    return {
        "schemas": [GROUP_SCHEMA],
        "id": "abf4dd94-a4c0-4f67-89c9-76b03340cb9b",
        "displayName": "Test SCIMv2",
        "members": [
            {"value": "89bb1940-b905-4575-9e7f-6f887cfb368e", "display": "old.user@okta.local"},
            {"value": "f648f8d5ea4e4cd38e9c", "display": "entra.user@example.com"},
        ],
        "meta": {"resourceType": "Group"},
    }


def patch(*operations: dict[str, Any]) -> dict[str, Any]:
    return {"schemas": [PATCH_OP], "Operations": list(operations)}


def user_after(body: dict[str, Any], user: dict[str, Any] | None = None) -> dict[str, Any]:
    return apply_patch(user or a_user(), body, schema=USER_SCHEMA)


def group_after(body: dict[str, Any]) -> dict[str, Any]:
    return apply_patch(a_group(), body, schema=GROUP_SCHEMA)


def member_ids(group: dict[str, Any]) -> list[str]:
    return [member["value"] for member in group.get("members", [])]


# --- Okta ------------------------------------------------------------------------------------------


def test_okta_deactivation_without_a_path_sets_active_false() -> None:
    # OKTA_SCIM_20, "Update a specific User (PATCH)": Okta deactivates with a path-less replace.
    body = {"schemas": [PATCH_OP], "Operations": [{"op": "replace", "value": {"active": False}}]}
    after = user_after(body)
    assert after["active"] is False
    assert after["userName"] == "ann.lee@example.com"
    assert after["meta"] == META


def test_okta_group_rename_restating_the_id_renames_it() -> None:
    # OKTA_SCIM_20, "Update a specific Group name": the value restates the group's own id.
    body = {
        "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
        "Operations": [
            {"op": "replace", "value": {"id": "abf4dd94-a4c0-4f67-89c9-76b03340cb9b", "displayName": "Test SCIMv20"}}
        ],
    }
    after = group_after(body)
    assert after["displayName"] == "Test SCIMv20"
    assert after["id"] == "abf4dd94-a4c0-4f67-89c9-76b03340cb9b"
    assert len(after["members"]) == 2


def test_okta_membership_update_removes_by_filter_and_adds_a_list() -> None:
    # OKTA_SCIM_20, "Update specific Group membership".
    body = {
        "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
        "Operations": [
            {"op": "remove", "path": 'members[value eq "89bb1940-b905-4575-9e7f-6f887cfb368e"]'},
            {
                "op": "add",
                "path": "members",
                "value": [{"value": "23a35c27-23d3-4c03-b4c5-6443c09e7173", "display": "test.user@okta.local"}],
            },
        ],
    }
    after = group_after(body)
    assert member_ids(after) == ["f648f8d5ea4e4cd38e9c", "23a35c27-23d3-4c03-b4c5-6443c09e7173"]


def test_okta_full_membership_push_replaces_every_member() -> None:
    # OKTA_SCIM_20, "Update specific Group membership", the replace form.
    body = {
        "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
        "Operations": [
            {
                "op": "replace",
                "path": "members",
                "value": [
                    {"value": "23a35c27-23d3-4c03-b4c5-6443c09e7173", "display": "test.user@okta.local"},
                    {"value": "89bb1940-b905-4575-9e7f-6f887cfb368e", "display": "test.user@okta.local"},
                ],
            }
        ],
    }
    after = group_after(body)
    assert member_ids(after) == ["23a35c27-23d3-4c03-b4c5-6443c09e7173", "89bb1940-b905-4575-9e7f-6f887cfb368e"]


# --- Microsoft Entra ID ----------------------------------------------------------------------------


def test_entra_disable_with_a_capitalised_op_and_a_string_boolean() -> None:
    # ENTRA_KNOWN_ISSUES, "Requests made to disable users", without the aadOptscim062020 flag.
    body = {
        "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
        "Operations": [{"op": "Replace", "path": "active", "value": "False"}],
    }
    assert user_after(body)["active"] is False


def test_entra_disable_with_the_compliance_flag() -> None:
    # ENTRA_KNOWN_ISSUES, "Requests made to disable users", with the flag; ENTRA_SCIM_TUTORIAL "Disable User".
    body = {
        "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
        "Operations": [{"op": "replace", "path": "active", "value": False}],
    }
    assert user_after(body)["active"] is False


def test_entra_reactivation_with_a_string_boolean() -> None:
    inactive = a_user() | {"active": False}
    body = patch({"op": "Replace", "path": "active", "value": "True"})
    assert user_after(body, inactive)["active"] is True


def test_entra_multi_valued_update_replaces_the_work_email_and_family_name() -> None:
    # ENTRA_SCIM_TUTORIAL, "Update User [Multi-valued properties]".
    body = {
        "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
        "Operations": [
            {"op": "Replace", "path": 'emails[type eq "work"].value', "value": "updatedEmail@microsoft.com"},
            {"op": "Replace", "path": "name.familyName", "value": "updatedFamilyName"},
        ],
    }
    after = user_after(body)
    assert after["emails"] == [{"value": "updatedEmail@microsoft.com", "type": "work", "primary": True}]
    assert after["name"]["familyName"] == "updatedFamilyName"
    assert after["name"]["givenName"] == "Ann"


def test_entra_single_valued_update_replaces_the_user_name() -> None:
    # ENTRA_SCIM_TUTORIAL, "Update User [Single-valued properties]".
    body = {
        "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
        "Operations": [
            {"op": "Replace", "path": "userName", "value": "5b50642d-79fc-4410-9e90-4c077cdd1a59@testuser.com"}
        ],
    }
    assert user_after(body)["userName"] == "5b50642d-79fc-4410-9e90-4c077cdd1a59@testuser.com"


def test_entra_replace_of_several_attributes_without_the_flag() -> None:
    # ENTRA_KNOWN_ISSUES, "Requests to replace multiple attributes", without the flag.
    body = {
        "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
        "Operations": [
            {"op": "Replace", "path": "displayName", "value": "Pvlo"},
            {"op": "Replace", "path": 'emails[type eq "work"].value', "value": "TestBcwqnm@test.microsoft.com"},
            {"op": "Replace", "path": "name.givenName", "value": "Gtfd"},
            {"op": "Replace", "path": "name.familyName", "value": "Pkqf"},
            {"op": "Replace", "path": "externalId", "value": "Eqpj"},
            {
                "op": "Replace",
                "path": "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:employeeNumber",
                "value": "Eqpj",
            },
        ],
    }
    after = user_after(body)
    assert after["displayName"] == "Pvlo"
    assert after["emails"][0]["value"] == "TestBcwqnm@test.microsoft.com"
    assert after["name"] == {"givenName": "Gtfd", "familyName": "Pkqf", "formatted": "Ann Lee"}
    assert after["externalId"] == "Eqpj"
    assert after[ENTERPRISE_USER]["employeeNumber"] == "Eqpj"
    assert after[ENTERPRISE_USER]["department"] == "Payments"


def test_entra_replace_of_several_attributes_with_the_flag_uses_attribute_paths_as_keys() -> None:
    # ENTRA_KNOWN_ISSUES, "Requests to replace multiple attributes", with the flag.
    body = {
        "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
        "Operations": [
            {"op": "replace", "path": 'emails[type eq "work"].value', "value": "TestMhvaes@test.microsoft.com"},
            {
                "op": "replace",
                "value": {
                    "displayName": "Bjfe",
                    "name.givenName": "Kkom",
                    "name.familyName": "Unua",
                    "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:employeeNumber": "Aklq",
                },
            },
        ],
    }
    after = user_after(body)
    assert after["emails"][0]["value"] == "TestMhvaes@test.microsoft.com"
    assert (after["displayName"], after["name"]["givenName"], after["name"]["familyName"]) == ("Bjfe", "Kkom", "Unua")
    assert after[ENTERPRISE_USER]["employeeNumber"] == "Aklq"


def test_entra_add_of_a_single_value_attribute() -> None:
    # ENTRA_KNOWN_ISSUES, "Requests made to add a single-value string attribute", without the flag.
    body = {
        "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
        "Operations": [{"op": "Add", "path": "nickName", "value": "Babs"}],
    }
    assert user_after(body)["nickName"] == "Babs"


def test_entra_add_of_a_work_email_when_there_is_none_creates_it() -> None:
    no_email = a_user()
    del no_email["emails"]
    body = patch({"op": "Add", "path": 'emails[type eq "work"].value', "value": "ann@contoso.com"})
    assert user_after(body, no_email)["emails"] == [{"value": "ann@contoso.com", "type": "work"}]


def test_entra_manager_update_with_an_unqualified_path_and_a_list_value() -> None:
    # ENTRA_SCIM_TUTORIAL, "Example 5. Request from Microsoft Entra ID to an SCIM endpoint to update a user".
    body = {
        "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
        "Operations": [
            {
                "op": "Add",
                "path": "manager",
                "value": [
                    {
                        "$ref": "http://.../scim/Users/00aa00aa-bb11-cc22-dd33-44ee44ee44ee",
                        "value": "00aa00aa-bb11-cc22-dd33-44ee44ee44ee",
                    }
                ],
            }
        ],
    }
    manager = user_after(body)[ENTERPRISE_USER]["manager"]
    assert manager["value"] == "00aa00aa-bb11-cc22-dd33-44ee44ee44ee"


@pytest.mark.parametrize(
    "value",
    ["9", {"value": "9"}, [{"$ref": None, "value": "9"}]],
    ids=["bare id (Entra)", "object (RFC 7643)", "list of one"],
)
def test_a_manager_replace_accepts_each_shape_the_providers_send(value: Any) -> None:
    body = patch({"op": "Replace", "path": f"{ENTERPRISE_USER}:manager", "value": value})
    assert user_after(body)[ENTERPRISE_USER]["manager"] == {"value": "9"}


def test_a_manager_value_sub_attribute_path_replaces_the_id_only() -> None:
    body = patch({"op": "replace", "path": f"{ENTERPRISE_USER}:manager.value", "value": "9"})
    assert user_after(body)[ENTERPRISE_USER]["manager"]["value"] == "9"


def test_a_bare_manager_id_inside_a_pathless_value_is_read_as_the_manager() -> None:
    body = patch({"op": "replace", "value": {f"{ENTERPRISE_USER}:manager": "9", "department": "Risk"}})
    extension = user_after(body)[ENTERPRISE_USER]
    assert extension == {"manager": {"value": "9"}, "department": "Risk"}


def test_an_extension_object_with_a_bare_manager_id() -> None:
    body = patch({"op": "replace", "value": {ENTERPRISE_USER: {"manager": "9", "department": "Risk"}}})
    extension = user_after(body)[ENTERPRISE_USER]
    assert extension["manager"]["value"] == "9"
    assert extension["department"] == "Risk"


@pytest.mark.parametrize("path", [f"{ENTERPRISE_USER}:manager", "manager"])
def test_removing_the_manager_clears_it_and_keeps_the_department(path: str) -> None:
    extension = user_after(patch({"op": "Remove", "path": path}))[ENTERPRISE_USER]
    assert extension == {"department": "Payments"}


def test_department_replace_by_urn_path() -> None:
    body = patch({"op": "Replace", "path": f"{ENTERPRISE_USER}:department", "value": "Risk"})
    assert user_after(body)[ENTERPRISE_USER]["department"] == "Risk"


def test_entra_group_rename() -> None:
    # ENTRA_SCIM_TUTORIAL, "Update Group [Non-member attributes]".
    body = {
        "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
        "Operations": [
            {"op": "Replace", "path": "displayName", "value": "1879db59-3bdf-4490-ad68-ab880a269474updatedDisplayName"}
        ],
    }
    assert group_after(body)["displayName"] == "1879db59-3bdf-4490-ad68-ab880a269474updatedDisplayName"


def test_entra_add_members_as_a_list() -> None:
    # ENTRA_SCIM_TUTORIAL, "Update Group [Add Members]".
    body = {
        "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
        "Operations": [{"op": "Add", "path": "members", "value": [{"$ref": None, "value": "f648f8d5ea4e4cd38e9c"}]}],
    }
    # Already a member: adding it again keeps one entry (RFC 7644 §3.5.2.1).
    assert member_ids(group_after(body)).count("f648f8d5ea4e4cd38e9c") == 1
    body["Operations"][0]["value"] = [{"$ref": None, "value": "0a0a0a0a"}]
    assert member_ids(group_after(body))[-1] == "0a0a0a0a"


def test_entra_remove_members_listed_in_the_value() -> None:
    # ENTRA_SCIM_TUTORIAL, "Update Group [Remove Members]"; ENTRA_KNOWN_ISSUES, without the flag.
    body = {
        "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
        "Operations": [{"op": "Remove", "path": "members", "value": [{"$ref": None, "value": "f648f8d5ea4e4cd38e9c"}]}],
    }
    assert member_ids(group_after(body)) == ["89bb1940-b905-4575-9e7f-6f887cfb368e"]


def test_entra_remove_a_member_by_filter() -> None:
    # ENTRA_KNOWN_ISSUES, "Requests made to remove a group member", with the flag.
    body = {
        "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
        "Operations": [{"op": "remove", "path": 'members[value eq "89bb1940-b905-4575-9e7f-6f887cfb368e"]'}],
    }
    assert member_ids(group_after(body)) == ["f648f8d5ea4e4cd38e9c"]


# --- RFC 7644 §3.5.2 -------------------------------------------------------------------------------


def test_add_without_a_path_merges_a_complex_attribute() -> None:
    after = user_after(patch({"op": "add", "value": {"name": {"middleName": "Q"}, "title": "Lead"}}))
    assert after["name"] == {"givenName": "Ann", "familyName": "Lee", "formatted": "Ann Lee", "middleName": "Q"}
    assert after["title"] == "Lead"


def test_replace_of_a_complex_attribute_with_a_path_replaces_the_sub_attributes_given() -> None:
    after = user_after(patch({"op": "replace", "path": "name", "value": {"familyName": "Stone"}}))
    assert after["name"]["familyName"] == "Stone"


def test_remove_of_a_simple_attribute() -> None:
    assert "title" not in user_after(patch({"op": "remove", "path": "title"}))


def test_remove_of_every_member() -> None:
    assert "members" not in group_after(patch({"op": "remove", "path": "members"}))


def test_operations_apply_in_order() -> None:
    after = user_after(
        patch({"op": "replace", "path": "title", "value": "A"}, {"op": "replace", "path": "title", "value": "B"})
    )
    assert after["title"] == "B"


def test_attribute_names_ignore_case() -> None:
    assert user_after(patch({"op": "replace", "path": "DISPLAYNAME", "value": "X"}))["displayName"] == "X"


def test_emails_at_special_use_domains_are_kept() -> None:
    # Okta's documented users are @okta.local, the suite's @example.test: Django accepts both.
    user = a_user() | {"emails": [{"value": "ann@example.test", "type": "work", "primary": True}]}
    body = patch({"op": "replace", "path": 'emails[type eq "work"].value', "value": "test.user@okta.local"})
    assert user_after(body, user)["emails"][0]["value"] == "test.user@okta.local"


def test_the_argument_is_left_unchanged() -> None:
    user = a_user()
    before = copy.deepcopy(user)
    user_after(patch({"op": "replace", "path": "active", "value": False}), user)
    assert user == before


def test_a_failed_operation_leaves_nothing_half_applied() -> None:
    user = a_user()
    with pytest.raises(ScimPatchError):
        apply_patch(
            user,
            patch({"op": "replace", "path": "title", "value": "X"}, {"op": "replace", "path": "id", "value": "1"}),
            schema=USER_SCHEMA,
        )
    assert user["title"] == "Engineer"


# --- Errors ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("operation", "scim_type"),
    [
        ({"op": "replace", "path": "id", "value": "43"}, "mutability"),
        ({"op": "remove", "path": "id"}, "mutability"),
        ({"op": "replace", "path": "meta.lastModified", "value": "2020-01-01T00:00:00Z"}, "mutability"),
        ({"op": "replace", "path": "meta", "value": {}}, "mutability"),
        ({"op": "replace", "value": {"id": "43"}}, "mutability"),
        ({"op": "remove", "path": "userName"}, "mutability"),
        ({"op": "replace", "path": "nosuchattribute", "value": "x"}, "invalidPath"),
        ({"op": "replace", "path": 'emails[type eq "work"', "value": "x"}, "invalidPath"),
        ({"op": "replace", "path": f"{ENTERPRISE_USER}:nosuch", "value": "x"}, "invalidPath"),
        ({"op": "remove"}, "noTarget"),
        ({"op": "replace", "path": "active", "value": "maybe"}, "invalidValue"),
        ({"op": "replace", "path": "name", "value": "Ann Lee"}, "invalidValue"),
        ({"op": "frobnicate", "path": "title", "value": "x"}, "invalidValue"),
        ({"op": "add", "path": "title"}, "invalidValue"),
    ],
    ids=lambda item: item if isinstance(item, str) else str(item.get("path", item.get("op"))),
)
def test_a_user_patch_it_cannot_apply_is_refused_with_its_scim_type(operation: dict[str, Any], scim_type: str) -> None:
    with pytest.raises(ScimPatchError) as refused:
        user_after(patch(operation))
    assert refused.value.scim_type == scim_type
    assert refused.value.status == 400
    assert refused.value.detail


def test_a_group_id_change_is_refused() -> None:
    with pytest.raises(ScimPatchError) as refused:
        group_after(patch({"op": "replace", "value": {"id": "another", "displayName": "X"}}))
    assert refused.value.scim_type == "mutability"


def test_a_replace_whose_filter_matches_no_member_is_refused_with_no_target() -> None:
    with pytest.raises(ScimPatchError) as refused:
        group_after(patch({"op": "replace", "path": 'members[value eq "nobody"].display', "value": "x"}))
    assert refused.value.scim_type == "noTarget"


@pytest.mark.parametrize(
    "body",
    [
        [],
        {"Operations": [{"op": "replace", "path": "title", "value": "x"}]},
        {"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "Operations": []},
        {"schemas": [PATCH_OP], "Operations": []},
        {"schemas": [PATCH_OP]},
        {"schemas": [PATCH_OP], "Operations": ["replace"]},
    ],
    ids=["not an object", "no schemas", "wrong schema", "no operations", "missing Operations", "not objects"],
)
def test_a_body_that_is_not_a_patch_op_is_refused_as_invalid_syntax(body: Any) -> None:
    with pytest.raises(ScimPatchError) as refused:
        user_after(body)
    assert refused.value.scim_type == "invalidSyntax"
