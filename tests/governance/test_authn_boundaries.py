"""The parsing of credentials, unit by unit: the bearer header, the kind of a credential, the agent key
and the API token as ``governance.authn`` reads them, each refusal by its reason and words.

The API and the check reach these through HTTP in other files; here each rule is pinned directly, with
its edges (a header of several values, a non-ASCII byte, the minute between two recorded uses of an
API token).
"""

from __future__ import annotations

import dataclasses
from datetime import timedelta
from typing import Any

import pytest
import time_machine
from django.conf import settings
from django.utils import timezone

from governance import authn, services
from governance.authn import (
    AgentPrincipal,
    CredentialRefused,
    agent_principal,
    authenticate_agent,
    authenticate_api_token,
    authenticate_key,
    bearer,
    kind_of,
    load_key,
)
from governance.decision import Reason
from governance.models import Agent, ApiToken, Grant
from tests.factories import (
    SYSTEM,
    make_admin,
    make_agent,
    make_api_token,
    make_chain,
    make_chain_tokens,
    make_grant,
    make_key,
    make_resource,
    make_token,
)

MALFORMED = "malformed Authorization header: use Bearer <credential>"


# --- The bearer header ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("header", "credential"),
    [
        ("Bearer abc", "abc"),
        ("bearer abc", "abc"),
        ("BEARER abc", "abc"),
        ("  Bearer   abc  ", "abc"),
        (b"Bearer abc", "abc"),
        (None, None),
        ("", None),
        (b"", None),
        ("   ", None),
        ("Basic dXNlcjpwYXNz", None),
        ("Token abc", None),
        ("Bearerabc", None),
    ],
    ids=[
        "bearer",
        "lower-case",
        "upper-case",
        "spaced",
        "bytes",
        "no-header",
        "empty",
        "empty-bytes",
        "blank",
        "basic",
        "token",
        "no-space",
    ],
)
def test_the_bearer_header_gives_its_credential_or_none_for_another_scheme(
    header: str | bytes | None, credential: str | None
) -> None:
    assert bearer(header) == credential


@pytest.mark.parametrize(
    "header",
    ["Bearer", "bearer", "Bearer a b", "Bearer a\tb", "Bearer é", "Bearer ck_é"],
    ids=["no-value", "lower-no-value", "two-values", "tab-separated", "not-ascii", "not-ascii-in-a-key"],
)
def test_a_malformed_bearer_header_is_refused(header: str) -> None:
    with pytest.raises(CredentialRefused) as raised:
        bearer(header)
    assert (raised.value.detail, raised.value.reason) == (MALFORMED, Reason.CREDENTIAL_INVALID)
    assert str(raised.value) == MALFORMED


def test_a_bearer_header_that_is_not_ascii_is_refused() -> None:
    with pytest.raises(CredentialRefused) as raised:
        bearer("Bearer é".encode())
    assert raised.value.detail == "the Authorization header is not ASCII"
    assert raised.value.reason == Reason.CREDENTIAL_INVALID


@pytest.mark.parametrize(
    ("presented", "kind"),
    [
        ("cu_abcdefgh_x", "api_token"),
        ("cu_", "api_token"),
        ("ck_abcdefgh_x", "agent_key"),
        ("ck_", "agent_key"),
        ("eyJhbGciOiJFZERTQSJ9.e30.sig", "delegation_token"),
        ("cux", "delegation_token"),
        ("ckx", "delegation_token"),
        ("CK_abcdefgh_x", "delegation_token"),
        ("", "delegation_token"),
    ],
)
def test_the_kind_of_a_credential_is_told_by_its_first_three_characters(presented: str, kind: str) -> None:
    assert kind_of(presented) == kind


def test_a_refusal_is_credential_invalid_unless_told_otherwise() -> None:
    plain = CredentialRefused("nope")
    assert (plain.detail, plain.reason, str(plain)) == ("nope", "credential_invalid", "nope")
    expired = CredentialRefused("late", reason=Reason.CREDENTIAL_EXPIRED)
    assert (expired.detail, expired.reason) == ("late", "credential_expired")


