"""Fail closed (SPEC §3): when the database or the audit write fails, the check answers 503 with
``decision: deny``, never an allow, and the OAuth endpoints answer 503 ``temporarily_unavailable``.

Two failures are real PostgreSQL ones (the audit chain head locked by another connection past this
connection's ``lock_timeout``; the database unreachable); one is injected at our own boundary (the
audit append raising), which is how a failure after the state was read but before the decision was
recorded is reached deterministically. The check reads the cache only for credentials that identify
no agent; ``test_repeats.py`` covers the cache being down there (recorded in full, still denied).
"""

from __future__ import annotations

import socket
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any
from urllib.parse import urlencode

import psycopg
import pytest
from django.db import OperationalError, connection
from django.http import HttpResponse
from django.test import Client

from audit import sealer
from audit.models import AuditEvent
from governance import chain, oauth, runtime
from governance.decision import Reason
from tests.factories import make_chain, make_chain_tokens

FORM = "application/x-www-form-urlencoded"


def check(token: str, resource: str) -> HttpResponse:
    return Client().post(
        "/api/v1/check",
        {"action": "read", "resource": resource, "context": {"request_id": "fail-closed"}},
        content_type="application/json",
        HTTP_AUTHORIZATION=f"Bearer {token}",
    )


def assert_unavailable_deny(response: HttpResponse) -> None:
    assert response.status_code == 503, response.content
    body = response.json()
    assert body["decision"] == "deny"
    assert body["code"] == "unavailable"
    assert "allow" not in response.content.decode()
    assert response["Retry-After"]


def recorded_allows() -> int:
    return AuditEvent.objects.filter(action="check.allow", context__request_id="fail-closed").count()


@pytest.fixture
def allowed_token() -> tuple[str, str]:
    """A sub-agent's token that the check allows while everything works (asserted by each test)."""
    chain = make_chain(depth=2)
    return make_chain_tokens(chain)["tokens"][1], chain["resource"].name


# --- Injected at our boundary ---------------------------------------------------------------


# Both ways a check comes by its state: kept from the check before (then recorded on condition), or
# read afresh every time.
STATE_CACHE = pytest.mark.parametrize("kept", [True, False], ids=["state kept", "state read afresh"])


@pytest.mark.django_db
@STATE_CACHE
def test_a_failing_audit_append_turns_an_allow_into_a_503_deny(
    allowed_token: tuple[str, str], monkeypatch: pytest.MonkeyPatch, settings: Any, kept: bool
) -> None:
    settings.CUSTOS_CHECK_STATE_CACHE = kept
    token, resource = allowed_token
    assert check(token, resource).json()["decision"] == "allow"  # and its state kept, when it is

    def refuse(*args: Any, **kwargs: Any) -> None:
        raise OperationalError("could not write the audit event")

    monkeypatch.setattr(runtime, "audit_append", refuse)
    monkeypatch.setattr(runtime, "audit_append_if", refuse)
    assert_unavailable_deny(check(token, resource))
    monkeypatch.undo()
    assert check(token, resource).json()["decision"] == "allow"  # the same request, once it can be recorded
    assert recorded_allows() == 2


@pytest.mark.django_db
@STATE_CACHE
def test_a_failure_of_any_kind_underneath_is_a_503_deny_not_a_500(
    allowed_token: tuple[str, str], monkeypatch: pytest.MonkeyPatch, settings: Any, kept: bool
) -> None:
    settings.CUSTOS_CHECK_STATE_CACHE = kept
    token, resource = allowed_token

    def broken(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("something nobody anticipated")

    monkeypatch.setattr(chain, "load_token", broken)
    monkeypatch.setattr(chain, "load_token_versioned", broken)
    assert_unavailable_deny(check(token, resource))
    assert recorded_allows() == 0


# --- Real failures --------------------------------------------------------------------------


def other_connection() -> psycopg.Connection[Any]:
    db = connection.settings_dict
    return psycopg.connect(
        host=db["HOST"] or None,
        port=db["PORT"] or None,
        user=db["USER"],
        password=db["PASSWORD"] or None,
        dbname=db["NAME"],
    )


@contextmanager
def locked_elsewhere(statement: str) -> Iterator[None]:
    """Another session holds a lock (``statement``) as a stuck transaction would, and this session gives
    up waiting for a lock after 200 ms."""
    holder = other_connection()
    try:
        holder.execute(statement)
        with connection.cursor() as cursor:
            cursor.execute("SET lock_timeout = '200ms'")
        yield
    finally:
        holder.rollback()
        holder.close()
        with connection.cursor() as cursor:
            cursor.execute("RESET lock_timeout")


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])  # nothing listens there once the probe is closed


