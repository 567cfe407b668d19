"""Fixtures of the delegation-rule tests (``test_delegation_invariants.py``, ``test_delegation_usability.py``,
``test_grant_and_key_rules.py``); a module here that defines its own ``org`` uses its own."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import time_machine
from django.utils import timezone

from tests.governance.delegation_world import Org, make_org


@pytest.fixture
def org() -> Org:
    return make_org()


@pytest.fixture
def frozen() -> Iterator[time_machine.Traveller]:
    with time_machine.travel(timezone.now(), tick=False) as traveller:
        yield traveller
