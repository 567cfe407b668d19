"""Credentials: agent keys, console API tokens, the keys that sign delegation tokens, and the record of
every delegation token issued."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone

from console import roles
from governance.models.access import Delegation
from governance.models.identities import Agent

# --- Agent keys -----------------------------------------------------------------------------


class AgentKeyQuerySet(models.QuerySet["AgentKey"]):
    def active(self, at: datetime | None = None) -> AgentKeyQuerySet:
        at = at or timezone.now()
        return self.filter(revoked_at__isnull=True, expires_at__gt=at)

    def visible_to(self, user: Any) -> AgentKeyQuerySet:
        if roles.reads_everything(user):
            return self
        if roles.REVIEWER in roles.roles_of(user):
            return self.filter(agent__in=Agent.objects.visible_to(user))
        return self.none()


class AgentKey(models.Model):
    """An agent's own credential ``ck_<prefix>_<secret>``. Only the prefix (for lookup) and a keyed
    hash of the whole key are stored; the secret is shown once, at creation."""

    agent = models.ForeignKey(Agent, on_delete=models.PROTECT, related_name="keys")
    name = models.CharField(max_length=120, blank=True, default="")
    prefix = models.CharField(max_length=16, unique=True)
    hashed = models.CharField(max_length=64)
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    created_by = models.CharField(max_length=200)
    expires_at = models.DateTimeField()
    last_used_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)
    revoked_by = models.CharField(max_length=200, blank=True, default="")
    revoked_reason = models.TextField(blank=True, default="")
    # Revoked because it was reported leaked: opens a review of the agent (reviews' micro-reviews).
    leaked = models.BooleanField(default=False)

    objects = AgentKeyQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.CheckConstraint(condition=Q(expires_at__gt=models.F("created_at")), name="agentkey_expires"),
            models.CheckConstraint(condition=Q(prefix__regex=r"^[a-z0-9]{8,16}$"), name="agentkey_prefix_format"),
        ]

    def __str__(self) -> str:
        return f"ck_{self.prefix}_…"

    @property
    def display(self) -> str:
        return f"ck_{self.prefix}_…"

    def status_at(self, at: datetime | None = None) -> str:
        at = at or timezone.now()
        if self.revoked_at is not None:
            return "revoked"
        if self.expires_at <= at:
            return "expired"
        return "active"

    @property
    def status(self) -> str:
        return self.status_at()


# --- Console API tokens ---------------------------------------------------------------------


class ApiToken(models.Model):
    """A console user's personal API token ``cu_<prefix>_<secret>``, stored like agent keys."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_tokens")
    prefix = models.CharField(max_length=16, unique=True)
    hashed = models.CharField(max_length=64)
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    last_used_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"cu_{self.prefix}_…"


# --- Runtime: signing keys, delegation tokens, access requests, drift --------------------------


class SigningKeyQuerySet(models.QuerySet["SigningKey"]):
    def for_signing(self, at: datetime | None = None) -> SigningKeyQuerySet:
        at = at or timezone.now()
        return self.filter(activated_at__lte=at, signs_until__gt=at).order_by("-activated_at")

    def published(self, at: datetime | None = None) -> SigningKeyQuerySet:
        at = at or timezone.now()
        return self.filter(activated_at__lte=at, verifies_until__gt=at).order_by("-activated_at")


class SigningKey(models.Model):
    """A key that signs delegation tokens. Published in the JWKS until ``verifies_until`` (its last
    signing moment plus the longest token lifetime), so rotation never strands a token in flight."""

    kid = models.CharField(max_length=64, unique=True)
    algorithm = models.CharField(max_length=10, default="EdDSA")
    private_pem = models.TextField(help_text="PKCS#8 PEM, encrypted at rest with a key derived from SECRET_KEY.")
    public_jwk = models.JSONField()
    activated_at = models.DateTimeField(default=timezone.now)
    signs_until = models.DateTimeField()
    verifies_until = models.DateTimeField()
    created_at = models.DateTimeField(default=timezone.now, editable=False)

    objects = SigningKeyQuerySet.as_manager()

    class Meta:
        ordering = ["-activated_at"]
        constraints = [
            models.CheckConstraint(condition=Q(signs_until__gt=models.F("activated_at")), name="signingkey_signs"),
            models.CheckConstraint(
                condition=Q(verifies_until__gte=models.F("signs_until")), name="signingkey_verifies_after_signing"
            ),
        ]

    def __str__(self) -> str:
        return self.kid


class DelegationTokenQuerySet(models.QuerySet["DelegationToken"]):
    def active(self, at: datetime | None = None) -> DelegationTokenQuerySet:
        at = at or timezone.now()
        return self.filter(revoked_at__isnull=True, expires_at__gt=at)

    def visible_to(self, user: Any) -> DelegationTokenQuerySet:
        if roles.reads_everything(user):
            return self
        if roles.REVIEWER in roles.roles_of(user):
            return self.filter(agent__in=Agent.objects.visible_to(user))
        return self.none()


class DelegationToken(models.Model):
    """A record of every token issued: what it carries and whether it was revoked (RFC 7009).
    The token itself is never stored."""

    jti = models.CharField(max_length=64, unique=True)
    agent = models.ForeignKey(Agent, on_delete=models.PROTECT, related_name="tokens")
    delegation = models.ForeignKey(Delegation, on_delete=models.PROTECT, related_name="tokens")
    parent_token = models.ForeignKey("self", null=True, blank=True, on_delete=models.PROTECT, related_name="children")
    # The key the agent presented as the actor token: revoking a leaked key revokes what it obtained.
    agent_key = models.ForeignKey(AgentKey, null=True, blank=True, on_delete=models.PROTECT, related_name="tokens")
    scopes = models.JSONField()
    audience = models.CharField(max_length=200)
    signing_key = models.ForeignKey(SigningKey, on_delete=models.PROTECT, related_name="+")
    issued_at = models.DateTimeField(default=timezone.now)
    expires_at = models.DateTimeField()
    revoked_at = models.DateTimeField(null=True, blank=True)
    revoked_reason = models.TextField(blank=True, default="")

    objects = DelegationTokenQuerySet.as_manager()

    class Meta:
        ordering = ["-issued_at", "-id"]
        indexes = [models.Index(fields=["agent", "-issued_at"], name="token_agent_idx")]
        constraints = [
            models.CheckConstraint(condition=Q(expires_at__gt=models.F("issued_at")), name="token_expires"),
        ]

    def __str__(self) -> str:
        return self.jti

    def status_at(self, at: datetime | None = None) -> str:
        at = at or timezone.now()
        if self.revoked_at is not None:
            return "revoked"
        return "expired" if self.expires_at <= at else "active"
