"""Agents: the list, registering one, and an agent's page with what it did, whom it acts for, what it
delegated onward, its tokens, grants, keys and sub-agents; suspending and reactivating it."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.db.models import Q
from django.db.models.expressions import RawSQL
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_POST

from audit.services import Actor
from console.errors import DomainError
from console.forms import ReasonForm, apply_domain_error
from console.pages import HtmxHttpRequest, go, render_form, render_live, render_page
from console.paging import page_by_name
from console.queries import count_of
from console.roles import ADMIN, is_admin, reads_everything, role_required
from console.trees import TreeRow, flatten
from governance import forms as f
from governance import history, selectors, services
from governance.blast import agent_blast_radius, picture
from governance.chain import Usability, delegation_usability
from governance.decision import reason_summary
from governance.models import AccessRequest, Agent, AgentKey, AgentStatus, Delegation, DelegationToken, DriftEvent
from governance.selectors import KEY_ROTATE
from governance.views.grants import grants_card
from governance.views.offboarding import agent_offboarding

AGENT_DECISIONS = 25
AGENT_EVENTS = 10

# Every sub-agent below one agent, at any depth. Parents never change after creation, so the walk
# cannot cycle.
_SUB_AGENT_IDS = (
    "WITH RECURSIVE sub(id) AS (SELECT id FROM governance_agent WHERE parent_id = %s "
    "UNION ALL SELECT a.id FROM governance_agent a JOIN sub ON a.parent_id = sub.id) SELECT id FROM sub"
)

# The agents above one agent, up to its top-level agent.
_ANCESTOR_IDS = (
    "WITH RECURSIVE up(id, parent_id) AS (SELECT id, parent_id FROM governance_agent WHERE id = %s "
    "UNION ALL SELECT a.id, a.parent_id FROM governance_agent a JOIN up ON a.id = up.parent_id) "
    "SELECT parent_id FROM up WHERE parent_id IS NOT NULL"
)


def visible_agent(request: HttpRequest, pk: int) -> Agent:
    return get_object_or_404(Agent.objects.visible_to(request.user).select_related("sponsor", "parent"), pk=pk)


@login_required
@role_required()
def agents(request: HtmxHttpRequest) -> HttpResponse:
    user = request.user
    form = f.AgentFilterForm(request.GET or None, user=user)
    v = form.values()
    qs = Agent.objects.visible_to(user)
    if q := v.get("q"):
        qs = qs.filter(Q(name__icontains=q) | Q(purpose__icontains=q))
    if status := v.get("status"):
        qs = qs.filter(status=status)
    if risk := v.get("risk"):
        qs = qs.filter(risk_tier=risk)
    if sponsor := v.get("sponsor"):
        qs = qs.filter(sponsor=sponsor)
    if level := v.get("level"):
        qs = qs.filter(parent__isnull=level == "top")
    total = qs.count()
    qs = qs.select_related("sponsor", "parent").annotate(
        sub_agents=count_of(Agent.objects.visible_to(user), "parent"),
        live_keys=count_of(AgentKey.objects.visible_to(user).active(), "agent"),
    )
    page = page_by_name(request, qs)
    context: dict[str, Any] = {"form": form, "agents": page.rows, "page": page, "total": total}
    if is_admin(user):
        context["agent_form"] = f.AgentCreateForm(user=user)
    return render_page(request, "governance/agents.html", "rows", context)


@login_required
@role_required(ADMIN)
@require_POST
def agent_create(request: HtmxHttpRequest) -> HttpResponse:
    form = f.AgentCreateForm(request.POST, user=request.user)
    if form.is_valid():
        data = form.cleaned_data
        try:
            agent = services.agent_create(
                actor=Actor.of(request.user),
                name=data["name"],
                purpose=data["purpose"],
                sponsor=data["sponsor"],
                parent=data["parent"],
                risk_tier=data["risk_tier"],
            )
        except DomainError as error:
            apply_domain_error(form, error)
        else:
            messages.success(request, f"Registered agent {agent.name}.")
            return go(request, reverse("console:agent", args=[agent.pk]))
    context = {"agent_form": form}
    return render_form(request, "governance/agents.html", "agent-form", context, title="New agent", status=422)


def _visible_ancestors(user: Any, agent: Agent) -> list[Agent]:
    """Top-level agent first; only those this user may see (a sub-agent's sponsor can differ)."""
    above = RawSQL(_ANCESTOR_IDS, [agent.pk])  # noqa: S611 - constant SQL; the id is a bound parameter
    return list(Agent.objects.visible_to(user).filter(id__in=above).order_by("depth"))


def _sub_agent_rows(user: Any, agent: Agent) -> list[TreeRow]:
    """The sub-agent tree in one query (a recursive CTE), arranged in Python, not a query per node."""
    below = RawSQL(_SUB_AGENT_IDS, [agent.pk])  # noqa: S611 - constant SQL; the id is a bound parameter
    return flatten(Agent.objects.visible_to(user).filter(id__in=below).order_by("depth", "name", "id"))


@dataclass(frozen=True, slots=True)
class DelegationRow:
    link: Delegation
    status: str
    usability: Usability | None


def _usability(link: Delegation, now: Any, full_detail: bool) -> Usability:
    usability = delegation_usability(link, at=now)
    # The detail names the agents and the human up the chain, who may be outside the viewer's view.
    return usability if full_detail else replace(usability, detail=reason_summary(usability.reason))


def _agent_context(request: HttpRequest, agent: Agent) -> dict[str, Any]:
    user, now = request.user, timezone.now()
    held = (
        Delegation.objects.visible_to(user)
        .filter(delegate=agent)
        .select_related("root_human", "delegate__sponsor", "parent__delegate")
        .order_by("-created_at", "-id")[:50]
    )
    # Usability walks the chain (a few queries per link): worth it for the agent's own delegations,
    # and only for those still marked active.
    full = reads_everything(user)
    rows = [DelegationRow(d, d.status_at(now), _usability(d, now, full) if d.is_in_force(now) else None) for d in held]
    ancestors = _visible_ancestors(user, agent)
    drift_events = list(DriftEvent.objects.visible_to(user).filter(agent=agent)[:10])
    onward = (
        Delegation.objects.visible_to(user)
        .filter(parent__delegate=agent)
        .select_related("delegate", "parent")
        .order_by("-created_at")[:50]
    )
    tokens = DelegationToken.objects.visible_to(user).active(now).filter(agent=agent)
    context: dict[str, Any] = {
        "agent": agent,
        "ancestors": ancestors,
        "tree": _sub_agent_rows(user, agent),
        "delegations": rows,
        "onward": [(d, d.status_at(now)) for d in onward],
        "keys": list(AgentKey.objects.visible_to(user).filter(agent=agent)[:50]),
        "tokens": list(tokens.select_related("delegation__root_human")[:25]),
        "decisions": selectors.agent_decisions(agent, user, AGENT_DECISIONS),
        "drift_events": drift_events,
        "drift_unacknowledged": any(e.acknowledged_at is None for e in drift_events),
        "access_requests": list(
            AccessRequest.objects.visible_to(user).pending(now).filter(agent=agent).select_related("approver")[:10]
        ),
        # Changes to it and to its keys, tokens, delegations and grants, matched by id (governance.history);
        # its decisions have their own card.
        "events": (
            history.recent(history.agent_arms(agent.pk, acting=False), AGENT_EVENTS) if reads_everything(user) else None
        ),
        "now": now,
        **grants_card(request, agent),
    }
    context["offboarding"] = agent_offboarding(agent)
    blast = agent_blast_radius(agent, viewer=user, at=now)
    context |= {"blast": blast, "blast_picture": picture(blast), "blast_of": "agent"}
    context["key_rows"] = key_rows(context["keys"], now)
    context["rotation_reminders"] = [row for row in context["key_rows"] if KEY_ROTATE in row.flags]
    context["live_key_count"] = sum(1 for key in context["keys"] if key.status_at(now) == "active")
    context["key_stale_days"] = settings.CUSTOS_KEY_STALE_DAYS
    if is_admin(user):
        # Only what can apply: a suspended or offboarded agent gets no new key, link or grant (the services
        # refuse them too); a suspended one can be reactivated, an offboarded one nothing.
        if agent.status == AgentStatus.ACTIVE:
            context["key_form"] = f.KeyCreateForm()
            context["child_form"] = f.ChildDelegationForm(user=user, agent=agent)
        context["status_actions"] = True
        context["reason_form"] = ReasonForm()
    return context


@dataclass(frozen=True, slots=True)
class KeyRow:
    key: AgentKey
    # Hygiene badges: "stale" (unused CUSTOS_KEY_STALE_DAYS), "rotate" (older than CUSTOS_KEY_MAX_AGE).
    flags: list[str]


def key_rows(keys: list[AgentKey], now: Any) -> list[KeyRow]:
    return [KeyRow(key, selectors.key_flags(key, now)) for key in keys]


@login_required
@role_required()
def agent_detail(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    from governance.views.keys import pop_leak_report  # keys' views import this module

    context = _agent_context(request, visible_agent(request, pk))
    context["leak_report"] = pop_leak_report(request, pk) if is_admin(request.user) else None
    return render(request, "governance/agent_detail.html", context)


@login_required
@role_required()
def agent_decisions(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    """The agent page's recent decisions alone, polled by htmx."""
    agent = get_object_or_404(Agent.objects.visible_to(request.user), pk=pk)
    decisions = selectors.agent_decisions(agent, request.user, AGENT_DECISIONS)
    context = {"agent": agent, "decisions": decisions, "now": timezone.now()}
    return render_live(request, "governance/agent_detail.html#decisions", context)


@login_required
@role_required(ADMIN)
@require_POST
def agent_set_status(request: HtmxHttpRequest, pk: int, verb: str) -> HttpResponse:
    agent = visible_agent(request, pk)
    reason = ReasonForm(request.POST).reason_text()
    change = services.agent_suspend if verb == "suspend" else services.agent_reactivate
    before = agent.status
    try:
        changed = change(actor=Actor.of(request.user), agent=agent, reason=reason)
    except DomainError as error:
        messages.error(request, error.detail)
    else:
        if changed.status == before:
            messages.info(request, f"{agent.name} was already {before}; nothing changed.")
        else:
            messages.success(request, f"{agent.name} is now {'suspended' if verb == 'suspend' else 'active'}.")
    return go(request, reverse("console:agent", args=[agent.pk]))