def test_an_agent_principal_is_told_from_a_console_user() -> None:
    agent = Agent(name="crawler")
    principal = AgentPrincipal(agent=agent, via="key", expires_at=timezone.now(), key_id=4)
    assert agent_principal(principal) is principal
    assert agent_principal(None) is None
    assert agent_principal(object()) is None
    assert str(principal) == "agent crawler (via key)"
    assert (principal.is_authenticated, principal.is_active, principal.is_anonymous, principal.is_agent) == (
        True,
        True,
        False,
        True,
    )


# --- Agent keys -----------------------------------------------------------------------------


@pytest.mark.django_db
def test_a_live_key_authenticates_its_agent() -> None:
    agent = make_agent()
    key, full = make_key(agent)
    principal = authenticate_key(full)
    assert (principal.agent, principal.via, principal.key_id, principal.expires_at) == (
        agent,
        "key",
        key.pk,
        key.expires_at,
    )
    assert (principal.delegation_id, principal.scopes, principal.jti) == (None, frozenset(), None)
    assert authenticate_agent(full).key_id == key.pk


@pytest.mark.django_db
@pytest.mark.parametrize("tamper", ["secret", "prefix", "shape"])
def test_a_key_custos_did_not_issue_is_invalid(tamper: str) -> None:
    _key, full = make_key(make_agent())
    kind, prefix, secret = full.split("_")
    presented = {
        "secret": f"{kind}_{prefix}_{secret[:-1]}{'A' if secret[-1] != 'A' else 'B'}",
        "prefix": f"{kind}_{'z' * 10}_{secret}",
        "shape": f"{kind}_{prefix}",
    }[tamper]
    assert load_key(presented, None, timezone.now()) is None
    with pytest.raises(CredentialRefused) as raised:
        authenticate_key(presented)
    assert (raised.value.reason, raised.value.detail) == (Reason.CREDENTIAL_INVALID, "the agent key is not valid")


@pytest.mark.django_db
def test_a_revoked_key_is_refused_with_the_decision_s_reason_and_detail() -> None:
    key, full = make_key(make_agent())
    services.agentkey_revoke(actor=SYSTEM, key=key)
    with pytest.raises(CredentialRefused) as raised:
        authenticate_key(full)
    assert (raised.value.reason, raised.value.detail) == (Reason.CREDENTIAL_REVOKED, "the key was revoked")


@pytest.mark.django_db
def test_a_key_is_expired_from_the_instant_of_its_expiry() -> None:
    key, full = make_key(make_agent())
    assert authenticate_key(full, key.expires_at - timedelta(microseconds=1)).key_id == key.pk
    with pytest.raises(CredentialRefused) as raised:
        authenticate_key(full, key.expires_at)
    assert (raised.value.reason, raised.value.detail) == (
        Reason.CREDENTIAL_EXPIRED,
        f"the key expired at {key.expires_at}",
    )


@pytest.mark.django_db
def test_a_loaded_key_says_whether_its_agent_holds_the_scope_asked() -> None:
    agent = make_agent()
    resource = make_resource()
    make_grant(agent, resource, "read")
    _key, full = make_key(agent)
    now = timezone.now()
    read, write = resource.scope("read"), resource.scope("write")
    held = load_key(full, read, now)
    assert held is not None and held.agent_holds == frozenset({read})
    not_held = load_key(full, write, now)
    assert not_held is not None and not_held.agent_holds == frozenset()
    nothing_asked = load_key(full, None, now)
    assert nothing_asked is not None and nothing_asked.agent_holds == frozenset()
    assert (held.agent_id, held.agent_name, held.agent_status) == (agent.pk, agent.name, "active")
    assert (held.sponsor_name, held.sponsor_status) == (agent.sponsor.name, "active")
    assert held.revoked is False


@pytest.mark.django_db
def test_a_versioned_key_is_loaded_whatever_its_secret_and_compared_on_use() -> None:
    agent = make_agent()
    key, full = make_key(agent)
    kind, prefix, secret = full.split("_")
    wrong = f"{kind}_{prefix}_{'Q' * len(secret)}"
    versioned = authn.load_key_versioned(wrong, None, timezone.now())
    assert versioned is not None
    loaded = versioned.state
    assert isinstance(loaded, authn.LoadedKey)
    assert loaded.for_presented(wrong) is None
    state = loaded.for_presented(full)
    assert state is not None and state.key_id == key.pk
    assert isinstance(versioned.version, int)
    assert authn.load_key_versioned(f"{kind}_{'z' * 10}_{secret}", None, timezone.now()) is None
    assert authn.load_key_versioned(f"{kind}_{prefix}", None, timezone.now()) is None


