"""The chain-state contract: a token's record and its delegation's live chain, loaded in one round trip,
are what the ORM loader and the token's issue recorded. (The loaders' equality over generated
organisations is in test_delegation_properties.)"""

from __future__ import annotations

import jwt
import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from governance import chain, services
from tests.factories import SYSTEM, make_chain, make_chain_tokens

pytestmark = pytest.mark.django_db


def test_a_token_loads_with_its_record_and_the_chain_the_orm_sees_in_one_query() -> None:
    c = make_chain(depth=3)
    issued = make_chain_tokens(c)["tokens"][-1]
    claims = jwt.decode(issued, options={"verify_signature": False})
    scope = c["scopes"][0]
    now = timezone.now()
    with CaptureQueriesContext(connection) as queries:
        state = chain.load_token(claims["jti"], scope, now)
    assert len(queries) == 1
    assert state is not None and state.chain is not None
    assert state.chain == chain.chain_of(c["links"][-1], frozenset({scope}), now)[0]
    assert (state.agent_id, state.delegation_id, state.audience) == (
        c["agents"][-1].pk,
        c["links"][-1].pk,
        claims["aud"],
    )
    assert state.scopes == frozenset(claims["scope"].split()) and not state.revoked
    assert [link.agent_id for link in state.chain.links] == [agent.pk for agent in c["agents"]]


def test_the_loaders_agree_after_the_root_human_loses_a_scope_and_an_agent_is_suspended() -> None:
    c = make_chain(depth=2, scopes=("read", "write"))
    read, write = c["scopes"]
    for grant in c["human"].grants.filter(action="write"):
        services.grant_revoke(actor=SYSTEM, grant=grant)
    services.agent_suspend(actor=SYSTEM, agent=c["agents"][1])
    now = timezone.now()
    for scope in (read, write, None):
        fast = chain.load_chain(c["links"][-1].pk, scope, now)
        assert fast == chain.chain_of(c["links"][-1], frozenset({scope}) if scope else frozenset(), now)[0]
    assert fast is not None and fast.links[-1].agent_status == "suspended"
    assert chain.load_chain(c["links"][-1].pk, read, now).root_holds == frozenset({read})  # type: ignore[union-attr]
    assert chain.load_chain(c["links"][-1].pk, write, now).root_holds == frozenset()  # type: ignore[union-attr]


def test_an_unknown_token_or_delegation_loads_as_none() -> None:
    now = timezone.now()
    assert chain.load_token("never-issued", None, now) is None
    assert chain.load_chain(987654321, None, now) is None
