"""The check also holds a token to the expiry recorded when it was issued, so even someone holding a
stolen signing key cannot stretch a real token's life by re-signing it with a later ``exp``."""

from __future__ import annotations

from datetime import timedelta

import jwt
import pytest
import time_machine
from django.test import Client
from django.utils import timezone

from governance import tokens
from governance.models import SigningKey
from tests.factories import make_chain, make_chain_tokens

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
