from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import pytest
from django.conf import settings
from django.contrib.auth.models import Group
from django.core.cache import cache
from django.db import transaction
from django.db.backends.postgresql.operations import DatabaseOperations
from django.test import override_settings

from audit.models import GENESIS_HASH, ChainHead
from console import roles
from governance import livestate
from governance.models import StateVersion
from tests import factories
from tests.audit import support as audit_support


def pytest_configure(config: Any) -> None:
    # The suite is about PostgreSQL's behaviour (triggers, row locks, constraints): refuse to run
    # silently on anything else.
    engine = settings.DATABASES["default"]["ENGINE"]
    if engine != "django.db.backends.postgresql":
        raise pytest.UsageError("tests need PostgreSQL: set DATABASE_URL (make test does this for you)")
    _own_redis_database_per_worker()


def _own_redis_database_per_worker() -> None:
    """Under pytest-xdist each worker has its own test database (pytest-django suffixes the name); give it
    its own Redis database too, so one worker's ``cache.clear()`` (a FLUSHDB) cannot wipe another's
    lockout counts or revocation marks mid-test. Worker gwN uses the configured database + N (mod 16)."""
    worker = os.environ.get("PYTEST_XDIST_WORKER", "")
    cache = settings.CACHES["default"]
    if not worker.startswith("gw") or "redis" not in cache["BACKEND"].lower():
        return
    url = urlsplit(cache["LOCATION"])
    base = int(url.path.strip("/") or 0)
    cache["LOCATION"] = urlunsplit(url._replace(path=f"/{(base + int(worker[2:])) % 16}"))
    # The Celery broker too, eight databases further (a cache.clear() must not empty a queue): a test
    # that counts or flushes the queue must not see another worker's tasks.
    broker = urlsplit(settings.CELERY_BROKER_URL)
    if broker.scheme.startswith("redis"):
        base = int(broker.path.strip("/") or 0)
        settings.CELERY_BROKER_URL = urlunsplit(broker._replace(path=f"/{(base + 8 + int(worker[2:])) % 16}"))


@pytest.fixture(scope="session", autouse=True)
def _flush_past_the_audit_triggers() -> Iterator[None]:
    """Let transactional tests (``django_db(transaction=True)``, ``live_server``) clean up.

    After such a test Django empties every table with one ``TRUNCATE``, which the audit log's
    append-only triggers refuse (as they must in production), so the teardown would fail and leave
    the rows behind. The flush runs here with ``session_replication_role = replica`` (the test role is
    a PostgreSQL superuser), which skips ordinary triggers for that one transaction only; the triggers
    themselves stay in place for every test. The flush also empties what data migrations seeded — the
    chain head row, the state version row, and the role groups — so they are put back as the migrations
    left them, or the next test would find no chain head and no roles.
    """
    original = DatabaseOperations.execute_sql_flush

    def execute_sql_flush(self: DatabaseOperations, sql_list: list[str]) -> None:
        with transaction.atomic(using=self.connection.alias):
            with self.connection.cursor() as cursor:
                cursor.execute("SET LOCAL session_replication_role = replica")
            original(self, sql_list)
            with self.connection.cursor() as cursor:
                if self.connection.vendor == "postgresql":  # not a model's table: Django leaves it
                    cursor.execute("DELETE FROM audit_rejected")
                cursor.execute("SET LOCAL session_replication_role = origin")
            ChainHead.objects.using(self.connection.alias).update_or_create(
                pk=1, defaults={"seq": 0, "hash": GENESIS_HASH, "sealed_at": None}
            )
            StateVersion.objects.using(self.connection.alias).get_or_create(pk=1)
            for name in roles.ROLES:
                Group.objects.using(self.connection.alias).get_or_create(name=name)

    DatabaseOperations.execute_sql_flush = execute_sql_flush  # type: ignore[method-assign]
    try:
        yield
    finally:
        DatabaseOperations.execute_sql_flush = original  # type: ignore[method-assign]


@pytest.fixture
def admin_user(db: None) -> Any:
    return factories.make_admin()


@pytest.fixture
def reviewer_user(db: None) -> Any:
    return factories.make_reviewer()


@pytest.fixture
def auditor_user(db: None) -> Any:
    return factories.make_auditor()


@pytest.fixture
def outsider_user(db: None) -> Any:
    return factories.make_outsider()


@pytest.fixture(scope="session")
def _plain_http_server() -> Iterator[None]:
    # The live server speaks plain HTTP. Production settings redirect to HTTPS and mark cookies Secure,
    # and the security middleware reads the redirect setting once, when the server starts: so this
    # must be in force before the (session-wide) live server is, not only during the test.
    with override_settings(SECURE_SSL_REDIRECT=False, SESSION_COOKIE_SECURE=False, CSRF_COOKIE_SECURE=False):
        yield


@pytest.fixture(scope="session")
def live_server(_plain_http_server: None, django_db_setup: None, live_server: Any) -> Any:
    """pytest-django's live server (tests/e2e, tests/api/test_client_live.py), over plain HTTP.
    Depending on the test database makes the server stop before the database is dropped."""
    return live_server


@pytest.fixture(autouse=True)
def _plain_http(settings: Any) -> None:
    # Production settings redirect to HTTPS; the test client speaks plain HTTP.
    settings.SECURE_SSL_REDIRECT = False


@pytest.fixture(autouse=True)
def _fast_password_hashing(settings: Any) -> None:
    # PBKDF2's deliberate slowness costs seconds per persona on a busy machine and tests nothing.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture(autouse=True)
def _static_without_manifest(settings: Any) -> None:
    # With DEBUG off, {% static %} looks names up in collectstatic's manifest; tests render pages
    # without running collectstatic, so they link the files directly.
    settings.STORAGES = {
        **settings.STORAGES,
        "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
    }


@pytest.fixture(autouse=True)
def _empty_cache() -> None:
    # Each test starts from an empty database; the cache (this worker's own Redis database) must start
    # empty too, or one test's lockout counts and repeat tallies would decide the next one's outcome.
    cache.clear()
    livestate.live.forget()  # nor what the last test's checks kept of its (rolled back) state


@pytest.fixture(autouse=True)
def _column_guarantee_back(django_db_blocker: Any) -> Iterator[None]:
    """A transactional audit test that tampered for real may leave the constraint tying events' columns to
    their content not valid (tests/audit/support.py): it is put back before the next test, whichever
    directory that test is in (the flush after the transactional test has emptied the log by then)."""
    if audit_support.column_guarantee_left_broken:
        with django_db_blocker.unblock(), audit_support.superuser_connection() as conn:
            assert audit_support.restore_column_guarantee(conn.execute, conn.transaction), "the log was not emptied"
        audit_support.column_guarantee_left_broken = False
    yield
