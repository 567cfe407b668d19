"""The review queue: the page reviewers live in. A dense table of one's pending items in risk order, an
item drawer with the context to decide, decisions and reassignment through ``reviews.services``, bulk
certify where the campaign allows it, keyboard shortcuts (static/app.js), and the notifications page."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django import forms
from django.contrib import messages
from django.contrib.auth.base_user import AbstractBaseUser
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.db.models import Prefetch
from django.http import HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404, render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_POST

from audit.services import Actor
from console.errors import DomainError
from console.forms import FilterForm
from console.pages import HtmxHttpRequest, back, render_live, render_page
from console.paging import page_newest_first
from console.roles import ADMIN, REVIEWER, role_required, roles_of
from console.visibility import visibility_of
from governance.models import Agent, Human
from reviews import selectors, services
from reviews.models import (
    Campaign,
    CampaignStatus,
    Decision,
    ItemKind,
    KeyReminder,
    Notification,
    ReviewItem,
    Risk,
)
from reviews.selectors import QueueFilters
from reviews.services.items import MAX_JUSTIFICATION

TEMPLATE = "reviews/queue.html"
SHOW_LABELS = {selectors.MINE: "My items", selectors.UNASSIGNED: "Unassigned", selectors.EVERYONE: "Everyone's"}


class QueueFilterForm(FilterForm):
    show = forms.ChoiceField(required=False, choices=[])
    q = forms.CharField(required=False, max_length=100, label="Search")
    campaign = forms.TypedChoiceField(required=False, coerce=int, empty_value=None, choices=[])
    kind = forms.ChoiceField(required=False, choices=[("", "Any kind"), *ItemKind.choices])
    risk = forms.ChoiceField(required=False, choices=[("", "Any risk"), *reversed(Risk.choices)])
    recommendation = forms.ChoiceField(
        required=False,
        choices=[
            ("", "Any advice"),
            ("revoke", "Advice: revoke"),
            ("certify", "Advice: certify"),
            ("none", "No advice"),
        ],
    )
    overdue = forms.BooleanField(required=False, label="Overdue only")

    def __init__(self, *args: Any, user: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        shows = selectors.shows_allowed(user)
        show_field = self.fields["show"]
        assert isinstance(show_field, forms.ChoiceField)
        show_field.choices = [(s, SHOW_LABELS[s]) for s in shows]
        campaigns = Campaign.objects.visible_to(user).filter(status=CampaignStatus.ACTIVE).order_by("name", "id")
        campaign_field = self.fields["campaign"]
        assert isinstance(campaign_field, forms.ChoiceField)
        campaign_field.choices = [("", "Any campaign"), *((c.pk, c.name) for c in campaigns.only("id", "name"))]

    def filters(self, user: Any) -> QueueFilters:
        v = self.values()
        shows = selectors.shows_allowed(user)
        return QueueFilters(
            show=v.get("show") or (shows[0] if shows else selectors.MINE),
            campaign=v.get("campaign"),
            kind=v.get("kind", ""),
            risk=v.get("risk", ""),
            recommendation=v.get("recommendation", ""),
            overdue=bool(v.get("overdue")),
            q=v.get("q", ""),
        )


class DecisionForm(forms.Form):
    decision = forms.ChoiceField(choices=Decision.choices)
    justification = forms.CharField(required=False, max_length=MAX_JUSTIFICATION)


class ReassignForm(forms.Form):
    reviewer = forms.ModelChoiceField(queryset=Human.objects.all())
    reason = forms.CharField(required=False, max_length=250)


@dataclass(frozen=True, slots=True)
class QueueRow:
    item: ReviewItem
    can_decide: bool
    # Why the row's checkbox is off, or "" when it may be certified in bulk.
    bulk_refusal: str
    overdue: bool
    agent_visible: bool


def _rows(request: HtmxHttpRequest, items: list[ReviewItem], now: datetime) -> list[QueueRow]:
    user = request.user
    # Only this page's agents (the viewer's whole visible set would grow with a reviewer's queue).
    seen = set(Agent.objects.visible_to(user).filter(pk__in={i.agent_id for i in items}).values_list("pk", flat=True))
    rows = []
    for item in items:
        can_decide = services.may_decide(user, item)
        if not can_decide:
            refusal = "Read-only: not yours to decide."
        elif item.risk not in item.campaign.bulk_risks:
            refusal = f"{item.get_risk_display()} risk: this campaign wants it decided on its own."
        else:
            refusal = ""
        rows.append(
            QueueRow(
                item=item,
                can_decide=can_decide,
                bulk_refusal=refusal,
                overdue=item.due_at < now,
                agent_visible=item.agent_id in seen,
            )
        )
    return rows


@login_required
@role_required()
def queue(request: HtmxHttpRequest) -> HttpResponse:
    """The pending items of the user's queue in risk order, filtered, a keyset page at a time."""
    user, now = request.user, timezone.now()
    form = QueueFilterForm(request.GET or None, user=user)
    filters = form.filters(user)
    page = selectors.page_queue(request, selectors.queue_items(user, filters, now))
    context = {
        "form": form,
        "filters": filters,
        "rows": _rows(request, page.rows, now),
        "page": page,
        "now": now,
        "decides": bool(roles_of(user) & {ADMIN, REVIEWER}),
        "open_item": request.GET.get("open", ""),
    }
    return render_page(request, TEMPLATE, "rows", context)


