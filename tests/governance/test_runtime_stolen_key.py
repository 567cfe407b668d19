"""The check also holds a token to the expiry recorded when it was issued, so even someone holding a
stolen signing key cannot stretch a real token's life by re-signing it with a later ``exp``."""

from __future__ import annotations

from datetime import timedelta
from urllib.parse import urlencode

import jwt
import pytest
import time_machine
from django.http import HttpResponse
from django.test import Client
from django.utils import timezone

from audit.models import AuditEvent
from governance import services, tokens
from governance.models import AgentKey, SigningKey
from tests.factories import SYSTEM, make_chain, make_chain_tokens, make_key, make_token

pytestmark = pytest.mark.django_db


def _check(client: Client, token: str, resource: str) -> dict[str, str]:
    response = client.post(
        "/api/v1/check",
        {"action": "read", "resource": resource},
        content_type="application/json",
        HTTP_AUTHORIZATION=f"Bearer {token}",
    )
    assert response.status_code == 200
    return response.json()


def test_a_token_re_signed_with_a_later_exp_is_refused_once_its_recorded_expiry_passes() -> None:
    chain = make_chain(depth=2)
    issued = make_chain_tokens(chain)["tokens"][-1]
    claims = jwt.decode(issued, options={"verify_signature": False})
    key = SigningKey.objects.get(kid=jwt.get_unverified_header(issued)["kid"])
    forged_claims = {**claims, "exp": claims["exp"] + 86_400}
    forged = tokens.encode(forged_claims, key)  # what a thief holding the private key could mint
    resource = chain["resource"].name
    client = Client()

    assert _check(client, forged, resource)["decision"] == "allow"  # before the real expiry: same as the real one
    with time_machine.travel(timezone.now() + timedelta(hours=2)):
        tokens.signature_cache.clear()
        answer = _check(client, forged, resource)
    assert answer["decision"] == "deny"
    assert answer["reason"] == "credential_expired"


def test_revoking_a_leaked_agent_key_revokes_the_tokens_it_obtained_and_those_derived_from_them() -> None:
    chain = make_chain(depth=2)
    issued = make_chain_tokens(chain)
    first_agent_key = AgentKey.objects.filter(agent=chain["agents"][0]).get()
    resource = chain["resource"].name
    client = Client()
    assert _check(client, issued["tokens"][-1], resource)["decision"] == "allow"

    services.agentkey_revoke(actor=SYSTEM, key=first_agent_key, reason="leaked in a log file")

    # The first agent's token came from the revoked key; the sub-agent's was derived from it.
    for token in issued["tokens"]:
        answer = _check(client, token, resource)
        assert (answer["decision"], answer["reason"]) == ("deny", "credential_revoked")
    assert AuditEvent.objects.filter(action="token.revoke").count() == 2


# --- What a thief holding a signing key can put in a token ----------------------------------------


def _forge(issued: str, **changes: object) -> str:
    """``issued`` re-signed, with valid signature and kid, by someone holding Custos's signing key."""
    claims = jwt.decode(issued, options={"verify_signature": False})
    key = SigningKey.objects.get(kid=jwt.get_unverified_header(issued)["kid"])
    return tokens.encode({**claims, **changes}, key)


def _api(token: str) -> HttpResponse:
    return Client().get("/api/v1/humans/", HTTP_AUTHORIZATION=f"Bearer {token}")


def test_a_token_re_signed_with_a_wider_scope_is_refused_even_for_a_scope_its_delegation_holds() -> None:
    # The delegation holds read and write; the token was issued for read only. Deciding from the
    # token's claim allowed write; the record says read.
    chain = make_chain(depth=1, scopes=("read", "write"))
    key = make_key(chain["agents"][0])[1]
    read, write = chain["scopes"]
    issued = make_token(key, chain["links"][0], scope=read)
    forged = _forge(issued, scope=f"{read} {write}")
    resource = chain["resource"].name
    client = Client()
    assert _check(client, issued, resource)["decision"] == "allow"
    for action in ("read", "write"):
        answer = client.post(
            "/api/v1/check",
            {"action": action, "resource": resource},
            content_type="application/json",
            HTTP_AUTHORIZATION=f"Bearer {forged}",
        ).json()
        assert (answer["decision"], answer["reason"]) == ("deny", "credential_invalid"), action
    assert not AuditEvent.objects.filter(action="check.allow", context__scope=write).exists()


@pytest.mark.parametrize(
    "changes",
    [
        {"sub": "human:999999"},
        {"act": {"sub": "agent:999999"}},
        {"aud": "somewhere.else"},
        {"delegation_id": 999999},
    ],
    ids=["other-human", "other-actor", "other-audience", "other-delegation"],
)
def test_a_token_whose_claims_differ_from_its_record_is_refused_everywhere(changes: dict[str, object]) -> None:
    chain = make_chain(depth=2)
    issued = make_chain_tokens(chain)
    forged = _forge(issued["tokens"][-1], **changes)
    resource = chain["resource"].name
    client = Client()
    if changes.get("aud") is None:  # a foreign audience is refused earlier, as not for this resource
        assert _check(client, forged, resource)["reason"] == "credential_invalid"
    assert _check(client, forged, "somewhere.else")["decision"] == "deny"
    assert _api(forged).status_code == 401
    introspected = Client().post(
        "/oauth/introspect",
        urlencode({"token": forged}),
        content_type="application/x-www-form-urlencoded",
        HTTP_AUTHORIZATION=f"Bearer {issued['keys'][0]}",
    )
    assert introspected.json() == {"active": False}


@pytest.mark.parametrize(
    "exp", [1e308, 10**20, -1, "2030-01-01", True], ids=["huge-float", "huge-int", "negative", "text", "bool"]
)
def test_a_malformed_exp_is_credential_invalid_never_a_500(exp: object) -> None:
    chain = make_chain(depth=1)
    issued = make_chain_tokens(chain)["tokens"][0]
    forged = _forge(issued, exp=exp)
    response = _api(forged)
    assert response.status_code == 401, response.content
    assert response.json()["code"] == "credential_invalid"
    assert _check(Client(), forged, chain["resource"].name)["reason"] == "credential_invalid"


@pytest.mark.parametrize(
    "jti", ["abc\x00def", "x" * 65, "", 42, "../etc"], ids=["nul", "too-long", "empty", "number", "path"]
)
def test_a_malformed_jti_is_credential_invalid_at_the_check_and_inactive_at_introspection(jti: object) -> None:
    chain = make_chain(depth=1)
    issued = make_chain_tokens(chain)
    forged = _forge(issued["tokens"][0], jti=jti)
    answer = _check(Client(), forged, chain["resource"].name)  # a 200 deny, not the 503 it was
    assert (answer["decision"], answer["reason"]) == ("deny", "credential_invalid")
    response = Client().post(
        "/oauth/introspect",
        urlencode({"token": forged}),
        content_type="application/x-www-form-urlencoded",
        HTTP_AUTHORIZATION=f"Bearer {issued['keys'][0]}",
    )
    assert (response.status_code, response.json()) == (200, {"active": False})
    assert _api(forged).status_code == 401
