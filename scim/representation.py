"""Humans and groups as SCIM resources (RFC 7643), and SCIM request bodies mapped back to Custos's fields.

What maps where (the README's "SCIM provisioning" says the same):

- ``id`` is ``Human.pk``; ``externalId``, ``title`` are ``Human.external_id``, ``Human.title``;
- ``userName`` is ``ScimUser.user_name`` (a console-made human answers with their email);
- ``emails`` is ``ScimUser.emails``; ``Human.email`` is the userName when it is an email, else the
  primary (or first) email;
- ``displayName`` and ``name.formatted``/``givenName``/``familyName`` are kept in ``ScimUser`` as the
  IdP set them and answered only when set; ``Human.name`` (the console's, never empty) is the
  displayName, else ``name.formatted``, else the given and family names, else the userName. A
  console-made human (no ScimUser) answers with ``Human.name``, split at its first space for the parts;
- ``active`` is ``Human.status == "active"``; left out of a PUT or PATCH it is unchanged;
- the enterprise extension's ``department`` and ``manager.value`` (with its ``$ref``) are
  ``Human.department`` and ``Human.manager``; ``manager.displayName`` and a group member's ``display``
  are accepted and ignored, never answered (they would be the server's copy, not what the IdP wrote).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from typing import Any

from django.core.exceptions import ValidationError as DjangoValidationError
from django.core.validators import validate_email

from governance.models import Human, HumanStatus
from scim.errors import ScimError
from scim.filtering import split_name
from scim.models import ScimGroup, ScimUser
from scim.services import GroupFields, UserFields

USER_SCHEMA = "urn:ietf:params:scim:schemas:core:2.0:User"
ENTERPRISE_SCHEMA = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
GROUP_SCHEMA = "urn:ietf:params:scim:schemas:core:2.0:Group"
LIST_RESPONSE = "urn:ietf:params:scim:api:messages:2.0:ListResponse"
PATCH_OP = "urn:ietf:params:scim:api:messages:2.0:PatchOp"


def profile_of(human: Human) -> ScimUser | None:
    try:
        return human.scim
    except ScimUser.DoesNotExist:
        return None


# --- Out: resources ------------------------------------------------------------------------------


def user_resource(human: Human, base: str) -> dict[str, Any]:
    """The SCIM User of a human (``human`` fetched with ``select_related("scim", "manager")``)."""
    profile = profile_of(human)
    if profile is None:
        # A console-made human: nothing was set by an IdP, so they read as the console shows them (names
        # split at the first space, as the filters read them).
        given, family = split_name(human.name)
        user_name, display_name = human.email, human.name
        name: dict[str, Any] = {"formatted": human.name, "givenName": given, "familyName": family}
        emails: list[dict[str, Any]] = [{"value": human.email, "type": "work", "primary": True}]
    else:
        # What the IdP set, and only that: a removed name or displayName reads back absent (Human.name
        # keeps its own fallback for the console).
        user_name, display_name = profile.user_name, profile.display_name
        name = {"formatted": profile.formatted_name, "givenName": profile.given_name, "familyName": profile.family_name}
        emails = profile.emails or [{"value": human.email, "type": "work", "primary": True}]
    name = {key: value for key, value in name.items() if value}
    resource: dict[str, Any] = {
        "schemas": [USER_SCHEMA],
        "id": str(human.pk),
        "userName": user_name,
    }
    if name:
        resource["name"] = name
    if display_name:
        resource["displayName"] = display_name
    resource["emails"] = emails
    resource["active"] = human.status == HumanStatus.ACTIVE
    if human.external_id:
        resource["externalId"] = human.external_id
    if human.title:
        resource["title"] = human.title
    enterprise: dict[str, Any] = {}
    if human.department:
        enterprise["department"] = human.department
    if human.manager_id is not None:
        # No displayName: it would be the server's copy of a name the IdP did not send here, and a client
        # reads back what it wrote (the console shows the manager's name from Human itself).
        enterprise["manager"] = {"value": str(human.manager_id), "$ref": f"{base}Users/{human.manager_id}"}
    if enterprise:
        resource[ENTERPRISE_SCHEMA] = enterprise
        # RFC 7643 §3: schemas lists the extensions whose attributes the resource carries (and only those).
        resource["schemas"].append(ENTERPRISE_SCHEMA)
    modified = max(human.updated_at, profile.updated_at) if profile is not None else human.updated_at
    resource["meta"] = {
        "resourceType": "User",
        "created": human.created_at.isoformat(),
        "lastModified": modified.isoformat(),
        "location": f"{base}Users/{human.pk}",
        "version": content_version(resource),
    }
    return resource


def content_version(resource: dict[str, Any]) -> str:
    """A weak ETag over what the resource says (meta aside): it moves whenever any of it changes, the
    manager's name included, however the change was made."""
    body = {k: v for k, v in resource.items() if k != "meta"}
    digest = hashlib.sha256(json.dumps(body, sort_keys=True, ensure_ascii=False).encode()).hexdigest()[:20]
    return f'W/"{digest}"'


