"""The check's WSGI hot path (``governance.api.check_wsgi``) answers exactly as the DRF view does.

Each request is sent twice through real WSGI applications: once through ``CheckFastPath`` wrapped round
Django, once through Django alone. A plainly valid check must be answered by the hot path without
Django (the wrapped application is never called) with the same status, headers and body (up to the
decision id, which names a different recorded event); anything unusual must reach Django untouched and
be answered by it alone.
"""

from __future__ import annotations

import io
import json
import re
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from django.core.cache.backends.locmem import LocMemCache
from django.core.handlers.wsgi import WSGIHandler
from django.core.signals import request_finished, request_started
from django.db import DEFAULT_DB_ALIAS, close_old_connections, connections

from audit.models import AuditEvent
from governance.api import check_wsgi
from governance.api.check_wsgi import HEALTH_CHECK_AFTER_IDLE, CheckFastPath
from tests.factories import make_chain, make_chain_tokens
from tests.governance.test_runtime_failclosed import database_unreachable

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _keep_the_test_transaction() -> Iterator[None]:
    # As Django's test client does: a request must not close the connection holding the test's transaction.
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    yield
    request_started.connect(close_old_connections)
    request_finished.connect(close_old_connections)


HEX64 = re.compile(r"[0-9a-f]{64}")


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


class Counting:
    """Django's WSGI application, counting the requests that reach it."""

    def __init__(self) -> None:
        self.django = WSGIHandler()
        self.calls = 0

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        self.calls += 1
        return self.django(environ, start_response)


def call(app: Any, body: bytes | str, *, authorization: str | None = None, **overrides: Any) -> Answer:
    payload = body.encode() if isinstance(body, str) else body
    environ: dict[str, Any] = {
        "REQUEST_METHOD": "POST",
        "PATH_INFO": "/api/v1/check",
        "QUERY_STRING": "",
        "SERVER_NAME": "testserver",
        "SERVER_PORT": "443",
        "HTTP_HOST": "testserver",
        "HTTP_X_FORWARDED_PROTO": "https",
        "REMOTE_ADDR": "203.0.113.7",
        "CONTENT_TYPE": "application/json",
        "CONTENT_LENGTH": str(len(payload)),
        "SERVER_PROTOCOL": "HTTP/1.1",
        "wsgi.version": (1, 0),
        "wsgi.url_scheme": "http",
        "wsgi.input": io.BytesIO(payload),
        "wsgi.errors": io.StringIO(),
        "wsgi.multithread": False,
        "wsgi.multiprocess": True,
        "wsgi.run_once": False,
    }
    if authorization is not None:
        environ["HTTP_AUTHORIZATION"] = authorization
    environ.update(overrides)
    started: dict[str, Any] = {}

    def start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> None:
        started["status"], started["headers"] = int(status.split()[0]), dict(headers)

    chunks = app(environ, start_response)
    try:
        content = b"".join(chunks)
    finally:
        close = getattr(chunks, "close", None)
        if close is not None:
            close()
    return Answer(started["status"], started["headers"], content)


def both(body: bytes | str, **kwargs: Any) -> tuple[Answer, Answer, Counting]:
    """The hot path's answer, Django's answer, and the wrapped Django (to count what reached it)."""
    inner = Counting()
    fast = call(CheckFastPath(inner), body, **kwargs)
    slow = call(WSGIHandler(), body, **kwargs)
    return fast, slow, inner


def check_body(resource: str, **context: str) -> str:
    return json.dumps({"action": "read", "resource": resource, "context": {"intent": "wsgi", **context}})


def assert_same(fast: Answer, slow: Answer) -> None:
    assert fast.status == slow.status
    assert set(fast.headers) == set(slow.headers)
    for name, value in slow.headers.items():
        if name != "Content-Length":
            assert fast.headers[name] == value, name
    assert int(fast.headers["Content-Length"]) == len(fast.body)
    fast_body, slow_body = fast.json(), slow.json()
    if "decision_id" in slow_body:
        assert HEX64.fullmatch(fast_body.pop("decision_id")) and HEX64.fullmatch(slow_body.pop("decision_id"))
    assert fast_body == slow_body


