"""Humans: the list, and one human's grants, delegations, sponsored agents and reports."""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.db.models import Q
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_POST

from audit.services import Actor
from console.errors import DomainError
from console.forms import apply_domain_error
from console.pages import HtmxHttpRequest, go, render_form, render_page
from console.paging import page_by_name
from console.queries import count_of
from console.roles import ADMIN, is_admin, reads_everything, role_required
from console.trees import flatten
from governance import forms as f
from governance import history, services
from governance.blast import human_blast_radius, picture
from governance.models import Agent, Delegation, Human, HumanStatus
from governance.views.grants import grants_card
from governance.views.offboarding import human_offboarding

# The delegation forest is one query; beyond this many links a search is the better tool anyway.
FOREST_LIMIT = 2000
HUMAN_EVENTS = 10


@login_required
@role_required()
def humans(request: HtmxHttpRequest) -> HttpResponse:
    form = f.HumanFilterForm(request.GET or None)
    v = form.values()
    qs = Human.objects.visible_to(request.user)
    if q := v.get("q"):
        qs = qs.filter(Q(name__icontains=q) | Q(email__icontains=q) | Q(department__icontains=q))
    if status := v.get("status"):
        qs = qs.filter(status=status)
    total = qs.count()
    qs = qs.select_related("manager").annotate(agent_count=count_of(Agent.objects.visible_to(request.user), "sponsor"))
    page = page_by_name(request, qs)
    context = {"form": form, "humans": page.rows, "page": page, "total": total}
    return render_page(request, "governance/humans.html", "rows", context)


def _human_context(request: HttpRequest, human: Human) -> dict[str, Any]:
    user, now = request.user, timezone.now()
    links = Delegation.objects.visible_to(user).filter(root_human=human).select_related("delegate")
    context: dict[str, Any] = {
        "human": human,
        "reports": list(Human.objects.visible_to(user).filter(manager=human)),
        "agents": list(Agent.objects.visible_to(user).filter(sponsor=human).select_related("parent")),
        "delegation_rows": [
            (row, row.node.status_at(now)) for row in flatten(links.order_by("depth", "-created_at")[:FOREST_LIMIT])
        ],
        "now": now,
        **grants_card(request, human),
    }
    context["offboarding"] = human_offboarding(human)
    # Changes to them and to what they hold or root, matched by id (governance.history); the decisions
    # made on their behalf are one link away.
    context["events"] = (
        history.recent(history.human_arms(human.pk, decisions=False), HUMAN_EVENTS) if reads_everything(user) else None
    )
    blast = human_blast_radius(human, viewer=user, at=now)
    context |= {"blast": blast, "blast_picture": picture(blast), "blast_of": "human"}
    # Someone suspended or gone delegates nothing (delegation_create refuses it as well).
    if is_admin(user) and human.status == HumanStatus.ACTIVE:
        context["delegation_form"] = f.RootDelegationForm(user=user, human=human)
    return context


@login_required
@role_required()
def human_detail(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    human = get_object_or_404(Human.objects.visible_to(request.user).select_related("manager"), pk=pk)
    return render(request, "governance/human_detail.html", _human_context(request, human))


@login_required
@role_required(ADMIN)
@require_POST
def human_delegation_create(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    human = get_object_or_404(Human.objects.visible_to(request.user), pk=pk)
    form = f.RootDelegationForm(request.POST, user=request.user, human=human)
    if form.is_valid():
        data = form.cleaned_data
        try:
            services.delegation_create(
                actor=Actor.of(request.user),
                root_human=human,
                delegate=data["delegate"],
                scopes=data["scopes"],
                expires_at=data["expires_at"],
                purpose=data["purpose"],
                max_depth=data["max_depth"],
            )
        except DomainError as error:
            apply_domain_error(form, error, {"root_human": "delegate"})
        else:
            messages.success(request, f"{human.name} now delegates to {data['delegate'].name}.")
            return go(request, reverse("console:human", args=[human.pk]))
    context = {"human": human, "delegation_form": form}
    return render_form(
        request, "governance/human_detail.html", "delegation-form", context, title="New delegation", status=422
    )
