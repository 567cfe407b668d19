"""Custos as the MCP authorization server: an MCP server registered as a resource with its RFC 8707
URI, token exchange binding ``aud`` to that URI, the check accepting such a token at that server only,
sub-agents inheriting the audience, and the RFC 8414 metadata MCP clients read."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any
from urllib.parse import urlencode

import jwt
import pytest
from django.conf import settings
from django.test import Client

from audit.models import AuditEvent
from console.errors import Conflict, ValidationFailed
from governance import authn, oauth, services, tokens
from governance.models import Agent, Delegation, Resource, ResourceKind
from tests.factories import (
    SYSTEM,
    make_admin,
    make_agent,
    make_auditor,
    make_delegation,
    make_grant,
    make_human,
    make_key,
    make_resource,
    make_reviewer,
)

pytestmark = pytest.mark.django_db

FORM = "application/x-www-form-urlencoded"
CRM_URI = "https://mcp.crm.example/mcp"
TICKETS_URI = "https://mcp.tickets.example/mcp"


# --- Registering an MCP server ----------------------------------------------------------------


def test_an_mcp_server_is_registered_with_its_uri_and_audited() -> None:
    resource = make_resource("mcp.crm", actions=("lookup_contact",), kind=ResourceKind.MCP, uri=CRM_URI)

    assert Resource.objects.get(pk=resource.pk).uri == CRM_URI
    event = AuditEvent.objects.filter(action="resource.create", target_id=str(resource.pk)).get()
    assert event.context["uri"] == CRM_URI
    assert resource.get_kind_display() == "MCP server"


def test_the_uri_is_normalised_to_the_form_mcp_clients_send() -> None:
    # The MCP SDKs lower-case scheme and host (and nothing else) before sending ``resource``.
    resource = make_resource(uri="HTTPS://MCP.CRM.Example:8443/Mcp/?v=1")

    assert resource.uri == "https://mcp.crm.example:8443/Mcp/?v=1"


def test_a_resource_without_a_uri_stores_none_and_many_may_lack_one() -> None:
    first, second = make_resource(), make_resource(uri="  ")

    assert first.uri is None and second.uri is None


@pytest.mark.parametrize(
    "uri",
    [
        "mcp.crm.example",  # not absolute
        "/mcp",
        "urn:example:mcp",  # absolute, but not a location an MCP client connects to
        "ftp://mcp.crm.example/mcp",
        "https://mcp.crm.example/mcp#tools",  # RFC 8707 §2: no fragment
        "https://mcp.crm.example/mcp#",
        "https://user:pw@mcp.crm.example/mcp",
        "https:///mcp",
        "https://mcp.crm.example:70000/mcp",
        "https://mcp.crm.example/m cp",
        "https://mcp.crm.example/" + "a" * 500,
    ],
)
def test_an_unusable_uri_is_refused_with_invalid_uri(uri: str) -> None:
    with pytest.raises(ValidationFailed) as refused:
        make_resource(uri=uri)

    assert refused.value.code == "invalid_uri"
    assert "uri" in refused.value.fields
    assert not Resource.objects.exists()


def test_a_uri_already_registered_is_refused_with_duplicate_uri_even_spelt_differently() -> None:
    make_resource(uri=CRM_URI)

    with pytest.raises(Conflict) as refused:
        make_resource(uri=CRM_URI.upper().replace("/MCP", "/mcp"))

    assert refused.value.code == "duplicate_uri"
    assert refused.value.status == 409
    assert Resource.objects.count() == 1


# --- Token exchange with RFC 8707 ``resource`` ----------------------------------------------


@dataclass
class Org:
    crm: Resource
    tickets: Resource
    agent: Agent
    sub_agent: Agent
    link: Delegation
    sub_link: Delegation
    key: str
    sub_key: str


@pytest.fixture
def org() -> Org:
    """A human holding a tool on each of two MCP servers, delegating both to an agent, which delegates
    them on to its sub-agent."""
    human = make_human()
    crm = make_resource("mcp.crm", actions=("lookup_contact",), kind=ResourceKind.MCP, uri=CRM_URI)
    tickets = make_resource("mcp.tickets", actions=("read_ticket",), kind=ResourceKind.MCP, uri=TICKETS_URI)
    make_grant(human, crm, "lookup_contact")
    make_grant(human, tickets, "read_ticket")
    scopes = ["mcp.crm:lookup_contact", "mcp.tickets:read_ticket"]
    agent = make_agent(sponsor=human)
    sub_agent = make_agent(parent=agent)
    link = make_delegation(agent, scopes, root_human=human, max_depth=1, expires_in=timedelta(days=2))
    sub_link = make_delegation(sub_agent, scopes, parent=link)
    return Org(crm, tickets, agent, sub_agent, link, sub_link, make_key(agent)[1], make_key(sub_agent)[1])


def exchange(actor_key: str, subject: str, *, delegation: bool = True, **params: Any) -> Any:
    form = {
        "grant_type": oauth.GRANT_TYPE_TOKEN_EXCHANGE,
        "actor_token": actor_key,
        "actor_token_type": oauth.TOKEN_TYPE_AGENT_KEY,
        "subject_token": subject,
        "subject_token_type": oauth.TOKEN_TYPE_DELEGATION if delegation else oauth.TOKEN_TYPE_JWT,
        **params,
    }
    return Client().post("/oauth/token", urlencode(form, doseq=True), content_type=FORM)


def access_token(response: Any) -> str:
    assert response.status_code == 200, response.content
    token: str = response.json()["access_token"]
    return token


def claims_of(token: str) -> dict[str, Any]:
    claims: dict[str, Any] = jwt.decode(token, options={"verify_signature": False})
    return claims


def oauth_error(response: Any) -> str:
    assert response.status_code == 400, response.content
    assert response["Cache-Control"] == "no-store"
    error: str = response.json()["error"]
    return error


def check(token: str, resource: Resource) -> dict[str, Any]:
    response = Client().post(
        "/api/v1/check",
        {"action": resource.actions[0], "resource": resource.name, "context": {"tool": resource.actions[0]}},
        content_type="application/json",
        HTTP_AUTHORIZATION=f"Bearer {token}",
    )
    assert response.status_code == 200, response.content
    body: dict[str, Any] = response.json()
    return body


def test_the_resource_parameter_binds_aud_to_the_mcp_servers_uri(org: Org) -> None:
    token = access_token(exchange(org.key, str(org.link.pk), resource=CRM_URI))

    claims = claims_of(token)
    assert claims["aud"] == CRM_URI
    assert tokens.verify(token, audiences=[CRM_URI]).jti == claims["jti"]
    # What the MCP server's middleware does: PyJWT and the JWKS alone, the audience its own URI.
    keys = {k["kid"]: k for k in Client().get("/.well-known/jwks.json").json()["keys"]}
    public = jwt.PyJWK(keys[jwt.get_unverified_header(token)["kid"]]).key
    jwt.decode(token, public, algorithms=["EdDSA"], audience=CRM_URI, issuer=settings.CUSTOS_ISSUER)
    with pytest.raises(jwt.InvalidAudienceError):
        jwt.decode(token, public, algorithms=["EdDSA"], audience=TICKETS_URI, issuer=settings.CUSTOS_ISSUER)
    event = AuditEvent.objects.filter(action="token.issue").latest("id")
    assert event.context["audience"] == CRM_URI


def test_the_resource_uri_is_matched_in_the_form_the_client_sends_it(org: Org) -> None:
    token = access_token(exchange(org.key, str(org.link.pk), resource="HTTPS://MCP.CRM.EXAMPLE/mcp"))

    assert claims_of(token)["aud"] == CRM_URI


def test_the_audience_by_resource_name_still_works(org: Org) -> None:
    assert claims_of(access_token(exchange(org.key, str(org.link.pk), audience="mcp.crm")))["aud"] == "mcp.crm"
    assert claims_of(access_token(exchange(org.key, str(org.link.pk), resource="mcp.crm")))["aud"] == "mcp.crm"


def test_the_longest_uri_accepted_fits_the_tokens_recorded_audience(org: Org) -> None:
    longest = "https://mcp.long.example/" + "p" * (200 - len("https://mcp.long.example/"))
    services.resource_create(actor=SYSTEM, name="mcp.long", owner=make_human(), actions=["t"], uri=longest)
    with pytest.raises(ValidationFailed):
        make_resource(uri=longest + "p")

    # Only the audience is at stake here: the token is minted (and recorded) without a 5xx.
    token = access_token(exchange(org.key, str(org.link.pk), resource=longest, scope="mcp.crm:lookup_contact"))

    assert claims_of(token)["aud"] == longest


def test_the_uri_given_as_audience_binds_aud_the_same_way(org: Org) -> None:
    token = access_token(exchange(org.key, str(org.link.pk), audience=TICKETS_URI))

    assert claims_of(token)["aud"] == TICKETS_URI
    assert check(token, org.tickets)["decision"] == "allow"


def test_audience_by_name_and_resource_by_uri_of_the_same_server_give_the_uri(org: Org) -> None:
    token = access_token(exchange(org.key, str(org.link.pk), audience="mcp.crm", resource=CRM_URI))

    assert claims_of(token)["aud"] == CRM_URI


@pytest.mark.parametrize(
    "params",
    [
        {"resource": "https://unregistered.example/mcp"},
        {"resource": CRM_URI + "#tools"},
        {"resource": "ftp://mcp.crm.example/mcp"},
        {"resource": "https://"},
        {"resource": ""},
        {"resource": [CRM_URI, TICKETS_URI]},
        {"resource": [CRM_URI, CRM_URI]},
        {"audience": "mcp.tickets", "resource": CRM_URI},
        {"audience": TICKETS_URI, "resource": CRM_URI},
    ],
    ids=[
        "unregistered",
        "fragment",
        "scheme",
        "no-host",
        "empty",
        "two",
        "repeated",
        "name-disagrees",
        "uris-disagree",
    ],
)
def test_a_resource_parameter_naming_no_single_registered_server_is_invalid_target(
    org: Org, params: dict[str, Any]
) -> None:
    issued_before = AuditEvent.objects.filter(action="token.issue").count()

    assert oauth_error(exchange(org.key, str(org.link.pk), **params)) == "invalid_target"
    assert AuditEvent.objects.filter(action="token.issue").count() == issued_before


# --- The check: one server's token is refused at another ------------------------------------


def test_a_token_for_server_a_is_allowed_by_a_check_on_a(org: Org) -> None:
    token = access_token(exchange(org.key, str(org.link.pk), resource=CRM_URI))

    body = check(token, org.crm)

    assert body["decision"] == "allow", body


def test_a_token_for_server_a_is_refused_by_a_check_on_server_b(org: Org) -> None:
    # Its scope covers B's tool too: only the audience keeps it from being used there.
    token = access_token(exchange(org.key, str(org.link.pk), resource=CRM_URI))
    assert "mcp.tickets:read_ticket" in claims_of(token)["scope"].split()

    body = check(token, org.tickets)

    assert body["decision"] == "deny"
    assert body["reason"] == "credential_invalid"


def test_a_token_for_server_a_is_not_a_credential_for_custos_itself(org: Org) -> None:
    token = access_token(exchange(org.key, str(org.link.pk), resource=CRM_URI))

    with pytest.raises(authn.CredentialRefused):
        authn.authenticate_token(token)


def test_a_uri_audience_no_longer_registered_under_that_name_is_refused(org: Org) -> None:
    # A token minted for a URI counts only for the resource that URI is registered to.
    token = access_token(exchange(org.key, str(org.link.pk), resource=CRM_URI))
    Resource.objects.filter(pk=org.crm.pk).update(uri="https://moved.example/mcp")

    assert check(token, org.crm)["reason"] == "credential_invalid"


def test_a_server_that_moved_is_registered_at_its_new_uri_and_old_tokens_stop_working(org: Org) -> None:
    before = access_token(exchange(org.key, str(org.link.pk), resource=CRM_URI))
    assert check(before, org.crm)["decision"] == "allow"

    moved = services.resource_move(actor=SYSTEM, resource=org.crm, uri="HTTPS://MCP2.CRM.Example/mcp")

    assert moved.uri == Resource.objects.get(pk=org.crm.pk).uri == "https://mcp2.crm.example/mcp"
    event = AuditEvent.objects.get(action="resource.move", target_id=str(org.crm.pk))
    assert event.context == {"from": CRM_URI, "uri": "https://mcp2.crm.example/mcp"}
    assert check(before, org.crm)["reason"] == "credential_invalid"
    after = access_token(exchange(org.key, str(org.link.pk), resource="https://mcp2.crm.example/mcp"))
    assert claims_of(after)["aud"] == "https://mcp2.crm.example/mcp"
    assert check(after, org.crm)["decision"] == "allow"
    # The old URI names no server any more.
    assert oauth_error(exchange(org.key, str(org.link.pk), resource=CRM_URI)) == "invalid_target"


def test_moving_to_the_same_uri_changes_and_records_nothing(org: Org) -> None:
    services.resource_move(actor=SYSTEM, resource=org.crm, uri="https://MCP.CRM.example/mcp")

    assert not AuditEvent.objects.filter(action="resource.move").exists()
    assert Resource.objects.get(pk=org.crm.pk).uri == CRM_URI


def test_moving_onto_another_servers_uri_or_an_unusable_one_is_refused(org: Org) -> None:
    with pytest.raises(Conflict) as taken:
        services.resource_move(actor=SYSTEM, resource=org.crm, uri=TICKETS_URI.upper().replace("/MCP", "/mcp"))
    with pytest.raises(ValidationFailed) as unusable:
        services.resource_move(actor=SYSTEM, resource=org.crm, uri="https://mcp.crm.example/mcp#frag")

    assert (taken.value.code, unusable.value.code) == ("duplicate_uri", "invalid_uri")
    assert Resource.objects.get(pk=org.crm.pk).uri == CRM_URI
    assert not AuditEvent.objects.filter(action="resource.move").exists()


def test_a_custos_audience_token_is_still_good_at_every_server_in_scope(org: Org) -> None:
    token = access_token(exchange(org.key, str(org.link.pk)))

    assert check(token, org.crm)["decision"] == "allow"
    assert check(token, org.tickets)["decision"] == "allow"


# --- Sub-agents inherit the audience --------------------------------------------------------


def test_a_sub_agents_token_keeps_the_parents_mcp_server_audience(org: Org) -> None:
    parent = access_token(exchange(org.key, str(org.link.pk), resource=CRM_URI))

    child = access_token(exchange(org.sub_key, parent, delegation=False))

    assert claims_of(child)["aud"] == CRM_URI
    assert check(child, org.crm)["decision"] == "allow"
    assert check(child, org.tickets)["reason"] == "credential_invalid"


def test_a_sub_agent_may_name_the_same_server_but_not_another(org: Org) -> None:
    parent = access_token(exchange(org.key, str(org.link.pk), resource=CRM_URI))

    same = access_token(exchange(org.sub_key, parent, delegation=False, resource="HTTPS://MCP.CRM.EXAMPLE/mcp"))
    assert claims_of(same)["aud"] == CRM_URI
    assert oauth_error(exchange(org.sub_key, parent, delegation=False, resource=TICKETS_URI)) == "invalid_target"
    assert oauth_error(exchange(org.sub_key, parent, delegation=False, audience="mcp.tickets")) == "invalid_target"


def test_a_sub_agent_may_narrow_a_custos_token_to_one_mcp_server(org: Org) -> None:
    parent = access_token(exchange(org.key, str(org.link.pk)))

    child = access_token(exchange(org.sub_key, parent, delegation=False, resource=TICKETS_URI))

    assert claims_of(child)["aud"] == TICKETS_URI
    assert check(child, org.tickets)["decision"] == "allow"
    assert check(child, org.crm)["reason"] == "credential_invalid"


# --- RFC 8414 metadata ----------------------------------------------------------------------


def test_the_metadata_lists_what_an_mcp_client_needs() -> None:
    response = Client().get("/.well-known/oauth-authorization-server")

    assert response.status_code == 200
    meta = response.json()
    base = settings.CUSTOS_ISSUER.rstrip("/")
    assert meta["issuer"] == settings.CUSTOS_ISSUER
    assert meta["token_endpoint"] == f"{base}/oauth/token"
    assert meta["jwks_uri"] == f"{base}/.well-known/jwks.json"
    assert meta["introspection_endpoint"] == f"{base}/oauth/introspect"
    assert meta["revocation_endpoint"] == f"{base}/oauth/revoke"
    assert oauth.GRANT_TYPE_TOKEN_EXCHANGE in meta["grant_types_supported"]
    assert meta["token_endpoint_auth_methods_supported"] == ["none"]
    assert meta["token_exchange_actor_token_types_supported"] == [oauth.TOKEN_TYPE_AGENT_KEY]
    # No authorization endpoint (RFC 8414 §2: none is listed when no grant uses one), and no
    # unregistered name for RFC 8707 support, nor the (non-public) catalogue of resource URIs.
    assert "authorization_endpoint" not in meta
    assert "resource_indicators_supported" not in meta
    assert "protected_resources" not in meta


# --- The console ----------------------------------------------------------------------------


def _form(owner_pk: int, **overrides: str) -> dict[str, Any]:
    return {
        "name": "mcp.support",
        "kind": "mcp",
        "uri": "https://mcp.support.example/mcp",
        "actions": "read_ticket, post_message",
        "sensitivity": "high",
        "owner": owner_pk,
        "description": "The support team's MCP server.",
        **overrides,
    }


def test_an_admin_registers_an_mcp_server_from_the_resources_page() -> None:
    client = Client()
    client.force_login(make_admin())
    owner = make_human()
    assert "resource-form" in client.get("/resources/").content.decode()

    response = client.post("/resources/new/", _form(owner.pk))

    resource = Resource.objects.get(name="mcp.support")
    assert response.status_code == 302 and response["Location"] == resource.get_absolute_url()
    assert (resource.uri, resource.kind, resource.actions) == (
        "https://mcp.support.example/mcp",
        "mcp",
        ["post_message", "read_ticket"],
    )
    page = client.get(resource.get_absolute_url()).content.decode()
    assert "https://mcp.support.example/mcp" in page and "Tools" in page
    assert "https://mcp.support.example/mcp" in client.get("/resources/").content.decode()


def test_a_bad_uri_in_the_console_form_is_shown_next_to_the_field() -> None:
    client = Client()
    client.force_login(make_admin())
    owner = make_human()
    services.resource_create(actor=SYSTEM, name="mcp.crm", owner=owner, actions=["x"], uri=CRM_URI)

    fragment = client.post("/resources/new/", _form(owner.pk, uri="mcp.support.example"), HTTP_HX_REQUEST="true")
    duplicate = client.post("/resources/new/", _form(owner.pk, uri=CRM_URI), HTTP_HX_REQUEST="true")

    assert fragment.status_code == duplicate.status_code == 422
    assert "not usable" in fragment.content.decode()
    assert "already registered" in duplicate.content.decode()
    assert not Resource.objects.filter(name="mcp.support").exists()


@pytest.mark.parametrize("make_user", [make_reviewer, make_auditor])
def test_only_an_admin_registers_a_resource(make_user: Any) -> None:
    client = Client()
    client.force_login(make_user())
    owner = make_human()

    assert "resource-form" not in client.get("/resources/").content.decode()
    assert client.post("/resources/new/", _form(owner.pk)).status_code == 403
    assert not Resource.objects.filter(name="mcp.support").exists()
