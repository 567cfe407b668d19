"""Forged and malformed credentials and bodies at ``POST /api/v1/check``.

A credential that is not one Custos issued is a recorded ``deny``/``credential_invalid`` (or
``credential_expired`` for a genuine token past its time) with status 200, never a 5xx; a malformed
body is a 400 ``{code, detail, fields}`` that records nothing.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import jwt
import pytest
import time_machine
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from django.conf import settings
from django.http import HttpResponse
from django.test import Client

from audit.models import AuditEvent
from governance import tokens
from governance.decision import Reason
from governance.models import Resource
from tests.factories import (
    make_admin,
    make_api_token,
    make_chain,
    make_grant,
    make_key,
    make_resource,
    make_token,
)

pytestmark = pytest.mark.django_db


@dataclass
class Setup:
    resource: Resource
    other: Resource  # a second resource the chain also holds
    token: str  # the sub-agent's token (audience: Custos)
    bound_token: str  # the top agent's token minted for ``resource`` only
    key: str
    jwks: dict[str, Any]


@pytest.fixture
def setup() -> Setup:
    chain = make_chain(depth=2)
    human, top, sub = chain["human"], chain["agents"][0], chain["agents"][1]
    other = make_resource()
    make_grant(human, other, "read")
    top_key, sub_key = make_key(top)[1], make_key(sub)[1]
    top_token = make_token(top_key, chain["links"][0])
    jwks = Client().get("/.well-known/jwks.json").json()
    return Setup(
        resource=chain["resource"],
        other=other,
        token=make_token(sub_key, parent_token=top_token),
        bound_token=make_token(top_key, chain["links"][0], audience=chain["resource"].name),
        key=sub_key,
        jwks=jwks,
    )


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unb64url(part: str) -> bytes:
    return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))


def parts(token: str) -> tuple[dict[str, Any], dict[str, Any], str]:
    header, payload, signature = token.split(".")
    return json.loads(unb64url(header)), json.loads(unb64url(payload)), signature


def assemble(header: dict[str, Any], payload: dict[str, Any], signature: str = "") -> str:
    return f"{b64url(json.dumps(header).encode())}.{b64url(json.dumps(payload).encode())}.{signature}"


def hs256(header: dict[str, Any], payload: dict[str, Any], secret: bytes) -> str:
    """HS256 by hand: PyJWT rightly refuses to use an asymmetric public key as an HMAC secret."""
    signing_input = assemble(header, payload)[:-1]
    return signing_input + "." + b64url(hmac.new(secret, signing_input.encode(), hashlib.sha256).digest())


def check(authorization: str | None, resource: str, action: str = "read") -> HttpResponse:
    headers = {"HTTP_AUTHORIZATION": authorization} if authorization is not None else {}
    body = {"action": action, "resource": resource, "context": {"request_id": "forgery"}}
    return Client().post("/api/v1/check", body, content_type="application/json", **headers)


def assert_denied(response: HttpResponse, reason: str = Reason.CREDENTIAL_INVALID) -> None:
    assert response.status_code == 200, response.content
    body = response.json()
    assert (body["decision"], body["reason"]) == ("deny", reason), body
    assert body["subject"] is None and body["actors"] == [] and body["delegation_chain"] == []
    event = AuditEvent.objects.get(digest=body["decision_id"])
    assert (event.action, event.context["reason"]) == ("check.deny", reason)


# --- The genuine article works (so every denial below is about the forgery) --------------------


def test_the_untouched_tokens_are_allowed(setup: Setup) -> None:
    for token in (setup.token, setup.bound_token):
        response = check(f"Bearer {token}", setup.resource.name)
        assert response.json()["decision"] == "allow", response.json()


# --- Forged tokens ----------------------------------------------------------------------------


def _alg_none(s: Setup) -> str:
    header, payload, _ = parts(s.token)
    return assemble({**header, "alg": "none"}, payload)


def _alg_none_spelled_otherwise(s: Setup) -> str:
    header, payload, _ = parts(s.token)
    return assemble({**header, "alg": "NoNe"}, payload)


def _hs256_with_the_raw_public_key(s: Setup) -> str:
    header, payload, _ = parts(s.token)
    public = next(k for k in s.jwks["keys"] if k["kid"] == header["kid"])
    return hs256({**header, "alg": "HS256"}, payload, unb64url(public["x"]))


def _hs256_with_the_public_key_pem(s: Setup) -> str:
    header, payload, _ = parts(s.token)
    public = jwt.PyJWK.from_dict(next(k for k in s.jwks["keys"] if k["kid"] == header["kid"])).key
    pem = public.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    return hs256({**header, "alg": "HS256"}, payload, pem)


def _hs256_with_the_jwk_json(s: Setup) -> str:
    header, payload, _ = parts(s.token)
    public = next(k for k in s.jwks["keys"] if k["kid"] == header["kid"])
    return hs256({**header, "alg": "HS256"}, payload, json.dumps(public).encode())


def _signed_by_an_attacker_under_an_unknown_kid(s: Setup) -> str:
    _, payload, _ = parts(s.token)
    return jwt.encode(payload, Ed25519PrivateKey.generate(), algorithm="EdDSA", headers={"kid": "attacker-1"})


def _signed_by_an_attacker_under_the_real_kid(s: Setup) -> str:
    header, payload, _ = parts(s.token)
    return jwt.encode(payload, Ed25519PrivateKey.generate(), algorithm="EdDSA", headers={"kid": header["kid"]})


def _attacker_key_embedded_in_the_header(s: Setup) -> str:
    attacker = Ed25519PrivateKey.generate()
    header, payload, _ = parts(s.token)
    jwk = json.loads(jwt.algorithms.OKPAlgorithm.to_jwk(attacker.public_key()))
    return jwt.encode(payload, attacker, algorithm="EdDSA", headers={"kid": header["kid"], "jwk": jwk})


def _without_a_kid(s: Setup) -> str:
    header, payload, signature = parts(s.token)
    del header["kid"]
    return assemble(header, payload, signature)


@pytest.mark.parametrize(
    "kid",
    ["\x00", "../../etc/passwd", "x" * 65, "", 42, None, ["a"]],
    ids=["nul-byte", "path-traversal", "65-characters", "empty", "an-integer", "null", "a-list"],
)
def test_a_kid_custos_never_issues_is_credential_invalid(setup: Setup, kid: object) -> None:
    # A NUL in the kid used to reach the database and answer 503.
    header, payload, signature = parts(setup.token)
    assert_denied(check(f"Bearer {assemble({**header, 'kid': kid}, payload, signature)}", setup.resource.name))


def _scope_widened_signature_kept(s: Setup) -> str:
    header, payload, signature = parts(s.token)
    return assemble(header, {**payload, "scope": f"{s.resource.name}:read {s.resource.name}:write"}, signature)


def _subject_swapped_signature_kept(s: Setup) -> str:
    header, payload, signature = parts(s.token)
    return assemble(header, {**payload, "sub": "human:1", "act": {"sub": "agent:1"}}, signature)


def _expiry_extended_signature_kept(s: Setup) -> str:
    header, payload, signature = parts(s.token)
    return assemble(header, {**payload, "exp": payload["exp"] + 86400}, signature)


def _signature_of_another_token(s: Setup) -> str:
    header, payload, _ = parts(s.token)
    return assemble(header, payload, s.bound_token.split(".")[2])


def _truncated_signature(s: Setup) -> str:
    return s.token[:-12]


def _truncated_in_the_payload(s: Setup) -> str:
    return s.token[: len(s.token) // 2]


def _two_segments(s: Setup) -> str:
    return s.token.rsplit(".", 1)[0]


def _oversized(s: Setup) -> str:
    header, payload, signature = parts(s.token)
    return assemble(header, {**payload, "pad": "A" * 100_000}, signature)


def _random_bytes(s: Setup) -> str:
    return b64url(os.urandom(48))


def _random_bytes_shaped_like_a_jws(s: Setup) -> str:
    return ".".join(b64url(os.urandom(n)) for n in (24, 96, 64))


def _base64_junk_segments(s: Setup) -> str:
    return "!!!.@@@.###"


def _json_array_header(s: Setup) -> str:
    _, payload, signature = s.token.split(".")
    return f"{b64url(b'[1,2]')}.{payload}.{signature}"


def _non_ascii(s: Setup) -> str:
    return "été.ünïcødé.☃"


def _a_key_with_a_wrong_secret(s: Setup) -> str:
    prefix = s.key.split("_")[1]
    return f"ck_{prefix}_{'A' * 40}"


def _a_key_for_an_unknown_prefix(s: Setup) -> str:
    return "ck_zzzzzzzzzz_" + "B" * 40


def _a_key_of_the_wrong_shape(s: Setup) -> str:
    return "ck_" + "x" * 200


def _a_console_api_token(s: Setup) -> str:
    return make_api_token(make_admin())


FORGERIES: list[Callable[[Setup], str]] = [
    _alg_none,
    _alg_none_spelled_otherwise,
    _hs256_with_the_raw_public_key,
    _hs256_with_the_public_key_pem,
    _hs256_with_the_jwk_json,
    _signed_by_an_attacker_under_an_unknown_kid,
    _signed_by_an_attacker_under_the_real_kid,
    _attacker_key_embedded_in_the_header,
    _without_a_kid,
    _scope_widened_signature_kept,
    _subject_swapped_signature_kept,
    _expiry_extended_signature_kept,
    _signature_of_another_token,
    _truncated_signature,
    _truncated_in_the_payload,
    _two_segments,
    _oversized,
    _random_bytes,
    _random_bytes_shaped_like_a_jws,
    _base64_junk_segments,
    _json_array_header,
    _non_ascii,
    _a_key_with_a_wrong_secret,
    _a_key_for_an_unknown_prefix,
    _a_key_of_the_wrong_shape,
    _a_console_api_token,
]


@pytest.mark.parametrize("forge", FORGERIES, ids=[f.__name__.strip("_") for f in FORGERIES])
def test_a_forged_or_malformed_credential_is_a_recorded_credential_invalid(
    setup: Setup, forge: Callable[[Setup], str]
) -> None:
    forged = forge(setup)
    assert forged != setup.token
    assert_denied(check(f"Bearer {forged}", setup.resource.name))


def test_a_forgery_of_a_token_already_verified_is_not_served_from_the_signature_cache(setup: Setup) -> None:
    assert check(f"Bearer {setup.token}", setup.resource.name).json()["decision"] == "allow"
    assert_denied(check(f"Bearer {_scope_widened_signature_kept(setup)}", setup.resource.name, "write"))


def test_a_genuine_token_past_its_expiry_is_credential_expired(setup: Setup) -> None:
    _, payload, _ = parts(setup.token)
    with time_machine.travel(payload["exp"] + settings.CUSTOS_TOKEN_LEEWAY.total_seconds() + 1, tick=False):
        assert_denied(check(f"Bearer {setup.token}", setup.resource.name), Reason.CREDENTIAL_EXPIRED)


def test_a_forged_token_past_its_expiry_is_invalid_not_expired(setup: Setup) -> None:
    forged = _signed_by_an_attacker_under_the_real_kid(setup)
    _, payload, _ = parts(forged)
    with time_machine.travel(payload["exp"] + 3600, tick=False):
        assert_denied(check(f"Bearer {forged}", setup.resource.name))


def test_a_token_minted_for_one_resource_is_refused_at_another(setup: Setup) -> None:
    # The chain holds both resources' read scope, so only the audience can refuse it.
    assert check(f"Bearer {setup.token}", setup.other.name).json()["reason"] != Reason.CREDENTIAL_INVALID
    assert_denied(check(f"Bearer {setup.bound_token}", setup.other.name))
    assert check(f"Bearer {setup.bound_token}", setup.resource.name).json()["decision"] == "allow"


@pytest.mark.parametrize(
    "authorization",
    [None, "", "Bearer", "Bearer ", "Bearer    ", "Basic dXNlcjpwYXNz", "Token abc", "bearer"],
    ids=[
        "no-header",
        "empty",
        "scheme-only",
        "scheme-and-a-space",
        "scheme-and-spaces",
        "basic-scheme",
        "token-scheme",
        "lowercase-scheme-only",
    ],
)
def test_no_usable_bearer_is_credential_invalid(setup: Setup, authorization: str | None) -> None:
    assert_denied(check(authorization, setup.resource.name))


def test_a_real_token_under_another_scheme_is_not_accepted(setup: Setup) -> None:
    assert_denied(check(f"Basic {setup.token}", setup.resource.name))


def test_the_token_size_limit_is_checked_before_parsing(setup: Setup) -> None:
    assert len(_oversized(setup)) > tokens.MAX_TOKEN_BYTES
    with pytest.raises(tokens.TokenInvalid, match="compact JWS"):
        tokens.verify(_oversized(setup))


# --- Malformed bodies -------------------------------------------------------------------------


def post_raw(body: str | bytes, setup: Setup, content_type: str = "application/json") -> HttpResponse:
    return Client().post("/api/v1/check", body, content_type=content_type, HTTP_AUTHORIZATION=f"Bearer {setup.token}")


def ok_body(setup: Setup, **changes: Any) -> dict[str, Any]:
    return {"action": "read", "resource": setup.resource.name, "context": {"intent": "look"}, **changes}


@pytest.mark.parametrize(
    ("make_body", "field"),
    [
        (lambda s: json.dumps({"resource": s.resource.name}), "action"),
        (lambda s: json.dumps({"action": "read"}), "resource"),
        (lambda s: json.dumps(ok_body(s, action="r" * 61)), "action"),
        (lambda s: json.dumps(ok_body(s, action="read everything")), "action"),
        (lambda s: json.dumps(ok_body(s, resource="r" * 121)), "resource"),
        (lambda s: json.dumps(ok_body(s, context="look around")), "context"),
        (lambda s: json.dumps(ok_body(s, context=["look"])), "context"),
        (lambda s: json.dumps(ok_body(s, context={"intent": "i" * 501})), "context.intent"),
        (lambda s: json.dumps(ok_body(s, context={"tool": "t" * 201})), "context.tool"),
        (lambda s: json.dumps(ok_body(s, context={"session_id": "\x00"})), "context.session_id"),
        (lambda s: json.dumps(ok_body(s, context={"request_id": {"nested": 1}})), "context.request_id"),
        (lambda s: json.dumps([ok_body(s)]), "non_field_errors"),
    ],
    ids=[
        "missing-action",
        "missing-resource",
        "action-too-long",
        "action-with-space",
        "resource-too-long",
        "context-a-string",
        "context-a-list",
        "intent-too-long",
        "tool-too-long",
        "nul-in-context",
        "context-field-an-object",
        "body-a-list",
    ],
)
def test_a_malformed_body_is_a_400_naming_the_field_and_records_nothing(
    setup: Setup, make_body: Callable[[Setup], str], field: str
) -> None:
    before = AuditEvent.objects.count()
    response = post_raw(make_body(setup), setup)
    assert response.status_code == 400, response.content
    body = response.json()
    assert set(body) == {"code", "detail", "fields"}
    assert body["code"] == "invalid"
    assert any(name == field or name.startswith(f"{field}.") for name in body["fields"]), body
    assert AuditEvent.objects.count() == before


@pytest.mark.parametrize(
    ("raw", "content_type", "status", "code"),
    [
        ("{not json", "application/json", 400, "malformed_request"),
        (b"\xff\xfe\x00", "application/json", 400, "malformed_request"),
        ("", "application/json", 400, "invalid"),
        ("action=read&resource=x", "application/x-www-form-urlencoded", 415, "unsupported_media_type"),
        ("[" * 100_000 + "]" * 100_000, "application/json", 400, "malformed_request"),
    ],
    ids=["not-json", "not-utf8", "empty", "form-encoded", "nested-too-deep"],
)
def test_a_body_that_is_not_a_json_object_is_a_4xx_with_a_stable_code(
    setup: Setup, raw: str | bytes, content_type: str, status: int, code: str
) -> None:
    before = AuditEvent.objects.count()
    response = post_raw(raw, setup, content_type)
    assert response.status_code == status, response.content
    body = response.json()
    assert set(body) == {"code", "detail", "fields"} and body["code"] == code
    assert AuditEvent.objects.count() == before


def test_the_check_takes_only_post(setup: Setup) -> None:
    response = Client().get("/api/v1/check", HTTP_AUTHORIZATION=f"Bearer {setup.token}")
    assert response.status_code == 405
    assert response.json()["code"] == "method_not_allowed"


def test_a_key_is_never_accepted_from_the_body(setup: Setup) -> None:
    # The credential is the bearer only; a body field of that name is ignored, not honoured.
    response = Client().post(
        "/api/v1/check",
        {**ok_body(setup), "credential": setup.key, "token": setup.token},
        content_type="application/json",
    )
    assert_denied(response)


def test_hs256_forgery_is_really_hs256_signed_with_the_public_key(setup: Setup) -> None:
    """Guard on the test itself: the forged token is a valid HS256 JWS under the public key bytes,
    so a verifier confused about algorithms would accept it."""
    forged = _hs256_with_the_raw_public_key(setup)
    header, _, _ = parts(forged)
    public = next(k for k in setup.jwks["keys"] if k["kid"] == header["kid"])
    claims = jwt.decode(
        forged,
        unb64url(public["x"]),
        algorithms=["HS256"],
        options={"verify_aud": False, "verify_exp": False},
    )
    assert claims["scope"] == f"{setup.resource.name}:read"


def test_a_known_key_prefix_with_a_wrong_secret_is_compared_and_refused(setup: Setup) -> None:
    prefix, secret = setup.key.split("_")[1:]
    assert_denied(check(f"Bearer ck_{prefix}_{'C' * 40}", setup.resource.name))
    assert_denied(check(f"Bearer ck_{prefix}_{secret}x", setup.resource.name))
    assert_denied(check(f"Bearer ck_{prefix}_{secret[:-1]}", setup.resource.name))
    # The genuine key is recognised (and then refused only for lack of a grant of its own).
    assert check(f"Bearer {setup.key}", setup.resource.name).json()["reason"] == Reason.SCOPE_NOT_GRANTED
