"""The resource catalogue and the ``resource:action`` scopes it defines."""

from __future__ import annotations

import re
from collections.abc import Iterable

from django.db import transaction

from audit.services import Actor, Target, audit_append
from console.errors import Conflict, ValidationFailed
from governance.models import (
    SCOPE_SEPARATOR,
    Human,
    Resource,
    ResourceKind,
    Sensitivity,
)
from governance.resource_uri import InvalidResourceUri, normalise_resource_uri
from governance.services._rules import (
    require_choice,
    require_text,
)

_ACTION_RE = re.compile(r"^[a-z][a-z0-9_.-]{0,59}$")
_RESOURCE_RE = re.compile(r"^[a-z0-9][a-z0-9._-]{0,119}$")


def _clean_actions(actions: Iterable[str]) -> list[str]:
    cleaned = sorted({str(a).strip() for a in actions if str(a).strip()})
    if not cleaned:
        raise ValidationFailed("List at least one action, e.g. read.", code="required", field="actions")
    for action in cleaned:
        if not _ACTION_RE.match(action):
            raise ValidationFailed(
                f"Action {action!r} must be lower-case letters, digits, '.', '_' or '-'.",
                code="invalid_action",
                field="actions",
            )
    return cleaned


def _clean_uri(uri: str | None) -> str | None:
    if uri is None or not uri.strip():
        return None
    try:
        cleaned = normalise_resource_uri(uri)
    except InvalidResourceUri as exc:
        raise ValidationFailed(f"The resource URI is not usable: {exc}.", code="invalid_uri", field="uri") from None
    if Resource.objects.filter(uri=cleaned).exists():
        raise Conflict(f"Another resource is already registered as {cleaned}.", code="duplicate_uri", field="uri")
    return cleaned


@transaction.atomic
def resource_create(
    *,
    actor: Actor,
    name: str,
    owner: Human,
    actions: Iterable[str],
    kind: str = ResourceKind.API,
    sensitivity: str = Sensitivity.MEDIUM,
    description: str = "",
    uri: str | None = None,
) -> Resource:
    """Register a resource. ``uri`` is its RFC 8707 resource indicator (an MCP server's canonical URI):
    tokens exchanged for it carry it as their audience, and the check accepts them for this resource only."""
    name = require_text(name, "name", max_length=120, label="Name").lower()
    if not _RESOURCE_RE.match(name):
        raise ValidationFailed(
            "A resource name is lower-case letters, digits, '.', '_' or '-' (e.g. crm.contacts).",
            code="invalid_resource_name",
            field="name",
        )
    require_choice(kind, ResourceKind, "kind")
    require_choice(sensitivity, Sensitivity, "sensitivity")
    cleaned = _clean_actions(actions)
    if Resource.objects.filter(name=name).exists():
        raise Conflict(f"A resource named {name} already exists.", code="duplicate_resource", field="name")
    cleaned_uri = _clean_uri(uri)
    resource = Resource.objects.create(
        name=name,
        owner=owner,
        actions=cleaned,
        kind=kind,
        sensitivity=sensitivity,
        description=description.strip(),
        uri=cleaned_uri,
    )
    audit_append(
        actor=actor,
        action="resource.create",
        target=Target.of(resource),
        context={"kind": kind, "sensitivity": sensitivity, "actions": cleaned, "owner": owner.pk, "uri": cleaned_uri},
    )
    return resource


@transaction.atomic
def resource_move(*, actor: Actor, resource: Resource, uri: str) -> Resource:
    """Register the server at a new resource URI (an MCP server moved). Tokens already bound to the old
    URI stop being accepted by the check for this resource; new exchanges bind to the new one."""
    resource = Resource.objects.select_for_update().get(pk=resource.pk)
    try:
        cleaned = normalise_resource_uri(uri)
    except InvalidResourceUri as exc:
        raise ValidationFailed(f"The resource URI is not usable: {exc}.", code="invalid_uri", field="uri") from None
    if cleaned == resource.uri:
        return resource
    if Resource.objects.filter(uri=cleaned).exclude(pk=resource.pk).exists():
        raise Conflict(f"Another resource is already registered as {cleaned}.", code="duplicate_uri", field="uri")
    previous = resource.uri
    resource.uri = cleaned
    resource.save(update_fields=["uri"])
    audit_append(
        actor=actor, action="resource.move", target=Target.of(resource), context={"from": previous, "uri": cleaned}
    )
    return resource


def parse_scopes(scopes: Iterable[str], *, field: str = "scopes") -> dict[str, tuple[Resource, str]]:
    """Validate ``resource:action`` strings against the catalogue; return them keyed by scope."""
    wanted = sorted({str(s).strip() for s in scopes if str(s).strip()})
    if not wanted:
        raise ValidationFailed("Name at least one scope (resource:action).", code="required", field=field)
    pairs: dict[str, tuple[str, str]] = {}
    for scope in wanted:
        name, sep, action = scope.partition(SCOPE_SEPARATOR)
        if not sep or not name or not action:
            raise ValidationFailed(
                f"Scope {scope!r} is not of the form resource:action.", code="invalid_scope", field=field
            )
        pairs[scope] = (name, action)
    resources = {r.name: r for r in Resource.objects.filter(name__in={n for n, _ in pairs.values()})}
    result: dict[str, tuple[Resource, str]] = {}
    for scope, (name, action) in pairs.items():
        resource = resources.get(name)
        if resource is None:
            raise ValidationFailed(f"No resource named {name}.", code="unknown_resource", field=field)
        if action not in resource.actions:
            raise ValidationFailed(
                f"{name} has no action {action!r} (it has: {', '.join(resource.actions)}).",
                code="unknown_action",
                field=field,
            )
        result[scope] = (resource, action)
    return result
