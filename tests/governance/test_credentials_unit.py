"""Random bearer credentials, unit by unit: their exact shape, the parser that finds the prefix, the
keyed hash they are stored as.

The shape is part of the contract (agents and scripts match ``ck_<prefix>_<secret>``), the parser is
what every presented key or API token meets first, so each of its limits is pinned at its edge; the
last tests take malformed credentials through the API, where they must be a 401 with a stable code.
"""

from __future__ import annotations

import hashlib
import hmac
import string

import pytest
from django.test import override_settings
from rest_framework.test import APIClient

from governance import credentials
from governance.credentials import MAX_LENGTH, PREFIX_LENGTH, SECRET_LENGTH, generate, keyed_hash, matches, parse_prefix

PREFIX_ALPHABET = set(string.ascii_lowercase + string.digits)
SECRET_ALPHABET = set(string.ascii_letters + string.digits)
PREFIX = "abcdefgh23"
SECRET = "Zz09" * 10


# --- generate -------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["ck", "cu"])
def test_a_new_credential_is_kind_prefix_and_secret(kind: str) -> None:
    new = generate(kind)
    found_kind, prefix, secret = new.full.split("_")
    assert found_kind == kind
    assert new.prefix == prefix
    assert (len(prefix), len(secret)) == (PREFIX_LENGTH, SECRET_LENGTH) == (10, 40)
    assert set(prefix) <= PREFIX_ALPHABET
    assert set(secret) <= SECRET_ALPHABET
    assert new.hashed == keyed_hash(new.full)
    assert parse_prefix(kind, new.full) == prefix


def test_prefixes_and_secrets_draw_on_their_whole_alphabet() -> None:
    # 2,000 characters each: the chance that a fair draw misses any one character is below 1e-10.
    news = [generate("ck") for _ in range(200)]
    assert set().union(*(new.prefix for new in news)) == PREFIX_ALPHABET
    assert set().union(*(new.full.split("_")[2][:10] for new in news)) == SECRET_ALPHABET


def test_no_two_credentials_are_alike() -> None:
    news = [generate("ck") for _ in range(50)]
    assert len({new.prefix for new in news}) == len({new.full.split("_")[2] for new in news}) == 50
    assert len({new.hashed for new in news}) == 50


# --- keyed_hash and matches -----------------------------------------------------------------


@override_settings(CUSTOS_CREDENTIAL_PEPPER="pepper-for-tests")
def test_the_stored_hash_is_hmac_sha256_under_the_pepper() -> None:
    full = f"ck_{PREFIX}_{SECRET}"
    expected = hmac.new(b"pepper-for-tests", full.encode(), hashlib.sha256).hexdigest()
    assert keyed_hash(full) == expected
    assert len(expected) == 64


def test_the_hash_depends_on_the_pepper() -> None:
    full = f"ck_{PREFIX}_{SECRET}"
    with override_settings(CUSTOS_CREDENTIAL_PEPPER="one"):
        one = keyed_hash(full)
    with override_settings(CUSTOS_CREDENTIAL_PEPPER="two"):
        two = keyed_hash(full)
    assert one != two


def test_matches_only_the_credential_that_was_hashed() -> None:
    new = generate("ck")
    assert matches(new.full, new.hashed) is True
    assert matches(new.full + "x", new.hashed) is False
    assert matches(new.full[:-1], new.hashed) is False
    assert matches(new.full, generate("ck").hashed) is False
    assert matches(new.full, "") is False


# --- parse_prefix ---------------------------------------------------------------------------


def test_a_well_formed_credential_gives_its_prefix() -> None:
    assert parse_prefix("ck", f"ck_{PREFIX}_{SECRET}") == PREFIX
    assert parse_prefix("cu", f"cu_{PREFIX}_{SECRET}") == PREFIX
    assert parse_prefix("ck", f"ck_{PREFIX}_x") == PREFIX


def test_the_length_limit_is_inclusive() -> None:
    head = f"ck_{PREFIX}_"
    at_limit = head + "a" * (MAX_LENGTH - len(head))
    assert len(at_limit) == MAX_LENGTH == 80
    assert parse_prefix("ck", at_limit) == PREFIX
    assert parse_prefix("ck", at_limit + "a") is None


@pytest.mark.parametrize("length", [8, 9, 16])
def test_a_prefix_of_eight_to_sixteen_characters_is_accepted(length: int) -> None:
    prefix = ("a1" * 8)[:length]
    assert parse_prefix("ck", f"ck_{prefix}_{SECRET}") == prefix


