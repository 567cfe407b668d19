"""The audit log in the console: every event, newest first, filtered, each with its digest, seal and
full context; CSV, JSON and evidence-bundle downloads of what the filters show; and the chain's
verification badge with "Verify now". Admins and auditors only (the log has no owner to scope a
reviewer's view by); verifying changes nothing but the log's record of its own verifications, so
auditors may do it."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpResponse, HttpResponseBase, HttpResponseRedirect, StreamingHttpResponse
from django.shortcuts import render
from django.urls import reverse
from django.utils import timezone
from django.utils.cache import add_never_cache_headers
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_POST, require_safe

from audit import bundles, exports, links
from audit.forms import AuditFilterForm, BundleForm
from audit.models import AuditEvent, Seal
from audit.services import Actor, audit_verification_record
from audit.verification import RecordedVerification, last_recorded, verify_chain
from console.pages import HtmxHttpRequest, go, render_page, wants_fragment
from console.paging import Page, page_newest_first, query_without
from console.roles import ADMIN, AUDITOR, role_required

# The page's own parameters, beside the filters: the page marker.
_PAGING = "before"


@dataclass(frozen=True, slots=True)
class EventRow:
    event: AuditEvent
    target_url: str | None
    links: list[tuple[str, str]]

    @property
    def context_json(self) -> str:
        return json.dumps(self.event.context, indent=2, sort_keys=True, ensure_ascii=False)


@dataclass(frozen=True, slots=True)
class Subject:
    """A subject the log is narrowed to: its kind and id, the name the log last recorded for it (the
    audit app cannot ask governance), and its page when an app registered one."""

    kind: str
    id: int
    name: str
    url: str | None
    without: str  # the query string without this filter


def _subjects(request: HtmxHttpRequest, form: AuditFilterForm) -> list[Subject]:
    found = []
    for kind, ident in form.subjects():
        # The newest event naming it as its target carries the name it had then (one index probe).
        name = AuditEvent.objects.for_target(kind, ident).order_by("-id").values_list("target_label", flat=True).first()
        params = request.GET.copy()
        for param in (kind, _PAGING):
            params.pop(param, None)
        stand_in = AuditEvent(target_type=kind, target_id=str(ident))
        found.append(Subject(kind, ident, name or "", links.target_url(stand_in), params.urlencode()))
    return found


@dataclass(frozen=True, slots=True)
class Badge:
    last: RecordedVerification | None
    # The console id of the first bad event, to open the log there.
    first_bad_event_id: int | None = None


def _badge() -> Badge:
    last = last_recorded()
    if last is None or last.ok or last.first_bad_seq is None:
        return Badge(last)
    event_id = Seal.objects.filter(seq=last.first_bad_seq).values_list("event_id", flat=True).first()
    return Badge(last, event_id)


def _filter_query(request: HtmxHttpRequest) -> str:
    return query_without(request, _PAGING)


def _invalid(request: HtmxHttpRequest, form: AuditFilterForm) -> HttpResponse:
    """The page with the form's errors and no events: a filter that cannot be read selects nothing
    rather than everything. 400 for the page, 422 for htmx (which swaps only that in place)."""
    context = _context(request, form, Page(rows=[], next_query=None, first_query="", paged=False))
    response = render_page(request, "audit/audit.html", "rows", context)
    response.status_code = 422 if wants_fragment(request) else 400
    return response


def _context(request: HtmxHttpRequest, form: AuditFilterForm, page: Page) -> dict[str, Any]:
    context: dict[str, Any] = {
        "form": form,
        "events": [EventRow(e, links.target_url(e), links.event_links(e)) for e in page.rows],
        "page": page,
        "target_types": links.target_types(),
        "subjects": _subjects(request, form),
        "filter_query": _filter_query(request),
    }
    if not wants_fragment(request):
        context["badge"] = _badge()
    return context


@login_required
@role_required(ADMIN, AUDITOR)
@require_safe
def audit_events(request: HtmxHttpRequest) -> HttpResponse:
    form = AuditFilterForm(request.GET or None)
    selection = form.selection()
    if selection is None:
        return _invalid(request, form)
    page = page_newest_first(request, selection.events().select_related("seal"), param=_PAGING)
    return render_page(request, "audit/audit.html", "rows", _context(request, form, page))


@login_required
@role_required(ADMIN, AUDITOR)
@require_safe
def audit_export(request: HtmxHttpRequest, fmt: str) -> HttpResponseBase:
    """Every event the filters select (not only the page shown), streamed."""
    if fmt not in ("csv", "json"):
        raise Http404
    form = AuditFilterForm(request.GET or None)
    selection = form.selection()
    if selection is None:
        return _invalid(request, form)
    now = timezone.now()
    response: HttpResponseBase
    if fmt == "csv":
        response = StreamingHttpResponse(exports.csv_lines(selection.events()), content_type="text/csv; charset=utf-8")
    else:
        chunks = exports.json_chunks(selection.events(), selection=selection.as_dict(), exported_at=now)
        response = StreamingHttpResponse(chunks, content_type="application/json")
    response["Content-Disposition"] = f'attachment; filename="{exports.filename(now, fmt)}"'
    add_never_cache_headers(response)
    return response


@login_required
@role_required(ADMIN, AUDITOR)
@require_safe
def audit_bundle(request: HtmxHttpRequest) -> HttpResponseBase:
    """An evidence bundle of what the filters select, or of given events (``decision=``, ``digest=``
    repeated: a decision's chain of custody). It verifies offline with ``python -m audit.verify``."""
    form = BundleForm(request.GET or None)
    selection = form.selection()
    if selection is None:
        return _invalid(request, form)
    try:
        bundle = bundles.export_bundle(selection)
    except (bundles.NothingSelected, bundles.SelectionTooLarge) as exc:
        return _refused(request, f"No bundle: {exc}.")
    except (TimeoutError, RuntimeError) as exc:
        return _refused(request, f"No bundle yet: {exc}.")
    manifest = bundle["manifest"]
    name = f"custos-evidence-{manifest['first_seq']}-{manifest['checkpoint_seq']}.json"
    response = HttpResponse(json.dumps(bundle, ensure_ascii=False, indent=1), content_type="application/json")
    response["Content-Disposition"] = f'attachment; filename="{name}"'
    add_never_cache_headers(response)
    return response


def _refused(request: HtmxHttpRequest, message: str) -> HttpResponseRedirect:
    """Back where the download was asked from (the audit page with its filters, a custody page), saying why."""
    messages.error(request, message)
    referer = request.headers.get("referer", "")
    if referer and url_has_allowed_host_and_scheme(referer, {request.get_host()}, require_https=request.is_secure()):
        return HttpResponseRedirect(referer)
    params = request.GET.copy()
    for param in ("digest", "decision"):
        params.pop(param, None)
    query = params.urlencode()
    return HttpResponseRedirect(reverse("console:audit") + (f"?{query}" if query else ""))


@login_required
@role_required(ADMIN, AUDITOR)
@require_POST
def audit_verify(request: HtmxHttpRequest) -> HttpResponse:
    """Verify the chain from the latest checkpoint it agrees with, and record what was found."""
    result = verify_chain(full=False)
    audit_verification_record(actor=Actor.of(request.user), result=result, full=False)
    if request.htmx:
        return render(request, "audit/audit.html#badge", {"badge": _badge()})
    if result.ok:
        messages.success(
            request, f"The audit chain verified: {result.checked} events checked up to #{result.head_seq}."
        )
    else:
        messages.error(request, f"The audit chain is broken at #{result.first_bad_seq}: {result.problem}")
    return go(request, reverse("console:audit"))
