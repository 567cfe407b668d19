"""Access reviews: campaigns that ask people to certify agents' access, and the items they decide.

A **campaign** says what is reviewed (agents, their grants, delegations and keys, narrowed by filters),
who reviews it (a rule, with a fallback reviewer when the rule's choice may not or cannot decide), when
it is due, how often it recurs, how reviewers are reminded and escalated, what silence means, and when a
reasoned justification is required. Its life is ``draft → active → closed``.

Two standing campaigns hold what no one launches by hand: ``recertification`` (access nearing its end
opens a "renew?" item) and ``micro`` (a drift event, a sponsor who left, a just-in-time grant that was
used, a key reported leaked). Their items land in the same queues.

A **review item** is one thing to decide, assigned to one reviewer (a ``Human`` with a console login),
with the context computed when it was opened: risk, blast radius, a recommendation and its reason.
Every change to either goes through ``reviews.services``, which writes its audit event.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.urls import reverse
from django.utils import timezone

from console import roles
from governance.models import AccessRequest, Agent, AgentKey, Delegation, DriftEvent, Grant, Human, Resource


class CampaignKind(models.TextChoices):
    CAMPAIGN = "campaign", "Campaign"
    RECERTIFICATION = "recertification", "Recertification"
    MICRO = "micro", "Micro-reviews"


class CampaignStatus(models.TextChoices):
    DRAFT = "draft", "Draft"
    ACTIVE = "active", "Active"
    CLOSED = "closed", "Closed"


class Subject(models.TextChoices):
    """What a campaign reviews."""

    AGENT = "agent", "Agents"
    GRANT = "grant", "Agents' grants"
    DELEGATION = "delegation", "Delegations"
    KEY = "key", "Agent keys"


class ReviewerRule(models.TextChoices):
    SPONSOR = "sponsor", "The agent's sponsor"
    SPONSOR_MANAGER = "sponsor_manager", "The sponsor's manager"
    RESOURCE_OWNER = "resource_owner", "The resource's owner"
    NAMED = "named", "A named reviewer"


class Recurrence(models.TextChoices):
    NONE = "none", "Once"
    MONTHLY = "monthly", "Monthly"
    QUARTERLY = "quarterly", "Quarterly"
    CRON = "cron", "Cron expression"


class NoResponse(models.TextChoices):
    """What closing a campaign does with the items nobody decided."""

    REVOKE = "revoke", "Revoke"
    KEEP = "keep", "Keep"
    FLAG = "flag", "Keep and flag"


class JustificationRule(models.TextChoices):
    ALWAYS = "always", "Every decision"
    REVOKE = "revoke", "Revocations only"
    NEVER = "never", "Never"


class Risk(models.TextChoices):
    LOW = "low", "Low"
    MEDIUM = "medium", "Medium"
    HIGH = "high", "High"
    CRITICAL = "critical", "Critical"


RISK_ORDER = {Risk.LOW: 0, Risk.MEDIUM: 1, Risk.HIGH: 2, Risk.CRITICAL: 3}


class CampaignQuerySet(models.QuerySet["Campaign"]):
    def visible_to(self, user: Any) -> CampaignQuerySet:
        """Admins and auditors read every campaign; a reviewer those with an item assigned to them."""
        if roles.reads_everything(user):
            return self
        if roles.REVIEWER in roles.roles_of(user):
            mine = ReviewItem.objects.filter(Q(reviewer__user=user) | Q(escalated_from__user=user))
            return self.filter(pk__in=mine.values("campaign_id"))
        return self.none()


class Campaign(models.Model):
    name = models.CharField(max_length=200)
    description = models.TextField(blank=True, default="")
    kind = models.CharField(max_length=16, choices=CampaignKind.choices, default=CampaignKind.CAMPAIGN)
    status = models.CharField(max_length=8, choices=CampaignStatus.choices, default=CampaignStatus.DRAFT)

    # What is reviewed.
    subjects = models.JSONField(default=list, help_text="Of: agent, grant, delegation, key.")
    filter_resource = models.ForeignKey(Resource, null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    filter_min_sensitivity = models.CharField(max_length=10, blank=True, default="")
    filter_department = models.CharField(max_length=120, blank=True, default="")
    filter_unused_days = models.PositiveIntegerField(null=True, blank=True)

    # Who reviews.
    reviewer_rule = models.CharField(max_length=16, choices=ReviewerRule.choices, default=ReviewerRule.SPONSOR_MANAGER)
    named_reviewer = models.ForeignKey(Human, null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    fallback_reviewer = models.ForeignKey(Human, null=True, blank=True, on_delete=models.PROTECT, related_name="+")

    # When, how often, and what happens when nobody answers.
    duration_days = models.PositiveIntegerField(default=14)
    recurrence = models.CharField(max_length=10, choices=Recurrence.choices, default=Recurrence.NONE)
    cron = models.CharField(max_length=120, blank=True, default="")
    reminder_days = models.JSONField(default=list, help_text="Days before the due date to remind, e.g. [7, 1].")
    escalate_after_days = models.PositiveIntegerField(
        null=True, blank=True, help_text="Days past due after which an item moves to the reviewer's manager."
    )
    no_response = models.CharField(max_length=8, choices=NoResponse.choices, default=NoResponse.FLAG)
    justification = models.CharField(max_length=8, choices=JustificationRule.choices, default=JustificationRule.REVOKE)
    bulk_risks = models.JSONField(default=list, help_text="Risk levels that may be decided in bulk.")

    # A recurring campaign launches a copy of itself (an occurrence) at ``next_launch_at``.
    series = models.ForeignKey("self", null=True, blank=True, on_delete=models.PROTECT, related_name="occurrences")
    next_launch_at = models.DateTimeField(null=True, blank=True)

    created_at = models.DateTimeField(default=timezone.now, editable=False)
    created_by = models.CharField(max_length=200)
    created_by_user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    launched_at = models.DateTimeField(null=True, blank=True)
    due_at = models.DateTimeField(null=True, blank=True)
    closed_at = models.DateTimeField(null=True, blank=True)
    closed_by = models.CharField(max_length=200, blank=True, default="")

    # Launch progress: items are generated in the background after launch.
    items_expected = models.PositiveIntegerField(default=0)
    items_generated = models.PositiveIntegerField(default=0)
    generated_at = models.DateTimeField(null=True, blank=True)
    # Whoever generates the items claims the campaign (a conditional update), renewing the claim per chunk:
    # a second worker, or the beat's catch-up after a lost task, leaves a fresh claim alone.
    generation_claimed_at = models.DateTimeField(null=True, blank=True)

    objects = CampaignQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["status", "next_launch_at"], name="campaign_due_launch_idx")]
        constraints = [
            # One standing campaign of each continuous kind.
            models.UniqueConstraint(
                fields=["kind"], condition=~Q(kind=CampaignKind.CAMPAIGN), name="campaign_one_standing_per_kind"
            ),
            models.CheckConstraint(
                condition=~Q(status=CampaignStatus.CLOSED) | Q(closed_at__isnull=False), name="campaign_closed_has_time"
            ),
            models.CheckConstraint(
                condition=~Q(reviewer_rule=ReviewerRule.NAMED) | Q(named_reviewer__isnull=False),
                name="campaign_named_rule_has_reviewer",
            ),
        ]

    def __str__(self) -> str:
        return self.name

    def get_absolute_url(self) -> str:
        return reverse("console:campaign", args=[self.pk])

    @property
    def is_standing(self) -> bool:
        return self.kind != CampaignKind.CAMPAIGN

    @property
    def generating(self) -> bool:
        return self.status == CampaignStatus.ACTIVE and self.generated_at is None and not self.is_standing

    @property
    def generation_percent(self) -> int:
        if not self.items_expected:
            return 100 if self.generated_at else 0
        return min(100, int(100 * self.items_generated / self.items_expected))

    def needs_justification(self, decision: str) -> bool:
        if self.justification == JustificationRule.ALWAYS:
            return True
        return self.justification == JustificationRule.REVOKE and decision == Decision.REVOKE


class ItemKind(models.TextChoices):
    AGENT = "agent", "Agent"
    GRANT = "grant", "Grant"
    DELEGATION = "delegation", "Delegation"
    KEY = "key", "Key"
    RENEWAL = "renewal", "Renew?"
    DRIFT = "drift", "Drift"
    SPONSOR_INACTIVE = "sponsor_inactive", "Sponsor left or suspended"
    JIT_USED = "jit_used", "Just-in-time grant used"
    KEY_LEAKED = "key_leaked", "Key reported leaked"


class Decision(models.TextChoices):
    CERTIFY = "certify", "Certify"
    REVOKE = "revoke", "Revoke"


class ItemStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    CERTIFIED = "certified", "Certified"
    REVOKED = "revoked", "Revoked"
    KEPT = "kept", "Kept (no response)"
    FLAGGED = "flagged", "Flagged (no response)"
    LAPSED = "lapsed", "Left to expire"
    OBSOLETE = "obsolete", "Ended elsewhere"


DECIDED = (ItemStatus.CERTIFIED, ItemStatus.REVOKED)


_KEY_MAX = 999_999
QUEUE_KEY_LENGTH = 42


def queue_key(risk_score: int, blast_radius: int, due_at: datetime, item_id: int) -> str:
    """The item's place in a queue as one ascending string: higher risk first, then wider blast radius,
    then the earliest due, then the oldest. Fixed-width digits, so the text order is the queue order and
    a page after a marker is a single range on ``reviewitem_queue_idx`` (a keyset over four columns in
    mixed directions makes PostgreSQL scan from the queue's start and filter)."""
    return (
        f"{_KEY_MAX - min(risk_score, _KEY_MAX):06d}{_KEY_MAX - min(blast_radius, _KEY_MAX):06d}"
        f"{max(0, int(due_at.timestamp())):011d}{item_id:019d}"
    )


class ReviewItemQuerySet(models.QuerySet["ReviewItem"]):
    def pending(self) -> ReviewItemQuerySet:
        return self.filter(status=ItemStatus.PENDING)

    def assigned_to(self, user: Any) -> ReviewItemQuerySet:
        """Items whose reviewer is ``user``'s human. Compared with the human's id as a scalar subquery,
        not joined: the planner then reads ``reviewitem_queue_idx`` for that one reviewer in queue order
        and stops at the page's end, instead of sorting all of a big queue for every page."""
        if not getattr(user, "is_authenticated", False):
            return self.none()
        return self.filter(reviewer_id=models.Subquery(Human.objects.filter(user=user).values("pk")[:1]))

    def visible_to(self, user: Any) -> ReviewItemQuerySet:
        """Admins and auditors read every item; a reviewer those assigned to them now or before an
        escalation moved them on."""
        if roles.reads_everything(user):
            return self
        if roles.REVIEWER in roles.roles_of(user):
            return self.filter(Q(reviewer__user=user) | Q(escalated_from__user=user))
        return self.none()

    def overdue(self, at: datetime | None = None) -> ReviewItemQuerySet:
        return self.pending().filter(due_at__lt=at or timezone.now())


class ReviewItem(models.Model):
    campaign = models.ForeignKey(Campaign, on_delete=models.PROTECT, related_name="items")
    kind = models.CharField(max_length=16, choices=ItemKind.choices)
    # What the item is about, unique within its campaign ("grant:12", "renewal:grant:12:2027-01-31T…").
    subject_key = models.CharField(max_length=120)

    # Every item concerns one agent; the rest say which of its accesses.
    agent = models.ForeignKey(Agent, on_delete=models.PROTECT, related_name="review_items")
    grant = models.ForeignKey(Grant, null=True, blank=True, on_delete=models.PROTECT, related_name="review_items")
    delegation = models.ForeignKey(
        Delegation, null=True, blank=True, on_delete=models.PROTECT, related_name="review_items"
    )
    key = models.ForeignKey(AgentKey, null=True, blank=True, on_delete=models.PROTECT, related_name="review_items")
    drift_event = models.ForeignKey(
        DriftEvent, null=True, blank=True, on_delete=models.PROTECT, related_name="review_items"
    )
    access_request = models.ForeignKey(
        AccessRequest, null=True, blank=True, on_delete=models.PROTECT, related_name="review_items"
    )
    label = models.CharField(max_length=300)
    scopes = models.JSONField(default=list)

    reviewer = models.ForeignKey(Human, null=True, blank=True, on_delete=models.PROTECT, related_name="review_items")
    # Why this reviewer: the rule's choice, the fallback (and why), a reassignment or an escalation.
    routing = models.CharField(max_length=300, blank=True, default="")
    escalated_from = models.ForeignKey(Human, null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    escalated_at = models.DateTimeField(null=True, blank=True)

    risk = models.CharField(max_length=8, choices=Risk.choices, default=Risk.MEDIUM)
    # The queue's order: higher first. Risk level, then recommendation and sensitivity, as one integer.
    risk_score = models.PositiveIntegerField(default=0)
    # What the agent and every sub-agent below it can reach: its scopes weighted by sensitivity.
    blast_radius = models.PositiveIntegerField(default=0)
    # The queue's order as one column (``queue_key``): set when the item is opened, never changed.
    queue_key = models.CharField(max_length=QUEUE_KEY_LENGTH, editable=False)
    recommendation = models.CharField(max_length=8, choices=Decision.choices, blank=True, default="")
    recommendation_reason = models.CharField(max_length=300, blank=True, default="")

    created_at = models.DateTimeField(default=timezone.now, editable=False)
    due_at = models.DateTimeField()
    reminders_sent = models.PositiveSmallIntegerField(default=0)
    last_reminded_at = models.DateTimeField(null=True, blank=True)
    # When the reviewer first opened it: how long a decision took, for rubber-stamp signals.
    opened_at = models.DateTimeField(null=True, blank=True)

    status = models.CharField(max_length=10, choices=ItemStatus.choices, default=ItemStatus.PENDING)
    decided_at = models.DateTimeField(null=True, blank=True)
    decided_by = models.CharField(max_length=200, blank=True, default="")
    decided_by_user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    justification = models.TextField(blank=True, default="")
    bulk = models.BooleanField(default=False)
    # When the outcome took effect on the access itself (a revoke, a renewal), and what it did.
    applied_at = models.DateTimeField(null=True, blank=True)
    applied = models.CharField(max_length=300, blank=True, default="")
    renewed_until = models.DateTimeField(null=True, blank=True)

    objects = ReviewItemQuerySet.as_manager()

    class Meta:
        ordering = ["queue_key"]
        indexes = [
            # The queue: a reviewer's pending items in queue order, read by keyset.
            models.Index(fields=["reviewer", "status", "queue_key"], name="reviewitem_queue_idx"),
            models.Index(fields=["campaign", "status"], name="reviewitem_campaign_idx"),
            models.Index(fields=["status", "due_at"], name="reviewitem_due_idx"),
            models.Index(fields=["agent", "status"], name="reviewitem_agent_idx"),
        ]
        constraints = [
            models.UniqueConstraint(fields=["campaign", "subject_key"], name="reviewitem_one_per_subject"),
            models.CheckConstraint(
                condition=Q(status=ItemStatus.PENDING, decided_at__isnull=True)
                | (~Q(status=ItemStatus.PENDING) & Q(decided_at__isnull=False)),
                name="reviewitem_decided_has_time",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.get_kind_display()}: {self.label}"

    def get_absolute_url(self) -> str:
        return reverse("console:review_item", args=[self.pk])

    @property
    def is_pending(self) -> bool:
        return self.status == ItemStatus.PENDING

    def is_overdue(self, at: datetime | None = None) -> bool:
        return self.is_pending and self.due_at < (at or timezone.now())

    @property
    def decision_seconds(self) -> float | None:
        if self.decided_at is None or self.opened_at is None:
            return None
        return (self.decided_at - self.opened_at).total_seconds()


class NotificationKind(models.TextChoices):
    ASSIGNED = "assigned", "New items"
    REMINDER = "reminder", "Reminder"
    ESCALATION = "escalation", "Escalation"
    KEY_ROTATION = "key_rotation", "Key rotation"


class Notification(models.Model):
    """A message to a console user about their reviews, shown with a badge and sent by email. Key
    rotation reminders (no campaign) also reach sponsors without a console login: by ``email`` only."""

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="review_notifications",
    )
    kind = models.CharField(max_length=12, choices=NotificationKind.choices)
    campaign = models.ForeignKey(
        Campaign, null=True, blank=True, on_delete=models.CASCADE, related_name="notifications"
    )
    # Where to email a recipient without a console login; blank: the login's own address.
    email = models.EmailField(blank=True, default="")
    subject = models.CharField(max_length=200)
    body = models.TextField()
    items = models.PositiveIntegerField(default=0)
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    emailed_at = models.DateTimeField(null=True, blank=True)
    read_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["user", "read_at"], name="notification_unread_idx")]
        constraints = [
            models.CheckConstraint(condition=Q(user__isnull=False) | ~Q(email=""), name="notification_has_recipient"),
        ]

    def __str__(self) -> str:
        return self.subject


