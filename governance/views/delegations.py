"""Delegation chains: the forest of every chain the viewer may see, delegating onward from an agent's
page, and revoking a link (with everything below it)."""

from __future__ import annotations

from collections import defaultdict
from typing import NamedTuple

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
from console.trees import TreeRow, flatten
from console.visibility import visibility_of, visible_q
from governance import forms as f
from governance import services
from governance.models import Agent, Delegation, Human
from governance.views.agents import visible_agent
from governance.views.humans import FOREST_LIMIT


class Chains(NamedTuple):
    """The links acting for one human, as a tree; ``human`` is None for the group of links whose root
    human is outside the viewer's view (one group for all of them, so grouping tells nothing of who)."""

    human: Human | None
    rows: list[tuple[TreeRow, str]]


@login_required
@role_required()
def delegations(request: HtmxHttpRequest) -> HttpResponse:
    user, now = request.user, timezone.now()
    form = f.DelegationFilterForm(request.GET or None)
    v = form.values()
    qs = Delegation.objects.visible_to(user).select_related("root_human", "delegate", "parent__delegate")
    if v.get("state") != "all":
        qs = qs.active(now)
    if q := v.get("q"):
        # Only names the viewer may read are searched: a match on a hidden one would reveal it.
        people = Q(root_human__name__icontains=q) | Q(root_human__email__icontains=q)
        qs = qs.filter(
            (people & visible_q("root_human", Human, user))
            | (Q(delegate__name__icontains=q) & visible_q("delegate", Agent, user))
        )
    links = list(qs.order_by("depth", "-created_at", "-id")[:FOREST_LIMIT])
    seen = visibility_of(request)
    groups: dict[int | None, list[Delegation]] = defaultdict(list)
    for link in links:
        groups[link.root_human_id if seen.sees(link.root_human) else None].append(link)
    forest = [
        Chains(group[0].root_human if root else None, [(row, row.node.status_at(now)) for row in flatten(group)])
        for root, group in groups.items()
    ]
    # Humans by name; the links of humans outside the view last.
    forest.sort(key=lambda c: (c.human is None, c.human.name if c.human else "", c.human.pk if c.human else 0))
    context = {
        "form": form,
        "forest": forest,
        "humans": sum(1 for c in forest if c.human is not None),
        "total": len(links),
        "truncated": len(links) == FOREST_LIMIT,
        "can_revoke": is_admin(user),
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