@pytest.fixture
def chain() -> dict[str, Any]:
    chain = make_chain(depth=2)
    chain.update(make_chain_tokens(chain))
    return chain


def test_an_allowed_check_is_answered_without_django_and_recorded(chain: dict[str, Any]) -> None:
    fast, slow, inner = both(
        check_body(chain["resource"].name, request_id="hot-path"), authorization=f"Bearer {chain['tokens'][1]}"
    )
    assert inner.calls == 0
    assert fast.status == 200 and fast.json()["decision"] == "allow"
    assert_same(fast, slow)
    event = AuditEvent.objects.get(digest=fast.json()["decision_id"])
    assert event.action == "check.allow" and event.context["request_id"] == "hot-path"
    assert [a["id"] for a in fast.json()["actors"]] == [a.pk for a in reversed(chain["agents"])]


@pytest.mark.parametrize(
    ("case", "credential", "resource"),
    [
        ("scope not delegated", "token", "elsewhere"),
        ("agent key, no grant", "key", "elsewhere"),
        ("agent key on its own grant", "key", None),
        ("garbage", "ck_garbage", None),
        ("no credential", None, None),
    ],
)
def test_every_kind_of_decision_is_answered_as_the_view_answers_it(
    chain: dict[str, Any], case: str, credential: str | None, resource: str | None
) -> None:
    presented = {"token": chain["tokens"][1], "key": chain["keys"][0]}.get(credential or "", credential)
    authorization = f"Bearer {presented}" if presented else None
    inner = Counting()
    # Different addresses: an identical unidentified denial from one address would be a counted repeat.
    fast = call(
        CheckFastPath(inner),
        check_body(resource or chain["resource"].name),
        authorization=authorization,
        REMOTE_ADDR="198.51.100.1",
    )
    slow = call(
        WSGIHandler(),
        check_body(resource or chain["resource"].name),
        authorization=authorization,
        REMOTE_ADDR="198.51.100.2",
    )
    assert inner.calls == 0, case
    assert_same(fast, slow)
    assert AuditEvent.objects.filter(digest=fast.json()["decision_id"]).exists()


@pytest.mark.parametrize(
    ("case", "body", "overrides"),
    [
        ("not JSON", "{", {}),
        ("NaN", '{"action": "read", "resource": NaN}', {}),
        ("a name the serializer refuses", '{"action": "read!", "resource": "crm"}', {}),
        ("a context value that is not text", '{"action": "read", "resource": "crm", "context": {"intent": 7}}', {}),
        ("valid only after trimming", '{"action": "read", "resource": "crm", "context": {"intent": " x "}}', {}),
        ("a context that is a list", '{"action": "read", "resource": "crm", "context": []}', {}),
        ("a body that is a list", "[]", {}),
        ("form encoded", "action=read&resource=crm", {"CONTENT_TYPE": "application/x-www-form-urlencoded"}),
        ("an unknown host", check_body("crm"), {"HTTP_HOST": "evil.example"}),
        ("GET", "", {"REQUEST_METHOD": "GET"}),
        ("another path", check_body("crm"), {"PATH_INFO": "/api/v1/check/"}),
        ("empty body", "", {}),
    ],
)
def test_anything_unusual_is_left_to_django(case: str, body: str, overrides: dict[str, Any]) -> None:
    # Different addresses: the same unidentified denial twice from one address would be a counted repeat.
    inner = Counting()
    fast = call(CheckFastPath(inner), body, authorization="Bearer ck_garbage", REMOTE_ADDR="198.51.100.1", **overrides)
    slow = call(WSGIHandler(), body, authorization="Bearer ck_garbage", REMOTE_ADDR="198.51.100.2", **overrides)
    assert inner.calls == 1, case
    assert fast.status == slow.status, case
    if fast.status == 200:  # what the serializer accepts after coercion: decided the same way, by the view
        assert_same(fast, slow)
    else:
        assert fast.body == slow.body, case


