"""SCIM PATCH (RFC 7644 §3.5.2) applied to a resource held as SCIM JSON.

Public API::

    apply_patch(resource: dict, body: dict, *, schema: str) -> dict
    ScimPatchError                  # .scim_type, .detail, .status == 400
    PATCH_OP, USER_SCHEMA, GROUP_SCHEMA

``resource`` is what the Users or Groups GET answers; ``schema`` its core schema URN (``USER_SCHEMA``
or ``GROUP_SCHEMA``). The result is the patched resource in the same form (a new dict; the argument is
left alone), for the caller to validate and save as a PUT would. ``id`` and ``meta`` come back as they
went in: changing them is refused (``mutability``), restating them unchanged (Okta sends ``id`` with
every group rename) is not.

The operations are applied by scim2-models (``PatchOp.patch``): paths, sub-attributes, value filters,
extension URNs, ``add``/``replace``/``remove`` with and without a path, mutability, required
attributes. Its policy is set to what the identity providers send: a ``remove`` whose ``value`` lists
the members to remove (Entra), and an ``add`` or ``replace`` at ``emails[type eq "work"].value`` when
there is no work email yet (Entra) creates it. Before that, this module rewrites the shapes the library
cannot read: an enterprise attribute named without its URN (Entra's ``"path": "manager"``) and a manager
given as a bare id or a one-element list (``"value": "id"``, ``[{"$ref": …, "value": "id"}]``), and a
manager's read-only ``displayName``, which is dropped (Custos answers none). Entra's
capitalised ``op`` and its ``"False"`` strings for booleans the library reads as they are.

Errors: ``invalidPath`` (no such attribute, bad path syntax), ``noTarget`` (a filter in an add or replace
path matching nothing; a remove without a path), ``invalidValue`` (a value of the wrong type, an unknown
``op``), ``mutability`` (``id``, ``meta``, removing ``userName`` or ``active``), ``invalidSyntax`` (not a PatchOp).
"""

from __future__ import annotations

import copy
from typing import Annotated, Any, ClassVar

from pydantic import ValidationError
from scim2_models import (
    ComplexAttribute,
    Context,
    Email,
    EnterpriseUser,
    Group,
    PatchOp,
    Required,
    Resource,
    SCIMException,
    ScimPolicy,
    User,
)

PATCH_OP = "urn:ietf:params:scim:api:messages:2.0:PatchOp"
USER_SCHEMA = "urn:ietf:params:scim:schemas:core:2.0:User"
GROUP_SCHEMA = "urn:ietf:params:scim:schemas:core:2.0:Group"
ENTERPRISE_USER = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"


class _Email(Email):
    # scim2-models checks emails with email-validator, which refuses special-use domains (.test, .local:
    # the suite's and Okta's documented addresses) that Django's validator, and so Human.email, accepts.
    # Whether an address is acceptable is the representation's call, after the patch.
    value: str | None = None


class _User(User[EnterpriseUser]):
    emails: list[_Email] | None = None  # type: ignore[assignment]
    Emails: ClassVar[type[ComplexAttribute]] = _Email
    # Required here as in /Schemas: a remove of ``active`` (or a replace with null) is refused, 400
    # ``mutability`` (RFC 7644 §3.5.2.2, as for userName), rather than leaving the human's status to
    # guess. Deactivation is ``active: false``; only an explicit ``active: true`` reactivates.
    active: Annotated[bool | None, Required.true] = None


_MODELS: dict[str, type[Resource[Any]]] = {
    USER_SCHEMA: _User,
    GROUP_SCHEMA: Group,
}

# The enterprise extension's attributes (RFC 7643 §4.3); none shares a name with a core User attribute.
_ENTERPRISE_NAMES = {
    name.lower(): name for name in ("employeeNumber", "costCenter", "organization", "division", "department", "manager")
}

# Entra removes members listed in a remove's value, and adds a work email through
# `emails[type eq "work"].value` when there is none. A group keeps RFC 7644's noTarget for a filter
# that matches no member: creating one there would add a member through a replace of its display.
_POLICIES = {
    USER_SCHEMA: ScimPolicy(
        remove_value_as_filter=ScimPolicy.RemoveValue.apply,
        unmatched_path_filter=ScimPolicy.UnmatchedPathFilter.create,
    ),
    GROUP_SCHEMA: ScimPolicy(remove_value_as_filter=ScimPolicy.RemoveValue.apply),
}


class ScimPatchError(Exception):
    """A PATCH the resource cannot take: 400 with ``scim_type`` (RFC 7644 §3.12)."""

    status = 400

    def __init__(self, scim_type: str, detail: str) -> None:
        super().__init__(detail)
        self.scim_type = scim_type
        self.detail = detail


def apply_patch(resource: dict[str, Any], body: dict[str, Any], *, schema: str) -> dict[str, Any]:
    """The resource with the PATCH request ``body`` applied; ScimPatchError when it cannot be."""
    model = _MODELS.get(schema)
    if model is None:
        raise ValueError(f"No PATCH support for the schema {schema!r}.")
    operations = _operations(body)
    if schema == USER_SCHEMA:
        operations = [_normalise_user_operation(op) for op in operations]

    policy = _POLICIES[schema]
    current = model.model_validate(copy.deepcopy(resource), scim_ctx=Context.RESOURCE_QUERY_RESPONSE)
    try:
        patch = PatchOp[model].model_validate(  # type: ignore[valid-type]
            {"schemas": [PATCH_OP], "Operations": operations},
            scim_ctx=Context.RESOURCE_PATCH_REQUEST,
            scim_policy=policy,
        )
        patch.patch(current, scim_policy=policy)
    except SCIMException as exc:
        raise ScimPatchError(exc.scim_type or "invalidValue", _plain(str(exc.detail or exc))) from None
    except ValidationError as exc:
        raise _from_validation_error(exc) from None
    patched = current.model_dump(scim_ctx=Context.RESOURCE_QUERY_RESPONSE)
    _drop_stale_manager_name(resource, patched)
    _drop_duplicate_members(patched)
    return patched


