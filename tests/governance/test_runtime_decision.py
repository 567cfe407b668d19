"""The decision core alone: plain data in, one reason out, no database (SPEC §2, §3).

These are the rules every other runtime test reaches through HTTP; here each one is pinned in
isolation, with its precedence, so a change to the order of the rules shows up as a failing test.
"""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta

import pytest

from governance.decision import (
    ALLOWED,
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
)

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
LATER = NOW + timedelta(hours=1)
READ = "crm.contacts:read"
WRITE = "crm.contacts:write"


def link(delegation_id: int, parent_id: int | None, **changes: object) -> Link:
    base = Link(
        delegation_id=delegation_id,
        parent_id=parent_id,
        status="active",
        expires_at=LATER,
        scopes=frozenset({READ, WRITE}),
        agent_id=100 + delegation_id,
        agent_name=f"agent-{delegation_id}",
        agent_status="active",
        sponsor_name="Sam Sponsor",
        sponsor_status="active",
    )
    return dataclasses.replace(base, **changes)  # type: ignore[arg-type]


def chain(*links: Link, **changes: object) -> ChainState:
    base = ChainState(
        links=links or (link(1, None), link(2, 1), link(3, 2)),
        root_human_id=7,
        root_human_name="Rita Root",
        root_human_status="active",
        root_holds=frozenset({READ, WRITE}),
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
        agent_holds=frozenset({READ}),
    )
    return dataclasses.replace(base, **changes)  # type: ignore[arg-type]


def token(state: ChainState | None = None, **changes: object) -> TokenState:
    base = TokenState(
        revoked=False,
        agent_id=103,
        chain=state if state is not None else chain(),
        scopes=frozenset({READ, WRITE}),
        audience="https://custos.test",
        delegation_id=3,
    )
    return dataclasses.replace(base, **changes)  # type: ignore[arg-type]


def claims_of(state: TokenState, **changes: object) -> TokenClaims:
    """What a genuine token for ``state`` says: exactly its record and the chain it was issued under."""
    live = state.chain
    base = TokenClaims(
        human_id=live.root_human_id if live is not None else 7,
        agent_ids=tuple(link.agent_id for link in reversed(live.links)) if live is not None else (state.agent_id,),
        scopes=state.scopes,
        audience=state.audience,
        delegation_id=state.delegation_id,
    )
    return dataclasses.replace(base, **changes)  # type: ignore[arg-type]


def decide(state: TokenState, wanted: frozenset[str] = frozenset({READ}), scopes: frozenset[str] | None = None) -> str:
    """The decision on ``state``, for a token issued for ``scopes`` (its record's by default)."""
    if scopes is not None:
        state = dataclasses.replace(state, scopes=scopes)
    return decide_token(state, claims=claims_of(state), wanted=wanted, at=NOW).reason


# --- decide_chain ---------------------------------------------------------------------------


def test_a_live_chain_allows_a_delegated_scope_the_root_human_holds() -> None:
    outcome = decide_chain(chain(), frozenset({READ}), NOW)
    assert outcome == ALLOWED
    assert outcome.allowed


def test_a_revoked_leaf_is_delegation_revoked() -> None:
    state = chain(link(1, None), link(2, 1, status="revoked"))
    assert decide_chain(state, frozenset({READ}), NOW).reason == Reason.DELEGATION_REVOKED


def test_a_leaf_past_its_expiry_is_delegation_expired_even_while_its_status_says_active() -> None:
    state = chain(link(1, None), link(2, 1, expires_at=NOW - timedelta(seconds=1)))
    assert decide_chain(state, frozenset({READ}), NOW).reason == Reason.DELEGATION_EXPIRED


def test_a_leaf_expiring_exactly_now_is_already_expired() -> None:
    state = chain(link(1, None), link(2, 1, expires_at=NOW))
    assert decide_chain(state, frozenset({READ}), NOW).reason == Reason.DELEGATION_EXPIRED


def test_a_leaf_marked_expired_by_the_sweep_is_delegation_expired() -> None:
    state = chain(link(1, None), link(2, 1, status="expired"))
    assert decide_chain(state, frozenset({READ}), NOW).reason == Reason.DELEGATION_EXPIRED


@pytest.mark.parametrize(
    "ancestor",
    [
        {"status": "revoked"},
        {"status": "expired"},
        {"expires_at": NOW - timedelta(minutes=1)},
    ],
    ids=["revoked", "marked-expired", "past-expiry"],
)
def test_a_dead_link_anywhere_above_a_live_leaf_is_chain_broken(ancestor: dict[str, object]) -> None:
    for dead in (1, 2):  # the root, and a middle link
        links = tuple(link(i, i - 1 or None, **(ancestor if i == dead else {})) for i in (1, 2, 3))
        outcome = decide_chain(chain(*links), frozenset({READ}), NOW)
        assert outcome.reason == Reason.CHAIN_BROKEN
        assert f"delegation {dead}" in outcome.detail