@pytest.mark.parametrize("length", [0, 7, 17])
def test_a_prefix_shorter_than_eight_or_longer_than_sixteen_is_refused(length: int) -> None:
    assert parse_prefix("ck", f"ck_{'a' * length}_{SECRET}") is None


@pytest.mark.parametrize(
    "presented",
    [
        "",
        "ck",
        "ck_",
        f"ck_{PREFIX}",
        "ck_xxxx",
        f"ck_{PREFIX}_",
        f"ck_{PREFIX}_{SECRET}_",
        f"ck_{PREFIX}_{SECRET}_extra",
        f"ck__{PREFIX}_{SECRET}",
        f"cu_{PREFIX}_{SECRET}",
        f"CK_{PREFIX}_{SECRET}",
        f"ckx_{PREFIX}_{SECRET}",
        f"_{PREFIX}_{SECRET}",
        f"ck_ABCDEFGH23_{SECRET}",
        f"ck_abcd-fgh23_{SECRET}",
        f"ck_abcdéfgh23_{SECRET}",
        f"ck_abcdefgh2\x00_{SECRET}",
        f"ck_{PREFIX}_{SECRET[:-1]}-",
        f"ck_{PREFIX}_{SECRET[:-1]}é",
        f"ck_{PREFIX}_{SECRET[:-1]}\x00",
        f"ck_{PREFIX}_{SECRET[:-1]} ",
        f"ck_{PREFIX}_{SECRET[:-1]}=",
    ],
    ids=[
        "empty",
        "kind-only",
        "kind-and-separator",
        "no-secret-part",
        "two-parts",
        "empty-secret",
        "trailing-separator",
        "four-parts",
        "empty-prefix-part",
        "other-kind",
        "kind-in-capitals",
        "longer-kind",
        "no-kind",
        "prefix-in-capitals",
        "prefix-with-a-dash",
        "prefix-not-ascii",
        "prefix-with-a-nul",
        "secret-with-a-dash",
        "secret-not-ascii",
        "secret-with-a-nul",
        "secret-with-a-space",
        "secret-with-padding",
    ],
)
def test_a_malformed_credential_has_no_prefix(presented: str) -> None:
    assert parse_prefix("ck", presented) is None


def test_the_secret_alphabet_is_letters_and_digits() -> None:
    assert parse_prefix("ck", f"ck_{PREFIX}_{string.ascii_letters + string.digits[:6]}") == PREFIX
    assert parse_prefix("ck", f"ck_{PREFIX}_{string.digits}") == PREFIX


def test_the_prefix_alphabet_is_lower_case_letters_and_digits() -> None:
    for start in range(0, 36, 12):
        prefix = (string.ascii_lowercase + string.digits)[start : start + 12]
        assert parse_prefix("ck", f"ck_{prefix}_{SECRET}") == prefix


def test_the_parser_refuses_only_by_returning_none() -> None:
    # Whatever the bearer sends, the parser answers; nothing it is given makes it raise.
    for presented in ["_", "__", "___", "ck_" * 30, "\x00", "ck_\x00_\x00", "ck_" + "a" * 100]:
        assert credentials.parse_prefix("ck", presented) is None


# --- Through the API ------------------------------------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize(
    "presented",
    [
        "ck_xxxx",
        "cu_xxxx",
        "ck_",
        "cu_",
        f"ck_{PREFIX}",
        f"cu_{PREFIX}",
        f"ck_{PREFIX}_{SECRET}_extra",
        f"cu_{PREFIX}_{SECRET}_extra",
        f"ck_{PREFIX}_{SECRET}",
        f"cu_{PREFIX}_{SECRET}",
        "ck_" + "a" * 200,
    ],
    ids=[
        "key-two-parts",
        "api-token-two-parts",
        "key-kind-only",
        "api-token-kind-only",
        "key-no-secret",
        "api-token-no-secret",
        "key-four-parts",
        "api-token-four-parts",
        "key-unknown-prefix",
        "api-token-unknown-prefix",
        "key-too-long",
    ],
)
def test_a_malformed_or_unknown_credential_is_a_401_with_a_stable_code(presented: str) -> None:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {presented}")
    response = client.get("/api/v1/agents/")
    assert response.status_code == 401, response.content
    body = response.json()
    assert body["code"] == "credential_invalid"
    assert body["detail"] == (
        "the agent key is not valid" if presented.startswith("ck_") else "invalid or revoked API token"
    )
    assert response["WWW-Authenticate"] == 'Bearer realm="custos"'
