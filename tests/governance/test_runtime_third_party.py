"""What someone outside Custos sees: a token verified offline with PyJWT and nothing but the published
JWKS, the RFC 8414 metadata, signing-key rotation with overlap, and RFC 7662 introspection."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import timedelta
from typing import Any
from urllib.parse import urlencode

import jwt
import pytest
import time_machine
from django.conf import settings
from django.http import HttpResponse
from django.test import Client
from django.utils import timezone

from governance import oauth, services, tokens
from governance.decision import Reason
from governance.models import SigningKey
from tests.factories import (
    SYSTEM,
    make_admin,
    make_agent,
    make_api_token,
    make_auditor,
    make_chain,
    make_chain_tokens,
    make_delegation,
    make_grant,
    make_human,
    make_key,
    make_outsider,
    make_resource,
    make_reviewer,
    make_token,
)

pytestmark = pytest.mark.django_db

FORM = "application/x-www-form-urlencoded"


def verify_offline(token: str, jwks: dict[str, Any], *, audience: str, issuer: str) -> dict[str, Any]:
    """A third party's verifier: PyJWT and the JWKS document only, no Custos code."""
    kid = jwt.get_unverified_header(token)["kid"]
    key = jwt.PyJWKSet.from_dict(jwks)[kid]
    claims: dict[str, Any] = jwt.decode(
        token,
        key,
        algorithms=["EdDSA"],
        audience=audience,
        issuer=issuer,
        options={"require": ["exp", "iat", "sub", "aud", "iss", "jti", "act", "scope"]},
    )
    return claims


# The same verifier as a standalone program: run in an isolated interpreter (-I: neither the working
# directory nor PYTHON* variables on sys.path), so it could not import Custos even by accident.
_STANDALONE = """
import json, sys
import jwt
token, jwks, audience, issuer = json.loads(sys.stdin.read())
key = jwt.PyJWKSet.from_dict(jwks)[jwt.get_unverified_header(token)["kid"]]
claims = jwt.decode(token, key, algorithms=["EdDSA"], audience=audience, issuer=issuer)
assert not any(name.split(".")[0] in ("governance", "audit", "config", "django") for name in sys.modules)
print(json.dumps(claims))
"""


def published_jwks() -> dict[str, Any]:
    response = Client().get("/.well-known/jwks.json")
    assert response.status_code == 200
    assert response["Content-Type"] == "application/json"
    jwks: dict[str, Any] = response.json()
    return jwks


def act_chain(claims: dict[str, Any]) -> list[str]:
    """Outermost first."""
    found: list[str] = []
    act = claims.get("act")
    while act is not None:
        found.append(act["sub"])
        act = act.get("act")
    return found


def check(token: str, resource: str) -> tuple[str, str]:
    response = Client().post(
        "/api/v1/check",
        {"action": "read", "resource": resource},
        content_type="application/json",
        HTTP_AUTHORIZATION=f"Bearer {token}",
    )
    assert response.status_code == 200
    return response.json()["decision"], response.json()["reason"]


# --- Offline verification -------------------------------------------------------------------


def test_a_token_two_hops_from_the_human_verifies_with_pyjwt_and_the_jwks_alone() -> None:
    chain = make_chain(depth=3)
    leaf = make_chain_tokens(chain)["tokens"][2]
    first, middle, acting = chain["agents"]

    claims = verify_offline(leaf, published_jwks(), audience=settings.CUSTOS_ISSUER, issuer=settings.CUSTOS_ISSUER)

    assert claims["sub"] == f"human:{chain['human'].pk}"
    # Outermost act: the sub-sub-agent acting now; then its parent; innermost: the first agent.
    assert act_chain(claims) == [f"agent:{acting.pk}", f"agent:{middle.pk}", f"agent:{first.pk}"]
    assert claims["act"]["sub"] == f"agent:{acting.pk}"
    assert claims["act"]["act"]["sub"] == f"agent:{middle.pk}"
    assert claims["act"]["act"]["act"] == {"sub": f"agent:{first.pk}"}
    assert claims["scope"] == chain["scopes"][0]
    assert claims["delegation_id"] == chain["links"][2].pk
    assert claims["iat"] <= claims["nbf"] < claims["exp"]
    assert claims["exp"] - claims["iat"] <= settings.CUSTOS_TOKEN_MAX_LIFETIME.total_seconds()
    header = jwt.get_unverified_header(leaf)
    assert header["alg"] == "EdDSA" and header["kid"] in {k["kid"] for k in published_jwks()["keys"]}