def _drop_stale_manager_name(before: dict[str, Any], after: dict[str, Any]) -> None:
    """A replace merges sub-attributes (RFC 7644 §3.5.2.3), so a new manager id would keep the old
    manager's read-only displayName and $ref: drop them, the caller names the new manager."""
    old = (before.get(ENTERPRISE_USER) or {}).get("manager") or {}
    new = (after.get(ENTERPRISE_USER) or {}).get("manager")
    if isinstance(new, dict) and isinstance(old, dict) and new.get("value") != old.get("value"):
        new.pop("displayName", None)
        new.pop("$ref", None)


def _drop_duplicate_members(resource: dict[str, Any]) -> None:
    """Adding a member already there changes nothing (RFC 7644 §3.5.2.1); Entra re-adds them."""
    members = resource.get("members")
    if not isinstance(members, list):
        return
    seen: set[Any] = set()
    unique = []
    for member in members:
        key = member.get("value") if isinstance(member, dict) else member
        if key not in seen:
            seen.add(key)
            unique.append(member)
    resource["members"] = unique


def _operations(body: Any) -> list[dict[str, Any]]:
    if not isinstance(body, dict):
        raise ScimPatchError("invalidSyntax", "The request body is not a PatchOp object.")
    schemas = body.get("schemas")
    if not isinstance(schemas, list) or PATCH_OP not in schemas:
        raise ScimPatchError("invalidSyntax", f"The request's schemas must list {PATCH_OP}.")
    operations = body.get("Operations", body.get("operations"))
    if not isinstance(operations, list) or not operations:
        raise ScimPatchError("invalidSyntax", "Operations must list one or more operations.")
    if not all(isinstance(op, dict) for op in operations):
        raise ScimPatchError("invalidSyntax", "Each operation is an object with op, path and value.")
    return [dict(op) for op in operations]


def _from_validation_error(exc: ValidationError) -> ScimPatchError:
    """scim2-models reports a SCIM error inside pydantic's as the error type ``scim_<scimType>``."""
    for error in exc.errors():
        kind = str(error.get("type", ""))
        if kind.startswith("scim_"):
            return ScimPatchError(kind.removeprefix("scim_"), _plain(str(error.get("msg", ""))))
    first: dict[str, Any] = dict(exc.errors()[0]) if exc.errors() else {}
    where = ".".join(str(part) for part in first.get("loc", ()))
    return ScimPatchError("invalidValue", f"{where}: {first.get('msg', 'invalid value')}".lstrip(": "))


def _plain(detail: str) -> str:
    """pydantic's message without its documentation links, which say nothing to an IdP admin."""
    return "\n".join(line for line in detail.splitlines() if "errors.pydantic.dev" not in line).strip()


# --- The identity providers' shapes ---------------------------------------------------------------


def _normalise_user_operation(operation: dict[str, Any]) -> dict[str, Any]:
    path = operation.get("path")
    if isinstance(path, str) and path.strip():
        path = _qualified(path.strip())
        operation["path"] = path
        if "value" in operation and path.lower() == f"{ENTERPRISE_USER}:manager".lower():
            operation["value"] = _manager(operation["value"])
        elif "value" in operation and path.lower() == ENTERPRISE_USER.lower():
            operation["value"] = _extension(operation["value"])
    elif isinstance(operation.get("value"), dict):
        operation["value"] = _attributes(operation["value"])
    return operation


def _qualified(path: str) -> str:
    """``manager`` / ``department.x`` as the enterprise URN's: Entra names them without it."""
    head = path.split(".", 1)[0].split("[", 1)[0]
    name = _ENTERPRISE_NAMES.get(head.lower())
    if name is None or ":" in path:
        return path
    return f"{ENTERPRISE_USER}:{name}{path[len(head) :]}"


def _attributes(value: dict[str, Any]) -> dict[str, Any]:
    """A path-less value's keys: enterprise names qualified, a manager given as an id made an object."""
    rewritten: dict[str, Any] = {}
    for key, item in value.items():
        qualified = _qualified(key) if isinstance(key, str) else key
        if isinstance(qualified, str) and qualified.lower() == f"{ENTERPRISE_USER}:manager".lower():
            item = _manager(item)
        elif isinstance(qualified, str) and qualified.lower() == ENTERPRISE_USER.lower():
            item = _extension(item)
        rewritten[qualified] = item
    return rewritten


def _extension(value: Any) -> Any:
    if not isinstance(value, dict):
        return value
    return {key: _manager(item) if str(key).lower() == "manager" else item for key, item in value.items()}


def _manager(value: Any) -> Any:
    """RFC 7643's manager is ``{"value": id}``; Entra also sends the id alone or a one-element list."""
    if isinstance(value, list) and len(value) == 1:
        value = value[0]
    if isinstance(value, str | int) and not isinstance(value, bool):
        return {"value": str(value)}
    if isinstance(value, dict):
        # displayName is read-only (RFC 7643 §4.3) and Custos answers none: sent anyway, it is ignored
        # (as a PUT or POST ignores it) rather than refused.
        return {
            key: item
            for key, item in value.items()
            if not (key == "$ref" and item is None) and str(key).lower() != "displayname"
        }
    return value
