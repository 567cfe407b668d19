from __future__ import annotations

import pytest

from governance.chain import delegation_usability
from tests.factories import make_chain

pytestmark = pytest.mark.django_db


def test_a_fresh_two_level_chain_is_usable() -> None:
    chain = make_chain(depth=2)
    usability = delegation_usability(chain["links"][-1])
    assert usability.usable, usability
    assert [link.pk for link in usability.chain] == [link.pk for link in chain["links"]]
