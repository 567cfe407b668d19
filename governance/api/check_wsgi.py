"""The runtime check's hot path: ``POST /api/v1/check`` answered at the WSGI layer.

Every agent asks before every tool call, so this one endpoint carries most of the traffic, and Django's
middleware stack and DRF's request and response objects cost more CPU than the decision and its audit
record together. ``CheckFastPath`` wraps the WSGI application (``config.wsgi``): a check whose request
is plainly well formed — JSON by its content type, a host Django accepts, HTTPS when HTTPS is required,
a body the view's own ``plainly_valid`` accepts — is decided here by the same ``runtime.check`` and
answered with the same status, body and headers the DRF view would give. Anything else (a malformed
body, an unknown host, plain HTTP to be redirected, another method or path) goes to Django untouched,
whose answer is then the only one. ``tests/api/test_check_wsgi.py`` holds the two paths to the same
answers.
"""

from __future__ import annotations

import io
import json
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any, cast

from django.conf import settings
from django.core.cache import close_caches
from django.core.cache.backends.base import BaseCache
from django.core.handlers.base import reset_urlconf
from django.core.signals import request_finished, request_started, setting_changed
from django.db import DEFAULT_DB_ALIAS, close_old_connections, connections, reset_queries
from django.dispatch import Signal, receiver
from django.http.request import split_domain_port, validate_host
from django.utils.csp import build_policy
from django.utils.module_loading import import_string

from governance.api.check import answer, plainly_valid

CHECK_PATH = "/api/v1/check"
_JSON_TYPES = frozenset({"application/json", "application/json; charset=utf-8", "application/json;charset=utf-8"})
_STATUS = {200: "200 OK", 429: "429 Too Many Requests", 503: "503 Service Unavailable"}

# A connection that answered a check less than this long ago is not health-checked again (see _fresh).
HEALTH_CHECK_AFTER_IDLE = 1.0

StartResponse = Callable[..., Any]
WSGIApp = Callable[[dict[str, Any], StartResponse], Iterable[bytes]]


class _NotHere(Exception):
    """This request is for Django's full stack."""


def _strict_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")  # DRF's parser refuses NaN and Infinity too


def _headers(secure: bool) -> list[tuple[str, str]]:
    """The headers Django's middleware adds to the view's JSON answer, from the same settings."""
    headers = [("Content-Type", "application/json"), ("Allow", "POST, OPTIONS")]
    if settings.X_FRAME_OPTIONS:
        headers.append(("X-Frame-Options", settings.X_FRAME_OPTIONS.upper()))
    if settings.SECURE_CSP:
        headers.append(("Content-Security-Policy", build_policy(cast(dict[str, list[str]], settings.SECURE_CSP))))
    if secure and settings.SECURE_HSTS_SECONDS:
        hsts = f"max-age={settings.SECURE_HSTS_SECONDS}"
        if settings.SECURE_HSTS_INCLUDE_SUBDOMAINS:
            hsts += "; includeSubDomains"
        if settings.SECURE_HSTS_PRELOAD:
            hsts += "; preload"
        headers.append(("Strict-Transport-Security", hsts))
    if settings.SECURE_CONTENT_TYPE_NOSNIFF:
        headers.append(("X-Content-Type-Options", "nosniff"))
    if settings.SECURE_REFERRER_POLICY:
        policy = settings.SECURE_REFERRER_POLICY
        headers.append(("Referrer-Policy", policy if isinstance(policy, str) else ",".join(policy)))
    if settings.SECURE_CROSS_ORIGIN_OPENER_POLICY:
        headers.append(("Cross-Origin-Opener-Policy", settings.SECURE_CROSS_ORIGIN_OPENER_POLICY))
    return headers


def _is_secure(environ: dict[str, Any]) -> bool:
    proxy = settings.SECURE_PROXY_SSL_HEADER
    if proxy:
        header, value = proxy
        forwarded = environ.get(header)
        if forwarded is not None:
            return str(forwarded).split(",", 1)[0].strip() == value
    return environ.get("wsgi.url_scheme") == "https"


# Hosts already judged (a few: clients name the server by one or two), forgotten when a setting changes.
_HOSTS_KEPT = 32
_hosts: dict[str, bool] = {}


@receiver(setting_changed)
def _forget_hosts(**kwargs: Any) -> None:
    _hosts.clear()
    _plain_settings.clear()


def _host_allowed(environ: dict[str, Any]) -> bool:
    host = environ.get("HTTP_HOST") or environ.get("SERVER_NAME", "")
    allowed = _hosts.get(host)
    if allowed is None:
        allowed = _judge_host(host)
        if len(_hosts) < _HOSTS_KEPT:
            _hosts[host] = allowed
    return allowed


def _judge_host(host: str) -> bool:
    domain, _port = split_domain_port(host)
    allowed = settings.ALLOWED_HOSTS
    if settings.DEBUG and not allowed:
        allowed = [".localhost", "127.0.0.1", "[::1]"]
    return bool(domain) and validate_host(domain, allowed)


