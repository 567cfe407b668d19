"""Just-in-time access requests and drift events."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.db import models
from django.db.models import Q
from django.utils import timezone

from console import roles
from governance.models.access import Delegation
from governance.models.identities import Agent, Human


class AccessRequestStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    APPROVED = "approved", "Approved"
    DENIED = "denied", "Denied"
    EXPIRED = "expired", "Expired"


class AccessRequestQuerySet(models.QuerySet["AccessRequest"]):
    def pending(self, at: datetime | None = None) -> AccessRequestQuerySet:
        """Still awaiting a decision at ``at``: a request past its lapse time is not, swept or not."""
        at = at or timezone.now()
        return self.filter(status=AccessRequestStatus.PENDING, expires_at__gt=at)

    def lapsed(self, at: datetime | None = None) -> AccessRequestQuerySet:
        at = at or timezone.now()
        return self.filter(
            Q(status=AccessRequestStatus.EXPIRED) | Q(status=AccessRequestStatus.PENDING, expires_at__lte=at)
        )

    def visible_to(self, user: Any) -> AccessRequestQuerySet:
        if roles.reads_everything(user):
            return self
        if roles.REVIEWER in roles.roles_of(user):
            return self.filter(Q(approver__user=user) | Q(agent__sponsor__user=user))
        return self.none()

    def decidable_by(self, user: Any) -> AccessRequestQuerySet:
        """Those ``user`` may approve or deny: ``services.may_decide`` as a query. An auditor reads
        every request and decides none."""
        if roles.is_admin(user):
            return self
        if roles.REVIEWER in roles.roles_of(user):
            return self.filter(Q(approver__user=user) | Q(agent__sponsor__user=user))
        return self.none()


class AccessRequest(models.Model):
    """Just-in-time: an agent asks, mid-task, for a scope it was not delegated."""

    agent = models.ForeignKey(Agent, on_delete=models.PROTECT, related_name="access_requests")
    # The delegation the agent was acting under, if any: its root human decides.
    delegation = models.ForeignKey(
        Delegation, null=True, blank=True, on_delete=models.PROTECT, related_name="access_requests"
    )
    approver = models.ForeignKey(Human, on_delete=models.PROTECT, related_name="access_requests_to_decide")
    scope = models.CharField(max_length=200)
    justification = models.TextField()
    intent = models.CharField(max_length=500, blank=True, default="")
    session_id = models.CharField(max_length=200, blank=True, default="")
    requested_duration = models.DurationField()
    status = models.CharField(max_length=10, choices=AccessRequestStatus.choices, default=AccessRequestStatus.PENDING)
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    expires_at = models.DateTimeField(help_text="An unanswered request lapses at this time.")
    decided_at = models.DateTimeField(null=True, blank=True)
    decided_by = models.CharField(max_length=200, blank=True, default="")
    decision_note = models.TextField(blank=True, default="")
    resulting_delegation = models.OneToOneField(
        Delegation, null=True, blank=True, on_delete=models.PROTECT, related_name="from_access_request"
    )

    objects = AccessRequestQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["approver", "status"], name="accessrequest_approver_idx")]

    def __str__(self) -> str:
        return f"{self.agent} asks {self.scope}"

    @property
    def ref_label(self) -> str:
        # Its approver may see a request whose agent they may not (console.visibility).
        return f"request #{self.pk} for {self.scope}"

    def status_at(self, at: datetime | None = None) -> str:
        """An unswept pending request past its lapse time has lapsed already."""
        at = at or timezone.now()
        if self.status == AccessRequestStatus.PENDING and self.expires_at <= at:
            return AccessRequestStatus.EXPIRED
        return self.status


class DriftEventQuerySet(models.QuerySet["DriftEvent"]):
    def open(self) -> DriftEventQuerySet:
        return self.filter(acknowledged_at__isnull=True)

    def visible_to(self, user: Any) -> DriftEventQuerySet:
        if roles.reads_everything(user):
            return self
        if roles.REVIEWER in roles.roles_of(user):
            return self.filter(agent__in=Agent.objects.visible_to(user))
        return self.none()


class DriftEvent(models.Model):
    """An agent behaving outside what it was delegated, e.g. repeated out-of-scope attempts."""

    agent = models.ForeignKey(Agent, on_delete=models.PROTECT, related_name="drift_events")
    kind = models.CharField(max_length=60)
    reason = models.CharField(max_length=60, help_text="The denial reason that crossed the threshold.")
    count = models.PositiveIntegerField()
    window_seconds = models.PositiveIntegerField()
    detail = models.JSONField(default=dict)
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    acknowledged_at = models.DateTimeField(null=True, blank=True)
    acknowledged_by = models.CharField(max_length=200, blank=True, default="")

    objects = DriftEventQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"{self.agent}: {self.kind}"
