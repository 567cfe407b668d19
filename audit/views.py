"""The audit log in the console: every event, newest first, filtered, each with its full context and
hash. Admins and auditors only (the log has no owner to scope a reviewer's view by)."""

from __future__ import annotations

import json
from dataclasses import dataclass

from django.contrib.auth.decorators import login_required
from django.http import HttpResponse

from audit import links
from audit.forms import AuditFilterForm
from audit.models import AuditEvent
from console.pages import HtmxHttpRequest, render_page
from console.paging import day_range, page_newest_first
from console.roles import ADMIN, AUDITOR, role_required


@dataclass(frozen=True, slots=True)
class EventRow:
    event: AuditEvent
    target_url: str | None

    @property
    def context_json(self) -> str:
        return json.dumps(self.event.context, indent=2, sort_keys=True, ensure_ascii=False)


@login_required
@role_required(ADMIN, AUDITOR)
def audit_events(request: HtmxHttpRequest) -> HttpResponse:
    form = AuditFilterForm(request.GET or None)
    v = form.values()
    qs = AuditEvent.objects.select_related("seal")
    if action := v.get("action"):
        # A prefix, so "delegation." lists every delegation event.
        qs = qs.filter(action__startswith=action)
    if actor_kind := v.get("actor_kind"):
        qs = qs.filter(actor_kind=actor_kind)
    if actor := v.get("actor"):
        qs = qs.filter(actor_label__icontains=actor)
    if target_type := v.get("target_type"):
        qs = qs.filter(target_type=target_type)
    if target_id := v.get("target_id"):
        qs = qs.filter(target_id=target_id)
    start, end = day_range(v.get("since"), v.get("until"))
    if start is not None:
        qs = qs.filter(occurred_at__gte=start)
    if end is not None:
        qs = qs.filter(occurred_at__lt=end)
    page = page_newest_first(request, qs)
    context = {
        "form": form,
        "events": [EventRow(e, links.target_url(e)) for e in page.rows],
        "page": page,
        "target_types": links.target_types(),
    }
    return render_page(request, "audit/audit.html", "rows", context)
