"""``manage.py api_token USERNAME``: prints a new personal API token, and only that."""

from __future__ import annotations

import re
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from rest_framework.test import APIClient

from audit.models import AuditEvent
from governance.models import ApiToken
from tests import factories

pytestmark = pytest.mark.django_db

TOKEN = re.compile(r"cu_[a-z0-9]{8,16}_[A-Za-z0-9]+")


def _run(username: str) -> tuple[str, str]:
    out, err = StringIO(), StringIO()
    call_command("api_token", username, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


def test_it_prints_the_token_alone_so_scripts_can_capture_it() -> None:
    admin = factories.make_admin()

    out, err = _run(admin.username)

    assert TOKEN.fullmatch(out.strip()), out
    assert out == out.strip() + "\n"
    assert err == ""


def test_the_printed_token_authenticates_against_the_api() -> None:
    admin = factories.make_admin()
    agent = factories.make_agent()
    token = _run(admin.username)[0].strip()
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")

    response = client.get("/api/v1/agents/")

    assert response.status_code == 200
    assert agent.pk in {row["id"] for row in response.json()["results"]}


def test_it_stores_only_a_hash_and_records_the_issue_in_the_audit_log() -> None:
    admin = factories.make_admin()

    token = _run(admin.username)[0].strip()

    stored = ApiToken.objects.get(user=admin)
    assert token not in stored.hashed
    event = AuditEvent.objects.filter(action="apitoken.create").order_by("-id").first()
    assert event is not None
    assert (event.actor_kind, event.actor_label) == ("system", "manage.py api_token")
    assert event.context == {"user": admin.pk, "prefix": stored.prefix}


def test_each_run_issues_a_different_token() -> None:
    admin = factories.make_admin()

    assert _run(admin.username)[0] != _run(admin.username)[0]
    assert ApiToken.objects.filter(user=admin).count() == 2


def test_an_unknown_user_is_a_clear_error_and_creates_nothing() -> None:
    with pytest.raises(CommandError, match="No console user named 'nobody'"):
        _run("nobody")

    assert ApiToken.objects.count() == 0


def test_an_inactive_user_gets_no_token() -> None:
    user = factories.make_admin()
    user.is_active = False
    user.save()

    with pytest.raises(CommandError, match="inactive"):
        _run(user.username)
    assert ApiToken.objects.count() == 0


def test_a_user_without_a_role_is_warned_on_stderr_and_the_api_refuses_the_token() -> None:
    outsider = factories.make_outsider()

    out, err = _run(outsider.username)

    assert "holds no role" in err
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {out.strip()}")
    assert client.get("/api/v1/agents/").status_code == 403
