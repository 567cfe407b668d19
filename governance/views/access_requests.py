"""Just-in-time access requests: the queue, approving or denying in place, and the navigation badge."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.db.models import Q
from django.http import HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404, render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_POST

from audit.services import Actor
from console.errors import DomainError
from console.pages import HtmxHttpRequest, back, render_live, render_page
from console.paging import page_newest_first
from console.roles import ADMIN, REVIEWER, role_required, roles_of
from console.visibility import visibility_of, visible_q
from governance import forms as f
from governance import services
from governance.models import AccessRequest, AccessRequestQuerySet, AccessRequestStatus, Agent, Resource

# A pending request this close to lapsing is shown as urgent.
URGENT_SECONDS = 120


@dataclass(frozen=True, slots=True)
class RequestRow:
    request: AccessRequest
    status: str
    # The scope's resource, when it is in the catalogue: its sensitivity colours the scope.
    resource: Resource | None
    can_decide: bool
    seconds_left: int
    error: DomainError | None = None

    @property
    def urgent(self) -> bool:
        return self.status == AccessRequestStatus.PENDING and self.seconds_left < URGENT_SECONDS

    @property
    def duration(self) -> str:
        minutes = int(self.request.requested_duration.total_seconds() // 60)
        if minutes < 60 or minutes % 60:
            return f"{minutes} min"
        return f"{minutes // 60} h"


def _request_rows(
    user: Any, requests: list[AccessRequest], now: datetime, error: DomainError | None = None
) -> list[RequestRow]:
    names = {r.scope.partition(":")[0] for r in requests}
    catalogue = {
        r.name: r for r in Resource.objects.visible_to(user).filter(name__in=names).only("name", "sensitivity")
    }
    decides = bool(roles_of(user) & {ADMIN, REVIEWER})
    rows = []
    for r in requests:
        status = r.status_at(now)
        rows.append(
            RequestRow(
                request=r,
                status=status,
                resource=catalogue.get(r.scope.partition(":")[0]),
                can_decide=decides and status == AccessRequestStatus.PENDING and services.may_decide(user, r),
                seconds_left=max(0, int((r.expires_at - now).total_seconds())),
                error=error,
            )
        )
    return rows


def _requests_visible_to(user: Any) -> AccessRequestQuerySet:
    return AccessRequest.objects.visible_to(user).select_related("agent__sponsor", "approver", "resulting_delegation")


@login_required
@role_required()
def access_requests(request: HtmxHttpRequest) -> HttpResponse:
    user, now = request.user, timezone.now()
    form = f.AccessRequestFilterForm(request.GET or None)
    v = form.values()
    qs = _requests_visible_to(user)
    status = v.get("status", "")
    if not status:
        qs = qs.pending(now)
    elif status == AccessRequestStatus.EXPIRED:
        qs = qs.lapsed(now)
    elif status != "all":
        qs = qs.filter(status=status)
    # An approver may see a request whose agent they may not: neither the search nor the agent filter
    # may then match on that agent, or which requests come back would tell its name and id.
    if q := v.get("q"):
        agent_named = Q(agent__name__icontains=q) & visible_q("agent", Agent, user)
        qs = qs.filter(agent_named | Q(scope__icontains=q) | Q(intent__icontains=q))
    if agent := v.get("agent"):
        qs = qs.filter(Q(agent_id=agent) & visible_q("agent", Agent, user))
    page = page_newest_first(request, qs)
    context = {
        "form": form,
        "rows": _request_rows(user, page.rows, now),
        "page": page,
        "status": status,
        "now": now,
        "back": request.get_full_path(),
    }
    return render_page(request, "governance/access_requests.html", "rows", context)


@login_required
@role_required(ADMIN, REVIEWER)
@require_POST
def access_request_decide(request: HtmxHttpRequest, pk: int, verb: str) -> HttpResponse:
    user = request.user
    access = get_object_or_404(_requests_visible_to(user), pk=pk)
    if not services.may_decide(user, access):
        raise PermissionDenied
    note = f.DecisionNoteForm(request.POST)
    note.is_valid()
    decide = services.access_request_approve if verb == "approve" else services.access_request_deny
    error: DomainError | None = None
    try:
        decide(actor=Actor.of(user), user=user, request=access, note=note.cleaned_data.get("note", ""))
    except DomainError as exc:
        error = exc
    target = back(request, reverse("console:access_requests"))
    if not request.htmx:
        if error:
            messages.error(request, error.detail)
        else:
            name = visibility_of(request).name(access.agent)
            messages.success(request, f"{'Approved' if verb == 'approve' else 'Denied'}: {name} asks {access.scope}.")
        return HttpResponseRedirect(target)
    # The row as it now stands (a refusal may mean someone else decided first), and the badge.
    now = timezone.now()
    row = _request_rows(user, [_requests_visible_to(user).get(pk=pk)], now, error)[0]
    context = {"row": row, "now": now, "back": target, "oob_badge": True}
    return render(request, "governance/access_requests.html#decided", context, status=422 if error else 200)


@login_required
@role_required()
def access_requests_badge(request: HtmxHttpRequest) -> HttpResponse:
    """The navigation badge alone, polled by htmx: how many requests await this user's decision."""
    return render_live(request, "base.html#jit-badge", {})
