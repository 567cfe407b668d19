"""What this SCIM service publishes about itself (RFC 7644 §4): its configuration, resource types and
schemas. The schemas are scim2-models' own (RFC 7643 §8.7) trimmed to the attributes Custos keeps, so
a client that discovers them (scim2-tester does) sends and expects only what round-trips."""

from __future__ import annotations

from functools import cache
from typing import Any

from scim2_models import (
    AuthenticationScheme,
    Bulk,
    ChangePassword,
    Context,
    EnterpriseUser,
    ETag,
    Filter,
    Group,
    Patch,
    ResourceType,
    ServiceProviderConfig,
    Sort,
    User,
)

from scim.representation import ENTERPRISE_SCHEMA, GROUP_SCHEMA, USER_SCHEMA

MAX_RESULTS = 200
DEFAULT_COUNT = 100

# The attributes kept, with the sub-attributes kept of each complex one.
_KEPT: dict[str, dict[str, tuple[str, ...]]] = {
    USER_SCHEMA: {
        "userName": (),
        "name": ("formatted", "familyName", "givenName"),
        "displayName": (),
        "title": (),
        "active": (),
        "emails": ("value", "type", "primary"),
    },
    # manager.displayName and members.display are left out: the server would answer its own copy of a
    # name, not what the client wrote. They are accepted on input and ignored (Okta sends display).
    ENTERPRISE_SCHEMA: {"department": (), "manager": ("value", "$ref")},
    GROUP_SCHEMA: {"displayName": (), "members": ("value", "$ref", "type")},
}
# Custos needs an email for every human: a userName that is one, or one in emails (see README).
# ``active`` is required so that no client (scim2-tester included) tries to remove it: a human's status
# cannot be "unassigned", and a remove is refused (400 mutability, scim.patching). A POST without it
# still creates an active human, and a PUT without it leaves the status as it is.
_REQUIRED = {(USER_SCHEMA, "emails"), (USER_SCHEMA, "active")}


def _trimmed(model: Any, schema_id: str, location: str) -> dict[str, Any]:
    schema = model.to_schema().model_dump(scim_ctx=Context.RESOURCE_QUERY_RESPONSE)
    kept = _KEPT[schema_id]
    attributes = []
    for attribute in schema["attributes"]:
        if attribute["name"] not in kept:
            continue
        attribute = dict(attribute)
        if (schema_id, attribute["name"]) in _REQUIRED:
            attribute["required"] = True
        if attribute.get("subAttributes"):
            attribute["subAttributes"] = [
                dict(s) for s in attribute["subAttributes"] if s["name"] in kept[attribute["name"]]
            ]
            if (schema_id, attribute["name"]) in _REQUIRED:
                # An email without its address says nothing.
                for sub in attribute["subAttributes"]:
                    if sub["name"] == "value":
                        sub["required"] = True
        if schema_id == ENTERPRISE_SCHEMA and attribute["name"] == "manager":
            # Identity providers send the manager's id alone (Okta, Entra): $ref is optional here.
            for sub in attribute["subAttributes"]:
                if sub["name"] == "$ref":
                    sub["required"] = False
        attributes.append(attribute)
    schema["attributes"] = attributes
    schema["meta"] = {"resourceType": "Schema", "location": location}
    return schema


@cache
def _schemas_relative() -> list[tuple[str, Any]]:
    return [(USER_SCHEMA, User), (ENTERPRISE_SCHEMA, EnterpriseUser), (GROUP_SCHEMA, Group)]


def schemas(base: str) -> list[dict[str, Any]]:
    return [_trimmed(model, schema_id, f"{base}Schemas/{schema_id}") for schema_id, model in _schemas_relative()]


def resource_types(base: str) -> list[dict[str, Any]]:
    out = []
    for model in (User[EnterpriseUser], Group):
        body = ResourceType.from_resource(model).model_dump(scim_ctx=Context.RESOURCE_QUERY_RESPONSE)
        body["meta"] = {"resourceType": "ResourceType", "location": f"{base}ResourceTypes/{body['id']}"}
        out.append(body)
    return out


def service_provider_config(base: str) -> dict[str, Any]:
    config = ServiceProviderConfig(
        patch=Patch(supported=True),
        bulk=Bulk(supported=False, max_operations=0, max_payload_size=0),
        filter=Filter(supported=True, max_results=MAX_RESULTS),
        change_password=ChangePassword(supported=False),
        sort=Sort(supported=False),
        etag=ETag(supported=True),
        authentication_schemes=[
            AuthenticationScheme(
                type=AuthenticationScheme.Type.oauthbearertoken,
                name="Bearer token",
                description="A SCIM client's secret (cs_…), created by an admin at /scim-clients/.",
                primary=True,
            )
        ],
    )
    body = config.model_dump(scim_ctx=Context.RESOURCE_QUERY_RESPONSE)
    body["meta"] = {"resourceType": "ServiceProviderConfig", "location": f"{base}ServiceProviderConfig"}
    return body
