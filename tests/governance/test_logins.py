"""Signing in to the console: password guessing is slowed to a crawl, every failure, lockout and
sign-in is in the audit log, and a throttle that cannot count refuses rather than lets guesses in."""

from __future__ import annotations

from typing import Any

import pytest
from django.core.cache import cache
from django.test import Client, override_settings
from django.urls import reverse

from audit.models import AuditEvent
from tests import factories

pytestmark = pytest.mark.django_db

PASSWORD = "pw-for-tests-only"


def sign_in(username: str, password: str, address: str = "10.0.0.1") -> Any:
    return Client(REMOTE_ADDR=address).post(reverse("login"), {"username": username, "password": password})


def signed_in(response: Any) -> bool:
    return response.status_code == 302 and response["Location"] == reverse("console:home")


def test_the_right_password_signs_in_and_is_audited() -> None:
    user = factories.make_admin()
    assert signed_in(sign_in(user.username, PASSWORD))
    event = AuditEvent.objects.filter(action="login.success").get()
    assert (event.actor_kind, event.actor_label, event.context["address"]) == ("user", user.username, "10.0.0.1")


def test_a_username_is_locked_out_after_five_failures_even_with_the_right_password(settings: Any) -> None:
    user = factories.make_admin()
    for attempt in range(1, settings.CUSTOS_LOGIN_FAILURE_LIMIT + 1):
        response = sign_in(user.username, f"guess-{attempt}")
        assert response.status_code == 200
        assert "Please enter a correct username and password" in response.content.decode()
    locked = sign_in(user.username, PASSWORD)
    assert not signed_in(locked)
    assert "Too many failed sign-ins" in locked.content.decode()
    # Another address does not get around a username's lockout, and the username's case does not either.
    assert not signed_in(sign_in(user.username.upper(), PASSWORD, address="10.9.9.9"))
    failures = AuditEvent.objects.filter(action="login.fail")
    assert failures.count() == settings.CUSTOS_LOGIN_FAILURE_LIMIT
    assert {e.context["username"] for e in failures} == {user.username}
    lockout = AuditEvent.objects.filter(action="login.lockout").get()
    assert lockout.context["failures"] == settings.CUSTOS_LOGIN_FAILURE_LIMIT
    assert not AuditEvent.objects.filter(action="login.success").exists()


def test_other_users_sign_in_while_one_is_locked_out(settings: Any) -> None:
    victim, colleague = factories.make_admin(), factories.make_reviewer()
    for _ in range(settings.CUSTOS_LOGIN_FAILURE_LIMIT):
        sign_in(victim.username, "wrong")
    assert signed_in(sign_in(colleague.username, PASSWORD))


def test_the_lockout_ends_after_the_window(settings: Any) -> None:
    settings.CUSTOS_LOGIN_FAILURE_LIMIT = 2
    user = factories.make_admin()
    sign_in(user.username, "wrong")
    sign_in(user.username, "wrong")
    assert not signed_in(sign_in(user.username, PASSWORD))
    cache.clear()  # what the window's passing does to the counts (they expire in the cache)
    assert signed_in(sign_in(user.username, PASSWORD))


def test_a_success_clears_the_failures_before_it(settings: Any) -> None:
    user = factories.make_admin()
    for _ in range(settings.CUSTOS_LOGIN_FAILURE_LIMIT - 1):
        sign_in(user.username, "wrong")
    assert signed_in(sign_in(user.username, PASSWORD))
    for _ in range(settings.CUSTOS_LOGIN_FAILURE_LIMIT - 1):
        sign_in(user.username, "wrong")
    assert signed_in(sign_in(user.username, PASSWORD))


def test_one_address_spraying_many_usernames_is_locked_out(settings: Any) -> None:
    settings.CUSTOS_LOGIN_ADDRESS_FAILURE_LIMIT = 3
    user = factories.make_admin()
    for n in range(3):
        sign_in(f"nobody-{n}", "wrong", address="192.0.2.7")
    assert not signed_in(sign_in(user.username, PASSWORD, address="192.0.2.7"))
    assert signed_in(sign_in(user.username, PASSWORD, address="192.0.2.8"))


def test_sign_in_is_refused_when_the_throttle_cannot_count() -> None:
    user = factories.make_admin()
    # A real Redis client against a port nothing listens on: every cache call fails.
    unreachable = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": "redis://127.0.0.1:1/0",
            "OPTIONS": {"socket_connect_timeout": 0.2},
        }
    }
    with override_settings(CACHES=unreachable):
        response = sign_in(user.username, PASSWORD)
    assert not signed_in(response)
    assert "Signing in is unavailable right now" in response.content.decode()
    assert not AuditEvent.objects.filter(action="login.success").exists()
