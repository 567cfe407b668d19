"""Grants (entitlements to one scope) and delegation links (who may act for whom, with what)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.urls import reverse
from django.utils import timezone

from console import roles
from governance.models.identities import Agent, Human, Resource, make_scope

# --- Grants ---------------------------------------------------------------------------------


class GrantStatus(models.TextChoices):
    ACTIVE = "active", "Active"
    EXPIRED = "expired", "Expired"
    REVOKED = "revoked", "Revoked"


class GrantSource(models.TextChoices):
    DIRECT = "direct", "Direct"
    JIT = "jit", "Just-in-time"
    RENEWAL = "renewal", "Renewal"


class GrantQuerySet(models.QuerySet["Grant"]):
    def active(self, at: datetime | None = None) -> GrantQuerySet:
        """In force at ``at``: status active, started, and not past its expiry (from timestamps,
        so correctness never waits for the expiry sweep)."""
        at = at or timezone.now()
        return self.filter(status=GrantStatus.ACTIVE, valid_from__lte=at).filter(
            Q(expires_at__isnull=True) | Q(expires_at__gt=at)
        )

    def expiring_before(self, moment: datetime) -> GrantQuerySet:
        return self.filter(status=GrantStatus.ACTIVE, expires_at__lte=moment)

    def visible_to(self, user: Any) -> GrantQuerySet:
        if roles.reads_everything(user):
            return self
        if roles.REVIEWER in roles.roles_of(user):
            return self.filter(
                Q(holder_agent__in=Agent.objects.visible_to(user)) | Q(holder_human__in=Human.objects.visible_to(user))
            )
        return self.none()


class Grant(models.Model):
    holder_human = models.ForeignKey(Human, null=True, blank=True, on_delete=models.PROTECT, related_name="grants")
    holder_agent = models.ForeignKey(Agent, null=True, blank=True, on_delete=models.PROTECT, related_name="grants")
    resource = models.ForeignKey(Resource, on_delete=models.PROTECT, related_name="grants")
    action = models.CharField(max_length=60)
    valid_from = models.DateTimeField(default=timezone.now)
    expires_at = models.DateTimeField(null=True, blank=True)
    status = models.CharField(max_length=10, choices=GrantStatus.choices, default=GrantStatus.ACTIVE)
    source = models.CharField(max_length=10, choices=GrantSource.choices, default=GrantSource.DIRECT)
    justification = models.TextField(blank=True, default="")
    granted_by = models.CharField(max_length=200, help_text="Label of whoever granted it.")
    granted_by_user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    revoked_at = models.DateTimeField(null=True, blank=True)
    revoked_reason = models.TextField(blank=True, default="")

    objects = GrantQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [
            models.Index(fields=["holder_human", "status"], name="grant_human_idx"),
            models.Index(fields=["holder_agent", "status"], name="grant_agent_idx"),
            models.Index(fields=["status", "expires_at"], name="grant_expiry_idx"),
        ]
        constraints = [
            models.CheckConstraint(
                condition=Q(holder_human__isnull=False, holder_agent__isnull=True)
                | Q(holder_human__isnull=True, holder_agent__isnull=False),
                name="grant_exactly_one_holder",
            ),
            models.CheckConstraint(
                condition=Q(holder_agent__isnull=True) | Q(expires_at__isnull=False),
                name="grant_agent_grants_expire",
            ),
            models.CheckConstraint(
                condition=Q(expires_at__isnull=True) | Q(expires_at__gt=models.F("valid_from")),
                name="grant_expires_after_start",
            ),
            models.CheckConstraint(
                condition=Q(status=GrantStatus.REVOKED, revoked_at__isnull=False) | ~Q(status=GrantStatus.REVOKED),
                name="grant_revoked_has_time",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.holder} → {self.scope}"

    @property
    def scope(self) -> str:
        return make_scope(self.resource.name, self.action)

    @property
    def holder(self) -> Human | Agent:
        holder = self.holder_human or self.holder_agent
        assert holder is not None
        return holder

    def is_in_force(self, at: datetime | None = None) -> bool:
        at = at or timezone.now()
        return (
            self.status == GrantStatus.ACTIVE
            and self.valid_from <= at
            and (self.expires_at is None or self.expires_at > at)
        )


# --- Delegations ----------------------------------------------------------------------------


class DelegationStatus(models.TextChoices):
    ACTIVE = "active", "Active"
    EXPIRED = "expired", "Expired"
    REVOKED = "revoked", "Revoked"


class DelegationQuerySet(models.QuerySet["Delegation"]):
    def active(self, at: datetime | None = None) -> DelegationQuerySet:
        at = at or timezone.now()
        return self.filter(status=DelegationStatus.ACTIVE, expires_at__gt=at)

    def roots(self) -> DelegationQuerySet:
        return self.filter(parent__isnull=True)

    def expiring_before(self, moment: datetime) -> DelegationQuerySet:
        return self.filter(status=DelegationStatus.ACTIVE, expires_at__lte=moment)

    def visible_to(self, user: Any) -> DelegationQuerySet:
        if roles.reads_everything(user):
            return self
        if roles.REVIEWER in roles.roles_of(user):
            return self.filter(
                Q(delegate__in=Agent.objects.visible_to(user)) | Q(root_human__in=Human.objects.visible_to(user))
            )
        return self.none()


class Delegation(models.Model):
    """One link of a delegation chain: lets ``delegate`` act on behalf of ``root_human``.

    A root link (no parent) is made by the root human; a child link by the parent link's delegate,
    for one of its own sub-agents. ``root_human`` is denormalised on every link so a check reads the
    whole chain's subject without walking it.
    """

    parent = models.ForeignKey("self", null=True, blank=True, on_delete=models.PROTECT, related_name="children")
    root_human = models.ForeignKey(Human, on_delete=models.PROTECT, related_name="delegations")
    delegate = models.ForeignKey(Agent, on_delete=models.PROTECT, related_name="delegations")
    purpose = models.TextField()
    scopes = models.JSONField(help_text='Sorted list of "resource:action" scopes.')
    depth = models.PositiveSmallIntegerField(default=0, editable=False)
    max_depth = models.PositiveSmallIntegerField(
        default=0, help_text="How many further hops below this link are allowed."
    )
    expires_at = models.DateTimeField()
    status = models.CharField(max_length=10, choices=DelegationStatus.choices, default=DelegationStatus.ACTIVE)
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    created_by = models.CharField(max_length=200, help_text="Label of whoever created it.")
    created_by_user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    revoked_at = models.DateTimeField(null=True, blank=True)
    revoked_reason = models.TextField(blank=True, default="")

    objects = DelegationQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [
            models.Index(fields=["delegate", "status"], name="delegation_delegate_idx"),
            models.Index(fields=["root_human", "status"], name="delegation_root_idx"),
            models.Index(fields=["status", "expires_at"], name="delegation_expiry_idx"),
        ]
        constraints = [
            models.CheckConstraint(condition=~Q(parent=models.F("id")), name="delegation_not_own_parent"),
            models.CheckConstraint(
                condition=Q(parent__isnull=True, depth=0) | Q(parent__isnull=False, depth__gte=1),
                name="delegation_depth_matches_parent",
            ),
            models.CheckConstraint(
                condition=Q(expires_at__gt=models.F("created_at")), name="delegation_expires_after_creation"
            ),
            models.CheckConstraint(
                condition=Q(status=DelegationStatus.REVOKED, revoked_at__isnull=False)
                | ~Q(status=DelegationStatus.REVOKED),
                name="delegation_revoked_has_time",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.root_human} → {self.delegate} ({', '.join(self.scopes)})"

    def get_absolute_url(self) -> str:
        # What makes every ``{% ref link %}`` ("#376") a link to its page, for viewers who see it.
        return reverse("console:delegation", args=[self.pk])

    @property
    def ref_label(self) -> str:
        # What a reference to a link reads (console.visibility): its number, never the names at its
        # ends, which may lie outside the view of someone who sees the link itself.
        return f"#{self.pk}"

    @property
    def scope_set(self) -> frozenset[str]:
        return frozenset(self.scopes)

    def is_in_force(self, at: datetime | None = None) -> bool:
        at = at or timezone.now()
        return self.status == DelegationStatus.ACTIVE and self.expires_at > at

    def status_at(self, at: datetime | None = None) -> str:
        """What a badge should say: an unswept link past its expiry is already expired."""
        at = at or timezone.now()
        if self.status == DelegationStatus.ACTIVE and self.expires_at <= at:
            return DelegationStatus.EXPIRED
        return self.status