def test_a_refused_body_gets_the_serializers_answer() -> None:
    fast, slow, inner = both('{"action": "read", "resource": "crm", "context": {"intent": ["x"]}}')
    assert inner.calls == 1
    assert fast.status == 400 and fast.json() == slow.json()
    assert fast.json()["fields"] == {"context.intent": ["Not a valid string."]}


def test_plain_http_is_left_to_django_to_redirect(settings: Any) -> None:
    settings.SECURE_SSL_REDIRECT = True
    fast, slow, inner = both(check_body("crm"), HTTP_X_FORWARDED_PROTO="http")
    assert inner.calls == 1
    assert fast.status == slow.status == 301
    assert fast.headers["Location"] == slow.headers["Location"] == "https://testserver/api/v1/check"


def test_past_the_limit_the_hot_path_answers_429_as_the_view_does(settings: Any) -> None:
    settings.CUSTOS_CHECK_INVALID_LIMIT = 1
    app = CheckFastPath(Counting())
    assert call(app, check_body("crm"), authorization="Bearer garbage").status == 200
    fast = call(app, check_body("crm"), authorization="Bearer garbage")
    slow = call(WSGIHandler(), check_body("crm"), authorization="Bearer garbage")
    assert fast.status == slow.status == 429
    assert fast.json() == slow.json() and fast.json()["code"] == "rate_limited"
    assert fast.headers["Retry-After"] == slow.headers["Retry-After"]


@pytest.mark.django_db(transaction=True)
def test_an_unreachable_database_is_a_503_deny_on_the_hot_path(chain: dict[str, Any]) -> None:
    app = CheckFastPath(Counting())
    body, authorization = check_body(chain["resource"].name), f"Bearer {chain['tokens'][1]}"
    assert call(app, body, authorization=authorization).json()["decision"] == "allow"
    with database_unreachable():
        fast = call(app, body, authorization=authorization)
    assert fast.status == 503 and fast.json()["decision"] == "deny" and fast.headers["Retry-After"] == "1"
    assert call(app, body, authorization=authorization).json()["decision"] == "allow", "and back afterwards"


def test_production_serves_through_the_hot_path() -> None:
    import config.wsgi

    assert isinstance(config.wsgi.application, CheckFastPath)
    assert isinstance(config.wsgi.application.app, WSGIHandler)


