"""SCIM clients: created and revoked by admins in the console, authenticating every SCIM request; and
the issue's "done when": a client made in the console provisions, renames, moves and deactivates a user."""

from __future__ import annotations

import re

import pytest
from django.test import Client

from audit.models import AuditEvent
from governance.models import Agent, Human, HumanStatus, Offboarding
from scim.models import ScimClient
from tests.factories import make_admin, make_agent, make_auditor, make_human, make_reviewer
from tests.scim.scim_support import ENTERPRISE, PATCH_OP, SCIM_JSON, Idp, assert_scim_error, user_body

pytestmark = pytest.mark.django_db


def console(user: object) -> Client:
    client = Client()
    client.force_login(user)  # type: ignore[arg-type]
    return client


def test_no_unknown_malformed_or_revoked_bearer_gets_in() -> None:
    idp = Idp()

    assert_scim_error(Client().get("/scim/v2/Users"), 401, None)
    assert_scim_error(Client(HTTP_AUTHORIZATION="Bearer cs_abcdefghij_nope").get("/scim/v2/Users"), 401, None)
    assert_scim_error(Client(HTTP_AUTHORIZATION="Basic dXNlcjpwdw==").get("/scim/v2/Users"), 401, None)
    assert_scim_error(Client(HTTP_AUTHORIZATION=f"Bearer {idp.secret}x").get("/scim/v2/Users"), 401, None)
    assert idp.get("Users").status_code == 200
    assert ScimClient.objects.get(pk=idp.client_row.pk).last_used_at is not None

    console(make_admin()).post(f"/scim-clients/{idp.client_row.pk}/revoke/", {"reason": "rotated"})

    refused = idp.get("Users")
    assert_scim_error(refused, 401, None)
    assert refused["WWW-Authenticate"].startswith("Bearer")


def test_the_secret_is_stored_as_a_keyed_hash_only() -> None:
    idp = Idp()
    row = ScimClient.objects.get(pk=idp.client_row.pk)

    assert idp.secret.startswith(f"cs_{row.prefix}_")
    assert idp.secret not in row.hashed and len(row.hashed) == 64
    event = AuditEvent.objects.get(action="scimclient.create", target_id=str(row.pk))
    assert idp.secret not in str(event.context)


def test_only_admins_create_and_revoke_auditors_read_reviewers_see_nothing() -> None:
    admin, auditor, reviewer = make_admin(), make_auditor(), make_reviewer()

    created = console(admin).post("/scim-clients/", {"name": "Entra ID"})
    assert created.status_code == 201
    secret = re.search(r"cs_[a-z0-9]+_[A-Za-z0-9]+", created.content.decode())
    assert secret is not None
    client = ScimClient.objects.get(name="Entra ID")

    assert console(auditor).get("/scim-clients/").status_code == 200
    assert "Entra ID" in console(auditor).get("/scim-clients/").content.decode()
    assert secret.group(0) not in console(admin).get("/scim-clients/").content.decode()
    assert console(auditor).post("/scim-clients/", {"name": "x"}).status_code == 403
    assert console(auditor).post(f"/scim-clients/{client.pk}/revoke/", {"reason": "x"}).status_code == 403
    assert console(reviewer).get("/scim-clients/").status_code == 403
    assert console(admin).post("/scim-clients/", {"name": ""}).status_code == 422
    console(admin).post(f"/scim-clients/{client.pk}/revoke/", {"reason": ""})
    assert ScimClient.objects.get(pk=client.pk).revoked_at is None  # a revocation needs its reason


def test_done_when_a_console_made_client_provisions_renames_moves_and_deactivates_a_user() -> None:
    admin = make_admin()
    page = console(admin).post("/scim-clients/", {"name": "Okta"}).content.decode()
    found = re.search(r"cs_[a-z0-9]+_[A-Za-z0-9]+", page)
    assert found is not None
    idp = Client(HTTP_AUTHORIZATION=f"Bearer {found.group(0)}")
    manager = make_human(name="Grace Hopper", email="grace@example.com")

    def send(method: str, path: str, body: object) -> dict[str, object]:
        response = getattr(idp, method)(f"/scim/v2/{path}", body, content_type=SCIM_JSON)
        assert response.status_code in (200, 201), response.content
        return response.json()

    user = send(
        "post",
        "Users",
        user_body("ada@example.com", enterprise={"department": "Payments", "manager": {"value": str(manager.pk)}}),
    )
    human = Human.objects.get(pk=int(str(user["id"])))
    agent = make_agent(sponsor=human)
    send(
        "patch",
        f"Users/{human.pk}",
        {"schemas": [PATCH_OP], "Operations": [{"op": "replace", "path": "displayName", "value": "Ada King"}]},
    )
    send(
        "patch",
        f"Users/{human.pk}",
        {"schemas": [PATCH_OP], "Operations": [{"op": "replace", "path": f"{ENTERPRISE}:department", "value": "Risk"}]},
    )
    done = send(
        "patch",
        f"Users/{human.pk}",
        {"schemas": [PATCH_OP], "Operations": [{"op": "replace", "path": "active", "value": False}]},
    )

    human.refresh_from_db()
    assert (human.name, human.department, human.manager_id, human.status) == (
        "Ada King",
        "Risk",
        manager.pk,
        HumanStatus.LEFT,
    )
    assert done["active"] is False
    offboarding = Offboarding.objects.get(human=human)
    assert offboarding.reason == "deactivated by scim: Okta"
    assert Agent.objects.get(pk=agent.pk).sponsor_id == manager.pk  # the leaver's agent went to their manager
    actors = set(
        AuditEvent.objects.filter(target_type="human", target_id=str(human.pk)).values_list("actor_label", flat=True)
    )
    assert actors == {"scim: Okta"}
