"""Drift: agents that keep being refused for out-of-scope attempts, and acknowledging one."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.db.models import Q
from django.http import HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404, render
from django.urls import reverse
from django.views.decorators.http import require_POST

from audit.services import Actor
from console.pages import HtmxHttpRequest, back, render_page
from console.paging import page_newest_first
from console.roles import ADMIN, is_admin, role_required
from governance import forms as f
from governance import services
from governance.models import DriftEvent


@login_required
@role_required()
def drift(request: HtmxHttpRequest) -> HttpResponse:
    user = request.user
    form = f.DriftFilterForm(request.GET or None)
    v = form.values()
    qs = DriftEvent.objects.visible_to(user).select_related("agent__sponsor")
    state = v.get("state", "")
    if not state:
        qs = qs.open()
    elif state == "acknowledged":
        qs = qs.filter(acknowledged_at__isnull=False)
    if q := v.get("q"):
        qs = qs.filter(Q(agent__name__icontains=q) | Q(reason__icontains=q) | Q(kind__icontains=q))
    page = page_newest_first(request, qs)
    context = {
        "form": form,
        "drift_events": page.rows,
        "page": page,
        "state": state,
        "can_acknowledge": is_admin(user),
    }
    return render_page(request, "governance/drift.html", "rows", context)


@login_required
@role_required(ADMIN)
@require_POST
def drift_acknowledge(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    event = get_object_or_404(DriftEvent.objects.visible_to(request.user), pk=pk)
    event = services.drift_acknowledge(actor=Actor.of(request.user), event=event)
    if not request.htmx:
        messages.success(request, f"Drift of {event.agent.name} acknowledged.")
        return HttpResponseRedirect(back(request, reverse("console:drift")))
    event = DriftEvent.objects.visible_to(request.user).select_related("agent__sponsor").get(pk=pk)
    return render(request, "governance/drift.html#row", {"event": event, "can_acknowledge": True})
