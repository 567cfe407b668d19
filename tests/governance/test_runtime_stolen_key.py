"""The check also holds a token to the expiry recorded when it was issued, so even someone holding a
stolen signing key cannot stretch a real token's life by re-signing it with a later ``exp``."""

from __future__ import annotations

from datetime import timedelta

import jwt
import pytest
import time_machine
from django.test import Client
from django.utils import timezone

from audit.models import AuditEvent
from governance import services, tokens
from governance.models import AgentKey, SigningKey
from tests.factories import SYSTEM, make_chain, make_chain_tokens

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
