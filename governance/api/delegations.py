"""API v1: delegations. An agent with a delegation token may delegate within its chain (SPEC §9)."""

from __future__ import annotations

from django.db.models import QuerySet
from django.shortcuts import get_object_or_404
from drf_spectacular.utils import extend_schema
from rest_framework import status
from rest_framework.request import Request
from rest_framework.response import Response

from audit.services import Actor
from console.api.errors import ACTION_ERRORS, CREATE_ERRORS, DETAIL_ERRORS, READ_ERRORS
from console.api.pagination import PARAMETERS as PAGE_PARAMETERS
from console.api.views import ApiView
from console.visibility import filter_by_reference
from governance import authn, services
from governance.api import serializers as s
from governance.models import Delegation


def _delegations(request: Request) -> QuerySet[Delegation]:
    # The agent above, whose name a link's created_by may be.
    return Delegation.objects.visible_to(request.user).select_related("parent__delegate")


# --- Delegations ----------------------------------------------------------------------------


class DelegationListApi(ApiView):
    @extend_schema(
        operation_id="delegations_list",
        tags=["delegations"],
        parameters=[s.DelegationFilter, *PAGE_PARAMETERS],
        responses={200: s.DelegationPage, **READ_ERRORS},
    )
    def get(self, request: Request) -> Response:
        filters = self.validated(s.DelegationFilter, request.query_params)
        delegations = _delegations(request)
        if "status" in filters:
            delegations = delegations.filter(status=filters["status"])
        for field in ("delegate", "root_human", "parent"):
            if field in filters:
                delegations = filter_by_reference(delegations, field, filters[field], request.user)
        return self.page(delegations, s.DelegationOutput)


class DelegationCreateApi(ApiView):
    agent_methods = frozenset({"POST"})

    @extend_schema(
        operation_id="delegations_create",
        tags=["delegations"],
        request=s.DelegationCreateInput,
        responses={201: s.DelegationOutput, **CREATE_ERRORS},
        description=(
            "Give root_human for a root link, or parent for a sub-delegation to a sub-agent of the parent's "
            "delegate. Scopes may only narrow, expiry may only shorten. An agent delegates with its delegation "
            "token only (a key alone: 403 `token_required`): `parent` must be the token's delegation "
            "(403 `parent_not_token_delegation`), the scopes within the token's (403 `scope_not_delegated`) "
            "and the delegate one of its own sub-agents (400 `delegate_not_sub_agent`)."
        ),
    )
    def post(self, request: Request) -> Response:
        principal = authn.agent_principal(request.user)
        if principal is not None:
            data = self.validated(s.SubDelegationCreateInput, request.data)
            delegation = services.delegation_create_by_agent(
                principal=principal,
                parent_id=data.pop("parent"),
                delegate_id=data.pop("delegate"),
                root_human_id=data.pop("root_human"),
                **data,
            )
        else:
            data = self.validated(s.DelegationCreateInput, request.data)
            delegation = services.delegation_create(actor=Actor.of(request.user), **data)
        return Response(self.output(s.DelegationOutput, delegation), status=status.HTTP_201_CREATED)


class DelegationsApi(DelegationListApi, DelegationCreateApi):
    pass


class DelegationDetailApi(ApiView):
    @extend_schema(
        operation_id="delegations_retrieve",
        tags=["delegations"],
        responses={200: s.DelegationOutput, **DETAIL_ERRORS},
    )
    def get(self, request: Request, pk: int) -> Response:
        return Response(self.output(s.DelegationOutput, get_object_or_404(_delegations(request), pk=pk)))


class DelegationRevokeApi(ApiView):
    @extend_schema(
        operation_id="delegations_revoke",
        tags=["delegations"],
        request=s.ReasonInput,
        responses={200: s.DelegationRevokeOutput, **ACTION_ERRORS},
        description="Revoke a link and, in the same transaction, every active link below it.",
    )
    def post(self, request: Request, pk: int) -> Response:
        delegation = get_object_or_404(_delegations(request), pk=pk)
        data = self.validated(s.ReasonInput, request.data)
        revoked = services.delegation_revoke(actor=Actor.of(request.user), delegation=delegation, **data)
        delegation.refresh_from_db()
        body = {"delegation": self.output(s.DelegationOutput, delegation), "revoked_ids": [link.pk for link in revoked]}
        return Response(body)