# --- Delegation tokens ----------------------------------------------------------------------


@pytest.mark.django_db
def test_a_token_authenticates_its_agent_within_its_chain() -> None:
    chain = make_chain(depth=2)
    issued = make_chain_tokens(chain)["tokens"][-1]
    principal = authenticate_agent(issued)
    assert (principal.agent, principal.via, principal.key_id) == (chain["agents"][-1], "token", None)
    assert principal.delegation_id == chain["links"][-1].pk
    assert principal.scopes == frozenset(chain["scopes"])
    verified = authn.verify_token(issued, timezone.now(), None)
    assert (principal.jti, principal.expires_at) == (verified.jti, verified.expires_at)


@pytest.mark.django_db
def test_a_token_for_another_audience_is_refused_by_default() -> None:
    chain = make_chain(depth=1)
    key = make_key(chain["agents"][0])[1]
    issued = make_token(key, chain["links"][0], audience=chain["resource"].name)
    with pytest.raises(CredentialRefused) as raised:
        authn.authenticate_token(issued)
    assert raised.value.reason == Reason.CREDENTIAL_INVALID
    assert raised.value.detail == "the token is not valid: token is not for this audience"
    assert authn.authenticate_token(issued, audiences=[chain["resource"].name]).via == "token"


@pytest.mark.django_db
def test_an_expired_token_is_credential_expired() -> None:
    chain = make_chain(depth=1)
    issued = make_chain_tokens(chain)["tokens"][0]
    later = timezone.now() + settings.CUSTOS_TOKEN_MAX_LIFETIME + settings.CUSTOS_TOKEN_LEEWAY + timedelta(seconds=1)
    with pytest.raises(CredentialRefused) as raised:
        authn.verify_token(issued, later, None)
    assert (raised.value.reason, raised.value.detail) == (Reason.CREDENTIAL_EXPIRED, "the token has expired")


@pytest.mark.django_db
def test_a_malformed_token_is_invalid_with_the_verifier_s_words() -> None:
    with pytest.raises(CredentialRefused) as raised:
        authenticate_agent("not.a.token")
    assert raised.value.reason == Reason.CREDENTIAL_INVALID
    assert raised.value.detail.startswith("the token is not valid: malformed header")


@pytest.mark.django_db
def test_a_token_with_no_record_is_invalid() -> None:
    chain = make_chain(depth=1)
    issued = make_chain_tokens(chain)["tokens"][0]
    verified = authn.verify_token(issued, timezone.now(), None)
    assert authn.token_outcome(verified, frozenset(), timezone.now(), None) == (
        None,
        authn.Outcome(Reason.CREDENTIAL_INVALID, "no record of this token"),
    )


@pytest.mark.django_db
def test_a_token_decision_over_several_scopes_reads_what_the_root_holds() -> None:
    chain = make_chain(depth=1, scopes=("read", "write"))
    issued = make_chain_tokens(chain)["tokens"][0]
    now = timezone.now()
    verified = authn.verify_token(issued, now, None)
    read, write = chain["scopes"]
    for wanted in (frozenset({read}), frozenset({read, write}), frozenset()):
        state, outcome = authn.token_decision(verified, wanted, now)
        assert state is not None and outcome.allowed, (wanted, outcome)
    services.grant_revoke(
        actor=SYSTEM, grant=Grant.objects.get(holder_human=chain["human"], resource=chain["resource"], action="write")
    )
    later = timezone.now()
    _state, outcome = authn.token_decision(verified, frozenset({read, write}), later)
    assert (outcome.reason, outcome.detail) == (
        Reason.DELEGATOR_LACKS_GRANT,
        f"{chain['human'].name} no longer holds {write}",
    )
    _state, outcome = authn.token_decision(verified, frozenset({write}), later)
    assert outcome.reason == Reason.DELEGATOR_LACKS_GRANT
    assert authn.token_decision(verified, frozenset({read}), later)[1].allowed


