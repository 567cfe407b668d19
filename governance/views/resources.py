"""The resource catalogue and one resource's grants."""

from __future__ import annotations

from typing import Any

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
from console.forms import apply_domain_error
from console.pages import HtmxHttpRequest, go, render_form
from console.queries import count_of
from console.roles import ADMIN, is_admin, reads_everything, role_required
from governance import forms as f
from governance import history, services
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
    context: dict[str, Any] = {"form": form, "resources": list(qs.order_by("name"))}
    if is_admin(request.user):
        context["resource_form"] = f.ResourceCreateForm(user=request.user)
    return render(request, "governance/resources.html", context)


@login_required
@role_required(ADMIN)
@require_POST
def resource_create(request: HtmxHttpRequest) -> HttpResponse:
    form = f.ResourceCreateForm(request.POST, user=request.user)
    if form.is_valid():
        data = form.cleaned_data
        try:
            resource = services.resource_create(
                actor=Actor.of(request.user),
                name=data["name"],
                owner=data["owner"],
                actions=data["actions"],
                kind=data["kind"],
                sensitivity=data["sensitivity"],
                description=data["description"],
                uri=data["uri"],
            )
        except DomainError as error:
            apply_domain_error(form, error)
        else:
            messages.success(request, f"Registered resource {resource.name}.")
            return go(request, reverse("console:resource", args=[resource.pk]))
    context = {"resource_form": form}
    return render_form(request, "governance/resources.html", "resource-form", context, title="New resource", status=422)


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