def group_resource(group: ScimGroup, base: str, members: Iterable[Human] | None = None) -> dict[str, Any]:
    members = list(group.members.all()) if members is None else list(members)
    resource: dict[str, Any] = {
        "schemas": [GROUP_SCHEMA],
        "id": str(group.pk),
        "displayName": group.display_name,
        "members": [
            # No display: the IdP's copy of the member's name is accepted on input and ignored (Okta sends
            # it); answering the server's own would differ from what the client wrote.
            {"value": str(h.pk), "$ref": f"{base}Users/{h.pk}", "type": "User"}
            for h in sorted(members, key=lambda h: h.pk)
        ],
    }
    if group.external_id:
        resource["externalId"] = group.external_id
    resource["meta"] = {
        "resourceType": "Group",
        "created": group.created_at.isoformat(),
        "lastModified": group.updated_at.isoformat(),
        "location": f"{base}Groups/{group.pk}",
        "version": f'W/"{group.version}"',
    }
    return resource


# --- In: request bodies --------------------------------------------------------------------------


def _lower_keys(body: dict[str, Any]) -> dict[str, Any]:
    # Attribute names are case-insensitive (RFC 7643 §2.1); the extension is keyed by its URN.
    return {str(k).lower(): v for k, v in body.items()}


def _text(body: dict[str, Any], key: str, *, required: bool = False, limit: int = 200) -> str:
    value = body.get(key.lower())
    if value is None:
        if required:
            raise ScimError(400, "invalidValue", f"{key} is required.")
        return ""
    if not isinstance(value, str):
        raise ScimError(400, "invalidValue", f"{key} must be a string.")
    value = value.strip()
    if required and not value:
        raise ScimError(400, "invalidValue", f"{key} is required.")
    if len(value) > limit:
        raise ScimError(400, "invalidValue", f"{key} is longer than {limit} characters.")
    return value


def _is_email(value: str) -> bool:
    try:
        validate_email(value)
    except DjangoValidationError:
        return False
    return True


def _emails(raw: Any) -> list[dict[str, Any]]:
    if raw is None:
        return []
    if not isinstance(raw, list):
        raise ScimError(400, "invalidValue", "emails must be a list.")
    emails: list[dict[str, Any]] = []
    for item in raw:
        if not isinstance(item, dict):
            raise ScimError(400, "invalidValue", "Each of emails must be an object with a value.")
        entry = _lower_keys(item)
        value = entry.get("value")
        if not isinstance(value, str) or not _is_email(value.strip()):
            raise ScimError(400, "invalidValue", f"{value!r} in emails is not an email address.")
        email: dict[str, Any] = {"value": value.strip()}
        kind = entry.get("type")
        if kind is not None:
            if not isinstance(kind, str):
                raise ScimError(400, "invalidValue", "emails.type must be a string.")
            email["type"] = kind
        primary = entry.get("primary")
        if primary is not None:
            if not isinstance(primary, bool):
                raise ScimError(400, "invalidValue", "emails.primary must be true or false.")
            email["primary"] = primary
        emails.append(email)
    if sum(1 for e in emails if e.get("primary")) > 1:
        raise ScimError(400, "invalidValue", "At most one of emails may be primary.")
    return emails


def _manager(raw: Any) -> Human | None:
    """``manager`` as IdPs send it: ``{"value": id}``, Entra's bare id, or empty/null to clear."""
    if raw is None or raw == "" or raw == {}:
        return None
    if isinstance(raw, dict):
        value = _lower_keys(raw).get("value")
        if value is None or value == "":
            return None
    else:
        value = raw
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise ScimError(400, "invalidValue", "manager.value must be the id of a User.")
    text = str(value).strip()
    human = Human.objects.filter(pk=int(text)).first() if text.isdigit() and len(text) < 19 else None
    if human is None or ScimUser.objects.filter(human=human, deleted_at__isnull=False).exists():
        raise ScimError(400, "invalidValue", f"manager.value {text} is not the id of a User.")
    return human