@pytest.fixture(params=["done by the check", "sent as signals"])
def django_manages_connections(request: pytest.FixtureRequest) -> Iterator[None]:
    """What the module's autouse fixture turns off: connections checked, kept and dropped per request.
    With Django's receivers alone the check does their work itself; with another listener as well it
    sends the signals, and the listener hears every check."""
    request_started.connect(close_old_connections)
    request_finished.connect(close_old_connections)
    heard: list[tuple[str, Any]] = []

    def listener(signal: Any, sender: Any, **kwargs: Any) -> None:
        heard.append(("started" if signal is request_started else "finished", sender))

    signalled = request.param == "sent as signals"
    if signalled:
        request_started.connect(listener)
        request_finished.connect(listener)
    assert check_wsgi._signals_plain() is not signalled
    yield
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    if signalled:
        request_started.disconnect(listener)
        request_finished.disconnect(listener)
        assert heard and heard == [("started", CheckFastPath), ("finished", CheckFastPath)] * (len(heard) // 2)


@pytest.mark.django_db(transaction=True)
def test_a_connection_past_its_age_is_replaced_between_checks(
    chain: dict[str, Any], django_manages_connections: None
) -> None:
    app = CheckFastPath(Counting())
    body, authorization = check_body(chain["resource"].name), f"Bearer {chain['tokens'][1]}"
    assert call(app, body, authorization=authorization).json()["decision"] == "allow"
    wrapper = connections[DEFAULT_DB_ALIAS]
    first = wrapper.connection.info.backend_pid
    assert call(app, body, authorization=authorization).json()["decision"] == "allow"
    assert wrapper.connection.info.backend_pid == first, "kept while younger than CONN_MAX_AGE"
    wrapper.close_at = time.monotonic() - 1
    assert call(app, body, authorization=authorization).json()["decision"] == "allow"
    assert wrapper.connection.info.backend_pid != first, "closed once past it, and a new one opened"


class _ClosingCache(LocMemCache):
    def close(self, **kwargs: Any) -> None:
        pass


def test_the_check_sends_the_signals_unless_django_alone_listens(settings: Any) -> None:
    # The module's autouse fixture has taken close_old_connections away: not Django's set.
    assert not check_wsgi._signals_plain()
    request_started.connect(close_old_connections)
    request_finished.connect(close_old_connections)
    try:
        assert check_wsgi._signals_plain()
        settings.CACHES = {"default": {"BACKEND": f"{__name__}._ClosingCache"}}  # a close that may do something
        assert not check_wsgi._signals_plain()
        settings.CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
        assert check_wsgi._signals_plain()
    finally:
        request_started.disconnect(close_old_connections)
        request_finished.disconnect(close_old_connections)


@pytest.fixture
def health_checks(monkeypatch: pytest.MonkeyPatch) -> list[bool]:
    """Each health check Django runs on the default connection, with its answer (the real one)."""
    wrapper = connections[DEFAULT_DB_ALIAS]
    real = type(wrapper).is_usable
    seen: list[bool] = []

    def counted(self: Any) -> bool:
        usable = real(self)
        seen.append(usable)
        return usable

    monkeypatch.setattr(type(wrapper), "is_usable", counted)
    return seen


def _terminate_backend() -> None:
    """Close the default connection from the server's side, as a database restart would."""
    wrapper = connections[DEFAULT_DB_ALIAS]
    pid = wrapper.connection.info.backend_pid
    other = wrapper.get_new_connection(wrapper.get_connection_params())
    try:
        other.autocommit = True
        other.execute("SELECT pg_terminate_backend(%s)", (pid,))
    finally:
        other.close()


@pytest.mark.django_db(transaction=True)
def test_a_busy_connection_is_not_health_checked_before_every_check(
    chain: dict[str, Any], django_manages_connections: None, health_checks: list[bool]
) -> None:
    app = CheckFastPath(Counting())
    body, authorization = check_body(chain["resource"].name), f"Bearer {chain['tokens'][1]}"
    call(app, body, authorization=authorization)
    checked = len(health_checks)
    for _ in range(3):
        assert call(app, body, authorization=authorization).json()["decision"] == "allow"
    assert len(health_checks) == checked, "a connection used a moment ago is not checked again"
    app._last_use.at -= HEALTH_CHECK_AFTER_IDLE
    assert call(app, body, authorization=authorization).json()["decision"] == "allow"
    assert health_checks[checked:] == [True], "one idle for longer is checked first"


@pytest.mark.django_db(transaction=True)
def test_a_connection_lost_while_idle_is_replaced_before_the_check(
    chain: dict[str, Any], django_manages_connections: None, health_checks: list[bool]
) -> None:
    app = CheckFastPath(Counting())
    body, authorization = check_body(chain["resource"].name), f"Bearer {chain['tokens'][1]}"
    assert call(app, body, authorization=authorization).json()["decision"] == "allow"
    _terminate_backend()
    app._last_use.at -= HEALTH_CHECK_AFTER_IDLE
    answer = call(app, body, authorization=authorization)
    assert answer.status == 200 and answer.json()["decision"] == "allow"
    assert health_checks[-1] is False, "the lost connection was found by the health check and replaced"


@pytest.mark.django_db(transaction=True)
def test_a_connection_lost_under_traffic_fails_one_check_closed_then_is_replaced(
    chain: dict[str, Any], django_manages_connections: None
) -> None:
    app = CheckFastPath(Counting())
    body, authorization = check_body(chain["resource"].name), f"Bearer {chain['tokens'][1]}"
    assert call(app, body, authorization=authorization).json()["decision"] == "allow"
    _terminate_backend()
    lost = call(app, body, authorization=authorization)
    assert lost.status == 503 and lost.json()["decision"] == "deny"
    again = call(app, body, authorization=authorization)
    assert again.status == 200 and again.json()["decision"] == "allow"
