from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from django.db import transaction
from django.test import override_settings

from tests import factories
from tests.api.agent_calls import Caller
from tests.api.support import World, build_world

# Test users need no real password hashing; PBKDF2 at production strength would dominate the run.
FAST_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture(autouse=True)
def _fast_passwords(settings: Any) -> None:
    settings.PASSWORD_HASHERS = FAST_HASHERS


@pytest.fixture(scope="module")
def _module_world(django_db_setup: None, django_db_blocker: Any) -> Iterator[World]:
    """One organisation per test module, built inside a transaction that is rolled back at the end.

    Each test's own ``db`` transaction nests inside it as a savepoint and is rolled back after the
    test, so every test starts from exactly this world (writes included) without rebuilding it.
    """
    with django_db_blocker.unblock(), override_settings(PASSWORD_HASHERS=FAST_HASHERS), transaction.atomic():
        yield build_world()
        transaction.set_rollback(True)


@pytest.fixture
def world(_module_world: World, db: None) -> World:
    return _module_world


@pytest.fixture
def caller(world: World) -> Caller:
    """``world.agent`` with a key of its own and a token for ``world.delegation``."""
    key_record, key = factories.make_key(world.agent)
    return Caller(world.agent, key, key_record, factories.make_token(key, world.delegation))