@contextmanager
def database_unreachable() -> Iterator[None]:
    """The next statement finds PostgreSQL gone: the connection is closed and reconnecting goes to a
    port where nothing listens. Afterwards the settings are restored and Django reconnects on demand."""
    with pytest.MonkeyPatch.context() as patch:
        connection.close()
        patch.setitem(connection.settings_dict, "HOST", "127.0.0.1")
        patch.setitem(connection.settings_dict, "PORT", str(_closed_port()))
        try:
            yield
        finally:
            connection.close()


@pytest.mark.django_db(transaction=True)
def test_an_audit_log_that_cannot_be_written_in_time_gives_503_deny(allowed_token: tuple[str, str]) -> None:
    token, resource = allowed_token
    assert check(token, resource).json()["decision"] == "allow"
    before = AuditEvent.objects.count()
    with locked_elsewhere("LOCK TABLE audit_auditevent IN EXCLUSIVE MODE"):
        assert_unavailable_deny(check(token, resource))
    assert AuditEvent.objects.count() == before  # nothing half-written
    assert check(token, resource).json()["decision"] == "allow"  # and it decides again once the lock is gone


@pytest.mark.django_db(transaction=True)
def test_a_stuck_sealer_does_not_hold_up_decisions(allowed_token: tuple[str, str]) -> None:
    # Writers never wait on the chain: with the chain head locked (a sealer stuck mid-batch), checks
    # are still decided and recorded durably, and sealed once the head is free.
    token, resource = allowed_token
    with locked_elsewhere("SELECT seq FROM audit_chainhead WHERE id = 1 FOR UPDATE"):
        answers = [check(token, resource) for _ in range(3)]
    assert [a.status_code for a in answers] == [200, 200, 200]
    assert {a.json()["decision"] for a in answers} == {"allow"}
    assert sealer.seal_pending() >= 3
    for answer in answers:
        assert AuditEvent.objects.get(digest=answer.json()["decision_id"]).seq is not None


@pytest.mark.django_db(transaction=True)
def test_an_unreachable_database_gives_503_deny_for_a_token_just_allowed(allowed_token: tuple[str, str]) -> None:
    token, resource = allowed_token
    assert check(token, resource).json()["decision"] == "allow"  # its signature is now cached
    with database_unreachable():
        assert_unavailable_deny(check(token, resource))
    response = check(token, resource)
    assert (response.status_code, response.json()["reason"]) == (200, Reason.ALLOWED)
    assert recorded_allows() == 2


@pytest.mark.django_db(transaction=True)
def test_an_unreachable_database_gives_503_at_the_oauth_endpoints() -> None:
    issued = make_chain_tokens(make_chain(depth=2))
    key, token = issued["keys"][1], issued["tokens"][1]
    exchange = {
        "grant_type": oauth.GRANT_TYPE_TOKEN_EXCHANGE,
        "actor_token": key,
        "actor_token_type": oauth.TOKEN_TYPE_AGENT_KEY,
        "subject_token": issued["tokens"][0],
        "subject_token_type": oauth.TOKEN_TYPE_JWT,
    }
    with database_unreachable():
        for path, form in (
            ("/oauth/token", exchange),
            ("/oauth/introspect", {"token": token}),
            ("/oauth/revoke", {"token": token}),
        ):
            response = Client().post(path, urlencode(form), content_type=FORM, HTTP_AUTHORIZATION=f"Bearer {key}")
            assert response.status_code == 503, (path, response.content)
            assert response.json() == {"error": "temporarily_unavailable", "error_description": "try again shortly"}
            assert response["Cache-Control"] == "no-store"
