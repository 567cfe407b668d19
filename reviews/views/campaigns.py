"""Campaign pages: the list, creating and editing a draft, its preview and launch, the generation's
progress, the campaign's figures while it runs, closing it, and its evidence reports."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse, StreamingHttpResponse
from django.http.response import HttpResponseBase
from django.shortcuts import get_object_or_404, render
from django.urls import reverse
from django.utils import timezone
from django.utils.cache import add_never_cache_headers
from django.views.decorators.http import require_POST

from audit.services import Actor
from console.errors import DomainError
from console.forms import apply_domain_error
from console.pages import HtmxHttpRequest, go, render_form, render_live, render_page
from console.paging import page_newest_first
from console.queries import count_of
from console.roles import ADMIN, is_admin, reads_everything, role_required
from reviews import reports, services, stats
from reviews.forms import CampaignForm, editable
from reviews.models import Campaign, CampaignStatus, ItemStatus, ReviewItem

TEMPLATE = "reviews/campaign.html"
LIST_TEMPLATE = "reviews/campaigns.html"


def visible_campaign(request: HttpRequest, pk: int) -> Campaign:
    campaigns = Campaign.objects.visible_to(request.user).select_related(
        "named_reviewer", "fallback_reviewer", "filter_resource"
    )
    return get_object_or_404(campaigns, pk=pk)


@login_required
@role_required()
def campaigns(request: HtmxHttpRequest) -> HttpResponse:
    user, now = request.user, timezone.now()
    # Progress counts what the viewer may open: a reviewer's own items, everything for admins and auditors.
    items = ReviewItem.objects.visible_to(user)
    qs = Campaign.objects.visible_to(user).annotate(
        total=count_of(items, "campaign"),
        decided=count_of(items.exclude(status=ItemStatus.PENDING), "campaign"),
        overdue=count_of(items.overdue(now), "campaign"),
    )
    page = page_newest_first(request, qs)
    context: dict[str, Any] = {"campaigns": page.rows, "page": page, "can_create": is_admin(user), "now": now}
    return render_page(request, LIST_TEMPLATE, "rows", context)


def _form_response(request: HtmxHttpRequest, form: CampaignForm, campaign: Campaign | None) -> HttpResponse:
    action = reverse("console:campaign_edit", args=[campaign.pk]) if campaign else reverse("console:campaign_create")
    title = f"Edit {campaign.name}" if campaign else "New campaign"
    context = {"form": form, "campaign": campaign, "action": action}
    status = 422 if form.is_bound else 200
    return render_form(request, LIST_TEMPLATE, "campaign-form", context, title=title, status=status)


@login_required
@role_required(ADMIN)
def campaign_create(request: HtmxHttpRequest) -> HttpResponse:
    form = CampaignForm(request.POST or None, user=request.user)
    if request.method == "POST" and form.is_valid():
        try:
            campaign = services.campaign_create(actor=Actor.of(request.user), **form.values())
        except DomainError as error:
            apply_domain_error(form, error)
        else:
            messages.success(request, f"Draft {campaign.name} saved. Check the preview, then launch it.")
            return go(request, campaign.get_absolute_url())
    return _form_response(request, form, None)


@login_required
@role_required(ADMIN)
def campaign_edit(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    campaign = visible_campaign(request, pk)
    if not editable(campaign):
        messages.error(request, f"{campaign.name} is {campaign.status}: its settings stay as launched.")
        return go(request, campaign.get_absolute_url())
    form = CampaignForm(request.POST or None, user=request.user, campaign=campaign)
    if request.method == "POST" and form.is_valid():
        try:
            services.campaign_update(actor=Actor.of(request.user), campaign=campaign, **form.values())
        except DomainError as error:
            apply_domain_error(form, error)
        else:
            messages.success(request, f"Saved {campaign.name}.")
            return go(request, campaign.get_absolute_url())
    return _form_response(request, form, campaign)


def _detail_context(request: HttpRequest, campaign: Campaign) -> dict[str, Any]:
    user, now = request.user, timezone.now()
    admin = is_admin(user)
    context: dict[str, Any] = {
        "campaign": campaign,
        "now": now,
        "is_admin": admin,
        "can_edit": admin and editable(campaign),
        "can_launch": admin and campaign.status == CampaignStatus.DRAFT and not campaign.is_standing,
        "can_close": admin
        and campaign.status == CampaignStatus.ACTIVE
        and not campaign.is_standing
        and not campaign.generating,
    }
    if campaign.status == CampaignStatus.DRAFT and not campaign.is_standing:
        context["preview"] = services.campaign_preview(campaign)
        return context
    if campaign.generating:
        return context
    items = ReviewItem.objects.visible_to(user)
    rows = stats.reviewer_rows(campaign, items, now)
    context |= {
        "rows": rows,
        "totals": stats.totals(rows),
        "overdue_items": stats.overdue_items(campaign, items),
        "outcomes": stats.outcomes(campaign, items),
        "outcome_labels": stats.OUTCOME_LABELS,
        "rubber_stamp_seconds": settings.CUSTOS_RUBBER_STAMP_SECONDS,
        "show_signals": admin,
    }
    if reads_everything(user):
        context["sent"] = stats.notifications_sent(campaign)
    return context


@login_required
@role_required()
def campaign_detail(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    return render(request, TEMPLATE, _detail_context(request, visible_campaign(request, pk)))


@login_required
@role_required()
def campaign_progress(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    """The generation's progress bar alone, polled by htmx while the items are generated."""
    campaign = visible_campaign(request, pk)
    response = render_live(request, f"{TEMPLATE}#progress", {"campaign": campaign})
    if request.htmx and not campaign.generating:
        response["HX-Refresh"] = "true"  # done: the page now has the campaign's figures to show
    return response


@login_required
@role_required(ADMIN)
@require_POST
def campaign_launch(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    campaign = visible_campaign(request, pk)
    try:
        services.campaign_launch(actor=Actor.of(request.user), campaign=campaign)
    except DomainError as error:
        messages.error(request, error.detail)
    else:
        messages.success(request, f"Launched {campaign.name}: its items are being generated.")
    return go(request, campaign.get_absolute_url())


@login_required
@role_required(ADMIN)
@require_POST
def campaign_close(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    campaign = visible_campaign(request, pk)
    try:
        campaign = services.campaign_close(actor=Actor.of(request.user), campaign=campaign)
    except DomainError as error:
        messages.error(request, error.detail)
    else:
        messages.success(request, f"Closed {campaign.name}; undecided items: {campaign.get_no_response_display()}.")
    return go(request, campaign.get_absolute_url())


@login_required
@role_required()
def campaign_report(request: HtmxHttpRequest, pk: int, fmt: str) -> HttpResponseBase:
    """The campaign's evidence, one row per item the viewer may see (a reviewer: their own items)."""
    if fmt not in ("csv", "json"):
        raise Http404
    campaign = visible_campaign(request, pk)
    items = ReviewItem.objects.visible_to(request.user)
    count = reports.report_items(campaign, items).count()
    services.campaign_export_logged(actor=Actor.of(request.user), campaign=campaign, fmt=fmt, items=count)
    if fmt == "csv":
        response = StreamingHttpResponse(reports.csv_lines(campaign, items), content_type="text/csv; charset=utf-8")
    else:
        chunks = reports.json_chunks(campaign, items, generated_at=timezone.now())
        response = StreamingHttpResponse(chunks, content_type="application/json")
    response["Content-Disposition"] = f'attachment; filename="{reports.filename(campaign, fmt)}"'
    add_never_cache_headers(response)
    return response