def user_fields(body: Any, *, creating: bool = False) -> UserFields:
    """A User body (POST, PUT, or a resource PATCH produced) as Custos's fields; 400 on what does not fit.

    ``active`` left out means true when ``creating`` (POST), and "unchanged" otherwise (``None``): a PUT
    that omits it must not bring back a human who left. Only an explicit ``active: true`` reactivates."""
    if not isinstance(body, dict):
        raise ScimError(400, "invalidSyntax", "The body must be a JSON object.")
    data = _lower_keys(body)
    schemas = data.get("schemas")
    if schemas is not None and (
        not isinstance(schemas, list) or USER_SCHEMA.lower() not in [str(s).lower() for s in schemas]
    ):
        raise ScimError(400, "invalidValue", f"schemas must include {USER_SCHEMA}.")
    user_name = _text(data, "userName", required=True, limit=254)
    emails = _emails(data.get("emails"))
    if _is_email(user_name):
        email = user_name
    else:
        chosen = next((e for e in emails if e.get("primary")), emails[0] if emails else None)
        if chosen is None:
            raise ScimError(
                400, "invalidValue", "Custos needs an email address: a userName that is one, or one in emails."
            )
        email = chosen["value"]
    raw_name = data.get("name")
    if raw_name is not None and not isinstance(raw_name, dict):
        raise ScimError(400, "invalidValue", "name must be an object.")
    name = _lower_keys(raw_name or {})
    given = _text(name, "givenName")
    family = _text(name, "familyName")
    formatted = _text(name, "formatted")
    display_name = _text(data, "displayName")
    # Human.name (the console's) never empty: the IdP's displayName, else what else it says of the name.
    display = (display_name or formatted or " ".join(part for part in (given, family) if part) or user_name)[:200]
    active = data.get("active")
    if active is None:
        active = True if creating else None
    elif isinstance(active, str) and active.lower() in ("true", "false"):
        active = active.lower() == "true"  # Entra sends the string "False" in some PATCH bodies
    if active is not None and not isinstance(active, bool):
        raise ScimError(400, "invalidValue", "active must be true or false.")
    external_id = _text(data, "externalId") or None
    enterprise_raw = data.get(ENTERPRISE_SCHEMA.lower())
    if enterprise_raw is not None and not isinstance(enterprise_raw, dict):
        raise ScimError(400, "invalidValue", f"{ENTERPRISE_SCHEMA} must be an object.")
    enterprise = _lower_keys(enterprise_raw or {})
    manager = _manager(enterprise.get("manager"))
    return UserFields(
        user_name=user_name,
        email=email,
        name=display,
        display_name=display_name,
        formatted_name=formatted,
        given_name=given,
        family_name=family,
        emails=emails,
        title=_text(data, "title", limit=120),
        department=_text(enterprise, "department", limit=120),
        manager=manager,
        external_id=external_id,
        active=active,
    )


def group_fields(body: Any) -> GroupFields:
    if not isinstance(body, dict):
        raise ScimError(400, "invalidSyntax", "The body must be a JSON object.")
    data = _lower_keys(body)
    schemas = data.get("schemas")
    if schemas is not None and (
        not isinstance(schemas, list) or GROUP_SCHEMA.lower() not in [str(s).lower() for s in schemas]
    ):
        raise ScimError(400, "invalidValue", f"schemas must include {GROUP_SCHEMA}.")
    raw_members = data.get("members") or []
    if not isinstance(raw_members, list):
        raise ScimError(400, "invalidValue", "members must be a list.")
    ids: list[int] = []
    for item in raw_members:
        if not isinstance(item, dict):
            raise ScimError(400, "invalidValue", "Each of members must be an object with a value.")
        value = _lower_keys(item).get("value")
        text = str(value).strip() if isinstance(value, str | int) and not isinstance(value, bool) else ""
        if text.isdigit() and len(text) < 19:
            ids.append(int(text))
    # A member naming no User here (a group of the IdP's, someone not provisioned) is left out rather than
    # refused: groups change nothing in governance, and IdPs push memberships before or without the users.
    members = list(Human.objects.filter(pk__in=ids).exclude(scim__deleted_at__isnull=False))
    return GroupFields(
        display_name=_text(data, "displayName", required=True),
        external_id=_text(data, "externalId") or None,
        members=members,
    )
