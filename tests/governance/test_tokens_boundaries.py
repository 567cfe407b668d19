"""Delegation tokens at every limit: the shape of each claim, the time window, the size and form of the
compact JWS, the window in which a signing key verifies, the signature cache, and the lifetime rule.

The parsing of claims is plain code over a dict and is tested as such; the rest needs a signing key
in the database. Each limit is pinned on both sides (the last value accepted and the first refused),
and each refusal by its message, since the check and the OAuth endpoints pass those on.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from django.conf import settings
from django.test import override_settings

from governance import tokens
from governance.decision import TokenClaims
from governance.models import SigningKey
from governance.tokens import (
    LifetimeExceedsMaximum,
    TokenExpired,
    TokenInvalid,
    VerifiedToken,
    agent_subject,
    human_subject,
    nested_act,
    token_lifetime,
)

T0 = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
AT = T0 + timedelta(hours=1)
NOW_S = int(AT.timestamp())
LEEWAY_S = int(settings.CUSTOS_TOKEN_LEEWAY.total_seconds())
MAX_TIMESTAMP = 253_402_300_799
TICK = timedelta(microseconds=1)


def claims(**changes: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "iss": settings.CUSTOS_ISSUER,
        "sub": "human:7",
        "aud": "https://custos.test",
        "act": {"sub": "agent:3", "act": {"sub": "agent:2"}},
        "scope": "crm:read crm:write",
        "delegation_id": 5,
        "jti": "abc_DEF-123",
        "iat": NOW_S - 60,
        "nbf": NOW_S - 60,
        "exp": NOW_S + 600,
    }
    base.update(changes)
    return {name: value for name, value in base.items() if value is not DROP}


DROP = object()


def parse(**changes: Any) -> TokenClaims:
    return tokens._parse_claims(claims(**changes))


def refused(message: str, **changes: Any) -> None:
    with pytest.raises(TokenInvalid) as raised:
        parse(**changes)
    assert str(raised.value) == message


# --- Claims ---------------------------------------------------------------------------------


def test_well_formed_claims_are_parsed() -> None:
    assert parse() == TokenClaims(
        human_id=7,
        agent_ids=(3, 2),
        scopes=frozenset({"crm:read", "crm:write"}),
        audience="https://custos.test",
        delegation_id=5,
    )


@pytest.mark.parametrize("name", ["exp", "iat", "nbf"])
def test_a_time_claim_from_the_epoch_to_the_last_second_of_9999_is_accepted(name: str) -> None:
    parse(**{name: 0})
    parse(**{name: MAX_TIMESTAMP})


@pytest.mark.parametrize("name", ["exp", "iat", "nbf"])
@pytest.mark.parametrize(
    "value",
    [-1, MAX_TIMESTAMP + 1, True, 1.0, "1", None],
    ids=["negative", "past-9999", "bool", "float", "str", "null"],
)
def test_a_time_claim_out_of_range_or_not_an_integer_is_malformed(name: str, value: object) -> None:
    refused(f"malformed {name} claim", **{name: value})


@pytest.mark.parametrize("jti", ["a", "a" * 64, "A-z_0"])
def test_a_jti_of_url_safe_characters_up_to_64_is_accepted(jti: str) -> None:
    parse(jti=jti)


@pytest.mark.parametrize(
    "jti",
    ["", "a" * 65, "a.b", "a\x00", "a b", "é", 42, None],
    ids=["empty", "65", "dot", "nul", "space", "e-acute", "int", "null"],
)
def test_any_other_jti_is_malformed(jti: object) -> None:
    refused("malformed jti claim", jti=jti)


@pytest.mark.parametrize(
    "changes",
    [{"scope": ["crm:read"]}, {"scope": None}, {"aud": ["https://custos.test"]}, {"aud": 1}],
    ids=["scope-list", "scope-null", "aud-list", "aud-int"],
)
def test_a_scope_or_audience_that_is_not_a_string_is_malformed(changes: dict[str, object]) -> None:
    refused("malformed delegation claims", **changes)


def test_a_delegation_id_is_a_positive_integer_or_absent() -> None:
    assert parse(delegation_id=1).delegation_id == 1
    assert parse(delegation_id=None).delegation_id is None
    assert parse(delegation_id=DROP).delegation_id is None


@pytest.mark.parametrize("delegation_id", [0, -1, True, "5", 5.0], ids=["zero", "negative", "bool", "str", "float"])
def test_any_other_delegation_id_is_malformed(delegation_id: object) -> None:
    refused("malformed delegation_id claim", delegation_id=delegation_id)


def test_scopes_are_split_on_whitespace() -> None:
    assert parse(scope=" a:read \t b:write ").scopes == frozenset({"a:read", "b:write"})
    assert parse(scope="").scopes == frozenset()


@pytest.mark.parametrize(
    ("subject", "human_id"),
    [
        ("human:7", 7),
        ("human:1", 1),
        ("human:" + "9" * 19, int("9" * 19)),
        ("human:" + "9" * 20, None),
        ("human:0", None),
        ("human:07", None),
        ("human:-7", None),
        ("human:7 ", None),
        (" human:7", None),
        ("agent:7", None),
        ("Human:7", None),
        ("human:", None),
        (7, None),
        (None, None),
    ],
    ids=[
        "seven",
        "one",
        "nineteen-digits",
        "twenty-digits",
        "zero",
        "leading-zero",
        "negative",
        "trailing-space",
        "leading-space",
        "an-agent",
        "capitalised",
        "no-number",
        "an-int",
        "null",
    ],
)
def test_the_subject_names_a_human_by_a_positive_id_or_no_one(subject: object, human_id: int | None) -> None:
    assert parse(sub=subject).human_id == human_id


def test_the_act_chain_is_read_from_the_agent_acting_now_down() -> None:
    act = nested_act([agent_subject(n) for n in (1, 2, 3)])
    assert act == {"sub": "agent:3", "act": {"sub": "agent:2", "act": {"sub": "agent:1"}}}
    assert parse(act=act).agent_ids == (3, 2, 1)
    assert nested_act(["agent:1"]) == {"sub": "agent:1"}
    assert parse(act={"sub": "human:1"}).agent_ids == (None,)
    assert parse(act={}).agent_ids == (None,)


def test_nested_act_needs_an_agent() -> None:
    with pytest.raises(AssertionError):
        nested_act([])


def test_subjects_are_kind_colon_id() -> None:
    assert human_subject(7) == "human:7"
    assert agent_subject(12) == "agent:12"


def test_an_act_chain_sixteen_deep_is_read_and_seventeen_is_refused() -> None:
    assert parse(act=nested_act([agent_subject(n) for n in range(1, 17)])).agent_ids == tuple(range(16, 0, -1))
    refused("malformed act claim", act=nested_act([agent_subject(n) for n in range(1, 18)]))


@pytest.mark.parametrize(
    "act",
    [None, "agent:3", ["agent:3"], {"sub": "agent:3", "act": "agent:2"}, {"sub": "agent:3", "act": []}],
    ids=["null", "a-string", "a-list", "nested-string", "nested-list"],
)
def test_an_act_claim_that_is_not_a_chain_of_objects_is_malformed(act: object) -> None:
    refused("malformed act claim", act=act)


# --- A verified token's accessors -----------------------------------------------------------


def test_a_verified_token_exposes_its_jti_and_expiry() -> None:
    verified = VerifiedToken(claims=claims(exp=NOW_S), kid="k", parsed=parse())
    assert verified.jti == "abc_DEF-123"
    assert verified.exp == NOW_S
    assert verified.expires_at == AT
    assert verified.expires_at.tzinfo is UTC


# --- The lifetime rule ----------------------------------------------------------------------


def test_without_a_request_a_token_lives_the_configured_default() -> None:
    assert token_lifetime(None, AT + timedelta(days=1), AT) == settings.CUSTOS_TOKEN_LIFETIME


def test_a_request_up_to_the_maximum_is_granted_as_asked() -> None:
    maximum = settings.CUSTOS_TOKEN_MAX_LIFETIME
    assert token_lifetime(maximum, AT + timedelta(days=1), AT) == maximum
    assert token_lifetime(timedelta(seconds=90), AT + timedelta(days=1), AT) == timedelta(seconds=90)


def test_a_request_past_the_maximum_is_refused_not_shortened() -> None:
    maximum = settings.CUSTOS_TOKEN_MAX_LIFETIME
    with pytest.raises(LifetimeExceedsMaximum) as raised:
        token_lifetime(maximum + TICK, AT + timedelta(days=1), AT)
    assert str(raised.value) == (
        f"expires_in may be at most {int(maximum.total_seconds())} seconds (CUSTOS_TOKEN_MAX_LIFETIME)"
    )


@override_settings(CUSTOS_TOKEN_MAX_LIFETIME=timedelta(minutes=45))
def test_the_maximum_is_read_from_the_settings() -> None:
    with pytest.raises(LifetimeExceedsMaximum, match="at most 2700 seconds"):
        token_lifetime(timedelta(minutes=46), AT + timedelta(days=1), AT)


def test_a_token_never_outlives_its_delegation() -> None:
    assert token_lifetime(None, AT + timedelta(minutes=3), AT) == timedelta(minutes=3)
    assert token_lifetime(timedelta(minutes=30), AT + timedelta(minutes=3), AT) == timedelta(minutes=3)
    assert token_lifetime(timedelta(minutes=3), AT + timedelta(minutes=3), AT) == timedelta(minutes=3)


# --- The signature cache --------------------------------------------------------------------


def _verified(jti: str) -> VerifiedToken:
    return VerifiedToken(claims=claims(jti=jti), kid="k", parsed=parse())


def test_the_signature_cache_holds_its_size_and_evicts_the_least_recently_used() -> None:
    cache = tokens._SignatureCache(size=2)
    a, b, c = _verified("a"), _verified("b"), _verified("c")
    cache.put(b"a", a)
    cache.put(b"b", b)
    assert cache.get(b"a") is a and cache.get(b"b") is b
    assert cache.get(b"a") is a  # now the most recently used
    cache.put(b"c", c)
    assert (cache.get(b"a"), cache.get(b"b"), cache.get(b"c")) == (a, None, c)
    cache.put(b"a", a)  # a put counts as a use too
    cache.put(b"b", b)
    assert (cache.get(b"a"), cache.get(b"b"), cache.get(b"c")) == (a, b, None)
    cache.clear()
    assert cache.get(b"a") is None


def test_the_signature_cache_keeps_4096_tokens_by_default() -> None:
    cache = tokens._SignatureCache()
    first = _verified("first")
    for n in range(4096):
        cache.put(n.to_bytes(2, "big") + b"-", first)
    assert cache.get((0).to_bytes(2, "big") + b"-") is first
    cache.put(b"one more", first)
    assert cache.get((1).to_bytes(2, "big") + b"-") is None


def test_audiences_of_a_string_a_list_and_none() -> None:
    assert tokens._audiences({"aud": "x"}) == ["x"]
    assert tokens._audiences({"aud": ["x", "y"]}) == ["x", "y"]
    assert tokens._audiences({}) == []
    assert tokens._audiences({"aud": None}) == []


# --- Signing keys ---------------------------------------------------------------------------


@pytest.fixture
def key(db: None) -> SigningKey:
    made = tokens.generate_signing_key(activated_at=T0)
    made.save()
    tokens.public_keys.clear()
    tokens.signature_cache.clear()
    return made


def sign(key: SigningKey, **changes: Any) -> str:
    return tokens.encode(claims(**changes), key)


def test_a_new_signing_key_is_named_by_its_day_and_kept_encrypted(key: SigningKey) -> None:
    assert re.fullmatch(r"20260601-[0-9a-f]{8}", key.kid)
    assert key.algorithm == "EdDSA"
    assert key.activated_at == T0
    assert key.signs_until == T0 + settings.CUSTOS_SIGNING_KEY_ROTATION
    assert key.verifies_until == key.signs_until + settings.CUSTOS_TOKEN_MAX_LIFETIME
    assert "PRIVATE KEY" not in key.private_pem
    assert {k: key.public_jwk[k] for k in ("kty", "crv", "kid", "alg", "use")} == {
        "kty": "OKP",
        "crv": "Ed25519",
        "kid": key.kid,
        "alg": "EdDSA",
        "use": "sig",
    }
    private = tokens.private_key_of(key)
    assert isinstance(private, Ed25519PrivateKey)
    assert tokens._public_jwk(private.public_key(), key.kid) == key.public_jwk


def test_a_new_signing_key_is_activated_now_by_default(db: None) -> None:
    before = datetime.now(UTC)
    made = tokens.generate_signing_key()
    assert before <= made.activated_at <= datetime.now(UTC)
    assert made.kid.startswith(f"{made.activated_at:%Y%m%d}-")


def test_two_signing_keys_share_nothing(db: None) -> None:
    one, two = tokens.generate_signing_key(activated_at=T0), tokens.generate_signing_key(activated_at=T0)
    assert one.kid != two.kid
    assert one.public_jwk["x"] != two.public_jwk["x"]


def test_a_key_encrypted_under_another_secret_cannot_sign(key: SigningKey) -> None:
    with override_settings(CUSTOS_KEY_ENCRYPTION_SECRET="another secret entirely"):
        assert tokens.private_key_of(key) is None
        with pytest.raises(RuntimeError) as raised:
            tokens.encode(claims(), key)
    assert str(raised.value) == f"signing key {key.kid} cannot be decrypted with the configured secret"


def test_a_signed_token_carries_the_kid_and_verifies_under_the_published_key(key: SigningKey) -> None:
    token = sign(key)
    assert jwt.get_unverified_header(token) == {"alg": "EdDSA", "kid": key.kid, "typ": "JWT"}
    verified = tokens.verify(token, at=AT)
    assert verified.kid == key.kid
    assert verified.claims == claims()
    assert verified.parsed == parse()


def test_the_jwks_publishes_a_key_from_its_activation_until_it_stops_verifying(key: SigningKey) -> None:
    def published(at: datetime) -> list[str]:
        return [jwk["kid"] for jwk in tokens.jwks(at)["keys"]]

    assert published(T0 - TICK) == []
    assert published(T0) == [key.kid]
    assert published(key.verifies_until - TICK) == [key.kid]
    assert published(key.verifies_until) == []
    assert tokens.jwks(T0) == {"keys": [key.public_jwk]}


def test_a_key_verifies_from_its_activation_until_just_before_verifies_until(key: SigningKey) -> None:
    assert tokens.public_keys.get(key.kid, T0 - TICK) is None
    assert tokens.public_keys.get(key.kid, T0) is not None
    assert tokens.public_keys.get(key.kid, key.verifies_until - TICK) is not None
    assert tokens.public_keys.get(key.kid, key.verifies_until) is None
    assert tokens.public_keys.get("20260601-00000000", T0) is None


def test_a_public_key_once_read_is_served_without_the_database(key: SigningKey) -> None:
    public = tokens.public_keys.get(key.kid, AT)
    SigningKey.objects.filter(pk=key.pk).delete()
    assert tokens.public_keys.get(key.kid, AT) is public
    tokens.public_keys.clear()
    assert tokens.public_keys.get(key.kid, AT) is None


# --- verify: the time window ----------------------------------------------------------------


def test_a_token_is_expired_once_exp_is_a_leeway_in_the_past(key: SigningKey) -> None:
    with pytest.raises(TokenExpired, match=r"^token has expired$"):
        tokens.verify(sign(key, exp=NOW_S - LEEWAY_S), at=AT)


def test_a_token_a_second_short_of_that_is_still_good(key: SigningKey) -> None:
    assert tokens.verify(sign(key, exp=NOW_S - LEEWAY_S + 1), at=AT).exp == NOW_S - LEEWAY_S + 1


def test_a_token_is_good_from_its_nbf_less_the_leeway(key: SigningKey) -> None:
    assert tokens.verify(sign(key, nbf=NOW_S + LEEWAY_S), at=AT).claims["nbf"] == NOW_S + LEEWAY_S
    with pytest.raises(TokenInvalid, match=r"^token is not valid yet$"):
        tokens.verify(sign(key, nbf=NOW_S + LEEWAY_S + 1), at=AT)


@override_settings(CUSTOS_TOKEN_LEEWAY=timedelta(seconds=5))
def test_the_leeway_is_read_from_the_settings(key: SigningKey) -> None:
    with pytest.raises(TokenExpired):
        tokens.verify(sign(key, exp=NOW_S - 5), at=AT)
    with pytest.raises(TokenInvalid, match="not valid yet"):
        tokens.verify(sign(key, nbf=NOW_S + 6), at=AT)


def test_expiry_is_checked_again_on_a_token_served_from_the_cache(key: SigningKey) -> None:
    token = sign(key, exp=NOW_S + 10)
    tokens.verify(token, at=AT)
    with pytest.raises(TokenExpired):
        tokens.verify(token, at=AT + timedelta(seconds=10 + LEEWAY_S))


def test_a_verified_token_is_served_from_the_cache_without_its_key(key: SigningKey) -> None:
    token = sign(key)
    first = tokens.verify(token, at=AT)
    SigningKey.objects.filter(pk=key.pk).delete()
    tokens.public_keys.clear()
    assert tokens.verify(token, at=AT) is first
    tokens.signature_cache.clear()
    with pytest.raises(TokenInvalid, match=r"^unknown or retired key id$"):
        tokens.verify(token, at=AT)


def test_without_an_explicit_instant_the_clock_is_read(db: None) -> None:
    current = tokens.generate_signing_key()
    current.save()
    now = int(datetime.now(UTC).timestamp())
    assert tokens.verify(sign(current, exp=now + 600, nbf=now - 1, iat=now - 1)).exp == now + 600
    with pytest.raises(TokenExpired):
        tokens.verify(sign(current, exp=now - LEEWAY_S - 5, nbf=now - 600, iat=now - 600))


# --- verify: audience, size, form, header ---------------------------------------------------


def test_the_audience_is_checked_only_when_asked(key: SigningKey) -> None:
    token = sign(key)
    assert tokens.verify(token, at=AT, audiences=None)
    assert tokens.verify(token, at=AT, audiences=["https://other.test", "https://custos.test"])
    with pytest.raises(TokenInvalid, match=r"^token is not for this audience$"):
        tokens.verify(token, at=AT, audiences=["https://other.test"])
    with pytest.raises(TokenInvalid, match=r"^token is not for this audience$"):
        tokens.verify(token, at=AT, audiences=[])


def test_a_token_of_8192_characters_is_parsed_and_one_longer_is_refused_unread() -> None:
    at_limit = "a.b." + "c" * (tokens.MAX_TOKEN_BYTES - 4)
    assert len(at_limit) == tokens.MAX_TOKEN_BYTES == 8192
    with pytest.raises(TokenInvalid) as raised:
        tokens.verify(at_limit, at=AT)
    assert str(raised.value).startswith("malformed header")
    with pytest.raises(TokenInvalid, match=r"^not a compact JWS$"):
        tokens.verify(at_limit + "c", at=AT)


@pytest.mark.parametrize("token", ["", "a", "a.b", "a.b.c.d", "...."], ids=["empty", "one", "two", "four", "dots"])
def test_anything_but_three_segments_is_not_a_compact_jws(token: str) -> None:
    with pytest.raises(TokenInvalid, match=r"^not a compact JWS$"):
        tokens.verify(token, at=AT)


def _with_header(key: SigningKey, **header: Any) -> str:
    private = tokens.private_key_of(key)
    assert private is not None
    return jwt.encode(claims(), private, algorithm="EdDSA", headers=header)


def test_only_eddsa_is_accepted(key: SigningKey) -> None:
    forged = jwt.encode(claims(), "s" * 32, algorithm="HS256", headers={"kid": key.kid})
    with pytest.raises(TokenInvalid, match=r"^algorithm not accepted$"):
        tokens.verify(forged, at=AT)


@pytest.mark.parametrize("kid", ["", "a" * 65, "a/b", "a\x00", None], ids=["empty", "65", "slash", "nul", "absent"])
def test_a_kid_custos_never_issues_is_refused_before_any_lookup(key: SigningKey, kid: object) -> None:
    headers = {"kid": kid} if kid is not None else {}
    with pytest.raises(TokenInvalid, match=r"^no key id, or not one Custos issues$"):
        tokens.verify(_with_header(key, **headers), at=AT)


def test_a_kid_of_64_custos_characters_is_looked_up(key: SigningKey) -> None:
    with pytest.raises(TokenInvalid, match=r"^unknown or retired key id$"):
        tokens.verify(_with_header(key, kid="A-z._0" + "a" * 58), at=AT)


def test_a_token_signed_outside_its_key_s_window_is_refused(key: SigningKey) -> None:
    token = sign(key, exp=int(key.verifies_until.timestamp()) + 600, nbf=0)
    with pytest.raises(TokenInvalid, match=r"^unknown or retired key id$"):
        tokens.verify(token, at=key.verifies_until)


def test_the_issuer_and_every_required_claim_are_checked(key: SigningKey) -> None:
    with pytest.raises(TokenInvalid, match="issuer"):
        tokens.verify(sign(key, iss="https://evil.test"), at=AT)
    for name in ("exp", "iat", "nbf", "jti", "sub", "aud", "iss", "act", "scope"):
        with pytest.raises(TokenInvalid, match=f'"{name}"'):
            tokens.verify(sign(key, **{name: DROP}), at=AT)


def test_a_bad_signature_is_refused(key: SigningKey) -> None:
    head, body, signature = sign(key).split(".")
    other = sign(key, jti="other")
    with pytest.raises(TokenInvalid, match="Signature verification failed"):
        tokens.verify(f"{head}.{body}.{other.split('.')[2]}", at=AT)
    assert signature != other.split(".")[2]


def test_malformed_claims_of_a_well_signed_token_are_refused(key: SigningKey) -> None:
    with pytest.raises(TokenInvalid, match=r"^malformed jti claim$"):
        tokens.verify(sign(key, jti="a b"), at=AT)


@pytest.mark.parametrize(
    "token", ["a.b.\ud800", "a.b.é", "é.b.c", "a.b.c\x80"], ids=["surrogate", "e-acute", "in-header", "c1"]
)
def test_a_token_that_is_not_ascii_is_not_a_compact_jws(token: str) -> None:
    # A compact JWS is base64url and dots; a lone surrogate used to escape as UnicodeEncodeError.
    with pytest.raises(TokenInvalid, match=r"^not a compact JWS$"):
        tokens.verify(token, at=AT)


def test_nbf_within_the_leeway_of_the_real_clock_is_accepted(db: None) -> None:
    current = tokens.generate_signing_key()
    current.save()
    now = int(datetime.now(UTC).timestamp())
    token = sign(current, nbf=now + LEEWAY_S - 5, iat=now, exp=now + 600)
    assert tokens.verify(token).claims["nbf"] == now + LEEWAY_S - 5


# A signing key stored encrypted under ``golden-vector-secret``: the private key with the 32-byte seed
# 00 01 02 … 1f. Keys at rest must keep decrypting across releases; a change to the key derivation (its
# hash, length, salt or info) would strand every stored key, and only a fixed ciphertext shows it.
GOLDEN_SECRET = "golden-vector-secret"
GOLDEN_SEED = bytes(range(32))
GOLDEN_PRIVATE_PEM = (
    "gAAAAABrDpVmXBKeDVAsyE3WefoSXdlBsMGYHizEV3FW6ly_AOk9sxzXvi4XgVC-w0Mpdg69Q7qNh3-7RRHbymskfwCLcj3sSCmY0DFltk"
    "sD5L8SyLP1_cFV31Um8aDKnHvJn3ZfvXF8ftGi11MblDx1iERv8adnqcIE4MnUOyuRY35gxPeBbgTrCJTq7TeDij12sR_Fyo57hsqWoqOR"
    "ik7aCHxvZv3S9XbzBKVnldCXwAHOgcMMd_I="
)


@override_settings(CUSTOS_KEY_ENCRYPTION_SECRET=GOLDEN_SECRET)
def test_a_signing_key_encrypted_by_an_earlier_release_still_decrypts() -> None:
    private = tokens.private_key_of(SigningKey(kid="golden", private_pem=GOLDEN_PRIVATE_PEM))
    assert private is not None
    assert private.private_bytes_raw() == GOLDEN_SEED


def test_a_fresh_public_key_cache_reads_caches_and_forgets(key: SigningKey) -> None:
    cache = tokens._PublicKeys()
    public = cache.get(key.kid, AT)
    assert public is not None
    SigningKey.objects.filter(pk=key.pk).delete()
    assert cache.get(key.kid, AT) is public
    cache.clear()
    assert cache.get(key.kid, AT) is None
