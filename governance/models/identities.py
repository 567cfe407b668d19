"""Humans, agents (and sub-agents) and the resources they act on; a scope is ``resource:action``."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.db import models
from django.db.models import Exists, OuterRef, Q
from django.urls import reverse
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


def under_review_by(user: Any) -> Q:
    """Agents with a review item assigned to ``user`` now, or before an escalation moved it on: whoever
    is asked to certify an agent's access reads that agent (and, through it, its access). Named through
    the reverse relation ``review_items`` (the reviews app's items), so governance imports nothing of it."""
    # A correlated EXISTS down the items' (agent, status) index: probed per agent asked about, so a page
    # that asks about fifty agents costs fifty index probes, however long the reviewer's queue.
    items = Agent._meta.get_field("review_items").related_model._default_manager
    theirs = items.filter(Q(reviewer__user=user) | Q(escalated_from__user=user), agent=OuterRef("pk"))
    return Q(Exists(theirs))


class HumanQuerySet(models.QuerySet["Human"]):
    def active(self) -> HumanQuerySet:
        return self.filter(status=HumanStatus.ACTIVE)

    def visible_to(self, user: Any) -> HumanQuerySet:
        """A reviewer sees themself and their reports, and the sponsors of the agents they are asked to
        review (an item assigned to them: see ``under_review_by``)."""
        if roles.reads_everything(user):
            return self
        if roles.REVIEWER in roles.roles_of(user):
            reviewed = Agent.objects.filter(under_review_by(user)).values("sponsor_id")
            return self.filter(Q(user=user) | Q(manager__user=user) | Q(pk__in=reviewed))
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

    def get_absolute_url(self) -> str:
        return reverse("console:human", args=[self.pk])

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
        """A reviewer sees the agents they or their reports sponsor, and those they are asked to review."""
        if roles.reads_everything(user):
            return self
        if roles.REVIEWER in roles.roles_of(user):
            return self.filter(Q(sponsor__user=user) | Q(sponsor__manager__user=user) | under_review_by(user))
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
    # When its sponsor last changed because the sponsor left (reviews open an item for the new sponsor).
    sponsor_changed_at = models.DateTimeField(null=True, blank=True)
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

    def get_absolute_url(self) -> str:
        return reverse("console:agent", args=[self.pk])

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
    # A Model Context Protocol server: its tools are the resource's actions, its ``uri`` the RFC 8707
    # resource indicator MCP clients ask tokens for.
    MCP = "mcp", "MCP server"


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
    # The RFC 8707 resource indicator (an MCP server's canonical URI): a token exchanged with
    # ``resource=<uri>`` carries it as ``aud``. NULL, not "", when absent, so that the unique index
    # holds only real URIs.
    uri = models.CharField(
        max_length=200,  # as DelegationToken.audience, which records it
        null=True,
        blank=True,
        unique=True,
        help_text="The absolute URI clients name this resource by (RFC 8707), e.g. https://mcp.example.com/mcp.",
    )
    created_at = models.DateTimeField(default=timezone.now, editable=False)

    objects = ResourceQuerySet.as_manager()

    class Meta:
        ordering = ["name"]
        constraints = [
            models.CheckConstraint(condition=Q(name__regex=r"^[a-z0-9][a-z0-9._-]*$"), name="resource_name_format"),
            models.CheckConstraint(
                condition=Q(uri__isnull=True) | Q(uri__regex=r"^https?://[^#]+$"), name="resource_uri_format"
            ),
        ]

    def __str__(self) -> str:
        return self.name

    def get_absolute_url(self) -> str:
        return reverse("console:resource", args=[self.pk])

    def scope(self, action: str) -> str:
        return make_scope(self.name, action)
