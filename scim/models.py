"""SCIM provisioning: the identity providers' clients, the SCIM-only attributes of the humans they push,
and their groups.

A human is a ``governance.Human``; what SCIM carries beyond it (the IdP's ``userName`` when it is not the
email, given and family names, the list of emails) lives in ``ScimUser`` beside it, so governance keeps
one name and one email per person and knows nothing of SCIM.
"""

from __future__ import annotations

from typing import Any

from django.db import models
from django.db.models import Q
from django.utils import timezone

from console import roles
from governance.models import Human


class ScimClientQuerySet(models.QuerySet["ScimClient"]):
    def active(self) -> ScimClientQuerySet:
        return self.filter(revoked_at__isnull=True)

    def visible_to(self, user: Any) -> ScimClientQuerySet:
        # Provisioning credentials are the admins' business; auditors read them (never the secret).
        return self if roles.reads_everything(user) else self.none()


class ScimClient(models.Model):
    """An identity provider's SCIM connection. Its bearer secret ``cs_<prefix>_<secret>`` is stored as
    agent keys are (``governance.credentials``): the prefix in clear to find the row, a keyed hash of the
    whole secret; the secret itself is shown once, at creation."""

    name = models.CharField(max_length=120)
    prefix = models.CharField(max_length=16, unique=True)
    hashed = models.CharField(max_length=64)
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    created_by = models.CharField(max_length=200)
    last_used_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)
    revoked_by = models.CharField(max_length=200, blank=True, default="")
    revoked_reason = models.TextField(blank=True, default="")

    objects = ScimClientQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.CheckConstraint(condition=Q(prefix__regex=r"^[a-z0-9]{8,16}$"), name="scimclient_prefix_format"),
        ]

    def __str__(self) -> str:
        return self.name

    @property
    def display(self) -> str:
        return f"cs_{self.prefix}_…"

    @property
    def is_active(self) -> bool:
        return self.revoked_at is None


class ScimUser(models.Model):
    """What SCIM says of a human beyond governance's fields. Humans created in the console have none
    until an IdP touches them; ``deleted_at`` marks one an IdP deleted (the human stays, as a leaver,
    for the audit trail, but is gone from SCIM: a GET answers 404)."""

    human = models.OneToOneField(Human, on_delete=models.CASCADE, related_name="scim")
    user_name = models.CharField(max_length=254)
    # SCIM userName is unique case-insensitively (RFC 7643 §4.1.1): the folded form carries the constraint.
    user_name_key = models.CharField(max_length=254, unique=True)
    # displayName and the name's parts exactly as the IdP set them (blank: it set none), and answered as
    # they are: a client compares what it wrote with what it reads (RFC 7644 §3.5.2). Human.name, which
    # the console shows and must never be empty, is derived from them with its own fallbacks.
    display_name = models.CharField(max_length=200, blank=True, default="")
    formatted_name = models.CharField(max_length=200, blank=True, default="")
    given_name = models.CharField(max_length=200, blank=True, default="")
    family_name = models.CharField(max_length=200, blank=True, default="")
    emails = models.JSONField(default=list, blank=True)
    updated_at = models.DateTimeField(default=timezone.now)
    deleted_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return self.user_name


class ScimGroup(models.Model):
    display_name = models.CharField(max_length=200)
    external_id = models.CharField(max_length=200, unique=True, null=True, blank=True)
    members = models.ManyToManyField(Human, blank=True, related_name="scim_groups")
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    updated_at = models.DateTimeField(default=timezone.now)
    # Moves on every change (members included): the ETag is W/"<version>".
    version = models.PositiveIntegerField(default=1)

    class Meta:
        ordering = ["display_name", "id"]

    def __str__(self) -> str:
        return self.display_name
