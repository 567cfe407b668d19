"""The grants card an agent's and a human's page share, and granting a scope from it."""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_POST

from audit.services import Actor
from console.errors import DomainError
from console.forms import ReasonForm, apply_domain_error
from console.pages import HtmxHttpRequest, back, go, render_form
from console.roles import ADMIN, is_admin, role_required
from governance import forms as f
from governance import services
from governance.models import Agent, AgentStatus, Grant, GrantStatus, Human, HumanStatus

GRANTS_CARD = "governance/_grants_card.html"
# A card, not a report: beyond this many grants the resource pages are the better view.
GRANTS_SHOWN = 200


def _holder_kind(holder: Human | Agent) -> str:
    return "agent" if isinstance(holder, Agent) else "human"


def grants_card(request: HttpRequest, holder: Human | Agent, form: f.GrantCreateForm | None = None) -> dict[str, Any]:
    """What the grants card needs: the holder's grants the viewer may see and, for admins, the form."""
    kind = _holder_kind(holder)
    grants = Grant.objects.visible_to(request.user).filter(**{f"holder_{kind}": holder}).select_related("resource")
    context: dict[str, Any] = {
        "grants": list(grants[:GRANTS_SHOWN]),
        "grants_holder_kind": kind,
        "grant_create_url": reverse(f"console:{kind}_grant_create", args=[holder.pk]),
        "now": timezone.now(),
    }
    if is_admin(request.user):
        context["grants_revocable"] = True
        # A suspended, offboarded or departed holder is offered no new grant (grant_create refuses it as
        # well; a refused form still comes back with its error).
        if form is not None:
            context["grant_form"] = form
        elif holder.status in (AgentStatus.ACTIVE, HumanStatus.ACTIVE):
            context["grant_form"] = f.GrantCreateForm(user=request.user, for_agent=kind == "agent")
    return context


def _grant_create(request: HtmxHttpRequest, holder: Human | Agent) -> HttpResponse:
    kind = _holder_kind(holder)
    form = f.GrantCreateForm(request.POST, user=request.user, for_agent=kind == "agent")
    if form.is_valid():
        resource, action = form.cleaned_data["scope"]
        try:
            grant = services.grant_create(
                actor=Actor.of(request.user),
                holder=holder,
                resource=resource,
                action=action,
                expires_at=form.cleaned_data["expires_at"],
                justification=form.cleaned_data["justification"],
            )
        except DomainError as error:
            apply_domain_error(form, error, {"action": "scope", "holder": "scope"})
        else:
            messages.success(request, f"Granted {grant.scope} to {holder.name}.")
            return go(request, reverse(f"console:{kind}", args=[holder.pk]))
    context = grants_card(request, holder, form)
    return render_form(request, GRANTS_CARD, "grant-form", context, title="New grant", status=422)


@login_required
@role_required(ADMIN)
@require_POST
def agent_grant_create(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    return _grant_create(request, get_object_or_404(Agent.objects.visible_to(request.user), pk=pk))


@login_required
@role_required(ADMIN)
@require_POST
def human_grant_create(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    return _grant_create(request, get_object_or_404(Human.objects.visible_to(request.user), pk=pk))


@login_required
@role_required(ADMIN)
@require_POST
def grant_revoke(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    grant = get_object_or_404(Grant.objects.visible_to(request.user).select_related("resource"), pk=pk)
    was_active = grant.status == GrantStatus.ACTIVE
    services.grant_revoke(actor=Actor.of(request.user), grant=grant, reason=ReasonForm(request.POST).reason_text())
    if was_active:
        messages.success(request, f"Grant {grant.scope} revoked.")
    else:
        messages.info(request, f"Grant {grant.scope} was already {grant.status}; nothing changed.")
    kind, holder_id = ("agent", grant.holder_agent_id) if grant.holder_agent_id else ("human", grant.holder_human_id)
    return go(request, back(request, reverse(f"console:{kind}", args=[holder_id])))
