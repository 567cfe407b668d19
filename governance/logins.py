"""Signing in to the console, with password guessing slowed to a crawl.

After ``CUSTOS_LOGIN_FAILURE_LIMIT`` failed sign-ins for one username within ``CUSTOS_LOGIN_LOCKOUT``,
that username is refused (whatever the password) until the window has passed since the last failure;
after ``CUSTOS_LOGIN_ADDRESS_FAILURE_LIMIT`` failures from one client address within the same window,
that address is. Counts live in the cache (Redis in production, shared by every web process; counted
with atomic increments). If the cache cannot be reached, sign-in is refused: a throttle that cannot
count must not let guesses through. Every failure, lockout and sign-in is written to the audit log.

No library is used for this: django-axes, the well-kept one, declares support up to Django 6.0 only.
"""

from __future__ import annotations

import hashlib
import logging
from typing import Any

from django.conf import settings
from django.contrib.auth import views as auth_views
from django.contrib.auth.forms import AuthenticationForm
from django.core.cache import cache
from django.core.exceptions import ValidationError
from django.db import transaction
from django.http import HttpRequest, HttpResponse

from audit.services import Actor, Target, audit_append

log = logging.getLogger(__name__)

SIGN_IN = Actor.system("console sign-in")


class ThrottleUnavailable(Exception):
    pass


def client_address(request: HttpRequest | None) -> str:
    """The address the request came from, as the server saw it. Behind a proxy, that is the proxy's, and
    the address limit then counts every client of the proxy together (set it accordingly)."""
    return str(request.META.get("REMOTE_ADDR", "")) if request is not None else ""


def _keys(username: str, address: str) -> tuple[str, str]:
    # Hashed: the cache holds no usernames, and any text makes a valid key.
    user_key = hashlib.sha256(username.strip().lower().encode()).hexdigest()
    return f"custos:login:user:{user_key}", f"custos:login:addr:{hashlib.sha256(address.encode()).hexdigest()}"


def _window() -> int:
    return int(settings.CUSTOS_LOGIN_LOCKOUT.total_seconds())


def locked(username: str, address: str) -> bool:
    user_key, address_key = _keys(username, address)
    try:
        counts = cache.get_many([user_key, address_key])
    except Exception as exc:  # any cache failure: refuse rather than let guesses through
        raise ThrottleUnavailable from exc
    return (
        counts.get(user_key, 0) >= settings.CUSTOS_LOGIN_FAILURE_LIMIT
        or counts.get(address_key, 0) >= settings.CUSTOS_LOGIN_ADDRESS_FAILURE_LIMIT
    )


def _count(key: str) -> int:
    # add() then incr(): atomic in Redis, so concurrent failures are all counted. Each failure restarts the
    # window, so a lockout ends only after a quiet ``CUSTOS_LOGIN_LOCKOUT``.
    cache.add(key, 0, _window())
    count = cache.incr(key)
    cache.touch(key, _window())
    return int(count)


@transaction.atomic
def login_failed(*, username: str, address: str) -> bool:
    """Count and record a failed sign-in; True when it locked the username or the address out."""
    user_key, address_key = _keys(username, address)
    try:
        user_failures, address_failures = _count(user_key), _count(address_key)
    except Exception as exc:
        raise ThrottleUnavailable from exc
    context = {"username": username[:150], "address": address, "failures": user_failures}
    audit_append(actor=SIGN_IN, action="login.fail", target=Target(type="login", label=username[:150]), context=context)
    locked_now = user_failures == settings.CUSTOS_LOGIN_FAILURE_LIMIT
    locked_now |= address_failures == settings.CUSTOS_LOGIN_ADDRESS_FAILURE_LIMIT
    if locked_now:
        audit_append(
            actor=SIGN_IN,
            action="login.lockout",
            target=Target(type="login", label=username[:150]),
            context={**context, "address_failures": address_failures, "seconds": _window()},
        )
    return locked_now


@transaction.atomic
def login_succeeded(*, user: Any, address: str) -> None:
    user_key, _ = _keys(user.get_username(), address)
    try:
        cache.delete(user_key)
    except Exception:
        log.warning("could not clear the failed sign-in count of %s", user.get_username(), exc_info=True)
    audit_append(actor=Actor.user(user), action="login.success", target=Target.of(user), context={"address": address})


class ThrottledAuthenticationForm(AuthenticationForm):
    error_messages = {
        **AuthenticationForm.error_messages,
        "locked": "Too many failed sign-ins. Wait a while and try again, or ask an administrator.",
        "unavailable": "Signing in is unavailable right now. Try again in a minute.",
    }

    def clean(self) -> dict[str, Any]:
        username = str(self.cleaned_data.get("username") or "")
        address = client_address(self.request)
        try:
            if locked(username, address):
                raise ValidationError(self.error_messages["locked"], code="locked")
        except ThrottleUnavailable:
            log.exception("sign-in throttle unavailable")
            raise ValidationError(self.error_messages["unavailable"], code="unavailable") from None
        try:
            return super().clean()
        except ValidationError as error:
            if getattr(error, "code", None) == "invalid_login":
                try:
                    login_failed(username=username, address=address)
                except ThrottleUnavailable:
                    log.exception("sign-in throttle unavailable")
                    raise ValidationError(self.error_messages["unavailable"], code="unavailable") from None
            raise


class LoginView(auth_views.LoginView):
    template_name = "registration/login.html"
    authentication_form = ThrottledAuthenticationForm

    def form_valid(self, form: AuthenticationForm) -> HttpResponse:
        response = super().form_valid(form)
        login_succeeded(user=form.get_user(), address=client_address(self.request))
        return response