class KeyReminderReason(models.TextChoices):
    """Why an agent key's sponsor is asked to rotate (or retire) it; ``rotate`` and ``stale`` are the
    key-hygiene flags of ``governance.selectors.key_flags``."""

    EXPIRING = "expiring", "Expires soon"
    ROTATE = "rotate", "Past the maximum age"
    STALE = "stale", "Unused"


class KeyReminder(models.Model):
    """That a key's sponsor was reminded, for one reason: at most once per key and reason (the unique
    constraint is what makes the daily run idempotent, and two runs at once double nothing)."""

    key = models.ForeignKey(AgentKey, on_delete=models.CASCADE, related_name="rotation_reminders")
    reason = models.CharField(max_length=8, choices=KeyReminderReason.choices)
    # The sponsor when reminded (the agent's sponsor may change later).
    sponsor = models.ForeignKey(Human, on_delete=models.PROTECT, related_name="+")
    notification = models.ForeignKey(
        Notification, null=True, blank=True, on_delete=models.SET_NULL, related_name="key_reminders"
    )
    # What the reminder said about the key, as shown with the notification ("expires in 10 days").
    detail = models.CharField(max_length=200)
    created_at = models.DateTimeField(default=timezone.now, editable=False)

    class Meta:
        ordering = ["id"]
        constraints = [models.UniqueConstraint(fields=["key", "reason"], name="keyreminder_once_per_reason")]

    def __str__(self) -> str:
        return f"{self.key} {self.reason}"