# --- Console API tokens ---------------------------------------------------------------------


@pytest.mark.django_db
def test_an_api_token_authenticates_its_user_and_records_its_use() -> None:
    admin = make_admin()
    presented = make_api_token(admin)
    user, token = authenticate_api_token(presented)
    assert (user, token.user) == (admin, admin)
    token.refresh_from_db()
    assert token.last_used_at is not None


@pytest.mark.django_db
def test_an_api_token_s_use_is_recorded_at_most_once_a_minute() -> None:
    presented = make_api_token(make_admin())
    start = timezone.now()
    with time_machine.travel(start, tick=False):
        authenticate_api_token(presented)
    stored = ApiToken.objects.get()
    assert stored.last_used_at == start
    with time_machine.travel(start + timedelta(seconds=60), tick=False):
        authenticate_api_token(presented)
    stored.refresh_from_db()
    assert stored.last_used_at == start
    moment = start + timedelta(seconds=60, microseconds=1)
    with time_machine.travel(moment, tick=False):
        authenticate_api_token(presented)
    stored.refresh_from_db()
    assert stored.last_used_at == moment


@pytest.mark.django_db
@pytest.mark.parametrize("problem", ["revoked", "inactive-user", "wrong-secret", "two-parts", "agent-key"])
def test_an_api_token_that_does_not_let_in_is_refused_alike(problem: str) -> None:
    admin = make_admin()
    presented = make_api_token(admin)
    kind, prefix, secret = presented.split("_")
    if problem == "revoked":
        ApiToken.objects.update(revoked_at=timezone.now())
    elif problem == "inactive-user":
        admin.is_active = False
        admin.save()
    elif problem == "wrong-secret":
        presented = f"{kind}_{prefix}_{'Q' * len(secret)}"
    elif problem == "two-parts":
        presented = f"{kind}_{prefix}"
    else:
        presented = f"ck_{prefix}_{secret}"
    with pytest.raises(CredentialRefused) as raised:
        authenticate_api_token(presented)
    assert (raised.value.reason, raised.value.detail) == (Reason.CREDENTIAL_INVALID, "invalid or revoked API token")


@pytest.mark.django_db
def test_a_revoked_token_is_refused_with_the_decision_s_reason_and_detail() -> None:
    chain = make_chain(depth=1)
    issued = make_chain_tokens(chain)["tokens"][0]
    services.token_revoke(actor=SYSTEM, jti=authn.verify_token(issued, timezone.now(), None).jti)
    with pytest.raises(CredentialRefused) as raised:
        authn.authenticate_token(issued)
    assert (raised.value.reason, raised.value.detail) == (Reason.CREDENTIAL_REVOKED, "the token was revoked")


@pytest.mark.django_db
def test_a_token_whose_chain_is_gone_is_no_delegation_however_many_scopes_are_asked() -> None:
    chain = make_chain(depth=1, scopes=("read", "write"))
    issued = make_chain_tokens(chain)["tokens"][0]
    now = timezone.now()
    verified = authn.verify_token(issued, now, None)
    state, _outcome = authn.token_decision(verified, frozenset(), now)
    assert state is not None
    orphan = dataclasses.replace(state, chain=None)
    for wanted in (frozenset(chain["scopes"]), frozenset(chain["scopes"][:1]), frozenset()):
        assert authn.token_outcome(verified, wanted, now, orphan) == (
            orphan,
            authn.Outcome(Reason.NO_DELEGATION, "the token's delegation no longer exists"),
        )


@pytest.mark.django_db
def test_a_versioned_key_says_whether_its_agent_holds_the_scope_at_the_instant_asked() -> None:
    agent = make_agent()
    resource = make_resource()
    grant = make_grant(agent, resource, "read")
    assert grant.expires_at is not None
    _key, full = make_key(agent)
    read = resource.scope("read")
    now = timezone.now()
    versioned = authn.load_key_versioned(full, read, now)
    assert versioned is not None
    assert versioned.state.state.agent_holds == frozenset({read})
    assert versioned.until == grant.expires_at
    after = authn.load_key_versioned(full, read, grant.expires_at)
    assert after is not None and after.state.state.agent_holds == frozenset()


