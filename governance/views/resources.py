"""The resource catalogue and one resource's grants."""

from __future__ import annotations

from typing import Any

from django.contrib.auth.decorators import login_required
from django.db.models import Q
from django.http import HttpResponse
from django.shortcuts import get_object_or_404, render
from django.utils import timezone

from console.pages import HtmxHttpRequest
from console.queries import count_of
from console.roles import reads_everything, role_required
from governance import forms as f
from governance import history
from governance.models import Grant, Resource

RESOURCE_EVENTS = 10


@login_required
@role_required()
def resources(request: HtmxHttpRequest) -> HttpResponse:
    form = f.ResourceFilterForm(request.GET or None)
    v = form.values()
    qs = Resource.objects.visible_to(request.user).select_related("owner")
    if q := v.get("q"):
        qs = qs.filter(Q(name__icontains=q) | Q(description__icontains=q))
    if kind := v.get("kind"):
        qs = qs.filter(kind=kind)
    if sensitivity := v.get("sensitivity"):
        qs = qs.filter(sensitivity=sensitivity)
    qs = qs.annotate(active_grants=count_of(Grant.objects.visible_to(request.user).active(), "resource"))
    return render(request, "governance/resources.html", {"form": form, "resources": list(qs.order_by("name"))})


@login_required
@role_required()
def resource_detail(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    resource = get_object_or_404(Resource.objects.visible_to(request.user).select_related("owner"), pk=pk)
    grants = (
        Grant.objects.visible_to(request.user)
        .filter(resource=resource)
        .select_related("holder_human", "holder_agent")[:200]
    )
    # Changes to it and to its grants and access requests, by id (governance.history); its decisions
    # are one link away.
    events = history.resource_arms(resource.pk, decisions=False)
    context: dict[str, Any] = {
        "resource": resource,
        "grants": list(grants),
        "now": timezone.now(),
        "events": history.recent(events, RESOURCE_EVENTS) if reads_everything(request.user) else None,
    }
    return render(request, "governance/resource_detail.html", context)
