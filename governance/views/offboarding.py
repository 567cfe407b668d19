"""Offboarding pages: the preview of exactly what an agent's (or a leaver's) offboarding cuts, a required
reason, the confirmation, and the summary with the time it took until the cut was what every check sees.
Admins only: the preview names everything below the agent, whoever sponsors it."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib.auth.decorators import login_required
from django.http import HttpResponse
from django.shortcuts import get_object_or_404, render
from django.views.decorators.http import require_POST

from audit.services import Actor
from console.errors import DomainError
from console.forms import apply_domain_error
from console.pages import HtmxHttpRequest, wants_fragment
from console.roles import ADMIN, role_required
from governance import services
from governance.models import Agent, AgentStatus, Human, Offboarding, OffboardingKind
from governance.selectors import agent_ancestors
from governance.services.offboarding import REASON_MAX

TEMPLATE = "governance/offboard.html"
# The preview lists the tree row by row up to here, then counts the rest.
TREE_ROWS = 200


class OffboardForm(forms.Form):
    reason = forms.CharField(
        max_length=REASON_MAX,
        widget=forms.Textarea(attrs={"rows": 3, "placeholder": "Why: kept in every audit event"}),
        help_text="Required. Kept with the offboarding and in the audit event of everything it cuts.",
    )


def agent_offboarding(agent: Agent) -> Offboarding | None:
    """The offboarding that offboarded ``agent``: one whose root is the agent itself or an agent above it
    (an offboarding takes the whole subtree). By the root's key, not a JSON containment query, which
    SQLite (make run) does not have."""
    if agent.status != AgentStatus.OFFBOARDED:
        return None
    line = [agent.pk, *(a.pk for a in agent_ancestors(agent))]
    return Offboarding.objects.filter(kind=OffboardingKind.AGENT, agent_id__in=line).order_by("-requested_at").first()


def human_offboarding(human: Human) -> Offboarding | None:
    return Offboarding.objects.filter(human=human).first()


def _render(request: HtmxHttpRequest, fragment: str, context: dict[str, Any], status: int = 200) -> HttpResponse:
    name = f"{TEMPLATE}#{fragment}" if wants_fragment(request) else TEMPLATE
    return render(request, name, {**context, "show": fragment}, status=status)


def _agent_preview(agent: Agent) -> dict[str, Any]:
    plan = services.agent_offboard(actor=Actor.system(), agent=agent, reason="", dry_run=True)
    tree = plan.tree
    return {"kind": "agent", "subject": agent, "plan": plan, "tree": tree[:TREE_ROWS], "more": len(tree) - TREE_ROWS}


@login_required
@role_required(ADMIN)
def agent_offboard(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    agent = get_object_or_404(Agent.objects.visible_to(request.user), pk=pk)
    try:
        context = _agent_preview(agent)
    except DomainError as error:
        return _render(request, "panel", {"kind": "agent", "subject": agent, "refused": error.detail})
    return _render(request, "panel", {**context, "form": OffboardForm()})


@login_required
@role_required(ADMIN)
@require_POST
def agent_offboard_confirm(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    agent = get_object_or_404(Agent.objects.visible_to(request.user), pk=pk)
    form = OffboardForm(request.POST)
    if form.is_valid():
        try:
            plan = services.agent_offboard(
                actor=Actor.of(request.user), agent=agent, reason=form.cleaned_data["reason"]
            )
        except DomainError as error:
            apply_domain_error(form, error)
        else:
            context = {"kind": "agent", "subject": agent, "plan": plan, "offboarding": plan.offboarding}
            return _render(request, "summary", {**context, "tree": plan.tree[:TREE_ROWS]})
    try:
        context = _agent_preview(agent)
    except DomainError as error:
        context = {"kind": "agent", "subject": agent, "refused": error.detail}
    return _render(request, "panel", {**context, "form": form}, status=422)


def _human_preview(human: Human) -> dict[str, Any]:
    plan = services.human_offboard(actor=Actor.system(), human=human, reason="", dry_run=True)
    return {"kind": "human", "subject": human, "plan": plan}


@login_required
@role_required(ADMIN)
def human_offboard(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    human = get_object_or_404(Human.objects.visible_to(request.user), pk=pk)
    try:
        context = _human_preview(human)
    except DomainError as error:
        return _render(request, "panel", {"kind": "human", "subject": human, "refused": error.detail})
    return _render(request, "panel", {**context, "form": OffboardForm()})


@login_required
@role_required(ADMIN)
@require_POST
def human_offboard_confirm(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    human = get_object_or_404(Human.objects.visible_to(request.user), pk=pk)
    form = OffboardForm(request.POST)
    if form.is_valid():
        try:
            plan = services.human_offboard(
                actor=Actor.of(request.user), human=human, reason=form.cleaned_data["reason"]
            )
        except DomainError as error:
            apply_domain_error(form, error)
        else:
            return _render(
                request, "summary", {"kind": "human", "subject": human, "plan": plan, "offboarding": plan.offboarding}
            )
    try:
        context = _human_preview(human)
    except DomainError as error:
        context = {"kind": "human", "subject": human, "refused": error.detail}
    return _render(request, "panel", {**context, "form": form}, status=422)
