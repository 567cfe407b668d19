"""The record of one offboarding: what was cut, by whom, why, and how long until it was refused."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone

from governance.models.identities import Agent, Human


class OffboardingKind(models.TextChoices):
    AGENT = "agent", "Agent"
    HUMAN = "human", "Human leaver"


class Offboarding(models.Model):
    """One offboarding run. ``agent_ids`` are every agent it touched (offboarded, re-sponsored or
    suspended); ``counts`` what it cut by kind. ``effective_at`` is when the revocation became what every
    check sees: the commit of the transaction that made it (the state version moves in that transaction,
    so the next check in any process reads the new state), confirmed by reading it back afterwards."""

    kind = models.CharField(max_length=10, choices=OffboardingKind.choices)
    agent = models.ForeignKey(Agent, null=True, blank=True, on_delete=models.PROTECT, related_name="offboardings")
    human = models.ForeignKey(Human, null=True, blank=True, on_delete=models.PROTECT, related_name="offboardings")
    agent_ids = models.JSONField(default=list, blank=True)
    reason = models.TextField()
    actor_label = models.CharField(max_length=200)
    actor_user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    requested_at = models.DateTimeField(default=timezone.now)
    committed_at = models.DateTimeField(null=True, blank=True)
    effective_at = models.DateTimeField(null=True, blank=True)
    counts = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["-requested_at", "-id"]
        constraints = [
            models.CheckConstraint(
                condition=Q(kind=OffboardingKind.AGENT, agent__isnull=False, human__isnull=True)
                | Q(kind=OffboardingKind.HUMAN, human__isnull=False, agent__isnull=True),
                name="offboarding_subject_matches_kind",
            ),
            models.CheckConstraint(
                condition=Q(effective_at__isnull=True) | Q(effective_at__gte=models.F("requested_at")),
                name="offboarding_effective_after_request",
            ),
        ]

    def __str__(self) -> str:
        return f"offboarding #{self.pk} ({self.kind})"

    @property
    def time_to_revoke_ms(self) -> int | None:
        if self.effective_at is None:
            return None
        return round((self.effective_at - self.requested_at).total_seconds() * 1000)