@pytest.mark.django_db
def test_credentials_are_judged_at_the_instant_given_not_the_clock() -> None:
    key, full = make_key(make_agent())
    with pytest.raises(CredentialRefused) as raised:
        authenticate_agent(full, key.expires_at)
    assert raised.value.reason == Reason.CREDENTIAL_EXPIRED
    chain = make_chain(depth=1)
    issued = make_chain_tokens(chain)["tokens"][0]
    later = timezone.now() + settings.CUSTOS_TOKEN_MAX_LIFETIME + settings.CUSTOS_TOKEN_LEEWAY + timedelta(seconds=1)
    earlier = timezone.now() - timedelta(hours=1)
    for authenticate in (authenticate_agent, authn.authenticate_token):
        with pytest.raises(CredentialRefused) as raised:
            authenticate(issued, later)
        assert raised.value.reason == Reason.CREDENTIAL_EXPIRED
        # An hour before it was issued the token was no token at all (its key and nbf came later).
        with pytest.raises(CredentialRefused) as raised:
            authenticate(issued, earlier)
        assert raised.value.reason == Reason.CREDENTIAL_INVALID


@pytest.mark.django_db
def test_what_the_root_holds_of_several_scopes_is_read_at_the_instant_asked() -> None:
    chain = make_chain(depth=1, scopes=("read", "write"))
    issued = make_chain_tokens(chain)["tokens"][0]
    now = timezone.now()
    Grant.objects.filter(holder_human=chain["human"], action="write").update(expires_at=now + timedelta(minutes=2))
    verified = authn.verify_token(issued, now, None)
    wanted = frozenset(chain["scopes"])
    assert authn.token_decision(verified, wanted, now)[1].allowed
    outcome = authn.token_decision(verified, wanted, now + timedelta(minutes=3))[1]
    assert outcome.reason == Reason.DELEGATOR_LACKS_GRANT


@pytest.mark.django_db
def test_an_api_token_is_found_by_its_own_prefix() -> None:
    first, second = make_admin(), make_admin()
    presented = {first: make_api_token(first), second: make_api_token(second)}
    assert authenticate_api_token(presented[first])[0] == first
    assert authenticate_api_token(presented[second])[0] == second


# --- Round trips ----------------------------------------------------------------------------


@pytest.mark.django_db
def test_a_principal_comes_with_its_sponsor_loaded(django_assert_num_queries: Any) -> None:
    chain = make_chain(depth=1)
    issued = make_chain_tokens(chain)["tokens"][0]
    key_principal = authenticate_agent(make_key(chain["agents"][0])[1])
    token_principal = authenticate_agent(issued)
    with django_assert_num_queries(0):
        assert key_principal.agent.sponsor.name == token_principal.agent.sponsor.name == chain["human"].name


@pytest.mark.django_db
def test_an_api_token_comes_with_its_user_loaded(django_assert_num_queries: Any) -> None:
    admin = make_admin()
    presented = make_api_token(admin)
    authenticate_api_token(presented)  # records the use: the next one, within the minute, writes nothing
    with django_assert_num_queries(1):
        _user, token = authenticate_api_token(presented)
    with django_assert_num_queries(0):
        assert token.user.username == admin.username


@pytest.mark.django_db
def test_a_malformed_api_token_is_refused_without_a_query(django_assert_num_queries: Any) -> None:
    with django_assert_num_queries(0), pytest.raises(CredentialRefused):
        authenticate_api_token("cu_xxxx")


@pytest.mark.django_db
def test_one_scope_is_decided_in_one_round_trip_and_several_in_two(django_assert_num_queries: Any) -> None:
    chain = make_chain(depth=1, scopes=("read", "write"))
    issued = make_chain_tokens(chain)["tokens"][0]
    now = timezone.now()
    verified = authn.verify_token(issued, now, None)
    with django_assert_num_queries(1):
        assert authn.token_decision(verified, frozenset(chain["scopes"][:1]), now)[1].allowed
    with django_assert_num_queries(2):
        assert authn.token_decision(verified, frozenset(chain["scopes"]), now)[1].allowed
