from __future__ import annotations

from typing import Any

import pytest
from django.conf import settings

from tests import factories


def pytest_configure(config: Any) -> None:
    # The suite is about PostgreSQL's behaviour (triggers, row locks, constraints): refuse to run
    # silently on anything else.
    engine = settings.DATABASES["default"]["ENGINE"]
    if engine != "django.db.backends.postgresql":
        raise pytest.UsageError("tests need PostgreSQL: set DATABASE_URL (make test does this for you)")


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


@pytest.fixture(autouse=True)
def _plain_http(settings: Any) -> None:
    # Production settings redirect to HTTPS; the test client speaks plain HTTP.
    settings.SECURE_SSL_REDIRECT = False
