"""Reads for the review queue: whose items, in what order, a page at a time, and what the item drawer shows.

The queue's order is ``(-risk_score, -blast_radius, due_at, id)``, kept as one column, ``queue_key`` (the
model's ``Meta.ordering`` and the ``reviewitem_queue_idx`` index). Pages are keyset pages: the marker is the
last row's key, so the hundredth page costs what the first does and no page counts the campaign.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from django.db.models import Q
from django.http import HttpRequest
from django.utils import timezone

from console import roles
from console.paging import PAGE_SIZE, BadMarker, Page, page_of
from governance.models import Delegation, Human, HumanStatus
from governance.selectors import ScopeUse, scope_usage
from reviews.models import DECIDED, QUEUE_KEY_LENGTH, Campaign, ItemKind, Notification, ReviewItem, ReviewItemQuerySet

USAGE_WINDOW = timedelta(days=90)
MARKER_PARAM = "after"
PRIOR_DECISIONS = 10

# Which pending items a queue shows.
MINE = "mine"
UNASSIGNED = "unassigned"
EVERYONE = "all"


@dataclass(frozen=True, slots=True)
class QueueFilters:
    show: str = MINE
    campaign: int | None = None
    kind: str = ""
    risk: str = ""
    # "certify", "revoke", or "none" for items without a recommendation.
    recommendation: str = ""
    overdue: bool = False
    q: str = ""


def shows_allowed(user: Any) -> list[str]:
    """Which queues the user may open: a reviewer their own; an admin also the unassigned items (which they
    may decide) and everyone's; an auditor everyone's, read-only."""
    held = roles.roles_of(user)
    allowed: list[str] = []
    if held & {roles.ADMIN, roles.REVIEWER}:
        allowed.append(MINE)
    if roles.ADMIN in held:
        allowed.append(UNASSIGNED)
    if held & {roles.ADMIN, roles.AUDITOR}:
        allowed.append(EVERYONE)
    return allowed


def pending_items(user: Any, show: str) -> ReviewItemQuerySet:
    """The pending items of one queue, or none when ``show`` is not one the user may open."""
    if show not in shows_allowed(user):
        return ReviewItem.objects.none()
    pending = ReviewItem.objects.pending()
    if show == MINE:
        return pending.assigned_to(user)
    if show == UNASSIGNED:
        return pending.filter(reviewer__isnull=True)
    return pending.visible_to(user)


def queue_items(user: Any, filters: QueueFilters, now: datetime | None = None) -> ReviewItemQuerySet:
    qs = pending_items(user, filters.show)
    if filters.campaign is not None:
        qs = qs.filter(campaign_id=filters.campaign)
    if filters.kind:
        qs = qs.filter(kind=filters.kind)
    if filters.risk:
        qs = qs.filter(risk=filters.risk)
    if filters.recommendation == "none":
        qs = qs.filter(recommendation="")
    elif filters.recommendation:
        qs = qs.filter(recommendation=filters.recommendation)
    if filters.overdue:
        qs = qs.filter(due_at__lt=now or timezone.now())
    if filters.q:
        # The agent's name as the item recorded it is the reviewer's to read: the item is theirs.
        qs = qs.filter(Q(agent__name__icontains=filters.q) | Q(label__icontains=filters.q))
    return qs.select_related("campaign", "agent", "reviewer")


# --- Keyset paging in queue order --------------------------------------------------------------


def encode_marker(item: ReviewItem) -> str:
    return item.queue_key


def decode_marker(value: str, *, param: str = MARKER_PARAM) -> str:
    """The queue key a marker carries; ``BadMarker`` (a 400) for anything ``encode_marker`` did not write."""
    if len(value) != QUEUE_KEY_LENGTH or not (value.isascii() and value.isdigit()):
        raise BadMarker(param)
    return value


def after(qs: ReviewItemQuerySet, key: str) -> ReviewItemQuerySet:
    """Rows strictly after the row whose queue key is ``key``, in queue order: one index range."""
    return qs.filter(queue_key__gt=key)


def page_queue(request: HttpRequest, qs: ReviewItemQuerySet, *, size: int | None = None) -> Page:
    """One page of ``qs`` in queue order, from just after the marker: one query, no OFFSET, no COUNT."""
    qs = qs.order_by("queue_key")
    value = request.GET.get(MARKER_PARAM, "")
    if value:
        qs = after(qs, decode_marker(value))
    return page_of(request, qs, MARKER_PARAM, encode_marker, bool(value), size=size or PAGE_SIZE)


def next_in_queue(user: Any, item: ReviewItem) -> ReviewItem | None:
    """The item to open after deciding ``item``: the next of the user's own pending items in queue
    order, or the first one when ``item`` was the last."""
    mine = queue_items(user, QueueFilters(show=MINE if item.reviewer_id else UNASSIGNED))
    found = after(mine, item.queue_key).order_by("queue_key").first()
    return found or mine.exclude(pk=item.pk).order_by("queue_key").first()


# The navigation badge counts this far and then says "99+": a big queue costs no more than a small one.
BADGE_CAP = 99


def badge_count(user: Any) -> int:
    """The user's pending items plus their unread notifications, each counted no further than past the
    cap, in one query (the navigation badge)."""
    pending = ReviewItem.objects.pending().assigned_to(user).order_by().values("pk")[: BADGE_CAP + 1]
    unread = Notification.objects.filter(user=user, read_at__isnull=True).order_by().values("pk")[: BADGE_CAP + 1]
    # The limits sit inside IN (…): SQLite refuses a LIMIT on a member of the UNION itself.
    items = ReviewItem.objects.filter(pk__in=pending).order_by().values("pk")
    notes = Notification.objects.filter(pk__in=unread).order_by().values("pk")
    return items.union(notes, all=True).count()


# --- The item drawer ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ScopeLine:
    scope: str
    use: ScopeUse | None


@dataclass
class ItemContext:
    """Everything the drawer shows beside the item itself, read once when it is opened."""

    item: ReviewItem
    scopes: list[ScopeLine]
    # Delegation items: the link and its parents up to the root human; others: the agent's links in force.
    # Nearest first; None for a link above the reviewed one that lies outside the viewer's view.
    chain: list[Delegation | None]
    chain_is_lineage: bool
    prior: list[ReviewItem]
    overdue: bool
    reviewers: list[Human] = field(default_factory=list)

    @property
    def used_since_opened(self) -> bool:
        """Whether the access was used after the item was opened: advice to revoke for lack of use was
        right then and may not be now."""
        return any(line.use is not None and line.use.last_at > self.item.created_at for line in self.scopes)


def item_for_drawer(qs: ReviewItemQuerySet) -> ReviewItemQuerySet:
    return qs.select_related(
        "campaign",
        "agent__sponsor",
        "agent__parent",
        "reviewer",
        "escalated_from",
        "grant__resource",
        "delegation__root_human",
        "key",
        "drift_event",
        "access_request",
    )


def _lineage(link: Delegation) -> list[Delegation]:
    """The link and its ancestors, nearest first. Chains are a few links deep (``max_depth`` bounds them):
    one query per level, each by primary key."""
    chain = [link]
    seen = {link.pk}
    while chain[-1].parent_id is not None and chain[-1].parent_id not in seen:
        parent = Delegation.objects.select_related("root_human", "delegate").get(pk=chain[-1].parent_id)
        seen.add(parent.pk)
        chain.append(parent)
    return chain


def item_context(
    item: ReviewItem, viewer: Any, *, reassigning: bool = False, now: datetime | None = None
) -> ItemContext:
    now = now or timezone.now()
    usage = scope_usage([item.agent_id], now - USAGE_WINDOW)
    scopes = list(item.scopes) or sorted(scope for agent_id, scope in usage if agent_id == item.agent_id)
    lines = [ScopeLine(scope, usage.get((item.agent_id, scope))) for scope in scopes]
    chain: list[Delegation | None]
    if item.kind == ItemKind.DELEGATION and item.delegation is not None:
        lineage = True
        links = _lineage(item.delegation)
        # A link above the one under review may lie outside the viewer's view (made in another line):
        # it is shown as a link, not as what it says.
        ids = [link.pk for link in links]
        seen_links = set(Delegation.objects.visible_to(viewer).filter(pk__in=ids).values_list("pk", flat=True))
        chain = [link if link.pk in seen_links else None for link in links]
    else:
        chain = list(
            Delegation.objects.active(now)
            .filter(delegate_id=item.agent_id)
            .select_related("root_human", "delegate")
            .order_by("-created_at", "-id")[:20]
        )
        lineage = False
    # Earlier decisions on this very access: the reviewer who now answers for it reads how it was judged
    # before, whoever judged it; a campaign they take no part in is not named.
    prior = list(
        ReviewItem.objects.filter(subject_key=item.subject_key, status__in=DECIDED)
        .exclude(campaign_id=item.campaign_id)
        .select_related("campaign")
        .order_by("-decided_at", "-id")[:PRIOR_DECISIONS]
    )
    seen = set(
        Campaign.objects.visible_to(viewer).filter(pk__in={p.campaign_id for p in prior}).values_list("pk", flat=True)
    )
    for earlier in prior:
        if earlier.campaign_id not in seen:
            earlier.campaign.name = "an earlier campaign"
    reviewers = reviewer_choices(viewer, exclude=item.reviewer_id) if reassigning else []
    return ItemContext(
        item=item,
        scopes=lines,
        chain=chain,
        chain_is_lineage=lineage,
        prior=prior,
        overdue=item.is_overdue(now),
        reviewers=reviewers,
    )


def reviewer_choices(viewer: Any, exclude: int | None = None) -> list[Human]:
    """Humans an item may be handed to: active, with a console login holding the reviewer or admin role,
    among those the viewer sees (a reviewer hands work to their own reports; an admin to anyone). The
    service re-checks, separation of duties included."""
    qs = (
        Human.objects.visible_to(viewer)
        .filter(status=HumanStatus.ACTIVE, user__isnull=False, user__is_active=True)
        .filter(Q(user__groups__name__in=[roles.REVIEWER, roles.ADMIN]) | Q(user__is_superuser=True))
        .distinct()
        .order_by("name", "id")
    )
    if exclude is not None:
        qs = qs.exclude(pk=exclude)
    return list(qs[:500])