def test_an_isolated_interpreter_with_only_pyjwt_verifies_the_token() -> None:
    chain = make_chain(depth=3)
    leaf = make_chain_tokens(chain)["tokens"][2]
    payload = json.dumps([leaf, published_jwks(), settings.CUSTOS_ISSUER, settings.CUSTOS_ISSUER])
    done = subprocess.run(
        [sys.executable, "-I", "-c", _STANDALONE],
        input=payload,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    claims = json.loads(done.stdout)
    assert claims["sub"] == f"human:{chain['human'].pk}"
    assert act_chain(claims) == [f"agent:{agent.pk}" for agent in reversed(chain["agents"])]


def test_the_offline_verifier_refuses_a_token_for_another_audience_or_issuer() -> None:
    chain = make_chain(depth=2)
    token = make_chain_tokens(chain)["tokens"][1]
    jwks = published_jwks()
    with pytest.raises(jwt.InvalidAudienceError):
        verify_offline(token, jwks, audience="https://some-resource.example", issuer=settings.CUSTOS_ISSUER)
    with pytest.raises(jwt.InvalidIssuerError):
        verify_offline(token, jwks, audience=settings.CUSTOS_ISSUER, issuer="https://not-custos.example")


def test_the_jwks_publishes_public_halves_only() -> None:
    make_chain_tokens(make_chain(depth=1))
    keys = published_jwks()["keys"]
    assert keys
    for key in keys:
        assert (key["kty"], key["crv"], key["alg"], key["use"]) == ("OKP", "Ed25519", "EdDSA", "sig")
        assert "d" not in key  # the private scalar
        assert key["kid"]


# --- RFC 8414 metadata ----------------------------------------------------------------------


def test_the_authorization_server_metadata_names_every_endpoint() -> None:
    response = Client().get("/.well-known/oauth-authorization-server")
    assert response.status_code == 200
    meta = response.json()
    issuer = settings.CUSTOS_ISSUER.rstrip("/")
    assert meta["issuer"] == settings.CUSTOS_ISSUER
    assert meta["token_endpoint"] == f"{issuer}/oauth/token"
    assert meta["jwks_uri"] == f"{issuer}/.well-known/jwks.json"
    assert meta["introspection_endpoint"] == f"{issuer}/oauth/introspect"
    assert meta["revocation_endpoint"] == f"{issuer}/oauth/revoke"
    assert meta["grant_types_supported"] == [oauth.GRANT_TYPE_TOKEN_EXCHANGE]
    assert "response_types_supported" in meta  # REQUIRED by RFC 8414 §2
    assert oauth.TOKEN_TYPE_JWT in meta["token_exchange_subject_token_types_supported"]
    # Each advertised path is really served here.
    for name in ("token_endpoint", "introspection_endpoint", "revocation_endpoint"):
        assert Client().post(meta[name].removeprefix(issuer)).status_code != 404
    assert Client().get(meta["jwks_uri"].removeprefix(issuer)).status_code == 200


# --- Rotation with overlap ------------------------------------------------------------------


def test_after_a_rotation_old_tokens_still_verify_and_new_ones_carry_the_new_kid() -> None:
    chain = make_chain(depth=2)
    issued = make_chain_tokens(chain)
    old_kid = jwt.get_unverified_header(issued["tokens"][1])["kid"]

    new_key = oauth.signingkey_rotate(actor=SYSTEM)
    assert new_key.kid != old_kid

    jwks = published_jwks()
    assert {k["kid"] for k in jwks["keys"]} >= {old_kid, new_key.kid}
    # The token signed by the retired key: still good offline and at the check.
    verify_offline(issued["tokens"][1], jwks, audience=settings.CUSTOS_ISSUER, issuer=settings.CUSTOS_ISSUER)
    assert check(issued["tokens"][1], chain["resource"].name) == ("allow", Reason.ALLOWED)

    fresh = make_chain_tokens(chain)["tokens"][1]
    assert jwt.get_unverified_header(fresh)["kid"] == new_key.kid
    verify_offline(fresh, jwks, audience=settings.CUSTOS_ISSUER, issuer=settings.CUSTOS_ISSUER)
    assert check(fresh, chain["resource"].name) == ("allow", Reason.ALLOWED)


def test_a_retired_key_leaves_the_jwks_once_its_last_token_has_expired() -> None:
    chain = make_chain(depth=1)
    old = make_chain_tokens(chain)["tokens"][0]
    old_kid = jwt.get_unverified_header(old)["kid"]
    oauth.signingkey_rotate(actor=SYSTEM)
    retired = SigningKey.objects.get(kid=old_kid)
    assert retired.verifies_until <= timezone.now() + settings.CUSTOS_TOKEN_MAX_LIFETIME
    # As a process that has not seen the key before would judge it (this one may have cached the key
    # with its window from before the rotation).
    tokens.public_keys.clear()
    with time_machine.travel(retired.verifies_until + timedelta(seconds=1), tick=False):
        assert old_kid not in {k["kid"] for k in published_jwks()["keys"]}
        decision, reason = check(old, chain["resource"].name)
    assert (decision, reason) == ("deny", Reason.CREDENTIAL_INVALID)


# --- RFC 7662 introspection -----------------------------------------------------------------


def introspect(token: str, caller: str | None) -> HttpResponse:
    headers = {"HTTP_AUTHORIZATION": f"Bearer {caller}"} if caller is not None else {}
    return Client().post("/oauth/introspect", urlencode({"token": token}), content_type=FORM, **headers)


def active(response: HttpResponse) -> dict[str, Any]:
    assert response.status_code == 200, response.content
    assert response["Cache-Control"] == "no-store"
    body: dict[str, Any] = response.json()
    return body


def test_introspection_of_a_live_token_is_active_with_its_claims() -> None:
    chain = make_chain(depth=2)
    issued = make_chain_tokens(chain)
    token = issued["tokens"][1]
    offline = verify_offline(token, published_jwks(), audience=settings.CUSTOS_ISSUER, issuer=settings.CUSTOS_ISSUER)
    for caller in (issued["keys"][0], make_api_token(make_auditor())):
        body = active(introspect(token, caller))
        assert body["active"] is True
        for claim in ("sub", "scope", "exp", "iat", "nbf", "aud", "iss", "jti", "act", "delegation_id", "client_id"):
            assert body[claim] == offline[claim], claim
        assert body["token_type"] == "Bearer"


def test_introspection_is_inactive_after_revocation() -> None:
    issued = make_chain_tokens(make_chain(depth=2))
    services.token_revoke(actor=SYSTEM, jti=jwt.decode(issued["tokens"][0], options={"verify_signature": False})["jti"])
    for token in issued["tokens"]:  # the derived token went with it
        assert active(introspect(token, issued["keys"][0])) == {"active": False}


def test_introspection_is_inactive_once_the_delegation_is_revoked() -> None:
    chain = make_chain(depth=2)
    issued = make_chain_tokens(chain)
    services.delegation_revoke(actor=SYSTEM, delegation=chain["links"][0], reason="done")
    for token in issued["tokens"]:
        assert active(introspect(token, issued["keys"][0])) == {"active": False}


def test_introspection_is_inactive_after_expiry() -> None:
    issued = make_chain_tokens(make_chain(depth=2))
    exp = jwt.decode(issued["tokens"][1], options={"verify_signature": False})["exp"]
    with time_machine.travel(exp + settings.CUSTOS_TOKEN_LEEWAY.total_seconds() + 1, tick=False):
        assert active(introspect(issued["tokens"][1], issued["keys"][0])) == {"active": False}


def test_introspection_is_inactive_for_anything_custos_did_not_issue() -> None:
    issued = make_chain_tokens(make_chain(depth=1))
    for token in ("garbage", issued["tokens"][0][:-4] + "AAAA", "a.b.c", "é" * 100):
        assert active(introspect(token, issued["keys"][0])) == {"active": False}


def test_introspection_requires_an_authenticated_caller() -> None:
    issued = make_chain_tokens(make_chain(depth=1))
    token = issued["tokens"][0]
    for caller in (None, "", "ck_zzzzzzzzzz_" + "Z" * 40, "cu_zzzzzzzzzz_" + "Z" * 40, token):
        response = introspect(token, caller)
        assert response.status_code == 401, (caller, response.content)
        assert response.json()["error"] == "invalid_client"
        assert response["WWW-Authenticate"].startswith("Bearer")
        assert response["Cache-Control"] == "no-store"
    # A console user without a role authenticates but may not introspect.
    response = introspect(token, make_api_token(make_outsider()))
    assert (response.status_code, response.json()["error"]) == (403, "unauthorized_client")
    assert active(introspect(token, make_api_token(make_admin())))["active"] is True


def test_an_agent_introspects_the_tokens_of_its_own_chain_and_no_one_elses() -> None:
    chain = make_chain(depth=2)
    issued = make_chain_tokens(chain)
    top_key, sub_key = issued["keys"]
    top_token, sub_token = issued["tokens"]
    # The top agent is an actor of both tokens; the sub-agent only of its own.
    assert active(introspect(sub_token, top_key))["active"] is True
    assert active(introspect(sub_token, sub_key))["active"] is True
    assert active(introspect(top_token, sub_key)) == {"active": False}
    stranger = make_chain(depth=1)
    stranger_key = make_key(stranger["agents"][0])[1]
    for token in issued["tokens"]:
        assert active(introspect(token, stranger_key)) == {"active": False}


def test_a_console_user_introspects_only_tokens_of_agents_they_may_see() -> None:
    reviewer = make_reviewer()
    theirs = make_human(user=reviewer)
    resource = make_resource()
    make_grant(theirs, resource, "read")
    agent = make_agent(sponsor=theirs)
    link = make_delegation(agent, [resource.scope("read")], root_human=theirs)
    their_token = make_token(make_key(agent)[1], link)
    others_token = make_chain_tokens(make_chain(depth=1))["tokens"][0]
    assert active(introspect(their_token, make_api_token(reviewer)))["active"] is True
    assert active(introspect(others_token, make_api_token(reviewer))) == {"active": False}
    for token in (their_token, others_token):
        assert active(introspect(token, make_api_token(make_auditor())))["active"] is True


def test_introspection_agrees_with_the_check_on_whether_a_token_is_active() -> None:
    chain = make_chain(depth=2)
    issued = make_chain_tokens(chain)
    token, caller = issued["tokens"][1], issued["keys"][0]
    resource = chain["resource"].name
    assert active(introspect(token, caller))["active"] is True
    assert check(token, resource)[0] == "allow"
    # The root human loses the scope: the check refuses, and so does introspection.
    for grant in chain["human"].grants.all():
        services.grant_revoke(actor=SYSTEM, grant=grant)
    assert check(token, resource) == ("deny", Reason.DELEGATOR_LACKS_GRANT)
    assert active(introspect(token, caller)) == {"active": False}
