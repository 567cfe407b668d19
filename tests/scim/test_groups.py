"""SCIM Groups: members are humans; every change moves the version (ETag) and is audited."""

from __future__ import annotations

from typing import Any

import pytest

from audit.models import AuditEvent
from scim.models import ScimGroup
from tests.factories import make_human
from tests.scim.scim_support import GROUP, Idp, assert_scim_error

pytestmark = pytest.mark.django_db


@pytest.fixture
def idp() -> Idp:
    return Idp()


def members(*humans: Any) -> list[dict[str, str]]:
    return [{"value": str(h.pk)} for h in humans]


def test_a_group_is_created_read_and_listed_with_its_members() -> None:
    idp = Idp()
    ada, grace = make_human(name="Ada"), make_human(name="Grace")

    response = idp.post("Groups", {"schemas": [GROUP], "displayName": "Payments", "members": members(ada, grace)})

    assert response.status_code == 201, response.content
    body = response.json()
    assert response["Location"] == body["meta"]["location"]
    assert response["ETag"] == body["meta"]["version"] == 'W/"1"'
    # No server-filled display: a client reads back what it wrote (the console shows the names).
    assert body["members"] == [
        {"value": str(ada.pk), "$ref": f"http://testserver/scim/v2/Users/{ada.pk}", "type": "User"},
        {"value": str(grace.pk), "$ref": f"http://testserver/scim/v2/Users/{grace.pk}", "type": "User"},
    ]
    assert idp.get(f"Groups/{body['id']}").json() == body
    listed = idp.get('Groups?filter=displayName eq "payments"').json()
    assert [g["id"] for g in listed["Resources"]] == [body["id"]]
    assert idp.get(f"Groups/{body['id']}?excludedAttributes=members").json().get("members") is None


def test_members_added_and_removed_as_okta_and_entra_send_them(idp: Idp) -> None:
    ada, grace, alan = make_human(), make_human(), make_human()
    group = idp.post("Groups", {"schemas": [GROUP], "displayName": "Risk", "members": members(ada)}).json()

    added = idp.patch(f"Groups/{group['id']}", [{"op": "add", "path": "members", "value": members(grace, alan)}])
    # Entra: remove with the members as the value; Okta: a value filter in the path.
    idp.patch(f"Groups/{group['id']}", [{"op": "Remove", "path": "members", "value": members(grace)}])
    removed = idp.patch(f"Groups/{group['id']}", [{"op": "remove", "path": f'members[value eq "{alan.pk}"]'}])

    assert added.status_code == 200, added.content
    assert {m["value"] for m in added.json()["members"]} == {str(ada.pk), str(grace.pk), str(alan.pk)}
    assert [m["value"] for m in removed.json()["members"]] == [str(ada.pk)]
    assert removed.json()["meta"]["version"] == 'W/"4"'
    event = AuditEvent.objects.filter(action="scimgroup.update", target_id=group["id"]).latest("id")
    assert event.context["changes"] == {"members": {"added": [], "removed": [alan.pk]}}


def test_a_member_display_sent_as_okta_does_is_accepted_and_never_answered(idp: Idp) -> None:
    ada, grace = make_human(name="Ada"), make_human(name="Grace")
    created = idp.post(
        "Groups",
        {"schemas": [GROUP], "displayName": "Risk", "members": [{"value": str(ada.pk), "display": "ada@okta"}]},
    )

    added = idp.patch(
        f"Groups/{created.json()['id']}",
        [{"op": "add", "path": "members", "value": [{"value": str(grace.pk), "display": "Someone else"}]}],
    )

    assert created.status_code == 201 and added.status_code == 200, added.content
    assert [m for m in added.json()["members"] if "display" in m] == []
    assert [m["value"] for m in added.json()["members"]] == [str(ada.pk), str(grace.pk)]
    schema = idp.get(f"Schemas/{GROUP}").json()
    members_attribute = next(a for a in schema["attributes"] if a["name"] == "members")
    assert "display" not in [s["name"] for s in members_attribute["subAttributes"]]


def test_rename_with_if_match_and_a_stale_version_refused(idp: Idp) -> None:
    group = idp.post("Groups", {"schemas": [GROUP], "displayName": "Ops"}).json()

    renamed = idp.put(
        f"Groups/{group['id']}", {"schemas": [GROUP], "displayName": "Operations"}, **{"If-Match": 'W/"1"'}
    )

    assert renamed.status_code == 200 and renamed.json()["displayName"] == "Operations"
    assert_scim_error(
        idp.put(f"Groups/{group['id']}", {"schemas": [GROUP], "displayName": "Ops again"}, **{"If-Match": 'W/"1"'}),
        412,
        None,
    )


def test_bad_group_bodies_and_members_naming_no_user(idp: Idp) -> None:
    idp.post("Groups", {"schemas": [GROUP], "displayName": "A", "externalId": "g-1"})

    assert_scim_error(idp.post("Groups", {"schemas": [GROUP]}), 400, "invalidValue")
    assert_scim_error(
        idp.post("Groups", {"schemas": [GROUP], "displayName": "B", "members": ["x"]}), 400, "invalidValue"
    )
    # Members naming no User here are left out, not refused (IdPs push groups before or without users).
    unknown = idp.post(
        "Groups", {"schemas": [GROUP], "displayName": "B", "members": [{"value": "999999"}, {"value": "x-1"}]}
    )
    assert unknown.status_code == 201 and unknown.json()["members"] == []
    assert_scim_error(
        idp.post("Groups", {"schemas": [GROUP], "displayName": "C", "externalId": "g-1"}), 409, "uniqueness"
    )
    assert_scim_error(idp.get("Groups?filter=members gt 3"), 400, "invalidFilter")


def test_delete_removes_the_group_and_a_deleted_user_leaves_its_groups(idp: Idp) -> None:
    ada = make_human(email="ada@example.com")
    group = idp.post("Groups", {"schemas": [GROUP], "displayName": "G", "members": members(ada)}).json()

    idp.delete(f"Users/{ada.pk}")
    after = idp.get(f"Groups/{group['id']}").json()
    deleted = idp.delete(f"Groups/{group['id']}")

    assert after["members"] == [] and after["meta"]["version"] == 'W/"2"'
    assert deleted.status_code == 204
    assert not ScimGroup.objects.filter(pk=int(group["id"])).exists()
    assert_scim_error(idp.get(f"Groups/{group['id']}"), 404, None)


def test_a_root_search_lists_users_then_groups_and_a_filter_one_type_lacks_matches_none_of_it(idp: Idp) -> None:
    ada = make_human(email="ada@example.com")
    group = idp.post("Groups", {"schemas": [GROUP], "displayName": "G", "members": members(ada)}).json()
    search = {"schemas": ["urn:ietf:params:scim:api:messages:2.0:SearchRequest"]}

    everything = idp.post(".search", {**search, "attributes": ["displayName"]}).json()
    only_users = idp.post(".search", {**search, "filter": 'userName eq "ada@example.com"'}).json()
    second = idp.post(".search", {**search, "startIndex": 2, "count": 1}).json()

    assert [(r["id"], r.get("displayName")) for r in everything["Resources"]] == [
        (str(ada.pk), ada.name),
        (group["id"], "G"),
    ]
    assert [r["id"] for r in only_users["Resources"]] == [str(ada.pk)]
    assert (second["totalResults"], [r["id"] for r in second["Resources"]]) == (2, [group["id"]])
    assert_scim_error(idp.post(".search", {**search, "filter": 'shoeSize eq "9"'}), 400, "invalidFilter")