# --- Django's request signals, without sending them -------------------------------------------------
#
# Django's handler sends request_started and request_finished around every request; with only Django's
# own receivers connected, their work for a check is: clear the query log and drop the connection if it
# is unusable or past CONN_MAX_AGE, before and after (close_old_connections); close the caches, which for
# a backend that keeps no per-request connection does nothing (close_caches); and reset the URLconf,
# which a check never sets (reset_urlconf). Sending them costs a quarter of a check's instructions
# (``bench/check_cpu.py``: asgiref's context-local lookups for every alias and cache, in each receiver),
# so when nothing else listens the check does that work itself on the one connection it uses; when
# anything else listens (a third party's receiver, a test's changes), the signals are sent as Django does.


def _receiver_keys(signal: Signal) -> frozenset[object]:
    return frozenset(entry[0] for entry in signal.receivers)


def _keys_of(*functions: Callable[..., Any]) -> frozenset[object]:
    return frozenset((id(function), id(None)) for function in functions)  # Signal.connect's lookup keys


_DJANGO_RECEIVERS = (
    _keys_of(reset_queries, close_old_connections),
    _keys_of(close_old_connections, close_caches, reset_urlconf),
)
_plain_settings: dict[str, bool] = {}  # forgotten when a setting changes (_forget_hosts)


def _signals_plain() -> bool:
    """Are Django's own receivers the only ones, with one database (the check's) and caches whose
    ``close`` does nothing? Then the check does their work itself."""
    if (_receiver_keys(request_started), _receiver_keys(request_finished)) != _DJANGO_RECEIVERS:
        return False
    plain = _plain_settings.get("plain")
    if plain is None:
        plain = _plain_settings["plain"] = len(settings.DATABASES) == 1 and all(
            import_string(cache["BACKEND"]).close is BaseCache.close for cache in settings.CACHES.values()
        )
    return plain


class _LastUse(threading.local):
    connection: object = None
    at: float = 0.0


def _fresh(last: _LastUse, wrapper: Any) -> None:
    """Skip Django's per-request health check (a ``SELECT 1`` round trip) on a connection this thread
    used for a check less than ``HEALTH_CHECK_AFTER_IDLE`` seconds ago.

    Under load that is every check, and the round trip is a third of the database work per check. A
    connection idle for longer (when a database restart or a failover goes unnoticed) is still checked
    first. One broken under traffic fails its check with a 503 deny (fail closed), as any database error
    does, and Django drops it when that request ends.
    """
    raw = wrapper.connection
    if raw is not None and raw is last.connection and time.monotonic() - last.at < HEALTH_CHECK_AFTER_IDLE:
        wrapper.health_check_done = True


class CheckFastPath:
    def __init__(self, app: WSGIApp) -> None:
        self.app = app
        self._headers: dict[bool, list[tuple[str, str]]] = {}
        self._last_use = _LastUse()

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        if environ.get("PATH_INFO") != CHECK_PATH or environ.get("REQUEST_METHOD") != "POST":
            return self.app(environ, start_response)
        try:
            secure, data = self._screen(environ)
        except _NotHere:
            return self.app(environ, start_response)
        # As Django's handler does: its receivers drop unusable or expired database connections.
        plain = _signals_plain()
        wrapper: Any = connections[DEFAULT_DB_ALIAS]  # health_check_done is not in the stubs
        if plain:
            wrapper.queries_log.clear()
            wrapper.close_if_unusable_or_obsolete()
        else:
            request_started.send(sender=self.__class__, environ=environ)
        try:
            _fresh(self._last_use, wrapper)
            status, body, extra = answer(data, environ.get("HTTP_AUTHORIZATION"), environ.get("REMOTE_ADDR"))
            if status != 503:
                self._last_use.connection = wrapper.connection
                self._last_use.at = time.monotonic()
        finally:
            if plain:
                wrapper.close_if_unusable_or_obsolete()
            else:
                request_finished.send(sender=self.__class__)
        payload = getattr(body, "json", None)  # runtime.EncodedAnswer: encoded once for the kept state
        if payload is None:
            payload = json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode()
        headers = self._headers.get(secure)
        if headers is None:
            headers = self._headers[secure] = _headers(secure)
        start_response(_STATUS[status], [*headers, ("Content-Length", str(len(payload))), *extra.items()])
        return [payload]

    def _screen(self, environ: dict[str, Any]) -> tuple[bool, dict[str, Any]]:
        """(secure, the validated body) for a request this path answers; ``_NotHere`` otherwise, with
        anything read from the input given back for Django to read again."""
        if environ.get("CONTENT_TYPE", "").lower() not in _JSON_TYPES or not _host_allowed(environ):
            raise _NotHere
        secure = _is_secure(environ)
        if settings.SECURE_SSL_REDIRECT and not secure:
            raise _NotHere
        try:
            length = int(environ.get("CONTENT_LENGTH") or "")
        except ValueError:
            raise _NotHere from None
        limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
        if length <= 0 or (limit is not None and length > limit):
            raise _NotHere
        body = environ["wsgi.input"].read(length)
        try:
            data = plainly_valid(json.loads(body, parse_constant=_strict_constant))
        except (ValueError, RecursionError):
            data = None
        if data is None:
            environ["wsgi.input"] = io.BytesIO(body)
            raise _NotHere
        return secure, data