def test_the_leafs_own_state_is_named_before_a_broken_chain_above_it() -> None:
    state = chain(link(1, None, status="revoked"), link(2, 1, status="revoked"))
    assert decide_chain(state, frozenset({READ}), NOW).reason == Reason.DELEGATION_REVOKED


def test_any_inactive_agent_on_the_chain_is_agent_inactive() -> None:
    for position in range(3):
        links = tuple(
            link(i + 1, i or None, **({"agent_status": "suspended"} if i == position else {})) for i in range(3)
        )
        assert decide_chain(chain(*links), frozenset({READ}), NOW).reason == Reason.AGENT_INACTIVE


def test_any_inactive_sponsor_on_the_chain_is_sponsor_inactive() -> None:
    for position in range(3):
        links = tuple(link(i + 1, i or None, **({"sponsor_status": "left"} if i == position else {})) for i in range(3))
        assert decide_chain(chain(*links), frozenset({READ}), NOW).reason == Reason.SPONSOR_INACTIVE


def test_an_inactive_root_human_is_human_inactive() -> None:
    for status in ("suspended", "left"):
        assert decide_chain(chain(root_human_status=status), frozenset({READ}), NOW).reason == Reason.HUMAN_INACTIVE


def test_a_scope_outside_the_leafs_delegation_is_scope_not_delegated() -> None:
    narrow = chain(link(1, None), link(2, 1, scopes=frozenset({READ})))
    assert decide_chain(narrow, frozenset({WRITE}), NOW).reason == Reason.SCOPE_NOT_DELEGATED


def test_a_scope_the_root_human_no_longer_holds_is_delegator_lacks_grant() -> None:
    state = chain(root_holds=frozenset({WRITE}))
    assert decide_chain(state, frozenset({READ}), NOW).reason == Reason.DELEGATOR_LACKS_GRANT


def test_the_rules_apply_in_order_link_then_chain_then_agents_then_human_then_scopes() -> None:
    everything_wrong = chain(
        link(1, None, status="revoked", agent_status="suspended", sponsor_status="left"),
        link(2, 1, status="revoked", agent_status="suspended", sponsor_status="left", scopes=frozenset()),
        root_human_status="left",
        root_holds=frozenset(),
    )
    # Fix one fault at a time: the next reason in line appears.
    expected = [
        (everything_wrong, Reason.DELEGATION_REVOKED),
    ]
    live_leaf = dataclasses.replace(everything_wrong.links[1], status="active")
    step = dataclasses.replace(everything_wrong, links=(everything_wrong.links[0], live_leaf))
    expected.append((step, Reason.CHAIN_BROKEN))
    live_root = dataclasses.replace(step.links[0], status="active")
    step = dataclasses.replace(step, links=(live_root, live_leaf))
    expected.append((step, Reason.AGENT_INACTIVE))
    step = dataclasses.replace(
        step, links=tuple(dataclasses.replace(link_, agent_status="active") for link_ in step.links)
    )
    expected.append((step, Reason.SPONSOR_INACTIVE))
    step = dataclasses.replace(
        step, links=tuple(dataclasses.replace(link_, sponsor_status="active") for link_ in step.links)
    )
    expected.append((step, Reason.HUMAN_INACTIVE))
    step = dataclasses.replace(step, root_human_status="active")
    expected.append((step, Reason.SCOPE_NOT_DELEGATED))
    step = dataclasses.replace(
        step, links=(step.links[0], dataclasses.replace(step.links[1], scopes=frozenset({READ})))
    )
    expected.append((step, Reason.DELEGATOR_LACKS_GRANT))
    step = dataclasses.replace(step, root_holds=frozenset({READ}))
    expected.append((step, Reason.ALLOWED))
    assert [decide_chain(state, frozenset({READ}), NOW).reason for state, _ in expected] == [r for _, r in expected]


# --- decide_token ---------------------------------------------------------------------------


def test_a_live_token_allows_what_it_carries() -> None:
    assert decide(token()) == Reason.ALLOWED


def test_a_revoked_token_is_credential_revoked_whatever_the_chain_says() -> None:
    broken = chain(link(1, None, status="revoked"), link(2, 1, status="revoked"))
    assert decide(token(broken, revoked=True)) == Reason.CREDENTIAL_REVOKED


def test_a_token_whose_record_names_another_agent_is_credential_invalid() -> None:
    assert decide(token(agent_id=999)) == Reason.CREDENTIAL_INVALID


