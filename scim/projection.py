"""``attributes`` and ``excludedAttributes`` (RFC 7644 §3.4.2.5, §3.9) over a resource as a dict.

A path is ``attr``, ``attr.sub``, or either prefixed by a schema URN (``urn:…:User:userName``,
``urn:…:enterprise:2.0:User:department``); names are case-insensitive. ``id`` and ``schemas`` are always
returned (``returned: always``).
"""

from __future__ import annotations

from typing import Any

from scim.errors import ScimError

ALWAYS = ("schemas", "id")


def parse_list(raw: str | None) -> list[str]:
    return [part.strip() for part in (raw or "").split(",") if part.strip()]


def _split(path: str, core_schema: str, extensions: tuple[str, ...]) -> tuple[str | None, str, str | None]:
    """(extension URN or None for the core, attribute, sub-attribute) of ``path``, lower-cased."""
    lowered = path.lower()
    container: str | None = None
    for urn in extensions:
        if lowered == urn.lower():
            return urn, "", None
        if lowered.startswith(urn.lower() + ":"):
            container, lowered = urn, lowered[len(urn) + 1 :]
            break
    else:
        if lowered.startswith(core_schema.lower() + ":"):
            lowered = lowered[len(core_schema) + 1 :]
    attribute, _, sub = lowered.partition(".")
    if not attribute or ":" in attribute or " " in lowered:
        raise ScimError(400, "invalidPath", f"{path!r} is not an attribute path.")
    return container, attribute, sub or None


def _key(data: dict[str, Any], lowered: str) -> str | None:
    return next((k for k in data if k.lower() == lowered), None)


def _pick(value: Any, sub: str) -> Any:
    if isinstance(value, list):
        picked = [_pick(item, sub) for item in value]
        return [p for p in picked if p not in (None, {})]
    if isinstance(value, dict):
        key = _key(value, sub)
        return {key: value[key]} if key is not None else None
    return None


def _drop(value: Any, sub: str) -> Any:
    if isinstance(value, list):
        return [_drop(item, sub) for item in value]
    if isinstance(value, dict):
        return {k: v for k, v in value.items() if k.lower() != sub}
    return value


def project(
    resource: dict[str, Any],
    *,
    attributes: list[str],
    excluded: list[str],
    core_schema: str,
    extensions: tuple[str, ...] = (),
) -> dict[str, Any]:
    return _schemas_as_carried(_project(resource, attributes, excluded, core_schema, extensions), extensions)


def _schemas_as_carried(out: dict[str, Any], extensions: tuple[str, ...]) -> dict[str, Any]:
    """RFC 7643 §3: ``schemas`` names the extensions whose attributes the answer carries, so an
    extension left out (or emptied) by the projection leaves ``schemas`` too."""
    for urn in extensions:
        if not out.get(urn):
            out.pop(urn, None)
            if urn in out.get("schemas", []):
                out["schemas"] = [s for s in out["schemas"] if s != urn]
    return out


def _project(
    resource: dict[str, Any],
    attributes: list[str],
    excluded: list[str],
    core_schema: str,
    extensions: tuple[str, ...],
) -> dict[str, Any]:
    if attributes:
        out: dict[str, Any] = {k: resource[k] for k in ALWAYS if k in resource}
        for path in attributes:
            container, attribute, sub = _split(path, core_schema, extensions)
            source = resource.get(container, {}) if container else resource
            if container and not attribute:
                if container in resource:
                    out[container] = resource[container]
                continue
            key = _key(source, attribute) if isinstance(source, dict) else None
            if key is None:
                continue
            value = source[key] if sub is None else _pick(source[key], sub)
            if value in (None, [], {}):
                continue
            target = out.setdefault(container, {}) if container else out
            if sub is not None and isinstance(target.get(key), dict) and isinstance(value, dict):
                target[key] = {**target[key], **value}
            elif key not in target or sub is None:
                target[key] = value
        return out
    out = dict(resource)
    for path in excluded:
        container, attribute, sub = _split(path, core_schema, extensions)
        if container and not attribute:
            out.pop(container, None)
            continue
        holder = dict(out.get(container, {})) if container else out
        key = _key(holder, attribute)
        if key is None or (container is None and key in ALWAYS):
            continue
        if sub is None:
            holder.pop(key)
        else:
            holder[key] = _drop(holder[key], sub)
        if container:
            out[container] = holder
    return out
