"""The identity model: humans, agents, resources, grants, delegations and agent keys.

Models hold data, database constraints and cheap properties. Every change goes through
``governance.services``, which validates the rules that span rows and writes the audit event.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone

from console import roles

SCOPE_SEPARATOR = ":"


def make_scope(resource_name: str, action: str) -> str:
    return f"{resource_name}{SCOPE_SEPARATOR}{action}"


# --- Humans ---------------------------------------------------------------------------------


class HumanStatus(models.TextChoices):
    ACTIVE = "active", "Active"
    SUSPENDED = "suspended", "Suspended"
    LEFT = "left", "Left"


class HumanQuerySet(models.QuerySet["Human"]):
    def active(self) -> HumanQuerySet:
        return self.filter(status=HumanStatus.ACTIVE)

    def visible_to(self, user: Any) -> HumanQuerySet:
        if roles.reads_everything(user):
            return self
        if roles.REVIEWER in roles.roles_of(user):
            return self.filter(Q(user=user) | Q(manager__user=user))
        return self.none()


class Human(models.Model):
    external_id = models.CharField(max_length=200, unique=True, null=True, blank=True)
    email = models.EmailField(unique=True)
    name = models.CharField(max_length=200)
    manager = models.ForeignKey("self", null=True, blank=True, on_delete=models.SET_NULL, related_name="reports")
    department = models.CharField(max_length=120, blank=True, default="")
    title = models.CharField(max_length=120, blank=True, default="")
    status = models.CharField(max_length=10, choices=HumanStatus.choices, default=HumanStatus.ACTIVE)
    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="human"
    )
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    updated_at = models.DateTimeField(default=timezone.now)

    objects = HumanQuerySet.as_manager()

    class Meta:
        ordering = ["name", "id"]
        constraints = [
            models.CheckConstraint(condition=~Q(manager=models.F("id")), name="human_not_own_manager"),
        ]

    def __str__(self) -> str:
        return self.name

    @property
    def is_active(self) -> bool:
        return self.status == HumanStatus.ACTIVE


# --- Agents ---------------------------------------------------------------------------------


class AgentStatus(models.TextChoices):
    ACTIVE = "active", "Active"
    SUSPENDED = "suspended", "Suspended"
    OFFBOARDED = "offboarded", "Offboarded"


class RiskTier(models.TextChoices):
    LOW = "low", "Low"
    MEDIUM = "medium", "Medium"
    HIGH = "high", "High"
    CRITICAL = "critical", "Critical"


class AgentQuerySet(models.QuerySet["Agent"]):
    def active(self) -> AgentQuerySet:
        return self.filter(status=AgentStatus.ACTIVE)

    def roots(self) -> AgentQuerySet:
        return self.filter(parent__isnull=True)

    def visible_to(self, user: Any) -> AgentQuerySet:
        if roles.reads_everything(user):
            return self
        if roles.REVIEWER in roles.roles_of(user):
            return self.filter(Q(sponsor__user=user) | Q(sponsor__manager__user=user))
        return self.none()


class Agent(models.Model):
    name = models.CharField(max_length=120)
    purpose = models.TextField(blank=True, default="")
    sponsor = models.ForeignKey(Human, on_delete=models.PROTECT, related_name="sponsored_agents")
    parent = models.ForeignKey("self", null=True, blank=True, on_delete=models.PROTECT, related_name="children")
    # 0 for a top-level agent, parent's depth + 1 for a sub-agent; fixed at creation (parents never change).
    depth = models.PositiveSmallIntegerField(default=0, editable=False)
    status = models.CharField(max_length=12, choices=AgentStatus.choices, default=AgentStatus.ACTIVE)
    risk_tier = models.CharField(max_length=10, choices=RiskTier.choices, default=RiskTier.MEDIUM)
    last_activity_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    updated_at = models.DateTimeField(default=timezone.now)

    objects = AgentQuerySet.as_manager()

    class Meta:
        ordering = ["name", "id"]
        indexes = [
            models.Index(fields=["status", "id"], name="agent_status_idx"),
            models.Index(fields=["risk_tier", "id"], name="agent_risk_idx"),
        ]
        constraints = [
            models.CheckConstraint(condition=~Q(parent=models.F("id")), name="agent_not_own_parent"),
            models.CheckConstraint(
                condition=Q(parent__isnull=True, depth=0) | Q(parent__isnull=False, depth__gte=1),
                name="agent_depth_matches_parent",
            ),
        ]

    def __str__(self) -> str:
        return self.name

    @property
    def is_active(self) -> bool:
        return self.status == AgentStatus.ACTIVE

    @property
    def is_sub_agent(self) -> bool:
        return self.parent_id is not None


# --- Resources ------------------------------------------------------------------------------


class ResourceKind(models.TextChoices):
    TOOL = "tool", "Tool"
    API = "api", "API"
    DATASET = "dataset", "Data set"
    SERVICE = "service", "Service"


class Sensitivity(models.TextChoices):
    LOW = "low", "Low"
    MEDIUM = "medium", "Medium"
    HIGH = "high", "High"
    CRITICAL = "critical", "Critical"


SENSITIVITY_WEIGHT = {"low": 1, "medium": 3, "high": 9, "critical": 27}


class ResourceQuerySet(models.QuerySet["Resource"]):
    def visible_to(self, user: Any) -> ResourceQuerySet:
        # The resource catalogue is reference data every role needs to read decisions.
        return self if roles.has_any_role(user) else self.none()


class Resource(models.Model):
    # Dotted, lower-case names: "crm.contacts". A scope is "<name>:<action>".
    name = models.CharField(max_length=120, unique=True)
    kind = models.CharField(max_length=10, choices=ResourceKind.choices, default=ResourceKind.API)
    description = models.TextField(blank=True, default="")
    sensitivity = models.CharField(max_length=10, choices=Sensitivity.choices, default=Sensitivity.MEDIUM)
    owner = models.ForeignKey(Human, on_delete=models.PROTECT, related_name="owned_resources")
    actions = models.JSONField(default=list, help_text="The actions this resource supports, e.g. read, write.")
    created_at = models.DateTimeField(default=timezone.now, editable=False)

    objects = ResourceQuerySet.as_manager()

    class Meta:
        ordering = ["name"]
        constraints = [
            models.CheckConstraint(condition=Q(name__regex=r"^[a-z0-9][a-z0-9._-]*$"), name="resource_name_format"),
        ]

    def __str__(self) -> str:
        return self.name

    def scope(self, action: str) -> str:
        return make_scope(self.name, action)


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