def test_a_token_whose_delegation_no_longer_exists_is_no_delegation() -> None:
    # Unreachable through HTTP: a token's delegation is protected from deletion (on_delete=PROTECT),
    # so the loader never returns chain=None for a stored token. The rule is pinned here.
    state = token(chain=None)
    outcome = decide_token(state, claims=claims_of(state), wanted=frozenset({READ}), at=NOW)
    assert outcome.reason == Reason.NO_DELEGATION


@pytest.mark.parametrize(
    "forged",
    [
        {"scopes": frozenset({READ, WRITE, "crm.contacts:delete"})},
        {"scopes": frozenset({READ})},
        {"audience": "billing.ledger"},
        {"delegation_id": 2},
        {"delegation_id": None},
        {"human_id": 8},
        {"human_id": None},
        {"agent_ids": (102, 101)},
        {"agent_ids": (103, 102)},
        {"agent_ids": (103, 102, 101, 100)},
        {"agent_ids": (101, 102, 103)},
        {"agent_ids": (103, None, 101)},
    ],
    ids=[
        "wider-scope",
        "narrower-scope",
        "other-audience",
        "other-delegation",
        "no-delegation",
        "other-human",
        "no-human",
        "acting-agent-swapped",
        "chain-cut-short",
        "chain-extended",
        "chain-reversed",
        "chain-unreadable",
    ],
)
def test_a_token_that_says_anything_other_than_its_record_is_credential_invalid(forged: dict[str, object]) -> None:
    # What a token re-signed with a stolen signing key could claim: each is refused before the chain is
    # even looked at, and the wider scope in particular never reaches the scope rule.
    state = token()
    outcome = decide_token(state, claims=claims_of(state, **forged), wanted=frozenset({READ}), at=NOW)
    assert outcome.reason == Reason.CREDENTIAL_INVALID
    assert outcome.detail == "the token does not match its record"


def test_a_revoked_token_is_credential_revoked_even_when_its_claims_were_forged() -> None:
    state = token(revoked=True)
    assert decide_token(state, claims=claims_of(state, human_id=8), wanted=frozenset({READ}), at=NOW).reason == (
        Reason.CREDENTIAL_REVOKED
    )


def test_a_token_past_its_recorded_expiry_is_credential_expired_up_to_the_last_instant() -> None:
    assert decide(token(expires_at=NOW)) == Reason.CREDENTIAL_EXPIRED
    assert decide(token(expires_at=NOW + timedelta(microseconds=1))) == Reason.ALLOWED


def test_a_token_never_allows_more_than_its_own_scope_even_if_the_delegation_would() -> None:
    assert decide(token(), wanted=frozenset({WRITE}), scopes=frozenset({READ})) == Reason.SCOPE_NOT_DELEGATED


def test_a_chain_denial_wins_over_the_tokens_own_scope() -> None:
    state = chain(root_human_status="left")
    assert decide(token(state), wanted=frozenset({WRITE}), scopes=frozenset({READ})) == Reason.HUMAN_INACTIVE


# --- decide_key -----------------------------------------------------------------------------


def test_a_live_key_allows_what_its_agent_holds_itself() -> None:
    assert decide_key(key(), frozenset({READ}), NOW) == ALLOWED


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({"revoked": True}, Reason.CREDENTIAL_REVOKED),
        ({"expires_at": NOW}, Reason.CREDENTIAL_EXPIRED),
        ({"expires_at": NOW - timedelta(days=1)}, Reason.CREDENTIAL_EXPIRED),
        ({"agent_status": "offboarded"}, Reason.AGENT_INACTIVE),
        ({"sponsor_status": "left"}, Reason.SPONSOR_INACTIVE),
        ({"agent_holds": frozenset()}, Reason.SCOPE_NOT_GRANTED),
    ],
    ids=["revoked", "expires-now", "expired", "agent-offboarded", "sponsor-left", "no-grant"],
)
def test_a_key_is_refused_with_the_reason_for_its_state(changes: dict[str, object], reason: str) -> None:
    assert decide_key(key(**changes), frozenset({READ}), NOW).reason == reason


def test_a_revoked_key_is_named_revoked_before_expired_or_inactive() -> None:
    state = key(revoked=True, expires_at=NOW - timedelta(days=1), agent_status="suspended")
    assert decide_key(state, frozenset({READ}), NOW).reason == Reason.CREDENTIAL_REVOKED


def test_a_key_asking_nothing_is_only_authenticated() -> None:
    # How the token endpoint authenticates an agent's key: no scope asked, just the key's own state.
    assert decide_key(key(agent_holds=frozenset()), frozenset(), NOW).allowed


# --- Outcome --------------------------------------------------------------------------------


def test_only_the_allowed_reason_allows() -> None:
    codes = [value for name, value in vars(Reason).items() if name.isupper()]
    assert len(codes) == len(set(codes)) == 14
    assert [code for code in codes if Outcome(code).allowed] == [Reason.ALLOWED]
