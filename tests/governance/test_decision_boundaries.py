"""Every comparison of the decision core at its edge, and every denial's reason and detail in full.

``test_runtime_decision.py`` pins which rule wins; this file pins where each rule starts to hold (a
credential or link expiring at the very instant of the check is expired, one microsecond later it is
not), which link or actor a denial names when several are at fault, and the exact words of every
denial: the API declares ``detail`` a non-empty string, and reviewers read it. Plain data, no database.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest

from governance.decision import (
    ALLOWED,
    REASON_SUMMARIES,
    ChainState,
    KeyState,
    Link,
    Outcome,
    Reason,
    TokenClaims,
    TokenState,
    decide_chain,
    decide_key,
    decide_token,
    matches_record,
    reason_summary,
)

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
LATER = NOW + timedelta(hours=1)
TICK = timedelta(microseconds=1)
READ = "crm.contacts:read"
WRITE = "crm.contacts:write"
EXPORT = "crm.contacts:export"
ALL = frozenset({READ, WRITE, EXPORT})


def link(delegation_id: int, **changes: object) -> Link:
    base = Link(
        delegation_id=delegation_id,
        parent_id=delegation_id - 1 if delegation_id > 1 else None,
        status="active",
        expires_at=LATER,
        scopes=ALL,
        agent_id=100 + delegation_id,
        agent_name=f"agent-{delegation_id}",
        agent_status="active",
        sponsor_name=f"Sponsor {delegation_id}",
        sponsor_status="active",
    )
    return dataclasses.replace(base, **changes)  # type: ignore[arg-type]


def chain(*changed: Link, **changes: object) -> ChainState:
    """Three links, root first; a link passed in replaces the one with its delegation id."""
    links = {n: link(n) for n in (1, 2, 3)}
    links.update({changed_link.delegation_id: changed_link for changed_link in changed})
    base = ChainState(
        links=tuple(links[n] for n in (1, 2, 3)),
        root_human_id=7,
        root_human_name="Rita Root",
        root_human_status="active",
        root_holds=ALL,
    )
    return dataclasses.replace(base, **changes)  # type: ignore[arg-type]


def token(state: ChainState | None = None, **changes: object) -> TokenState:
    base = TokenState(
        revoked=False,
        agent_id=103,
        chain=state if state is not None else chain(),
        expires_at=LATER,
        scopes=frozenset({READ, WRITE}),
        audience="https://custos.test",
        delegation_id=3,
    )
    return dataclasses.replace(base, **changes)  # type: ignore[arg-type]


def claims_for(state: TokenState, **changes: object) -> TokenClaims:
    """What a genuine token says: exactly its record and the chain it was issued under."""
    assert state.chain is not None
    base = TokenClaims(
        human_id=state.chain.root_human_id,
        agent_ids=tuple(each.agent_id for each in reversed(state.chain.links)),
        scopes=state.scopes,
        audience=state.audience,
        delegation_id=state.delegation_id,
    )
    return dataclasses.replace(base, **changes)  # type: ignore[arg-type]


def key(**changes: object) -> KeyState:
    base = KeyState(
        key_id=1,
        expires_at=LATER,
        revoked=False,
        agent_id=101,
        agent_name="agent-1",
        agent_status="active",
        sponsor_name="Sam Sponsor",
        sponsor_status="active",
        agent_holds=frozenset({READ, WRITE}),
    )
    return dataclasses.replace(base, **changes)  # type: ignore[arg-type]


def on_chain(state: ChainState, wanted: frozenset[str] = frozenset({READ})) -> Outcome:
    return decide_chain(state, wanted, NOW)


def on_token(
    state: TokenState, wanted: frozenset[str] = frozenset({READ}), claims: TokenClaims | None = None
) -> Outcome:
    return decide_token(state, claims=claims or claims_for(state), wanted=wanted, at=NOW)


# --- Reasons and their summaries ------------------------------------------------------------


def test_allowed_is_the_one_outcome_that_allows() -> None:
    assert Outcome("allowed", "") == ALLOWED
    assert ALLOWED.allowed is True
    assert Outcome(Reason.CREDENTIAL_INVALID, "x").allowed is False


def test_a_reason_summary_names_nobody_and_an_unknown_reason_is_its_own_summary() -> None:
    assert reason_summary(Reason.CREDENTIAL_INVALID) == "the credential is not one Custos issued"
    assert reason_summary(Reason.CHAIN_BROKEN) == "a link up the chain is no longer in force"
    assert reason_summary("something_new") == "something_new"
    assert all(reason_summary(reason) == summary for reason, summary in REASON_SUMMARIES.items())


# --- The link in use ------------------------------------------------------------------------


def test_a_live_chain_allows() -> None:
    assert on_chain(chain()) == ALLOWED


def test_a_leaf_expiring_at_the_instant_of_the_check_is_expired() -> None:
    assert on_chain(chain(link(3, expires_at=NOW))) == Outcome(
        Reason.DELEGATION_EXPIRED, "delegation 3 expired at 2026-06-01 12:00:00+00:00"
    )


def test_a_leaf_expiring_a_microsecond_after_the_check_is_in_force() -> None:
    assert on_chain(chain(link(3, expires_at=NOW + TICK))) == ALLOWED


def test_a_leaf_marked_expired_is_expired_whatever_its_time() -> None:
    assert on_chain(chain(link(3, status="expired"))) == Outcome(
        Reason.DELEGATION_EXPIRED, f"delegation 3 expired at {LATER}"
    )


def test_a_revoked_leaf_is_revoked_even_past_its_expiry() -> None:
    revoked = Outcome(Reason.DELEGATION_REVOKED, "delegation 3 was revoked")
    assert on_chain(chain(link(3, status="revoked"))) == revoked
    assert on_chain(chain(link(3, status="revoked", expires_at=NOW - TICK))) == revoked


def test_a_one_link_chain_is_judged_on_its_leaf_alone() -> None:
    single = dataclasses.replace(chain(), links=(link(1),))
    assert on_chain(single) == ALLOWED
    assert on_chain(dataclasses.replace(single, links=(link(1, expires_at=NOW),))) == Outcome(
        Reason.DELEGATION_EXPIRED, f"delegation 1 expired at {NOW}"
    )


# --- The links above it ---------------------------------------------------------------------


@pytest.mark.parametrize("above", [1, 2], ids=["root", "middle"])
def test_a_link_above_expiring_at_the_instant_of_the_check_breaks_the_chain(above: int) -> None:
    assert on_chain(chain(link(above, expires_at=NOW))) == Outcome(
        Reason.CHAIN_BROKEN, f"delegation {above} up the chain is expired"
    )


@pytest.mark.parametrize("above", [1, 2], ids=["root", "middle"])
def test_a_link_above_expiring_a_microsecond_after_the_check_holds(above: int) -> None:
    assert on_chain(chain(link(above, expires_at=NOW + TICK))) == ALLOWED


@pytest.mark.parametrize("above", [1, 2], ids=["root", "middle"])
def test_a_revoked_link_above_is_reported_revoked_not_expired(above: int) -> None:
    expected = Outcome(Reason.CHAIN_BROKEN, f"delegation {above} up the chain is revoked")
    assert on_chain(chain(link(above, status="revoked"))) == expected
    assert on_chain(chain(link(above, status="revoked", expires_at=NOW))) == expected


@pytest.mark.parametrize("above", [1, 2], ids=["root", "middle"])
def test_a_link_above_marked_expired_is_reported_expired_not_revoked(above: int) -> None:
    assert on_chain(chain(link(above, status="expired"))) == Outcome(
        Reason.CHAIN_BROKEN, f"delegation {above} up the chain is expired"
    )


def test_of_several_dead_links_above_the_one_nearest_the_leaf_is_named() -> None:
    state = chain(link(1, status="revoked"), link(2, expires_at=NOW))
    assert on_chain(state) == Outcome(Reason.CHAIN_BROKEN, "delegation 2 up the chain is expired")


def test_a_dead_leaf_is_named_before_a_dead_link_above() -> None:
    state = chain(link(1, status="revoked"), link(3, expires_at=NOW))
    assert on_chain(state).reason == Reason.DELEGATION_EXPIRED


# --- Agents, sponsors, the root human -------------------------------------------------------


@pytest.mark.parametrize("at", [1, 2, 3], ids=["root-link", "middle-link", "leaf"])
def test_an_inactive_agent_anywhere_on_the_chain_is_named(at: int) -> None:
    assert on_chain(chain(link(at, agent_status="suspended"))) == Outcome(
        Reason.AGENT_INACTIVE, f"agent agent-{at} is suspended"
    )


@pytest.mark.parametrize("at", [1, 2, 3], ids=["root-link", "middle-link", "leaf"])
def test_an_inactive_sponsor_anywhere_on_the_chain_is_named_with_its_agent(at: int) -> None:
    assert on_chain(chain(link(at, sponsor_status="offboarded"))) == Outcome(
        Reason.SPONSOR_INACTIVE, f"Sponsor {at}, sponsor of agent-{at}, is offboarded"
    )


def test_the_actor_nearest_the_leaf_is_named_first() -> None:
    state = chain(link(1, agent_status="suspended"), link(3, sponsor_status="offboarded"))
    assert on_chain(state) == Outcome(Reason.SPONSOR_INACTIVE, "Sponsor 3, sponsor of agent-3, is offboarded")
    state = chain(link(1, sponsor_status="offboarded"), link(2, agent_status="suspended"))
    assert on_chain(state) == Outcome(Reason.AGENT_INACTIVE, "agent agent-2 is suspended")


def test_on_one_link_the_agent_is_named_before_its_sponsor() -> None:
    state = chain(link(2, agent_status="offboarded", sponsor_status="suspended"))
    assert on_chain(state) == Outcome(Reason.AGENT_INACTIVE, "agent agent-2 is offboarded")


def test_links_are_judged_before_actors() -> None:
    state = chain(link(1, status="revoked", agent_status="suspended"))
    assert on_chain(state).reason == Reason.CHAIN_BROKEN


def test_an_inactive_root_human_is_named() -> None:
    assert on_chain(chain(root_human_status="offboarded")) == Outcome(Reason.HUMAN_INACTIVE, "Rita Root is offboarded")


def test_actors_are_judged_before_the_root_human() -> None:
    state = chain(link(2, sponsor_status="suspended"), root_human_status="offboarded")
    assert on_chain(state).reason == Reason.SPONSOR_INACTIVE


# --- Scopes ---------------------------------------------------------------------------------


def test_scopes_not_delegated_by_the_leaf_are_all_named_in_order() -> None:
    state = chain(link(3, scopes=frozenset({READ})))
    assert on_chain(state, frozenset({WRITE, EXPORT, READ})) == Outcome(
        Reason.SCOPE_NOT_DELEGATED, f"not delegated: {EXPORT}, {WRITE}"
    )


def test_only_the_leaf_s_scopes_count_for_delegation() -> None:
    state = chain(link(1, scopes=frozenset({READ})), link(2, scopes=frozenset({READ})))
    assert on_chain(state, frozenset({WRITE})) == ALLOWED


def test_exactly_the_delegated_scopes_are_allowed() -> None:
    state = chain(link(3, scopes=frozenset({READ, WRITE})), root_holds=frozenset({READ, WRITE}))
    assert on_chain(state, frozenset({READ, WRITE})) == ALLOWED


def test_scopes_the_root_human_no_longer_holds_are_all_named_in_order() -> None:
    state = chain(root_holds=frozenset({READ}))
    assert on_chain(state, frozenset({WRITE, EXPORT, READ})) == Outcome(
        Reason.DELEGATOR_LACKS_GRANT, f"Rita Root no longer holds {EXPORT}, {WRITE}"
    )


def test_a_scope_not_delegated_is_named_before_one_the_root_lacks() -> None:
    state = chain(link(3, scopes=frozenset({READ})), root_holds=frozenset())
    assert on_chain(state, frozenset({WRITE})).reason == Reason.SCOPE_NOT_DELEGATED


def test_the_root_human_is_judged_before_the_scopes() -> None:
    state = chain(link(3, scopes=frozenset()), root_human_status="suspended")
    assert on_chain(state, frozenset({WRITE})).reason == Reason.HUMAN_INACTIVE


def test_asking_for_no_scope_on_a_live_chain_is_allowed() -> None:
    assert on_chain(chain(root_holds=frozenset()), frozenset()) == ALLOWED


# --- A token against its record -------------------------------------------------------------


def test_a_genuine_token_matches_its_record() -> None:
    state = token()
    assert matches_record(state, claims_for(state))
    assert on_token(state) == ALLOWED


@pytest.mark.parametrize(
    "changes",
    [
        {"scopes": frozenset({READ, WRITE, EXPORT})},
        {"scopes": frozenset({READ})},
        {"audience": "https://elsewhere.test"},
        {"delegation_id": 2},
        {"delegation_id": None},
        {"human_id": 8},
        {"human_id": None},
        {"agent_ids": (102, 102, 101)},
        {"agent_ids": (103, 102, 999)},
        {"agent_ids": (103, 102)},
        {"agent_ids": (103, 102, 101, 100)},
        {"agent_ids": (None, 102, 101)},
    ],
    ids=[
        "scope-widened",
        "scope-narrowed",
        "audience",
        "delegation",
        "delegation-dropped",
        "subject",
        "subject-dropped",
        "acting-agent",
        "first-agent",
        "chain-shortened",
        "chain-lengthened",
        "acting-agent-dropped",
    ],
)
def test_a_token_saying_anything_but_its_record_is_invalid(changes: dict[str, object]) -> None:
    state = token()
    claims = claims_for(state, **changes)
    assert not matches_record(state, claims)
    assert on_token(state, claims=claims) == Outcome(Reason.CREDENTIAL_INVALID, "the token does not match its record")


def test_without_a_chain_the_acting_agent_is_still_checked_against_the_record() -> None:
    state = token(chain=None)
    genuine = TokenClaims(
        human_id=7, agent_ids=(103, 102), scopes=state.scopes, audience=state.audience, delegation_id=3
    )
    assert matches_record(state, genuine)
    assert on_token(state, claims=genuine) == Outcome(Reason.NO_DELEGATION, "the token's delegation no longer exists")
    other_agent = dataclasses.replace(genuine, agent_ids=(104, 102))
    assert not matches_record(state, other_agent)
    assert on_token(state, claims=other_agent).reason == Reason.CREDENTIAL_INVALID
    no_agent = dataclasses.replace(genuine, agent_ids=())
    assert not matches_record(state, no_agent)


# --- A token's own rules --------------------------------------------------------------------


def test_a_revoked_token_is_revoked_before_anything_else() -> None:
    state = token(revoked=True, expires_at=NOW - TICK, chain=chain(link(3, status="revoked")))
    assert on_token(state, claims=claims_for(token(), audience="x")) == Outcome(
        Reason.CREDENTIAL_REVOKED, "the token was revoked"
    )


def test_a_token_not_matching_its_record_is_invalid_before_it_is_expired() -> None:
    state = token(expires_at=NOW)
    assert on_token(state, claims=claims_for(state, audience="x")).reason == Reason.CREDENTIAL_INVALID


def test_a_token_whose_recorded_expiry_is_the_instant_of_the_check_is_expired() -> None:
    assert on_token(token(expires_at=NOW)) == Outcome(Reason.CREDENTIAL_EXPIRED, "the token has expired")


def test_a_token_whose_recorded_expiry_is_a_microsecond_after_the_check_is_in_force() -> None:
    assert on_token(token(expires_at=NOW + TICK)) == ALLOWED


def test_a_token_with_no_recorded_expiry_is_judged_on_its_chain() -> None:
    assert on_token(token(expires_at=None)) == ALLOWED
    assert on_token(token(chain(root_human_status="offboarded"), expires_at=None)).reason == Reason.HUMAN_INACTIVE


def test_an_expired_token_is_expired_before_its_delegation_is_missing() -> None:
    state = token(expires_at=NOW)
    claims = TokenClaims(human_id=7, agent_ids=(103,), scopes=state.scopes, audience=state.audience, delegation_id=3)
    assert on_token(dataclasses.replace(state, chain=None), claims=claims).reason == Reason.CREDENTIAL_EXPIRED


def test_a_token_s_chain_is_decided_at_the_same_instant() -> None:
    state = token(chain(link(2, expires_at=NOW)))
    assert on_token(state) == Outcome(Reason.CHAIN_BROKEN, "delegation 2 up the chain is expired")


def test_a_token_never_allows_more_than_its_recorded_scopes() -> None:
    state = token(scopes=frozenset({READ}))
    assert on_token(state, frozenset({READ, WRITE, EXPORT})) == Outcome(
        Reason.SCOPE_NOT_DELEGATED, f"not in the token's scope: {EXPORT}, {WRITE}"
    )


def test_a_token_allows_exactly_its_recorded_scopes() -> None:
    state = token(scopes=frozenset({READ, WRITE}))
    assert on_token(state, frozenset({READ, WRITE})) == ALLOWED
    assert on_token(state, frozenset()) == ALLOWED


def test_the_chain_s_denial_is_kept_when_the_token_s_scope_is_also_exceeded() -> None:
    state = token(chain(root_human_status="suspended"), scopes=frozenset({READ}))
    assert on_token(state, frozenset({EXPORT})) == Outcome(Reason.HUMAN_INACTIVE, "Rita Root is suspended")
    state = token(chain(link(3, scopes=frozenset({READ}))), scopes=frozenset({READ}))
    assert on_token(state, frozenset({EXPORT})) == Outcome(Reason.SCOPE_NOT_DELEGATED, f"not delegated: {EXPORT}")


# --- An agent's key -------------------------------------------------------------------------


def test_a_live_key_of_an_active_agent_allows_what_the_agent_holds() -> None:
    assert decide_key(key(), frozenset({READ, WRITE}), NOW) == ALLOWED
    assert decide_key(key(agent_holds=frozenset()), frozenset(), NOW) == ALLOWED


def test_a_revoked_key_is_revoked_even_past_its_expiry() -> None:
    revoked = Outcome(Reason.CREDENTIAL_REVOKED, "the key was revoked")
    assert decide_key(key(revoked=True), frozenset({READ}), NOW) == revoked
    assert decide_key(key(revoked=True, expires_at=NOW, agent_status="suspended"), frozenset({READ}), NOW) == revoked


def test_a_key_expiring_at_the_instant_of_the_check_is_expired() -> None:
    assert decide_key(key(expires_at=NOW, agent_status="suspended"), frozenset({READ}), NOW) == Outcome(
        Reason.CREDENTIAL_EXPIRED, "the key expired at 2026-06-01 12:00:00+00:00"
    )


def test_a_key_expiring_a_microsecond_after_the_check_is_in_force() -> None:
    assert decide_key(key(expires_at=NOW + TICK), frozenset({READ}), NOW) == ALLOWED


def test_a_key_of_an_inactive_agent_names_the_agent_before_its_sponsor() -> None:
    state = key(agent_status="suspended", sponsor_status="offboarded")
    assert decide_key(state, frozenset({READ}), NOW) == Outcome(Reason.AGENT_INACTIVE, "agent agent-1 is suspended")


def test_a_key_of_an_agent_whose_sponsor_is_inactive_names_both() -> None:
    state = key(sponsor_status="offboarded", agent_holds=frozenset())
    assert decide_key(state, frozenset({READ}), NOW) == Outcome(
        Reason.SPONSOR_INACTIVE, "Sam Sponsor, sponsor of agent-1, is offboarded"
    )


def test_a_key_names_every_scope_its_agent_holds_no_grant_for_in_order() -> None:
    assert decide_key(key(agent_holds=frozenset({READ})), frozenset({READ, WRITE, EXPORT}), NOW) == Outcome(
        Reason.SCOPE_NOT_GRANTED, f"agent-1 holds no grant for {EXPORT}, {WRITE}"
    )


@pytest.mark.parametrize(
    "decide",
    [
        lambda: on_chain(chain(link(3, status="revoked"))),
        lambda: on_chain(chain(link(3, expires_at=NOW))),
        lambda: on_chain(chain(link(1, status="revoked"))),
        lambda: on_chain(chain(link(2, agent_status="suspended"))),
        lambda: on_chain(chain(link(2, sponsor_status="suspended"))),
        lambda: on_chain(chain(root_human_status="suspended")),
        lambda: on_chain(chain(link(3, scopes=frozenset())), frozenset({READ})),
        lambda: on_chain(chain(root_holds=frozenset()), frozenset({READ})),
        lambda: on_token(token(revoked=True)),
        lambda: on_token(token(), claims=claims_for(token(), audience="x")),
        lambda: on_token(token(expires_at=NOW)),
        lambda: on_token(token(scopes=frozenset()), frozenset({READ})),
        lambda: decide_key(key(revoked=True), frozenset(), NOW),
        lambda: decide_key(key(expires_at=NOW), frozenset(), NOW),
        lambda: decide_key(key(agent_status="suspended"), frozenset(), NOW),
        lambda: decide_key(key(sponsor_status="suspended"), frozenset(), NOW),
        lambda: decide_key(key(agent_holds=frozenset()), frozenset({READ}), NOW),
    ],
    ids=[
        "leaf-revoked",
        "leaf-expired",
        "chain-broken",
        "agent-inactive",
        "sponsor-inactive",
        "human-inactive",
        "scope-not-delegated",
        "delegator-lacks-grant",
        "token-revoked",
        "token-mismatch",
        "token-expired",
        "token-scope",
        "key-revoked",
        "key-expired",
        "key-agent-inactive",
        "key-sponsor-inactive",
        "key-scope-not-granted",
    ],
)
def test_every_denial_has_a_reason_with_a_summary_and_a_non_empty_detail(decide: Callable[[], Outcome]) -> None:
    outcome = decide()
    assert not outcome.allowed
    assert outcome.reason in REASON_SUMMARIES
    assert outcome.detail.strip()
