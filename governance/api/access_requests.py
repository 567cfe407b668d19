"""API v1 for just-in-time access requests (``governance.services.access_requests``).

An agent asks, mid-task, for one scope it lacks (``POST access-requests/`` with its key, or with its
delegation token: then the request is made under the token's delegation and its root human decides)
and polls its request (``GET access-requests/{id}/``) until it is approved; it then exchanges the
``resulting_delegation`` for a token at ``/oauth/token``. Console users list the requests they can see
and the approver, the agent's sponsor or an admin approves or denies.
"""

from __future__ import annotations

from datetime import timedelta

from django.db.models import QuerySet
from django.shortcuts import get_object_or_404
from drf_spectacular.utils import extend_schema
from rest_framework import status
from rest_framework.request import Request
from rest_framework.response import Response

from audit.services import Actor
from console import roles
from console.api.errors import ACTION_ERRORS, CREATE_ERRORS, DETAIL_ERRORS, READ_ERRORS
from console.api.pagination import PARAMETERS as PAGE_PARAMETERS
from console.api.views import ApiView
from console.visibility import filter_by_reference
from governance import authn, services
from governance.api import serializers as s
from governance.models import AccessRequest, AccessRequestStatus, Delegation


def _access_requests(request: Request) -> QuerySet[AccessRequest]:
    """What the caller may read: an agent its own requests, a console user what ``visible_to`` allows."""
    requests = AccessRequest.objects.select_related("agent", "approver")
    principal = authn.agent_principal(request.user)
    if principal is not None:
        return requests.filter(agent=principal.agent)
    return requests.visible_to(request.user)


class AccessRequestListApi(ApiView):
    @extend_schema(
        operation_id="access_requests_list",
        tags=["access requests"],
        parameters=[s.AccessRequestFilter, *PAGE_PARAMETERS],
        responses={200: s.AccessRequestPage, **READ_ERRORS},
        description=(
            "Newest first. Admins and auditors see every request; a reviewer those where the human linked to "
            "them is the approver or the agent's sponsor. `status=pending` leaves out requests past their "
            "expiry and `status=expired` includes them, swept or not."
        ),
    )
    def get(self, request: Request) -> Response:
        filters = self.validated(s.AccessRequestFilter, request.query_params)
        # Console users only (agents are refused the list): what visible_to allows them.
        requests = AccessRequest.objects.visible_to(request.user).select_related("agent", "approver")
        wanted = filters.get("status")
        if wanted == AccessRequestStatus.PENDING:
            requests = requests.pending()
        elif wanted == AccessRequestStatus.EXPIRED:
            requests = requests.lapsed()
        elif wanted is not None:
            requests = requests.filter(status=wanted)
        if "agent" in filters:
            requests = filter_by_reference(requests, "agent", filters["agent"], request.user)
        return self.page(requests, s.AccessRequestOutput)


class AccessRequestCreateApi(ApiView):
    write_roles = ()  # agents ask; console users decide
    agent_methods = frozenset({"POST"})

    @extend_schema(
        operation_id="access_requests_create",
        tags=["access requests"],
        request=s.AccessRequestCreateInput,
        responses={201: s.AccessRequestOutput, **CREATE_ERRORS},
        description=(
            "Agents only. With a delegation token the request is made under the token's delegation and goes to "
            "its root human; with a key, to the agent's sponsor. One pending request per agent and scope "
            "(409 `duplicate_request`)."
        ),
    )
    def post(self, request: Request) -> Response:
        principal = authn.agent_principal(request.user)
        assert principal is not None  # ConsoleRole lets no console user through (write_roles is empty)
        data = self.validated(s.AccessRequestCreateInput, request.data)
        seconds = data.pop("duration_seconds")
        access_request = services.access_request_create(
            actor=Actor.of(request.user),
            agent=principal.agent,
            delegation=Delegation.objects.get(pk=principal.delegation_id) if principal.delegation_id else None,
            duration=timedelta(seconds=seconds) if seconds else None,
            **data,
        )
        return Response(self.output(s.AccessRequestOutput, access_request), status=status.HTTP_201_CREATED)


class AccessRequestsApi(AccessRequestListApi, AccessRequestCreateApi):
    pass


class AccessRequestDetailApi(ApiView):
    agent_methods = frozenset({"GET"})

    @extend_schema(
        operation_id="access_requests_retrieve",
        tags=["access requests"],
        responses={200: s.AccessRequestOutput, **DETAIL_ERRORS},
        description=(
            "The asking agent (its key or token) polls here; once approved, `resulting_delegation` is the id "
            "to exchange at /oauth/token. Console users read the requests they can see."
        ),
    )
    def get(self, request: Request, pk: int) -> Response:
        return Response(self.output(s.AccessRequestOutput, get_object_or_404(_access_requests(request), pk=pk)))


class _DecideApi(ApiView):
    # Reviewers reach only the requests they decide (visible_to matches services.may_decide for them).
    write_roles = (roles.ADMIN, roles.REVIEWER)


class AccessRequestApproveApi(_DecideApi):
    @extend_schema(
        operation_id="access_requests_approve",
        tags=["access requests"],
        request=s.AccessRequestDecideInput,
        responses={200: s.AccessRequestOutput, **ACTION_ERRORS},
        description=(
            "The approver, the agent's sponsor or an admin approves: a delegation of exactly that scope from the "
            "approver to the agent, for the requested time. The approver must hold the scope "
            "(400 `delegator_lacks_grant`). 409 `request_decided` or `request_expired` once it is too late."
        ),
    )
    def post(self, request: Request, pk: int) -> Response:
        access_request = get_object_or_404(_access_requests(request), pk=pk)
        data = self.validated(s.AccessRequestDecideInput, request.data)
        access_request = services.access_request_approve(
            actor=Actor.of(request.user), user=request.user, request=access_request, note=data["note"]
        )
        return Response(self.output(s.AccessRequestOutput, access_request))


class AccessRequestDenyApi(_DecideApi):
    @extend_schema(
        operation_id="access_requests_deny",
        tags=["access requests"],
        request=s.AccessRequestDecideInput,
        responses={200: s.AccessRequestOutput, **ACTION_ERRORS},
        description="The approver, the agent's sponsor or an admin denies. 409 once decided or lapsed.",
    )
    def post(self, request: Request, pk: int) -> Response:
        access_request = get_object_or_404(_access_requests(request), pk=pk)
        data = self.validated(s.AccessRequestDecideInput, request.data)
        access_request = services.access_request_deny(
            actor=Actor.of(request.user), user=request.user, request=access_request, note=data["note"]
        )
        return Response(self.output(s.AccessRequestOutput, access_request))
