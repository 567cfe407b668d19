"""API v1: offboarding an agent (with its sub-agents) or a human leaver, with a dry run that previews it.

Admins only (the write role of every API view). The dry run and the run answer the same shape, so what
a dry run lists is what a run then reports as cut; a run adds the offboarding's id and time-to-revoke.
"""

from __future__ import annotations

from typing import Any

from django.shortcuts import get_object_or_404
from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response

from audit.services import Actor
from console.api.errors import ACTION_ERRORS
from console.api.fields import StrictCharField
from console.api.views import ApiView
from governance import services
from governance.models import Agent, Human, Offboarding
from governance.services.offboarding import REASON_MAX, AgentOffboardPlan, Cut, HumanOffboardPlan


class OffboardInput(serializers.Serializer[Any]):
    reason = StrictCharField(
        max_length=REASON_MAX,
        required=False,
        allow_blank=True,
        default="",
        help_text="Why; kept in every audit event. Required unless dry_run.",
    )
    dry_run = serializers.BooleanField(default=False, help_text="Preview what would be cut; change nothing.")


class _AgentRow(serializers.Serializer[Any]):
    id = serializers.IntegerField()
    name = serializers.CharField()
    parent = serializers.IntegerField(allow_null=True)  # type: ignore[assignment]  # NAMES_LIKE_DRF_ATTRIBUTES
    depth = serializers.IntegerField()
    status = serializers.CharField(help_text="Its status before the offboarding.")


class _KeyRow(serializers.Serializer[Any]):
    id = serializers.IntegerField()
    prefix = serializers.CharField()
    agent = serializers.IntegerField()


class _GrantRow(serializers.Serializer[Any]):
    id = serializers.IntegerField()
    scope = serializers.CharField()
    agent = serializers.IntegerField()


class _LinkRow(serializers.Serializer[Any]):
    id = serializers.IntegerField()
    parent = serializers.IntegerField(allow_null=True)  # type: ignore[assignment]  # NAMES_LIKE_DRF_ATTRIBUTES
    delegate = serializers.IntegerField()
    root_human = serializers.IntegerField()


class _TokenRow(serializers.Serializer[Any]):
    jti = serializers.CharField()
    agent = serializers.IntegerField()
    delegation = serializers.IntegerField()


class _Run(serializers.Serializer[Any]):
    dry_run = serializers.BooleanField()
    offboarding_id = serializers.IntegerField(allow_null=True, help_text="Null for a dry run.")
    requested_at = serializers.DateTimeField(allow_null=True)
    effective_at = serializers.DateTimeField(
        allow_null=True, help_text="When the revocation was committed and read back as what every check sees."
    )
    time_to_revoke_ms = serializers.IntegerField(allow_null=True, help_text="effective_at - requested_at.")
    counts = serializers.DictField(child=serializers.IntegerField())
    keys = _KeyRow(many=True)
    grants = _GrantRow(many=True)
    delegations = _LinkRow(many=True)
    tokens = _TokenRow(many=True)


class AgentOffboardOutput(_Run):
    agent = serializers.IntegerField()
    agents = _AgentRow(many=True, help_text="The agent and every sub-agent offboarded with it, top down.")


class HumanOffboardOutput(_Run):
    human = serializers.IntegerField()
    new_sponsor = serializers.IntegerField(allow_null=True, help_text="Their active manager, if any.")
    responsored = serializers.ListField(child=serializers.IntegerField(), help_text="Agents moved to new_sponsor.")
    suspended = serializers.ListField(
        child=serializers.IntegerField(), help_text="With no active manager: agents suspended (with sub-agents)."
    )


def _run(offboarding: Offboarding | None, cut: Cut, counts: dict[str, int]) -> dict[str, Any]:
    return {
        "dry_run": offboarding is None,
        "offboarding_id": offboarding.pk if offboarding else None,
        "requested_at": offboarding.requested_at if offboarding else None,
        "effective_at": offboarding.effective_at if offboarding else None,
        "time_to_revoke_ms": offboarding.time_to_revoke_ms if offboarding else None,
        "counts": counts,
        "keys": [{"id": k.id, "prefix": k.prefix, "agent": k.agent_id} for k in cut.keys],
        "grants": [{"id": g.id, "scope": g.scope, "agent": g.holder_id} for g in cut.grants],
        "delegations": [
            {"id": d.id, "parent": d.parent_id, "delegate": d.delegate_id, "root_human": d.root_human_id}
            for d in cut.links
        ],
        "tokens": [{"jti": t.jti, "agent": t.agent_id, "delegation": t.delegation_id} for t in cut.tokens],
    }


def agent_plan_data(plan: AgentOffboardPlan) -> dict[str, Any]:
    return {
        **_run(plan.offboarding, plan.cut, plan.counts()),
        "agent": plan.agent.pk,
        "agents": [
            {"id": a.pk, "name": a.name, "parent": a.parent_id, "depth": a.depth, "status": a.status}
            for a in plan.agents
        ],
    }


def human_plan_data(plan: HumanOffboardPlan) -> dict[str, Any]:
    return {
        **_run(plan.offboarding, plan.cut, plan.counts()),
        "human": plan.human.pk,
        "new_sponsor": plan.new_sponsor.pk if plan.new_sponsor else None,
        "responsored": [a.pk for a in plan.sponsored] if plan.new_sponsor else [],
        "suspended": [a.pk for a in plan.suspended],
    }


class AgentOffboardApi(ApiView):
    @extend_schema(
        operation_id="agents_offboard",
        tags=["agents"],
        request=OffboardInput,
        responses={200: AgentOffboardOutput, **ACTION_ERRORS},
        description=(
            "Offboard an agent and every sub-agent below it, for good: their keys, grants, delegations in "
            "force and live tokens are revoked in one transaction, refused from the next check on. "
            "`dry_run` previews exactly that. A blank reason is refused (400 `reason_required`); an agent "
            "already offboarded answers 409 `agent_offboarded`."
        ),
    )
    def post(self, request: Request, pk: int) -> Response:
        agent = get_object_or_404(Agent.objects.visible_to(request.user), pk=pk)
        data = self.validated(OffboardInput, request.data)
        plan = services.agent_offboard(actor=Actor.of(request.user), agent=agent, **data)
        return Response(self.output(AgentOffboardOutput, agent_plan_data(plan)))


class HumanOffboardApi(ApiView):
    @extend_schema(
        operation_id="humans_offboard",
        tags=["humans"],
        request=OffboardInput,
        responses={200: HumanOffboardOutput, **ACTION_ERRORS},
        description=(
            "A human leaves: status `left`, every delegation rooted at them (and its live tokens) revoked, "
            "each agent they sponsor moved to their active manager or, with none, suspended with its "
            "sub-agents. `dry_run` previews it. 409 `human_offboarded` the second time."
        ),
    )
    def post(self, request: Request, pk: int) -> Response:
        human = get_object_or_404(Human.objects.visible_to(request.user), pk=pk)
        data = self.validated(OffboardInput, request.data)
        plan = services.human_offboard(actor=Actor.of(request.user), human=human, **data)
        return Response(self.output(HumanOffboardOutput, human_plan_data(plan)))