def _visible_item(user: Any, pk: int) -> ReviewItem:
    return get_object_or_404(selectors.item_for_drawer(ReviewItem.objects.visible_to(user)), pk=pk)


def _drawer_context(request: HtmxHttpRequest, item: ReviewItem, **extra: Any) -> dict[str, Any]:
    user = request.user
    can_reassign = item.is_pending and services.may_reassign(user, item)
    ctx = selectors.item_context(item, request.user, reassigning=can_reassign)
    return {
        "ctx": ctx,
        "item": item,
        "can_decide": item.is_pending and services.may_decide(user, item),
        "can_reassign": can_reassign,
        "needs_certify": item.campaign.needs_justification(Decision.CERTIFY),
        "needs_revoke": item.campaign.needs_justification(Decision.REVOKE),
        "renewal": item.kind == ItemKind.RENEWAL,
        "agent_visible": visibility_of(request).sees_id(Agent, item.agent_id),
        "now": timezone.now(),
        **extra,
    }


@login_required
@role_required()
def item_detail(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    """The item drawer (for htmx) or the item on a page of its own. Opening it records the first
    opening, which is how long a decision took for the rubber-stamp signals."""
    user = request.user
    item = _visible_item(user, pk)
    services.review_mark_opened(actor=Actor.of(user), user=user, item=item)
    context = _drawer_context(request, item)
    if request.htmx:
        return render(request, f"{TEMPLATE}#drawer", context)
    return render(request, "reviews/item.html", context)


def _drawer_response(
    request: HtmxHttpRequest, item: ReviewItem, *, error: DomainError | None = None, **extra: Any
) -> HttpResponse:
    context = _drawer_context(request, item, error=error, **extra)
    return render(request, f"{TEMPLATE}#drawer", context, status=422 if error else 200)


def _after_decision(request: HtmxHttpRequest, item: ReviewItem, message: str) -> HttpResponse:
    """The row goes (out of band), the badge updates and the next item opens in the drawer."""
    user = request.user
    following = selectors.next_in_queue(user, item)
    if following is not None:
        following = _visible_item(user, following.pk)
        services.review_mark_opened(actor=Actor.of(user), user=user, item=following)
        context = _drawer_context(request, following)
    else:
        context = {"item": None, "now": timezone.now()}
    context |= {"done": item, "done_message": message, "oob_badge": True}
    return render(request, f"{TEMPLATE}#drawer", context)


@login_required
@role_required(ADMIN, REVIEWER)
@require_POST
def item_decide(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    user = request.user
    item = _visible_item(user, pk)
    if item.is_pending and not services.may_decide(user, item):
        raise PermissionDenied
    form = DecisionForm(request.POST)
    error: DomainError | None = None
    if not form.is_valid():
        error = DomainError(
            f"Choose certify or revoke; a justification is at most {MAX_JUSTIFICATION} characters.", code="invalid"
        )
    else:
        try:
            item = services.review_decide(
                actor=Actor.of(user),
                user=user,
                item=item,
                decision=form.cleaned_data["decision"],
                justification=form.cleaned_data["justification"],
            )
        except DomainError as exc:
            error = exc
    message = f"{item.get_status_display()}: {item.label}" + (f" ({item.applied})" if item.applied else "")
    if not request.htmx:
        if error:
            messages.error(request, error.detail)
            return HttpResponseRedirect(reverse("console:review_item", args=[pk]))
        messages.success(request, message)
        return HttpResponseRedirect(back(request, reverse("console:reviews")))
    if error:
        # Re-read: a refusal may mean someone else decided it first.
        fresh = _visible_item(user, pk)
        justification = form.data.get("justification", "")
        return _drawer_response(request, fresh, error=error, justification=justification)
    return _after_decision(request, item, message)


@login_required
@role_required(ADMIN, REVIEWER)
@require_POST
def item_reassign(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    user = request.user
    item = _visible_item(user, pk)
    if item.is_pending and not services.may_reassign(user, item):
        raise PermissionDenied
    form = ReassignForm(request.POST)
    error: DomainError | None = None
    if not form.is_valid():
        error = DomainError("Choose who should review it.", code="invalid", field="reviewer")
    else:
        try:
            item = services.review_reassign(
                actor=Actor.of(user),
                user=user,
                item=item,
                to=form.cleaned_data["reviewer"],
                reason=form.cleaned_data["reason"],
            )
        except DomainError as exc:
            error = exc
    if not request.htmx:
        if error:
            messages.error(request, error.detail)
            return HttpResponseRedirect(reverse("console:review_item", args=[pk]))
        messages.success(request, f"Handed to {item.reviewer}: {item.label}")
        return HttpResponseRedirect(back(request, reverse("console:reviews")))
    if error:
        return _drawer_response(request, _visible_item(user, pk), error=error)
    if services.may_decide(user, item):
        # Still theirs to decide (an admin handing an unassigned item on keeps reading it): show it as it is now.
        return _drawer_response(request, _visible_item(user, pk))
    return _after_decision(request, item, f"Handed to {item.reviewer}: {item.label}")


@login_required
@role_required(ADMIN, REVIEWER)
@require_POST
def certify_bulk(request: HtmxHttpRequest) -> HttpResponse:
    """Certify the ticked items; the service skips, with the reason, those the campaign wants decided one
    by one or the user may not decide."""
    user = request.user
    ids = [int(v) for v in request.POST.getlist("items") if v.isascii() and v.isdigit() and len(v) < 19]
    items = list(ReviewItem.objects.visible_to(user).filter(pk__in=ids).select_related("campaign"))
    result: services.BulkResult | None = None
    error: DomainError | None = None
    if not items:
        error = DomainError("Tick the items to certify first.", code="nothing_selected", field="items")
    else:
        try:
            result = services.review_certify_bulk(actor=Actor.of(user), user=user, items=items)
        except DomainError as exc:
            error = exc
    labels = {item.pk: item.label for item in items}
    skipped = [(pk, labels.get(pk, f"item {pk}"), why) for pk, why in (result.skipped.items() if result else [])]
    if not request.htmx:
        if error:
            messages.error(request, error.detail)
        else:
            assert result is not None
            messages.success(request, f"Certified {len(result.decided)} item{'s' if len(result.decided) != 1 else ''}.")
            for _pk, label, why in skipped:
                messages.warning(request, f"Skipped {label}: {why}")
        return HttpResponseRedirect(back(request, reverse("console:reviews")))
    context = {"result": result, "skipped": skipped, "error": error, "oob_badge": True}
    return render(request, f"{TEMPLATE}#bulk-result", context, status=422 if error else 200)


@login_required
@role_required()
def notifications(request: HtmxHttpRequest) -> HttpResponse:
    """The user's review notifications, newest first, the unread ones flagged new."""
    user = request.user
    if not isinstance(user, AbstractBaseUser):  # login_required saw to that; this tells the type checker
        raise PermissionDenied
    # A key rotation reminder lists its keys with links to their agents, those the user may still see
    # (a sponsor who handed an agent on no longer does); one more query for the page, however many.
    reminders = KeyReminder.objects.filter(key__agent__in=Agent.objects.visible_to(user)).select_related("key__agent")
    notes = Notification.objects.filter(user=user).select_related("campaign")
    page = page_newest_first(request, notes.prefetch_related(Prefetch("key_reminders", queryset=reminders)))
    unread = {n.pk for n in page.rows if n.read_at is None}
    context = {"notifications": page.rows, "page": page, "unread": unread}
    return render_page(request, "reviews/notifications.html", "rows", context)


@login_required
@role_required()
@require_POST
def notifications_read(request: HtmxHttpRequest) -> HttpResponse:
    """Mark the user's notifications read (a POST: reading a page changes nothing)."""
    marked = services.notifications_mark_read(user=request.user)
    if marked:
        messages.success(request, f"{marked} notification{'s' if marked != 1 else ''} marked read.")
    return HttpResponseRedirect(reverse("console:review_notifications"))


@login_required
@role_required()
def notifications_badge(request: HtmxHttpRequest) -> HttpResponse:
    """The navigation badge alone, polled by htmx: pending items plus unread notifications."""
    return render_live(request, "base.html#reviews-badge", {})
