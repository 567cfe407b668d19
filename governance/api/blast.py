"""API v1: blast radius of an agent and of a human (SPEC §8), as the caller may see it."""

from __future__ import annotations

from typing import Any

from django.shortcuts import get_object_or_404
from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response

from console.api.errors import DETAIL_ERRORS
from console.api.views import ApiView
from governance.blast import BlastRadius, agent_blast_radius, human_blast_radius
from governance.models import Agent, AgentStatus, Human, Sensitivity


class BlastScopeOutput(serializers.Serializer[Any]):
    scope = serializers.CharField(help_text='"resource:action"')
    resource = serializers.CharField()
    sensitivity = serializers.ChoiceField(choices=Sensitivity.choices)
    weight = serializers.IntegerField(
        help_text="The resource's sensitivity weight (low 1, medium 3, high 9, critical 27)."
    )
    agents = serializers.IntegerField(help_text="How many agents of the tree can exercise it now.")


class BlastAgentOutput(serializers.Serializer[Any]):
    id = serializers.IntegerField(source="agent_id")
    name = serializers.CharField()
    parent = serializers.IntegerField(  # type: ignore[assignment]  # a field named like a DRF attribute
        source="parent_id", allow_null=True, help_text="Null at the top, or when the parent lies outside your view."
    )
    depth = serializers.IntegerField()
    status = serializers.ChoiceField(choices=AgentStatus.choices)
    scopes = serializers.ListField(child=serializers.CharField())


class BlastRadiusOutput(serializers.Serializer[Any]):
    computed_at = serializers.DateTimeField()
    score = serializers.IntegerField(help_text="Sum of the weights of the scopes below.")
    scope_count = serializers.SerializerMethodField()
    exposure_until = serializers.DateTimeField(
        allow_null=True, help_text="When the longest-lived key, token, delegation or grant in force ends."
    )
    exposure_window_seconds = serializers.SerializerMethodField()
    scopes = BlastScopeOutput(many=True)
    agents = BlastAgentOutput(
        many=True, help_text="The agents counted (sub-agents outside your view are neither listed nor counted)."
    )

    def get_scope_count(self, blast: BlastRadius) -> int:
        return len(blast.scopes)

    def get_exposure_window_seconds(self, blast: BlastRadius) -> int:
        return int(blast.exposure_window.total_seconds())


_DESCRIPTION = (
    "The scopes that can be exercised right now{what}, each weighted by its resource's sensitivity, their "
    "total (`score`), and the exposure window: how long the longest-lived credential or delegation in force "
    "still runs. Only agents visible to you are listed and counted."
)


class AgentBlastRadiusApi(ApiView):
    @extend_schema(
        operation_id="agents_blast_radius",
        tags=["agents"],
        responses={200: BlastRadiusOutput, **DETAIL_ERRORS},
        description=_DESCRIPTION.format(what=" by the agent, directly or through its sub-agents"),
    )
    def get(self, request: Request, pk: int) -> Response:
        agent = get_object_or_404(Agent.objects.visible_to(request.user), pk=pk)
        return Response(self.output(BlastRadiusOutput, agent_blast_radius(agent, viewer=request.user)))


class HumanBlastRadiusApi(ApiView):
    @extend_schema(
        operation_id="humans_blast_radius",
        tags=["humans"],
        responses={200: BlastRadiusOutput, **DETAIL_ERRORS},
        description=_DESCRIPTION.format(
            what=" by the agents acting for the human (delegates of their links in force, agents they sponsor) "
            "and their sub-agents"
        ),
    )
    def get(self, request: Request, pk: int) -> Response:
        human = get_object_or_404(Human.objects.visible_to(request.user), pk=pk)
        return Response(self.output(BlastRadiusOutput, human_blast_radius(human, viewer=request.user)))
