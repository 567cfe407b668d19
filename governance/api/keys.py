"""API v1: agent keys. An agent may issue keys to its direct sub-agents and rotate its own."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.db.models import QuerySet
from django.shortcuts import get_object_or_404
from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response

from audit.services import Actor
from console.api.errors import ACTION_ERRORS, DETAIL_ERRORS, READ_ERRORS
from console.api.pagination import PARAMETERS as PAGE_PARAMETERS
from console.api.views import ApiView
from governance import authn, services
from governance.api import serializers as s
from governance.models import Agent, AgentKey


def _agents(request: Request) -> QuerySet[Agent]:
    return Agent.objects.visible_to(request.user).select_related("sponsor")


def _keys(request: Request) -> QuerySet[AgentKey]:
    # The agent's parent, whose name a key's created_by may be (it issues its sub-agents' keys).
    return AgentKey.objects.visible_to(request.user).select_related("agent__parent")


# --- Agent keys -----------------------------------------------------------------------------


class AgentKeyListApi(ApiView):
    @extend_schema(
        operation_id="agents_keys_list",
        tags=["keys"],
        parameters=PAGE_PARAMETERS,
        responses={200: s.AgentKeyPage, **READ_ERRORS, **DETAIL_ERRORS},
    )
    def get(self, request: Request, pk: int) -> Response:
        agent = get_object_or_404(_agents(request), pk=pk)
        return self.page(_keys(request).filter(agent=agent), s.AgentKeyOutput)


class AgentKeyCreateApi(ApiView):
    agent_methods = frozenset({"POST"})

    @extend_schema(
        operation_id="agents_keys_create",
        tags=["keys"],
        request=s.AgentKeyCreateInput,
        responses={201: s.AgentKeyCreatedOutput, **ACTION_ERRORS},
        description=(
            "Issue a key. The response's `secret` is the only time the full key is shown. An agent may issue "
            "keys to its direct sub-agents only (any other id is a 404); such a key expires within the "
            "configured key lifetime and no later than the caller's own keys."
        ),
    )
    def post(self, request: Request, pk: int) -> Response:
        principal = authn.agent_principal(request.user)
        if principal is not None:
            agent = get_object_or_404(Agent.objects.filter(parent_id=principal.agent.pk), pk=pk)
            data = self.validated(s.AgentKeyCreateInput, request.data)
            key, secret = services.agentkey_create_by_agent(principal=principal, agent=agent, **data)
        else:
            agent = get_object_or_404(_agents(request), pk=pk)
            data = self.validated(s.AgentKeyCreateInput, request.data)
            key, secret = services.agentkey_create(actor=Actor.of(request.user), agent=agent, **data)
        body = self.output(s.AgentKeyCreatedOutput, key) | {"secret": secret}
        # The secret must not linger in any cache between here and the caller.
        return Response(body, status=status.HTTP_201_CREATED, headers={"Cache-Control": "no-store"})


class AgentKeysApi(AgentKeyListApi, AgentKeyCreateApi):
    pass


class KeyRevokeApi(ApiView):
    @extend_schema(
        operation_id="keys_revoke",
        tags=["keys"],
        request=s.KeyRevokeInput,
        responses={200: s.AgentKeyOutput, **ACTION_ERRORS},
    )
    def post(self, request: Request, pk: int) -> Response:
        key = get_object_or_404(_keys(request), pk=pk)
        data = self.validated(s.KeyRevokeInput, request.data)
        key = services.agentkey_revoke(actor=Actor.of(request.user), key=key, **data)
        return Response(self.output(s.AgentKeyOutput, key))


class KeyRotateApi(ApiView):
    agent_methods = frozenset({"POST"})

    @extend_schema(
        operation_id="keys_rotate",
        tags=["keys"],
        request=s.AgentKeyRotateInput,
        responses={201: s.AgentKeyRotatedOutput, **ACTION_ERRORS},
        description=(
            "Issue a new key for the same agent and cut the old one's life to the overlap (default "
            "CUSTOS_KEY_ROTATION_OVERLAP), so the agent can switch without a gap. An admin rotates any key; an "
            "agent its own keys (any other id is a 404), and its new key expires when the old one would have: "
            "rotation renews the secret, not the agent's lifetime. The new `secret` is shown in this response only."
        ),
    )
    def post(self, request: Request, pk: int) -> Response:
        principal = authn.agent_principal(request.user)
        key = get_object_or_404(
            AgentKey.objects.filter(agent=principal.agent) if principal is not None else _keys(request), pk=pk
        )
        data = self.validated(s.AgentKeyRotateInput, request.data)
        overlap = None if data["overlap_seconds"] is None else timedelta(seconds=data["overlap_seconds"])
        if principal is not None:
            new, secret, old = services.agentkey_rotate_by_agent(
                principal=principal, key=key, overlap=overlap, name=data["name"]
            )
        else:
            new, secret, old = services.agentkey_rotate(
                actor=Actor.of(request.user), key=key, overlap=overlap, name=data["name"]
            )
        body = {
            "key": self.output(s.AgentKeyCreatedOutput, new) | {"secret": secret},
            "previous": self.output(s.AgentKeyOutput, old),
        }
        return Response(body, status=status.HTTP_201_CREATED, headers={"Cache-Control": "no-store"})


class AgentKeysRevokedOutput(serializers.Serializer[Any]):
    revoked = s.AgentKeyOutput(many=True, help_text="The keys this call revoked (those still in force).")


class AgentKeysRevokeAllApi(ApiView):
    @extend_schema(
        operation_id="agents_keys_revoke_all",
        tags=["keys"],
        request=s.ReasonInput,
        responses={200: AgentKeysRevokedOutput, **ACTION_ERRORS},
        description=(
            "Revoke every key of the agent still in force, with the tokens each obtained: one audit event per key. "
            "Keys already revoked or expired are left as they are."
        ),
    )
    def post(self, request: Request, pk: int) -> Response:
        agent = get_object_or_404(_agents(request), pk=pk)
        data = self.validated(s.ReasonInput, request.data)
        revoked = services.agentkey_revoke_all(actor=Actor.of(request.user), agent=agent, **data)
        return Response({"revoked": s.AgentKeyOutput(revoked, many=True, context={"request": request}).data})
