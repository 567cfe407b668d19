"""API v1: one view per operation. Each reads its input through a serializer, calls one service
(which validates the domain rules, saves and writes the audit event in one transaction) and shapes
the result through an output serializer. Reads go through the models' ``visible_to`` querysets.

Where a list and a create share a path (``agents/``), the path's view is the two operation views
combined; each keeps its own serializers, schema and role.

Agents calling with their own key or token (``governance.api.agent_auth``) see nothing and may do only
what an operation lists in ``agent_methods`` (SPEC §9): register a sub-agent of their own, issue a key to
one, delegate part of their token's delegation to one, rotate their own keys, and ask for access
(``governance.api.access_requests``). Each of those operations takes an agent's own path through it.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db.models import Max, Q, QuerySet
from django.shortcuts import get_object_or_404
from django.utils import timezone
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from audit.models import AuditEvent
from audit.services import Actor
from audit.verify import verify_chain
from governance import roles, services
from governance.api import serializers as s
from governance.api.agent_auth import AgentPrincipal, agent_principal
from governance.api.pagination import PARAMETERS as PAGE_PARAMETERS
from governance.api.pagination import KeysetPagination
from governance.api.parsers import SafeJSONParser
from governance.api.permissions import ConsoleRole
from governance.errors import NotAllowed, ValidationFailed
from governance.models import Agent, AgentKey, Delegation, Grant, Human, Resource

_ERRORS = {
    401: OpenApiResponse(s.ErrorOutput, description="No or invalid credentials."),
    403: OpenApiResponse(s.ErrorOutput, description="Your role does not allow this."),
}
_READ_ERRORS = {**_ERRORS, 400: OpenApiResponse(s.ErrorOutput, description="Bad filter or cursor.")}
_DETAIL_ERRORS = {**_ERRORS, 404: OpenApiResponse(s.ErrorOutput, description="No such object visible to you.")}
_CREATE_ERRORS = {
    **_ERRORS,
    400: OpenApiResponse(s.ErrorOutput, description="Invalid input; nothing was written."),
    409: OpenApiResponse(s.ErrorOutput, description="Conflicts with the current state; nothing was written."),
    413: OpenApiResponse(s.ErrorOutput, description="Request body too large."),
}
_ACTION_ERRORS = {**_CREATE_ERRORS, **_DETAIL_ERRORS}


class ApiView(APIView):
    parser_classes = [SafeJSONParser]
    permission_classes = [ConsoleRole]
    read_roles: tuple[str, ...] = roles.ROLES
    write_roles: tuple[str, ...] = (roles.ADMIN,)
    # HTTP methods an agent's own credential may call; none unless an operation says so.
    agent_methods: frozenset[str] = frozenset()

    def actor(self) -> Actor:
        principal = agent_principal(self.request)
        return Actor.agent(principal.agent) if principal is not None else Actor.user(self.request.user)

    def validated(self, serializer_class: type[serializers.Serializer[Any]], data: Any) -> dict[str, Any]:
        serializer = serializer_class(data=data, context={"request": self.request})
        serializer.is_valid(raise_exception=True)
        return dict(serializer.validated_data)

    def page(self, queryset: QuerySet[Any], output: type[serializers.Serializer[Any]], *, key: str = "id") -> Response:
        paginator = KeysetPagination(key=key)
        rows = paginator.paginate_queryset(queryset, self.request)
        return paginator.get_paginated_response(list(output(rows, many=True).data))


def _humans(request: Request) -> QuerySet[Human]:
    return Human.objects.visible_to(request.user)


def _agents(request: Request) -> QuerySet[Agent]:
    return Agent.objects.visible_to(request.user).select_related("sponsor")


def _resources(request: Request) -> QuerySet[Resource]:
    return Resource.objects.visible_to(request.user)


def _grants(request: Request) -> QuerySet[Grant]:
    return Grant.objects.visible_to(request.user).select_related("resource")


def _delegations(request: Request) -> QuerySet[Delegation]:
    return Delegation.objects.visible_to(request.user)


def _keys(request: Request) -> QuerySet[AgentKey]:
    return AgentKey.objects.visible_to(request.user)


# --- Humans ---------------------------------------------------------------------------------


class HumanListApi(ApiView):
    @extend_schema(
        operation_id="humans_list",
        tags=["humans"],
        parameters=[s.HumanFilter, *PAGE_PARAMETERS],
        responses={200: s.HumanPage, **_READ_ERRORS},
    )
    def get(self, request: Request) -> Response:
        filters = self.validated(s.HumanFilter, request.query_params)
        humans = _humans(request)
        if "status" in filters:
            humans = humans.filter(status=filters["status"])
        if filters.get("q"):
            humans = humans.filter(Q(name__icontains=filters["q"]) | Q(email__icontains=filters["q"]))
        return self.page(humans, s.HumanOutput)


class HumanCreateApi(ApiView):
    @extend_schema(
        operation_id="humans_create",
        tags=["humans"],
        request=s.HumanCreateInput,
        responses={201: s.HumanOutput, **_CREATE_ERRORS},
    )
    def post(self, request: Request) -> Response:
        data = self.validated(s.HumanCreateInput, request.data)
        human = services.human_create(actor=self.actor(), **data)
        return Response(s.HumanOutput(human).data, status=status.HTTP_201_CREATED)


class HumansApi(HumanListApi, HumanCreateApi):
    pass


class HumanDetailApi(ApiView):
    @extend_schema(operation_id="humans_retrieve", tags=["humans"], responses={200: s.HumanOutput, **_DETAIL_ERRORS})
    def get(self, request: Request, pk: int) -> Response:
        return Response(s.HumanOutput(get_object_or_404(_humans(request), pk=pk)).data)


# --- Agents ---------------------------------------------------------------------------------


class AgentListApi(ApiView):
    @extend_schema(
        operation_id="agents_list",
        tags=["agents"],
        parameters=[s.AgentFilter, *PAGE_PARAMETERS],
        responses={200: s.AgentPage, **_READ_ERRORS},
    )
    def get(self, request: Request) -> Response:
        filters = self.validated(s.AgentFilter, request.query_params)
        agents = _agents(request)
        for field in ("status", "risk_tier"):
            if field in filters:
                agents = agents.filter(**{field: filters[field]})
        for field in ("sponsor", "parent"):
            if field in filters:
                agents = agents.filter(**{f"{field}_id": filters[field]})
        if filters.get("q"):
            agents = agents.filter(Q(name__icontains=filters["q"]) | Q(purpose__icontains=filters["q"]))
        return self.page(agents, s.AgentOutput)


class AgentCreateApi(ApiView):
    agent_methods = frozenset({"POST"})

    @extend_schema(
        operation_id="agents_create",
        tags=["agents"],
        request=s.AgentCreateInput,
        responses={201: s.AgentOutput, **_CREATE_ERRORS},
        description=(
            "An admin registers any agent. An agent (its key or token) registers a sub-agent of its own: "
            "`parent` is the caller and `sponsor` the caller's sponsor; naming anyone else is refused "
            "(403 `agent_scope_exceeded`)."
        ),
    )
    def post(self, request: Request) -> Response:
        principal = agent_principal(request)
        if principal is not None:
            return self._post_as_agent(principal)
        data = self.validated(s.AgentCreateInput, request.data)
        agent = services.agent_create(actor=self.actor(), **data)
        return Response(s.AgentOutput(agent).data, status=status.HTTP_201_CREATED)

    def _post_as_agent(self, principal: AgentPrincipal) -> Response:
        data = self.validated(s.SubAgentCreateInput, self.request.data)
        caller = principal.agent
        if data.pop("parent") not in (None, caller.pk):
            raise NotAllowed(
                "An agent may only register sub-agents of its own.", code="agent_scope_exceeded", field="parent"
            )
        if data.pop("sponsor") not in (None, caller.sponsor_id):
            raise NotAllowed(
                "A sub-agent's sponsor is its parent's sponsor.", code="agent_scope_exceeded", field="sponsor"
            )
        agent = services.agent_create(actor=self.actor(), parent=caller, **data)
        return Response(s.AgentOutput(agent).data, status=status.HTTP_201_CREATED)


class AgentsApi(AgentListApi, AgentCreateApi):
    pass


class AgentDetailApi(ApiView):
    @extend_schema(operation_id="agents_retrieve", tags=["agents"], responses={200: s.AgentOutput, **_DETAIL_ERRORS})
    def get(self, request: Request, pk: int) -> Response:
        return Response(s.AgentOutput(get_object_or_404(_agents(request), pk=pk)).data)


class AgentSuspendApi(ApiView):
    @extend_schema(
        operation_id="agents_suspend",
        tags=["agents"],
        request=s.ReasonInput,
        responses={200: s.AgentOutput, **_ACTION_ERRORS},
        description="Suspend an agent: its delegations stop being usable at the next check.",
    )
    def post(self, request: Request, pk: int) -> Response:
        agent = get_object_or_404(_agents(request), pk=pk)
        data = self.validated(s.ReasonInput, request.data)
        agent = services.agent_suspend(actor=self.actor(), agent=agent, **data)
        return Response(s.AgentOutput(agent).data)


class AgentReactivateApi(ApiView):
    @extend_schema(
        operation_id="agents_reactivate",
        tags=["agents"],
        request=s.ReasonInput,
        responses={200: s.AgentOutput, **_ACTION_ERRORS},
    )
    def post(self, request: Request, pk: int) -> Response:
        agent = get_object_or_404(_agents(request), pk=pk)
        data = self.validated(s.ReasonInput, request.data)
        agent = services.agent_reactivate(actor=self.actor(), agent=agent, **data)
        return Response(s.AgentOutput(agent).data)


# --- Agent keys -----------------------------------------------------------------------------


class AgentKeyListApi(ApiView):
    @extend_schema(
        operation_id="agents_keys_list",
        tags=["keys"],
        parameters=PAGE_PARAMETERS,
        responses={200: s.AgentKeyPage, **_READ_ERRORS, **_DETAIL_ERRORS},
    )
    def get(self, request: Request, pk: int) -> Response:
        agent = get_object_or_404(_agents(request), pk=pk)
        return self.page(_keys(request).filter(agent=agent), s.AgentKeyOutput)


def _sub_agent_key_expiry(principal: AgentPrincipal, requested: datetime | None) -> datetime:
    """When a key an agent issues to its sub-agent may expire: within the configured key lifetime and
    never after the latest of the caller's own keys, so a sub-agent cannot outlive its parent's ability
    to act. Not bounded by a token's few minutes: the sub-agent needs its key to exchange the parent's
    next token too."""
    now = timezone.now()
    own = AgentKey.objects.active(now).filter(agent=principal.agent).aggregate(latest=Max("expires_at"))["latest"]
    own = own or principal.expires_at
    limit, code = now + settings.CUSTOS_KEY_TTL, "lifetime_exceeds_maximum"
    if own < limit:
        limit, code = own, "expiry_exceeds_caller"
    if requested is None:
        return limit
    if requested > limit:
        raise ValidationFailed(
            f"A key you issue must expire by {limit:%Y-%m-%d %H:%M} UTC (your own keys' expiry and the configured "
            "key lifetime).",
            code=code,
            field="expires_at",
        )
    return requested


class AgentKeyCreateApi(ApiView):
    agent_methods = frozenset({"POST"})

    @extend_schema(
        operation_id="agents_keys_create",
        tags=["keys"],
        request=s.AgentKeyCreateInput,
        responses={201: s.AgentKeyCreatedOutput, **_ACTION_ERRORS},
        description=(
            "Issue a key. The response's `secret` is the only time the full key is shown. An agent may issue "
            "keys to its direct sub-agents only (any other id is a 404); such a key expires within the "
            "configured key lifetime and no later than the caller's own keys."
        ),
    )
    def post(self, request: Request, pk: int) -> Response:
        principal = agent_principal(request)
        if principal is not None:
            agent = get_object_or_404(Agent.objects.filter(parent_id=principal.agent.pk), pk=pk)
            data = self.validated(s.AgentKeyCreateInput, request.data)
            data["expires_at"] = _sub_agent_key_expiry(principal, data["expires_at"])
        else:
            agent = get_object_or_404(_agents(request), pk=pk)
            data = self.validated(s.AgentKeyCreateInput, request.data)
        key, secret = services.agentkey_create(actor=self.actor(), agent=agent, **data)
        body = s.AgentKeyCreatedOutput(key).data | {"secret": secret}
        # The secret must not linger in any cache between here and the caller.
        return Response(body, status=status.HTTP_201_CREATED, headers={"Cache-Control": "no-store"})


class AgentKeysApi(AgentKeyListApi, AgentKeyCreateApi):
    pass


class KeyRevokeApi(ApiView):
    @extend_schema(
        operation_id="keys_revoke",
        tags=["keys"],
        request=s.ReasonInput,
        responses={200: s.AgentKeyOutput, **_ACTION_ERRORS},
    )
    def post(self, request: Request, pk: int) -> Response:
        key = get_object_or_404(_keys(request), pk=pk)
        data = self.validated(s.ReasonInput, request.data)
        key = services.agentkey_revoke(actor=self.actor(), key=key, **data)
        return Response(s.AgentKeyOutput(key).data)


class KeyRotateApi(ApiView):
    agent_methods = frozenset({"POST"})

    @extend_schema(
        operation_id="keys_rotate",
        tags=["keys"],
        request=s.AgentKeyRotateInput,
        responses={201: s.AgentKeyRotatedOutput, **_ACTION_ERRORS},
        description=(
            "Issue a new key for the same agent and cut the old one's life to the overlap (default "
            "CUSTOS_KEY_ROTATION_OVERLAP), so the agent can switch without a gap. An admin rotates any key; an "
            "agent its own keys (any other id is a 404), and its new key expires when the old one would have: "
            "rotation renews the secret, not the agent's lifetime. The new `secret` is shown in this response only."
        ),
    )
    def post(self, request: Request, pk: int) -> Response:
        principal = agent_principal(request)
        if principal is not None:
            key = get_object_or_404(AgentKey.objects.filter(agent=principal.agent), pk=pk)
        else:
            key = get_object_or_404(_keys(request), pk=pk)
        data = self.validated(s.AgentKeyRotateInput, request.data)
        overlap = data["overlap_seconds"]
        new, secret, old = services.agentkey_rotate(
            actor=self.actor(),
            key=key,
            overlap=timedelta(seconds=overlap) if overlap is not None else None,
            expires_at=key.expires_at if principal is not None else None,
            name=data["name"],
        )
        body = {"key": s.AgentKeyCreatedOutput(new).data | {"secret": secret}, "previous": s.AgentKeyOutput(old).data}
        return Response(body, status=status.HTTP_201_CREATED, headers={"Cache-Control": "no-store"})


# --- Resources ------------------------------------------------------------------------------


class ResourceListApi(ApiView):
    @extend_schema(
        operation_id="resources_list",
        tags=["resources"],
        parameters=[s.ResourceFilter, *PAGE_PARAMETERS],
        responses={200: s.ResourcePage, **_READ_ERRORS},
    )
    def get(self, request: Request) -> Response:
        filters = self.validated(s.ResourceFilter, request.query_params)
        resources = _resources(request)
        for field in ("kind", "sensitivity"):
            if field in filters:
                resources = resources.filter(**{field: filters[field]})
        if filters.get("q"):
            resources = resources.filter(Q(name__icontains=filters["q"]) | Q(description__icontains=filters["q"]))
        return self.page(resources, s.ResourceOutput)


class ResourceCreateApi(ApiView):
    @extend_schema(
        operation_id="resources_create",
        tags=["resources"],
        request=s.ResourceCreateInput,
        responses={201: s.ResourceOutput, **_CREATE_ERRORS},
    )
    def post(self, request: Request) -> Response:
        data = self.validated(s.ResourceCreateInput, request.data)
        resource = services.resource_create(actor=self.actor(), **data)
        return Response(s.ResourceOutput(resource).data, status=status.HTTP_201_CREATED)


class ResourcesApi(ResourceListApi, ResourceCreateApi):
    pass


class ResourceDetailApi(ApiView):
    @extend_schema(
        operation_id="resources_retrieve", tags=["resources"], responses={200: s.ResourceOutput, **_DETAIL_ERRORS}
    )
    def get(self, request: Request, pk: int) -> Response:
        return Response(s.ResourceOutput(get_object_or_404(_resources(request), pk=pk)).data)


# --- Grants ---------------------------------------------------------------------------------


class GrantListApi(ApiView):
    @extend_schema(
        operation_id="grants_list",
        tags=["grants"],
        parameters=[s.GrantFilter, *PAGE_PARAMETERS],
        responses={200: s.GrantPage, **_READ_ERRORS},
    )
    def get(self, request: Request) -> Response:
        filters = self.validated(s.GrantFilter, request.query_params)
        grants = _grants(request)
        if "status" in filters:
            grants = grants.filter(status=filters["status"])
        for field in ("holder_human", "holder_agent", "resource"):
            if field in filters:
                grants = grants.filter(**{f"{field}_id": filters[field]})
        return self.page(grants, s.GrantOutput)


class GrantCreateApi(ApiView):
    @extend_schema(
        operation_id="grants_create",
        tags=["grants"],
        request=s.GrantCreateInput,
        responses={201: s.GrantOutput, **_CREATE_ERRORS},
        description="Give exactly one of holder_human and holder_agent. An agent's grant must expire.",
    )
    def post(self, request: Request) -> Response:
        data = self.validated(s.GrantCreateInput, request.data)
        human, agent = data.pop("holder_human"), data.pop("holder_agent")
        grant = services.grant_create(actor=self.actor(), holder=human or agent, **data)
        return Response(s.GrantOutput(grant).data, status=status.HTTP_201_CREATED)


class GrantsApi(GrantListApi, GrantCreateApi):
    pass


class GrantDetailApi(ApiView):
    @extend_schema(operation_id="grants_retrieve", tags=["grants"], responses={200: s.GrantOutput, **_DETAIL_ERRORS})
    def get(self, request: Request, pk: int) -> Response:
        return Response(s.GrantOutput(get_object_or_404(_grants(request), pk=pk)).data)


class GrantRevokeApi(ApiView):
    @extend_schema(
        operation_id="grants_revoke",
        tags=["grants"],
        request=s.ReasonInput,
        responses={200: s.GrantOutput, **_ACTION_ERRORS},
        description="Revoke a grant (idempotent). A human's delegations relying on it stop being usable.",
    )
    def post(self, request: Request, pk: int) -> Response:
        grant = get_object_or_404(_grants(request), pk=pk)
        data = self.validated(s.ReasonInput, request.data)
        grant = services.grant_revoke(actor=self.actor(), grant=grant, **data)
        return Response(s.GrantOutput(grant).data)


# --- Delegations ----------------------------------------------------------------------------


class DelegationListApi(ApiView):
    @extend_schema(
        operation_id="delegations_list",
        tags=["delegations"],
        parameters=[s.DelegationFilter, *PAGE_PARAMETERS],
        responses={200: s.DelegationPage, **_READ_ERRORS},
    )
    def get(self, request: Request) -> Response:
        filters = self.validated(s.DelegationFilter, request.query_params)
        delegations = _delegations(request)
        if "status" in filters:
            delegations = delegations.filter(status=filters["status"])
        for field in ("delegate", "root_human", "parent"):
            if field in filters:
                delegations = delegations.filter(**{f"{field}_id": filters[field]})
        return self.page(delegations, s.DelegationOutput)


class DelegationCreateApi(ApiView):
    agent_methods = frozenset({"POST"})

    @extend_schema(
        operation_id="delegations_create",
        tags=["delegations"],
        request=s.DelegationCreateInput,
        responses={201: s.DelegationOutput, **_CREATE_ERRORS},
        description=(
            "Give root_human for a root link, or parent for a sub-delegation to a sub-agent of the parent's "
            "delegate. Scopes may only narrow, expiry may only shorten. An agent delegates with its delegation "
            "token only (a key alone: 403 `token_required`): `parent` must be the token's delegation "
            "(403 `parent_not_token_delegation`), the scopes within the token's (403 `scope_not_delegated`) "
            "and the delegate one of its own sub-agents (400 `delegate_not_sub_agent`)."
        ),
    )
    def post(self, request: Request) -> Response:
        principal = agent_principal(request)
        if principal is not None:
            return self._post_as_agent(principal)
        data = self.validated(s.DelegationCreateInput, request.data)
        delegation = services.delegation_create(actor=self.actor(), **data)
        return Response(s.DelegationOutput(delegation).data, status=status.HTTP_201_CREATED)

    def _post_as_agent(self, principal: AgentPrincipal) -> Response:
        if principal.via != "token" or principal.delegation_id is None:
            raise NotAllowed(
                "Delegating takes a delegation token: an agent acting as itself with its key has no delegation "
                "to pass on. Exchange one at /oauth/token.",
                code="token_required",
            )
        data = self.validated(s.SubDelegationCreateInput, self.request.data)
        if data.pop("root_human") is not None:
            raise NotAllowed(
                "An agent cannot start a chain; it delegates within its own.",
                code="agent_scope_exceeded",
                field="root_human",
            )
        if data["parent"] != principal.delegation_id:
            raise NotAllowed(
                f"parent must be the delegation your token was issued for ({principal.delegation_id}).",
                code="parent_not_token_delegation",
                field="parent",
            )
        beyond = {scope.strip() for scope in data["scopes"]} - principal.scopes
        if beyond:
            raise NotAllowed(
                f"Not in your token's scope: {', '.join(sorted(beyond))}.", code="scope_not_delegated", field="scopes"
            )
        # Only the caller's own sub-agents are named: any other id, existing or not, gets the same answer.
        delegate = Agent.objects.filter(pk=data.pop("delegate"), parent_id=principal.agent.pk).first()
        if delegate is None:
            raise ValidationFailed(
                "That agent is not one of your sub-agents; an agent may only delegate to its own sub-agents.",
                code="delegate_not_sub_agent",
                field="delegate",
            )
        data["parent"] = Delegation.objects.get(pk=principal.delegation_id)
        delegation = services.delegation_create(actor=self.actor(), delegate=delegate, **data)
        return Response(s.DelegationOutput(delegation).data, status=status.HTTP_201_CREATED)


class DelegationsApi(DelegationListApi, DelegationCreateApi):
    pass


class DelegationDetailApi(ApiView):
    @extend_schema(
        operation_id="delegations_retrieve",
        tags=["delegations"],
        responses={200: s.DelegationOutput, **_DETAIL_ERRORS},
    )
    def get(self, request: Request, pk: int) -> Response:
        return Response(s.DelegationOutput(get_object_or_404(_delegations(request), pk=pk)).data)


class DelegationRevokeApi(ApiView):
    @extend_schema(
        operation_id="delegations_revoke",
        tags=["delegations"],
        request=s.ReasonInput,
        responses={200: s.DelegationRevokeOutput, **_ACTION_ERRORS},
        description="Revoke a link and, in the same transaction, every active link below it.",
    )
    def post(self, request: Request, pk: int) -> Response:
        delegation = get_object_or_404(_delegations(request), pk=pk)
        data = self.validated(s.ReasonInput, request.data)
        revoked = services.delegation_revoke(actor=self.actor(), delegation=delegation, **data)
        delegation.refresh_from_db()
        body = {"delegation": s.DelegationOutput(delegation).data, "revoked_ids": [link.pk for link in revoked]}
        return Response(body)


# --- Audit ----------------------------------------------------------------------------------


class AuditEventListApi(ApiView):
    read_roles = (roles.ADMIN, roles.AUDITOR)

    @extend_schema(
        operation_id="audit_events_list",
        tags=["audit"],
        parameters=[s.AuditEventFilter, *PAGE_PARAMETERS],
        responses={200: s.AuditEventPage, **_READ_ERRORS},
        description="Newest first, paginated by sequence number.",
    )
    def get(self, request: Request) -> Response:
        filters = self.validated(s.AuditEventFilter, request.query_params)
        events = AuditEvent.objects.all()
        for field in ("action", "actor_kind", "actor_id", "target_type", "target_id"):
            if field in filters:
                events = events.filter(**{field: filters[field]})
        if "since" in filters:
            events = events.filter(occurred_at__gte=filters["since"])
        if "until" in filters:
            events = events.filter(occurred_at__lt=filters["until"])
        return self.page(events, s.AuditEventOutput, key="seq")


class AuditVerifyApi(ApiView):
    read_roles = (roles.ADMIN, roles.AUDITOR)

    @extend_schema(
        operation_id="audit_verify",
        tags=["audit"],
        responses={
            200: s.AuditVerifyOutput,
            409: OpenApiResponse(s.AuditBrokenOutput, description="The chain is broken at first_bad_seq."),
            **_ERRORS,
        },
        description="Recompute the whole hash chain and name the first event that does not fit.",
    )
    def get(self, request: Request) -> Response:
        result = verify_chain().as_dict()
        if result["ok"]:
            return Response(result)
        body = result | {
            "code": "audit_chain_broken",
            "detail": f"The audit chain is broken at event #{result['first_bad_seq']}: {result['problem']}",
            "fields": {},
        }
        return Response(body, status=status.HTTP_409_CONFLICT)
