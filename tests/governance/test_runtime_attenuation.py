"""Attenuation only: through token exchange (``/oauth/token``) and through its own delegations, a
sub-agent never gets more scope, audience or time than it was given; and an agent touches only its own
and its sub-agents' tokens. Every refusal is RFC 6749 §5.2 JSON with ``Cache-Control: no-store``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlencode

import jwt
import pytest
from django.conf import settings
from django.http import HttpResponse
from django.test import Client
from django.utils import timezone

from console.errors import ValidationFailed
from governance import oauth, services
from governance.decision import Reason
from governance.models import Agent, Delegation, DelegationToken
from tests.factories import (
    SYSTEM,
    make_agent,
    make_chain,
    make_delegation,
    make_key,
)

pytestmark = pytest.mark.django_db

FORM = "application/x-www-form-urlencoded"


@dataclass
class Chain:
    """A human delegates read and write to top → sub → leaf (three hops); ``stranger`` is an unrelated
    top-level agent of the same sponsor with its own delegation; ``sibling`` is another sub-agent of top."""

    read: str
    write: str
    resource: str
    agents: list[Agent]
    links: list[Delegation]
    keys: list[str]
    stranger: Agent
    stranger_key: str
    stranger_link: Delegation
    sibling: Agent
    sibling_key: str


@pytest.fixture
def c() -> Chain:
    chain = make_chain(depth=3, scopes=("read", "write"))
    stranger = make_agent(sponsor=chain["human"])
    stranger_link = make_delegation(stranger, chain["scopes"], root_human=chain["human"])
    sibling = make_agent(parent=chain["agents"][0])
    return Chain(
        read=chain["resource"].scope("read"),
        write=chain["resource"].scope("write"),
        resource=chain["resource"].name,
        agents=chain["agents"],
        links=chain["links"],
        keys=[make_key(agent)[1] for agent in chain["agents"]],
        stranger=stranger,
        stranger_key=make_key(stranger)[1],
        stranger_link=stranger_link,
        sibling=sibling,
        sibling_key=make_key(sibling)[1],
    )


def exchange(actor_key: str, subject: str, *, delegation: bool = False, **params: str) -> HttpResponse:
    form = {
        "grant_type": oauth.GRANT_TYPE_TOKEN_EXCHANGE,
        "actor_token": actor_key,
        "actor_token_type": oauth.TOKEN_TYPE_AGENT_KEY,
        "subject_token": subject,
        "subject_token_type": oauth.TOKEN_TYPE_DELEGATION if delegation else oauth.TOKEN_TYPE_JWT,
        **params,
    }
    return Client().post("/oauth/token", urlencode(form), content_type=FORM)


def issued(response: HttpResponse) -> dict[str, Any]:
    assert response.status_code == 200, response.content
    assert response["Cache-Control"] == "no-store"
    body = response.json()
    assert body["token_type"] == "Bearer" and body["issued_token_type"] == oauth.TOKEN_TYPE_JWT
    claims: dict[str, Any] = jwt.decode(body["access_token"], options={"verify_signature": False})
    return claims


def assert_oauth_error(response: HttpResponse, error: str, status: int = 400) -> None:
    """RFC 6749 §5.2: a JSON object with ``error`` (and here always ``error_description``), not cached."""
    assert response.status_code == status, response.content
    assert response["Content-Type"] == "application/json"
    assert response["Cache-Control"] == "no-store"
    body = response.json()
    assert set(body) == {"error", "error_description"}
    assert body["error"] == error, body
    assert body["error_description"]


def at(timestamp: int) -> datetime:
    return datetime.fromtimestamp(timestamp, tz=timezone.get_current_timezone())


def top_token(c: Chain, **params: str) -> str:
    return str(issued_body(exchange(c.keys[0], str(c.links[0].pk), delegation=True, **params))["access_token"])


def issued_body(response: HttpResponse) -> dict[str, Any]:
    issued(response)
    body: dict[str, Any] = response.json()
    return body


def check(token: str, resource: str, action: str) -> tuple[str, str]:
    response = Client().post(
        "/api/v1/check",
        {"action": action, "resource": resource},
        content_type="application/json",
        HTTP_AUTHORIZATION=f"Bearer {token}",
    )
    body = response.json()
    return body["decision"], body["reason"]


# --- Scope ----------------------------------------------------------------------------------


def test_an_agent_cannot_ask_for_more_scope_than_its_delegation(c: Chain) -> None:
    narrow = make_delegation(c.stranger, [c.read], root_human=c.links[0].root_human)
    response = exchange(c.stranger_key, str(narrow.pk), delegation=True, scope=f"{c.read} {c.write}")
    assert_oauth_error(response, "invalid_scope")
    assert "write" in response.json()["error_description"]


def test_an_agent_cannot_ask_for_a_scope_on_a_resource_nobody_delegated(c: Chain) -> None:
    assert_oauth_error(exchange(c.keys[0], str(c.links[0].pk), delegation=True, scope="payroll:read"), "invalid_scope")


def test_a_sub_agent_cannot_ask_for_more_than_its_parents_token_carries(c: Chain) -> None:
    # Both delegations carry read and write; the parent's token carries read only.
    parent = top_token(c, scope=c.read)
    assert_oauth_error(exchange(c.keys[1], parent, scope=c.write), "invalid_scope")
    assert_oauth_error(exchange(c.keys[1], parent, scope=f"{c.read} {c.write}"), "invalid_scope")
    # Asking nothing gets the intersection, not the delegation's wider set.
    claims = issued(exchange(c.keys[1], parent))
    assert claims["scope"] == c.read
    assert check(issued_body(exchange(c.keys[1], parent))["access_token"], c.resource, "write") == (
        "deny",
        Reason.SCOPE_NOT_DELEGATED,
    )


def test_a_sub_agent_gets_no_token_when_nothing_is_both_delegated_to_it_and_in_its_parents_token(c: Chain) -> None:
    # Used to mint a token with an empty scope.
    write_only = make_delegation(c.sibling, [c.write], parent=c.links[0], expires_in=timedelta(hours=2))
    parent = top_token(c, scope=c.read)
    assert_oauth_error(exchange(c.sibling_key, parent), "invalid_scope")
    assert not DelegationToken.objects.filter(delegation=write_only).exists()


def test_a_narrowed_token_allows_only_its_own_scope(c: Chain) -> None:
    token = top_token(c, scope=c.read)
    assert check(token, c.resource, "read") == ("allow", Reason.ALLOWED)
    assert check(token, c.resource, "write") == ("deny", Reason.SCOPE_NOT_DELEGATED)


# --- Audience -------------------------------------------------------------------------------


def test_a_sub_agent_inherits_its_parents_resource_audience(c: Chain) -> None:
    parent = top_token(c, audience=c.resource)
    assert issued(exchange(c.keys[1], parent))["aud"] == c.resource


def test_a_sub_agent_cannot_widen_a_resource_bound_token_to_custos_or_another_resource(c: Chain) -> None:
    # Used to hand back a token good at Custos itself, so at every resource in scope.
    parent = top_token(c, audience=c.resource)
    assert_oauth_error(exchange(c.keys[1], parent, audience=settings.CUSTOS_ISSUER), "invalid_target")
    assert_oauth_error(exchange(c.keys[1], parent, resource=settings.CUSTOS_ISSUER), "invalid_target")


def test_a_sub_agent_may_narrow_a_custos_audience_to_one_resource(c: Chain) -> None:
    assert issued(exchange(c.keys[1], top_token(c), audience=c.resource))["aud"] == c.resource


def test_an_unknown_audience_is_invalid_target(c: Chain) -> None:
    assert_oauth_error(
        exchange(c.keys[0], str(c.links[0].pk), delegation=True, audience="https://evil.example"), "invalid_target"
    )


def test_audience_and_resource_must_agree(c: Chain) -> None:
    response = exchange(
        c.keys[0], str(c.links[0].pk), delegation=True, audience=c.resource, resource=settings.CUSTOS_ISSUER
    )
    assert_oauth_error(response, "invalid_target")


# --- Time -----------------------------------------------------------------------------------


@pytest.mark.parametrize("expires_in", ["3601", "86400", "31536000", "9" * 30])
def test_asking_for_a_lifetime_beyond_the_maximum_is_refused_not_shortened(c: Chain, expires_in: str) -> None:
    # The README promises maxima are refused, never silently shortened. A 30-digit value used to
    # overflow timedelta and answer 500.
    tokens_before = DelegationToken.objects.count()
    response = exchange(c.keys[0], str(c.links[0].pk), delegation=True, expires_in=expires_in)
    assert_oauth_error(response, "invalid_request")
    assert "CUSTOS_TOKEN_MAX_LIFETIME" in response.json()["error_description"]
    assert "3600 seconds" in response.json()["error_description"]
    assert DelegationToken.objects.count() == tokens_before


@pytest.mark.parametrize("expires_in", ["3600", "600", "0000000000000000000000000600"])
def test_a_lifetime_within_the_maximum_is_granted_as_asked_and_never_past_the_delegation(
    c: Chain, expires_in: str
) -> None:
    before = int(timezone.now().timestamp())
    claims = issued(exchange(c.keys[0], str(c.links[0].pk), delegation=True, expires_in=expires_in))
    assert before + int(expires_in) - 1 <= claims["exp"] <= int(timezone.now().timestamp()) + int(expires_in)
    assert at(claims["exp"]) <= c.links[0].expires_at


def test_a_token_never_outlives_its_delegation(c: Chain) -> None:
    soon = make_delegation(c.sibling, [c.read], parent=c.links[0], expires_in=timedelta(minutes=3))
    claims = issued(exchange(c.sibling_key, top_token(c), expires_in="3600"))
    assert claims["delegation_id"] == soon.pk
    assert at(claims["exp"]) <= soon.expires_at
    assert DelegationToken.objects.get(jti=claims["jti"]).expires_at <= soon.expires_at


def test_a_sub_agents_token_never_outlives_its_parents_token(c: Chain) -> None:
    parent = top_token(c, expires_in="120")
    parent_exp = jwt.decode(parent, options={"verify_signature": False})["exp"]
    child = issued(exchange(c.keys[1], parent, expires_in="3600"))
    assert child["exp"] <= parent_exp
    grandchild = issued(exchange(c.keys[2], issued_body(exchange(c.keys[1], parent))["access_token"]))
    assert grandchild["exp"] <= parent_exp


@pytest.mark.parametrize("expires_in", ["0", "-5", "ten", "1e3", "²", "١٢", " 60"])
def test_a_lifetime_that_is_not_a_positive_number_of_seconds_is_invalid_request(c: Chain, expires_in: str) -> None:
    # "²" and "١٢" pass str.isdigit(); "²" used to reach int() and answer 500.
    assert_oauth_error(
        exchange(c.keys[0], str(c.links[0].pk), delegation=True, expires_in=expires_in), "invalid_request"
    )


# --- Through its own delegations ------------------------------------------------------------


def test_a_sub_agent_cannot_delegate_more_scope_than_it_was_given() -> None:
    chain = make_chain(depth=3, scopes=("read",))
    with pytest.raises(ValidationFailed) as refused:
        make_delegation(
            make_agent(parent=chain["agents"][1]), [chain["resource"].scope("write")], parent=chain["links"][1]
        )
    assert refused.value.code == "scope_not_delegated"


def test_a_sub_agent_cannot_delegate_for_longer_than_it_was_given(c: Chain) -> None:
    grandchild = make_agent(parent=c.agents[1])
    with pytest.raises(ValidationFailed) as refused:
        services.delegation_create(
            actor=SYSTEM,
            delegate=grandchild,
            scopes=[c.read],
            expires_at=c.links[1].expires_at + timedelta(seconds=1),
            purpose="longer",
            parent=c.links[1],
        )
    assert refused.value.code == "expiry_exceeds_parent"


def test_a_sub_agent_cannot_delegate_deeper_than_allowed(c: Chain) -> None:
    with pytest.raises(ValidationFailed) as refused:
        make_delegation(make_agent(parent=c.agents[2]), [c.read], parent=c.links[2], expires_in=timedelta(hours=1))
    assert refused.value.code == "depth_exhausted"


def test_an_agent_cannot_delegate_to_an_agent_that_is_not_its_sub_agent(c: Chain) -> None:
    with pytest.raises(ValidationFailed) as refused:
        make_delegation(c.stranger, [c.read], parent=c.links[0], expires_in=timedelta(hours=1))
    assert refused.value.code == "delegate_not_sub_agent"


# --- Whose delegations and tokens an agent may use ------------------------------------------


def test_an_agent_cannot_exchange_a_delegation_it_is_not_the_delegate_of(c: Chain) -> None:
    assert_oauth_error(exchange(c.stranger_key, str(c.links[0].pk), delegation=True), "unauthorized_client")
    # Not even its own sub-agent's delegation, nor its parent's.
    assert_oauth_error(exchange(c.keys[0], str(c.links[1].pk), delegation=True), "unauthorized_client")
    assert_oauth_error(exchange(c.keys[1], str(c.links[0].pk), delegation=True), "unauthorized_client")


def test_an_agent_cannot_exchange_a_token_of_an_agent_that_is_not_its_parent(c: Chain) -> None:
    parent = top_token(c)
    assert_oauth_error(exchange(c.stranger_key, parent), "unauthorized_client")
    assert_oauth_error(exchange(c.keys[2], parent), "unauthorized_client")  # its grandparent's
    assert_oauth_error(exchange(c.keys[0], parent), "unauthorized_client")  # its own
    stranger_token = issued_body(exchange(c.stranger_key, str(c.stranger_link.pk), delegation=True))["access_token"]
    assert_oauth_error(exchange(c.keys[1], stranger_token), "unauthorized_client")


def test_a_sub_agent_without_a_delegation_below_its_parents_gets_invalid_grant(c: Chain) -> None:
    assert_oauth_error(exchange(c.sibling_key, top_token(c)), "invalid_grant")


@pytest.mark.parametrize(
    ("params", "error", "status"),
    [
        ({"actor_token": "ck_zzzzzzzzzz_" + "Z" * 40}, "invalid_client", 401),
        ({"actor_token_type": oauth.TOKEN_TYPE_JWT}, "invalid_request", 400),
        ({"subject_token_type": "urn:example:saml"}, "invalid_request", 400),
        ({"grant_type": "client_credentials"}, "unsupported_grant_type", 400),
        ({"subject_token": "²"}, "invalid_request", 400),
        ({"subject_token": "1" * 5000}, "invalid_request", 400),
        ({"subject_token": "999999999"}, "invalid_grant", 400),
        ({"audience": "crm\x00"}, "invalid_request", 400),
        ({"requested_token_type": "urn:ietf:params:oauth:token-type:saml2"}, "invalid_request", 400),
    ],
    ids=[
        "unknown-key",
        "actor-not-a-key",
        "unknown-subject-type",
        "other-grant-type",
        "superscript-digit",
        "five-thousand-digits",
        "no-such-delegation",
        "nul-in-audience",
        "saml-requested",
    ],
)
def test_a_bad_exchange_request_is_refused_with_its_rfc_6749_error(
    c: Chain, params: dict[str, str], error: str, status: int
) -> None:
    # "²", 5000 digits and a NUL used to answer 500, 500 and 503.
    response = exchange(c.keys[0], str(c.links[0].pk), delegation=True, **params)
    assert_oauth_error(response, error, status)
    if status == 401:
        assert response["WWW-Authenticate"].startswith("Bearer")


def test_a_repeated_parameter_is_invalid_request(c: Chain) -> None:
    form = urlencode(
        [
            ("grant_type", oauth.GRANT_TYPE_TOKEN_EXCHANGE),
            ("actor_token", c.keys[0]),
            ("actor_token_type", oauth.TOKEN_TYPE_AGENT_KEY),
            ("subject_token", str(c.links[0].pk)),
            ("subject_token", str(c.stranger_link.pk)),
            ("subject_token_type", oauth.TOKEN_TYPE_DELEGATION),
        ]
    )
    assert_oauth_error(Client().post("/oauth/token", form, content_type=FORM), "invalid_request")


def test_the_token_endpoint_takes_form_encoding_only(c: Chain) -> None:
    body = {"grant_type": oauth.GRANT_TYPE_TOKEN_EXCHANGE, "actor_token": c.keys[0]}
    assert_oauth_error(Client().post("/oauth/token", body, content_type="application/json"), "invalid_request")


def test_a_revoked_parent_token_cannot_be_exchanged(c: Chain) -> None:
    parent = top_token(c)
    jti = jwt.decode(parent, options={"verify_signature": False})["jti"]
    services.token_revoke(actor=SYSTEM, jti=jti, reason="test")
    assert_oauth_error(exchange(c.keys[1], parent), "invalid_grant")


def test_a_revoked_delegation_cannot_be_exchanged(c: Chain) -> None:
    services.delegation_revoke(actor=SYSTEM, delegation=c.links[1], reason="done")
    assert_oauth_error(exchange(c.keys[1], str(c.links[1].pk), delegation=True), "invalid_grant")
    assert_oauth_error(exchange(c.keys[1], top_token(c)), "invalid_grant")


# --- Revocation: own and sub-agents' tokens only ---------------------------------------------


def revoke(caller_key: str, token: str) -> HttpResponse:
    return Client().post(
        "/oauth/revoke", urlencode({"token": token}), content_type=FORM, HTTP_AUTHORIZATION=f"Bearer {caller_key}"
    )


def chain_tokens(c: Chain) -> list[str]:
    first = top_token(c)
    second = issued_body(exchange(c.keys[1], first))["access_token"]
    third = issued_body(exchange(c.keys[2], second))["access_token"]
    return [first, second, third]


def revoked(token: str) -> bool:
    jti = jwt.decode(token, options={"verify_signature": False})["jti"]
    return DelegationToken.objects.get(jti=jti).revoked_at is not None


def test_an_agent_cannot_revoke_another_agents_token(c: Chain) -> None:
    tokens = chain_tokens(c)
    assert_oauth_error(revoke(c.stranger_key, tokens[0]), "unauthorized_client", 403)
    assert_oauth_error(revoke(c.sibling_key, tokens[1]), "unauthorized_client", 403)
    # Nor its parent's: revocation runs down the tree, never up.
    assert_oauth_error(revoke(c.keys[2], tokens[1]), "unauthorized_client", 403)
    assert not any(revoked(token) for token in tokens)
    assert check(tokens[2], c.resource, "read") == ("allow", Reason.ALLOWED)


def test_an_agent_can_revoke_its_sub_agents_token_and_what_was_derived_from_it(c: Chain) -> None:
    tokens = chain_tokens(c)
    response = revoke(c.keys[0], tokens[1])
    assert response.status_code == 200 and response.json() == {}
    assert response["Cache-Control"] == "no-store"
    assert [revoked(token) for token in tokens] == [False, True, True]
    assert check(tokens[0], c.resource, "read") == ("allow", Reason.ALLOWED)
    assert check(tokens[2], c.resource, "read") == ("deny", Reason.CREDENTIAL_REVOKED)


def test_revoking_a_token_revokes_every_token_derived_from_it(c: Chain) -> None:
    tokens = chain_tokens(c)
    sibling_delegation = make_delegation(c.sibling, [c.read], parent=c.links[0], expires_in=timedelta(hours=1))
    sibling_token = issued_body(exchange(c.sibling_key, tokens[0]))["access_token"]
    unrelated = top_token(c)  # another token of the same agent, not derived from the revoked one
    assert revoke(c.keys[0], tokens[0]).status_code == 200
    assert [revoked(token) for token in (*tokens, sibling_token)] == [True, True, True, True]
    assert not revoked(unrelated)
    assert check(unrelated, c.resource, "read") == ("allow", Reason.ALLOWED)
    reasons = DelegationToken.objects.filter(delegation=sibling_delegation).values_list("revoked_reason", flat=True)
    assert list(reasons) == [
        f"parent token {jwt.decode(tokens[0], options={'verify_signature': False})['jti']} revoked"
    ]


def test_revoking_an_unknown_or_garbage_token_is_a_quiet_200(c: Chain) -> None:
    # RFC 7009 §2.2: the caller learns nothing about tokens that are not its own.
    for token in ("garbage", "a.b.c", top_token(c)[:-5]):
        response = revoke(c.keys[0], token)
        assert response.status_code == 200 and response.json() == {}


def test_revocation_needs_an_authenticated_caller(c: Chain) -> None:
    token = top_token(c)
    response = Client().post("/oauth/revoke", urlencode({"token": token}), content_type=FORM)
    assert_oauth_error(response, "invalid_client", 401)
    assert_oauth_error(revoke("ck_zzzzzzzzzz_" + "Z" * 40, token), "invalid_client", 401)
    assert not revoked(token)
