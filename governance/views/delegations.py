"""Delegation chains: the forest of every chain the viewer may see, delegating onward from an agent's
page, and revoking a link (with everything below it)."""

from __future__ import annotations

from collections import defaultdict

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.db.models import Q
from django.http import HttpResponse
from django.shortcuts import get_object_or_404, render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_POST

from audit.services import Actor
from console.errors import DomainError
from console.forms import ReasonForm, apply_domain_error
from console.pages import HtmxHttpRequest, back, go, render_form
from console.roles import ADMIN, is_admin, role_required
from console.trees import flatten
from governance import forms as f
from governance import services
from governance.models import Delegation
from governance.views.agents import visible_agent
from governance.views.humans import FOREST_LIMIT


@login_required
@role_required()
def delegations(request: HtmxHttpRequest) -> HttpResponse:
    now = timezone.now()
    form = f.DelegationFilterForm(request.GET or None)
    v = form.values()
    qs = Delegation.objects.visible_to(request.user).select_related("root_human", "delegate")
    if v.get("state") != "all":
        qs = qs.active(now)
    if q := v.get("q"):
        people = Q(root_human__name__icontains=q) | Q(root_human__email__icontains=q)
        qs = qs.filter(people | Q(delegate__name__icontains=q))
    links = list(qs.order_by("depth", "-created_at", "-id")[:FOREST_LIMIT])
    groups: dict[int, list[Delegation]] = defaultdict(list)
    for link in links:
        groups[link.root_human_id].append(link)
    forest = sorted(
        (
            (group[0].root_human, [(row, row.node.status_at(now)) for row in flatten(group)])
            for group in groups.values()
        ),
        key=lambda item: (item[0].name, item[0].pk),
    )
    context = {
        "form": form,
        "forest": forest,
        "total": len(links),
        "truncated": len(links) == FOREST_LIMIT,
        "can_revoke": is_admin(request.user),
        "now": now,
    }
    return render(request, "governance/delegations.html", context)


@login_required
@role_required(ADMIN)
@require_POST
def agent_delegation_create(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    agent = visible_agent(request, pk)
    form = f.ChildDelegationForm(request.POST, user=request.user, agent=agent)
    if form.is_valid():
        data = form.cleaned_data
        try:
            services.delegation_create(
                actor=Actor.of(request.user),
                parent=data["parent"],
                delegate=data["delegate"],
                scopes=data["scopes"],
                expires_at=data["expires_at"],
                purpose=data["purpose"],
                max_depth=data["max_depth"],
            )
        except DomainError as error:
            apply_domain_error(form, error)
        else:
            messages.success(request, f"{agent.name} now delegates to {data['delegate'].name}.")
            return go(request, reverse("console:agent", args=[agent.pk]))
    context = {"agent": agent, "child_form": form}
    return render_form(
        request, "governance/agent_detail.html", "child-form", context, title="Delegate onward", status=422
    )


@login_required
@role_required(ADMIN)
@require_POST
def delegation_revoke(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    link = get_object_or_404(Delegation.objects.visible_to(request.user), pk=pk)
    reason = ReasonForm(request.POST).reason_text()
    revoked = services.delegation_revoke(actor=Actor.of(request.user), delegation=link, reason=reason)
    if not revoked:
        messages.info(request, f"Delegation #{link.pk} was no longer active; nothing changed.")
    else:
        below = len(revoked) - 1
        messages.success(request, f"Delegation #{link.pk} revoked" + (f" with {below} below it." if below else "."))
    return go(request, back(request, reverse("console:agent", args=[link.delegate_id])))
