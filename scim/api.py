"""The SCIM 2.0 endpoints under ``/scim/v2/`` (RFC 7644), for identity providers' clients.

Plain Django views: each answers exactly the SCIM body it means (resources, ListResponse, Error), with
``application/scim+json``. Every request authenticates a ``ScimClient`` (``scim.auth``); every change
goes through ``scim.services`` with that client as the audit actor. Bad input is a 4xx SCIM error with
its ``scimType``, never a 500.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from functools import wraps
from typing import Any

from django.db import transaction
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from django.views.decorators.csrf import csrf_exempt
from pydantic import ValidationError as PydanticValidationError

from console.errors import DomainError
from governance.models import Human
from scim import discovery, filtering, patching, services
from scim.auth import authenticate
from scim.errors import CONTENT_TYPE, ScimError
from scim.models import ScimClient, ScimGroup
from scim.projection import parse_list, project
from scim.representation import (
    ENTERPRISE_SCHEMA,
    GROUP_SCHEMA,
    LIST_RESPONSE,
    USER_SCHEMA,
    group_fields,
    group_resource,
    user_fields,
    user_resource,
)

MAX_BODY = 1_000_000

View = Callable[..., HttpResponse]


def scim_endpoint(*methods: str) -> Callable[[View], View]:
    """Authenticate the client, allow ``methods``, and turn every refusal into a SCIM error body."""

    def decorate(view: View) -> View:
        @csrf_exempt
        @wraps(view)
        def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
            try:
                client = authenticate(request)
                if request.method not in methods:
                    response = ScimError(405, None, f"{request.method} is not supported here.").response()
                    response["Allow"] = ", ".join(methods)
                    return response
                return view(request, client, *args, **kwargs)
            except ScimError as error:
                return error.response()
            except filtering.ScimFilterError as error:
                return ScimError(400, "invalidFilter", error.detail).response()
            except patching.ScimPatchError as error:
                return ScimError(error.status, error.scim_type, error.detail).response()
            except DomainError as error:
                return ScimError.from_domain(error).response()

        return wrapper

    return decorate


# --- Helpers --------------------------------------------------------------------------------------


def base_url(request: HttpRequest) -> str:
    return request.build_absolute_uri("/scim/v2/")


def respond(body: Any, status: int = 200, *, etag: str | None = None, location: str | None = None) -> HttpResponse:
    response = HttpResponse(json.dumps(body, ensure_ascii=False), status=status, content_type=CONTENT_TYPE)
    if etag:
        response["ETag"] = etag
    if location:
        response["Location"] = location
    return response


def read_body(request: HttpRequest) -> Any:
    if len(request.body) > MAX_BODY:
        raise ScimError(413, None, f"The body is larger than {MAX_BODY} bytes.")
    kind = request.content_type or ""
    if kind and kind not in ("application/scim+json", "application/json"):
        raise ScimError(400, "invalidSyntax", "Send application/scim+json (or application/json).")
    try:
        return json.loads(request.body or b"null")
    except (ValueError, UnicodeDecodeError):
        raise ScimError(400, "invalidSyntax", "The body is not valid JSON.") from None


def _tags(header: str) -> list[str]:
    # Weak comparison (RFC 9110 §8.8.3.2): W/"x" and "x" name the same version.
    return [t.strip().removeprefix("W/") for t in header.split(",") if t.strip()]


def check_if_match(request: HttpRequest, current: str) -> None:
    header = request.headers.get("If-Match")
    if header is None:
        return
    tags = _tags(header)
    if "*" not in tags and current.removeprefix("W/") not in tags:
        raise ScimError(412, None, "The resource has changed since that version (If-Match).")


def not_modified(request: HttpRequest, current: str) -> bool:
    header = request.headers.get("If-None-Match")
    return header is not None and ("*" in _tags(header) or current.removeprefix("W/") in _tags(header))


def projected(params: Any, resource: dict[str, Any], core: str) -> dict[str, Any]:
    attributes = parse_list(params.get("attributes"))
    excluded = parse_list(params.get("excludedAttributes"))
    extensions = (ENTERPRISE_SCHEMA,) if core == USER_SCHEMA else ()
    return project(resource, attributes=attributes, excluded=excluded, core_schema=core, extensions=extensions)


def _positive_int(params: Any, name: str, default: int) -> int:
    raw = params.get(name)
    if raw is None or raw == "":
        return default
    if isinstance(raw, bool):
        raise ScimError(400, "invalidValue", f"{name} must be an integer.")
    try:
        return int(raw)
    except (TypeError, ValueError):
        raise ScimError(400, "invalidValue", f"{name} must be an integer.") from None


def search_parameters(request: HttpRequest) -> dict[str, Any]:
    """The query's parameters: the URL's for a GET, the SearchRequest's for ``POST …/.search`` (RFC
    7644 §3.4.3), with its lists written back as the comma-separated strings a URL carries."""
    if request.method == "GET":
        return {k: request.GET.get(k) for k in ("filter", "startIndex", "count", "attributes", "excludedAttributes")}
    body = read_body(request)
    if not isinstance(body, dict):
        raise ScimError(400, "invalidSyntax", "The body must be a SearchRequest object.")
    params = {k: body.get(k) for k in ("filter", "startIndex", "count")}
    for name in ("attributes", "excludedAttributes"):
        value = body.get(name)
        if value is not None and not (isinstance(value, list) and all(isinstance(v, str) for v in value)):
            raise ScimError(400, "invalidValue", f"{name} must be a list of attribute paths.")
        params[name] = ",".join(value or [])
    if params["filter"] is not None and not isinstance(params["filter"], str):
        raise ScimError(400, "invalidFilter", "filter must be a string.")
    return params


def list_response(
    params: dict[str, Any], queryset: QuerySet[Any], render: Callable[[Any], dict[str, Any]], core: str
) -> HttpResponse:
    # RFC 7644 §3.4.2.4: startIndex below 1 means 1; a negative count means 0; above the maximum, the maximum.
    start = max(_positive_int(params, "startIndex", 1), 1)
    count = min(max(_positive_int(params, "count", discovery.DEFAULT_COUNT), 0), discovery.MAX_RESULTS)
    total = queryset.count()
    rows = list(queryset[start - 1 : start - 1 + count]) if count else []
    resources = [projected(params, render(row), core) for row in rows]
    body = {
        "schemas": [LIST_RESPONSE],
        "totalResults": total,
        "startIndex": start,
        "itemsPerPage": len(resources),
        "Resources": resources,
    }
    return respond(body)


def _pk(raw: str) -> int:
    return int(raw) if raw.isdigit() and len(raw) < 19 else -1


# --- Users ----------------------------------------------------------------------------------------


def users_queryset() -> QuerySet[Human]:
    # Humans an IdP deleted stay in Custos (as leavers) but are gone from SCIM.
    return Human.objects.exclude(scim__deleted_at__isnull=False).select_related("scim", "manager").order_by("pk")


def get_user(pk: str) -> Human:
    human = users_queryset().filter(pk=_pk(pk)).first()
    if human is None:
        raise ScimError(404, None, f"No User {pk}.")
    return human


@scim_endpoint("GET", "POST")
def users(request: HttpRequest, client: ScimClient) -> HttpResponse:
    base = base_url(request)
    if request.method == "POST":
        fields = user_fields(read_body(request), creating=True)
        human = services.scim_user_create(client=client, fields=fields)
        resource = user_resource(get_user(str(human.pk)), base)
        return respond(resource, 201, etag=resource["meta"]["version"], location=resource["meta"]["location"])
    return _search_users(request)


@scim_endpoint("POST")
def search_users(request: HttpRequest, client: ScimClient) -> HttpResponse:
    return _search_users(request)


def _search_users(request: HttpRequest) -> HttpResponse:
    params = search_parameters(request)
    queryset = users_queryset()
    if text := params.get("filter"):
        queryset = queryset.filter(filtering.users_q(text))
    base = base_url(request)
    return list_response(params, queryset, lambda h: user_resource(h, base), USER_SCHEMA)


@scim_endpoint("GET", "PUT", "PATCH", "DELETE")
def user(request: HttpRequest, client: ScimClient, pk: str) -> HttpResponse:
    base = base_url(request)
    human = get_user(pk)
    if request.method == "GET":
        current = user_resource(human, base)
        version = current["meta"]["version"]
        if not_modified(request, version):
            return HttpResponse(status=304, headers={"ETag": version})
        return respond(projected(request.GET, current, USER_SCHEMA), etag=version)
    body = read_body(request) if request.method in ("PUT", "PATCH") else None
    with transaction.atomic():
        # Read and compared under the row lock the services take: of two writers that both read
        # version N, the second finds N gone (412) rather than overwriting the first.
        human = Human.objects.select_for_update().get(pk=human.pk)
        current = user_resource(get_user(pk), base)
        check_if_match(request, current["meta"]["version"])
        if request.method == "DELETE":
            services.scim_user_delete(client=client, human=human)
            return HttpResponse(status=204)
        # A PATCH is applied to what the resource says now, then saved as the PUT of the result.
        fields = user_fields(body if request.method == "PUT" else apply_patch(current, body, USER_SCHEMA))
        services.scim_user_replace(client=client, human=human, fields=fields)
    resource = user_resource(get_user(pk), base)
    return respond(projected(request.GET, resource, USER_SCHEMA), etag=resource["meta"]["version"])


# --- Groups ---------------------------------------------------------------------------------------


def groups_queryset() -> QuerySet[ScimGroup]:
    return ScimGroup.objects.prefetch_related("members").order_by("pk")


def get_group(pk: str) -> ScimGroup:
    group = groups_queryset().filter(pk=_pk(pk)).first()
    if group is None:
        raise ScimError(404, None, f"No Group {pk}.")
    return group


@scim_endpoint("GET", "POST")
def groups(request: HttpRequest, client: ScimClient) -> HttpResponse:
    base = base_url(request)
    if request.method == "POST":
        group = services.scim_group_create(client=client, fields=group_fields(read_body(request)))
        resource = group_resource(get_group(str(group.pk)), base)
        return respond(resource, 201, etag=resource["meta"]["version"], location=resource["meta"]["location"])
    return _search_groups(request)


@scim_endpoint("POST")
def search_groups(request: HttpRequest, client: ScimClient) -> HttpResponse:
    return _search_groups(request)


def _search_groups(request: HttpRequest) -> HttpResponse:
    params = search_parameters(request)
    queryset = groups_queryset()
    if text := params.get("filter"):
        queryset = queryset.filter(filtering.groups_q(text))
    base = base_url(request)
    return list_response(params, queryset, lambda g: group_resource(g, base), GROUP_SCHEMA)


@scim_endpoint("GET", "PUT", "PATCH", "DELETE")
def group(request: HttpRequest, client: ScimClient, pk: str) -> HttpResponse:
    base = base_url(request)
    found = get_group(pk)
    if request.method == "GET":
        current = group_resource(found, base)
        version = current["meta"]["version"]
        if not_modified(request, version):
            return HttpResponse(status=304, headers={"ETag": version})
        return respond(projected(request.GET, current, GROUP_SCHEMA), etag=version)
    body = read_body(request) if request.method in ("PUT", "PATCH") else None
    with transaction.atomic():
        locked = ScimGroup.objects.select_for_update().get(pk=found.pk)
        current = group_resource(locked, base)
        check_if_match(request, current["meta"]["version"])
        if request.method == "DELETE":
            services.scim_group_delete(client=client, group=locked)
            return HttpResponse(status=204)
        # A PATCH is applied to what the resource says now, then saved as the PUT of the result.
        fields = group_fields(body if request.method == "PUT" else apply_patch(current, body, GROUP_SCHEMA))
        services.scim_group_replace(client=client, group=locked, fields=fields)
    resource = group_resource(get_group(pk), base)
    return respond(projected(request.GET, resource, GROUP_SCHEMA), etag=resource["meta"]["version"])


# --- Searching every resource type at once (RFC 7644 §3.4.3, POST /.search) -----------------------


@scim_endpoint("POST")
def search_all(request: HttpRequest, client: ScimClient) -> HttpResponse:
    """Users, then Groups, as one list. A filter naming an attribute one type lacks matches none of
    that type (RFC 7644 §3.4.3: the attribute is absent there); one neither type knows is invalidFilter."""
    params = search_parameters(request)
    base = base_url(request)
    kinds: list[tuple[QuerySet[Any], Callable[[Any], dict[str, Any]], str]] = []
    refusals: list[filtering.ScimFilterError] = []
    for queryset, to_q, render, core in (
        (users_queryset(), filtering.users_q, lambda h: user_resource(h, base), USER_SCHEMA),
        (groups_queryset(), filtering.groups_q, lambda g: group_resource(g, base), GROUP_SCHEMA),
    ):
        if text := params.get("filter"):
            try:
                queryset = queryset.filter(to_q(text))
            except filtering.ScimFilterError as error:
                refusals.append(error)
                continue
        kinds.append((queryset, render, core))
    if not kinds:
        raise refusals[0]
    start = max(_positive_int(params, "startIndex", 1), 1)
    count = min(max(_positive_int(params, "count", discovery.DEFAULT_COUNT), 0), discovery.MAX_RESULTS)
    total, skip = 0, start - 1
    resources: list[dict[str, Any]] = []
    for queryset, render, core in kinds:
        size = queryset.count()
        total += size
        if skip >= size:
            skip -= size
            continue
        wanted = count - len(resources)
        if wanted > 0:
            resources += [projected(params, render(row), core) for row in queryset[skip : skip + wanted]]
        skip = 0
    body = {
        "schemas": [LIST_RESPONSE],
        "totalResults": total,
        "startIndex": start,
        "itemsPerPage": len(resources),
        "Resources": resources,
    }
    return respond(body)


# --- PATCH ----------------------------------------------------------------------------------------


def apply_patch(resource: dict[str, Any], body: Any, core_schema: str) -> dict[str, Any]:
    """The resource with the PatchOp's operations applied (``scim.patching``: Okta's and Entra's shapes
    too), then replaced as a PUT would be, so a PATCH and a PUT meet the same checks."""
    try:
        return patching.apply_patch(resource, body, schema=core_schema)
    except PydanticValidationError as error:
        # What Custos holds failed the library's own checks (an email on a reserved domain such as
        # .test): the request cannot be applied as it stands, and must not become a 500.
        raise ScimError(400, "invalidValue", f"The resource cannot be patched as it stands: {error}") from None


# --- Discovery ------------------------------------------------------------------------------------


@scim_endpoint("GET")
def service_provider_config(request: HttpRequest, client: ScimClient) -> HttpResponse:
    return respond(discovery.service_provider_config(base_url(request)))


def _listed(resources: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "schemas": [LIST_RESPONSE],
        "totalResults": len(resources),
        "startIndex": 1,
        "itemsPerPage": len(resources),
        "Resources": resources,
    }


@scim_endpoint("GET")
def resource_types(request: HttpRequest, client: ScimClient) -> HttpResponse:
    return respond(_listed(discovery.resource_types(base_url(request))))


@scim_endpoint("GET")
def resource_type(request: HttpRequest, client: ScimClient, name: str) -> HttpResponse:
    for body in discovery.resource_types(base_url(request)):
        if body["id"] == name:
            return respond(body)
    raise ScimError(404, None, f"No resource type {name}.")


@scim_endpoint("GET")
def schemas(request: HttpRequest, client: ScimClient) -> HttpResponse:
    return respond(_listed(discovery.schemas(base_url(request))))


@scim_endpoint("GET")
def schema(request: HttpRequest, client: ScimClient, urn: str) -> HttpResponse:
    for body in discovery.schemas(base_url(request)):
        if body["id"] == urn:
            return respond(body)
    raise ScimError(404, None, f"No schema {urn}.")


@csrf_exempt
def not_found(request: HttpRequest, rest: str = "") -> HttpResponse:
    return ScimError(404, None, "No such SCIM endpoint.").response()
