"""Input and output shapes of API v1.

Inputs only check types and sizes and resolve ids (through ``visible_to``, so a caller can never
name an object it cannot see); every rule about the domain stays in ``governance.services``. Outputs
never carry a secret, except the one response that creates a key, and refer to other objects only
through the ``Related*`` and ``Byline`` fields: null where the object lies outside the caller's view.
Serialize with ``context={"request": request}`` (``ApiView.output``): without it every reference
comes out null.
"""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from console.api.fields import (
    MAX_LIST,
    MAX_TEXT,
    AwareDateTimeField,
    BylineField,
    RelatedIdField,
    RelatedNameField,
    StrictCharField,
    VisibleIdField,
    reason,
    text,
)
from console.api.pagination import page_serializer
from governance.models import (
    AccessRequest,
    AccessRequestStatus,
    Agent,
    AgentKey,
    AgentStatus,
    Delegation,
    DelegationStatus,
    Grant,
    GrantSource,
    GrantStatus,
    Human,
    HumanStatus,
    Resource,
    ResourceKind,
    RiskTier,
    Sensitivity,
)

# NAMES_LIKE_DRF_ATTRIBUTES: fields called parent, source or fields are fine at run time (the serializer
# metaclass moves declared fields out of the class namespace), but the type stubs read them as overriding
# the Field/Serializer attributes of the same name, hence the ``type: ignore[assignment]`` on them.

# --- Humans ---------------------------------------------------------------------------------


class HumanOutput(serializers.ModelSerializer[Human]):
    manager = RelatedIdField()

    class Meta:
        model = Human
        fields = [
            "id",
            "external_id",
            "email",
            "name",
            "manager",
            "department",
            "title",
            "status",
            "created_at",
            "updated_at",
        ]
        read_only_fields = fields


class HumanCreateInput(serializers.Serializer[Any]):
    email = serializers.EmailField(max_length=254)
    name = StrictCharField(max_length=200)
    department = text(120)
    title = text(120)
    manager = VisibleIdField(Human, required=False, allow_null=True, default=None)
    external_id = StrictCharField(max_length=200, required=False, allow_null=True, default=None)


class HumanFilter(serializers.Serializer[Any]):
    status = serializers.ChoiceField(choices=HumanStatus.choices, required=False)
    q = serializers.CharField(max_length=200, required=False, help_text="Search in name and email.")


# --- Agents ---------------------------------------------------------------------------------


class AgentOutput(serializers.ModelSerializer[Agent]):
    sponsor = RelatedIdField()
    sponsor_name = RelatedNameField(source="sponsor")
    parent = RelatedIdField(  # type: ignore[assignment]  # see NAMES_LIKE_DRF_ATTRIBUTES
        help_text="Null for a top-level agent (depth 0), or when the parent lies outside your view."
    )

    class Meta:
        model = Agent
        fields = [
            "id",
            "name",
            "purpose",
            "sponsor",
            "sponsor_name",
            "parent",
            "depth",
            "status",
            "risk_tier",
            "last_activity_at",
            "created_at",
            "updated_at",
        ]
        read_only_fields = fields


class AgentCreateInput(serializers.Serializer[Any]):
    name = StrictCharField(max_length=120)
    purpose = text()
    sponsor = VisibleIdField(
        Human, required=False, allow_null=True, default=None, help_text="Required unless parent is given."
    )
    parent = VisibleIdField(  # type: ignore[assignment]  # see NAMES_LIKE_DRF_ATTRIBUTES
        Agent, required=False, allow_null=True, default=None, help_text="Makes this a sub-agent of parent."
    )
    risk_tier = serializers.ChoiceField(choices=RiskTier.choices, default=RiskTier.MEDIUM)


class SubAgentCreateInput(serializers.Serializer[Any]):
    """What an agent sends to register a sub-agent of its own: the shape of ``AgentCreateInput``, but
    ``parent`` and ``sponsor`` are plain ids (an agent sees no console objects) that may only name the
    caller and its sponsor, which they default to."""

    name = StrictCharField(max_length=120)
    purpose = text()
    sponsor = serializers.IntegerField(min_value=1, required=False, allow_null=True, default=None)
    parent = serializers.IntegerField(min_value=1, required=False, allow_null=True, default=None)  # type: ignore[assignment]  # see NAMES_LIKE_DRF_ATTRIBUTES
    risk_tier = serializers.ChoiceField(choices=RiskTier.choices, default=RiskTier.MEDIUM)


class AgentFilter(serializers.Serializer[Any]):
    status = serializers.ChoiceField(choices=AgentStatus.choices, required=False)
    risk_tier = serializers.ChoiceField(choices=RiskTier.choices, required=False)
    sponsor = serializers.IntegerField(min_value=1, required=False, help_text="Sponsor's human id.")
    parent = serializers.IntegerField(min_value=1, required=False, help_text="Parent agent's id.")  # type: ignore[assignment]  # see NAMES_LIKE_DRF_ATTRIBUTES
    q = serializers.CharField(max_length=200, required=False, help_text="Search in name and purpose.")


class ReasonInput(serializers.Serializer[Any]):
    reason = reason()


class KeyRevokeInput(ReasonInput):
    leaked = serializers.BooleanField(
        default=False, help_text="Reported leaked: the agent's access then goes to review (a micro-review)."
    )


# --- Resources ------------------------------------------------------------------------------


class ResourceOutput(serializers.ModelSerializer[Resource]):
    actions = serializers.ListField(child=serializers.CharField(), read_only=True)
    owner = RelatedIdField()

    class Meta:
        model = Resource
        fields = ["id", "name", "kind", "description", "sensitivity", "owner", "actions", "uri", "created_at"]
        read_only_fields = fields


class ResourceCreateInput(serializers.Serializer[Any]):
    name = StrictCharField(max_length=120, help_text="Dotted, lower case, e.g. crm.contacts.")
    owner = VisibleIdField(Human)
    actions = serializers.ListField(
        child=StrictCharField(max_length=60), allow_empty=False, max_length=MAX_LIST, help_text="e.g. [read, write]"
    )
    kind = serializers.ChoiceField(choices=ResourceKind.choices, default=ResourceKind.API)
    sensitivity = serializers.ChoiceField(choices=Sensitivity.choices, default=Sensitivity.MEDIUM)
    description = text()
    uri = StrictCharField(
        max_length=200,
        required=False,
        allow_null=True,
        allow_blank=True,
        help_text="Its RFC 8707 resource indicator, e.g. an MCP server's https://mcp.example.com/mcp.",
    )


class ResourceFilter(serializers.Serializer[Any]):
    kind = serializers.ChoiceField(choices=ResourceKind.choices, required=False)
    sensitivity = serializers.ChoiceField(choices=Sensitivity.choices, required=False)
    q = serializers.CharField(max_length=200, required=False, help_text="Search in name and description.")


# --- Grants ---------------------------------------------------------------------------------


class GrantOutput(serializers.ModelSerializer[Grant]):
    holder_human = RelatedIdField()
    holder_agent = RelatedIdField()
    resource = RelatedIdField()
    holder_type = serializers.SerializerMethodField()
    scope = serializers.CharField(read_only=True)
    in_force = serializers.SerializerMethodField()

    class Meta:
        model = Grant
        fields = [
            "id",
            "holder_type",
            "holder_human",
            "holder_agent",
            "resource",
            "action",
            "scope",
            "valid_from",
            "expires_at",
            "status",
            "in_force",
            "source",
            "justification",
            "granted_by",
            "created_at",
            "revoked_at",
            "revoked_reason",
        ]
        read_only_fields = fields

    @extend_schema_field(serializers.ChoiceField(choices=["human", "agent"]))
    def get_holder_type(self, grant: Grant) -> str:
        return "agent" if grant.holder_agent_id is not None else "human"

    @extend_schema_field(serializers.BooleanField(help_text="Active, started and unexpired right now."))
    def get_in_force(self, grant: Grant) -> bool:
        return grant.is_in_force()


class GrantCreateInput(serializers.Serializer[Any]):
    holder_human = VisibleIdField(Human, required=False, allow_null=True, default=None)
    holder_agent = VisibleIdField(Agent, required=False, allow_null=True, default=None)
    resource = VisibleIdField(Resource)
    action = StrictCharField(max_length=60)
    expires_at = AwareDateTimeField(
        required=False, allow_null=True, default=None, help_text="Required for agents; open-ended for humans if null."
    )
    valid_from = AwareDateTimeField(required=False, allow_null=True, default=None)
    justification = text()
    source = serializers.ChoiceField(choices=GrantSource.choices, default=GrantSource.DIRECT)  # type: ignore[assignment]  # see NAMES_LIKE_DRF_ATTRIBUTES

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        if (attrs.get("holder_human") is None) == (attrs.get("holder_agent") is None):
            raise serializers.ValidationError({"holder": ["Give exactly one of holder_human and holder_agent."]})
        return attrs


class GrantFilter(serializers.Serializer[Any]):
    status = serializers.ChoiceField(choices=GrantStatus.choices, required=False)
    holder_human = serializers.IntegerField(min_value=1, required=False)
    holder_agent = serializers.IntegerField(min_value=1, required=False)
    resource = serializers.IntegerField(min_value=1, required=False)


# --- Delegations ----------------------------------------------------------------------------


class DelegationOutput(serializers.ModelSerializer[Delegation]):
    """A link the caller may see may join a human or an agent they may not (a cross-line delegation):
    then that end is null, and so is ``created_by`` when the agent above made the link."""

    parent = RelatedIdField(  # type: ignore[assignment]  # see NAMES_LIKE_DRF_ATTRIBUTES
        help_text="Null for a root link (depth 0), or when the parent link lies outside your view."
    )
    root_human = RelatedIdField()
    delegate = RelatedIdField()
    created_by = BylineField(names="parent.delegate")
    scopes = serializers.ListField(child=serializers.CharField(), read_only=True)
    in_force = serializers.SerializerMethodField()

    class Meta:
        model = Delegation
        fields = [
            "id",
            "parent",
            "root_human",
            "delegate",
            "purpose",
            "scopes",
            "depth",
            "max_depth",
            "expires_at",
            "status",
            "in_force",
            "created_at",
            "created_by",
            "revoked_at",
            "revoked_reason",
        ]
        read_only_fields = fields

    @extend_schema_field(serializers.BooleanField(help_text="This link is active and unexpired right now."))
    def get_in_force(self, delegation: Delegation) -> bool:
        return delegation.is_in_force()


class DelegationCreateInput(serializers.Serializer[Any]):
    delegate = VisibleIdField(Agent)
    scopes = serializers.ListField(
        child=StrictCharField(max_length=200), allow_empty=False, max_length=MAX_LIST, help_text="resource:action"
    )
    expires_at = AwareDateTimeField()
    purpose = StrictCharField(max_length=MAX_TEXT)
    root_human = VisibleIdField(
        Human, required=False, allow_null=True, default=None, help_text="The delegating human (a root link)."
    )
    parent = VisibleIdField(  # type: ignore[assignment]  # see NAMES_LIKE_DRF_ATTRIBUTES
        Delegation, required=False, allow_null=True, default=None, help_text="The parent link (a sub-delegation)."
    )
    max_depth = serializers.IntegerField(min_value=0, max_value=100, default=0)


class SubDelegationCreateInput(serializers.Serializer[Any]):
    """What an agent sends to delegate part of its token's delegation to one of its sub-agents. Plain
    ids: the view checks ``parent`` is the token's delegation and ``delegate`` the caller's sub-agent."""

    delegate = serializers.IntegerField(min_value=1)
    scopes = serializers.ListField(child=StrictCharField(max_length=200), allow_empty=False, max_length=MAX_LIST)
    expires_at = AwareDateTimeField()
    purpose = StrictCharField(max_length=MAX_TEXT)
    parent = serializers.IntegerField(min_value=1)  # type: ignore[assignment]  # see NAMES_LIKE_DRF_ATTRIBUTES
    root_human = serializers.IntegerField(min_value=1, required=False, allow_null=True, default=None)
    max_depth = serializers.IntegerField(min_value=0, max_value=100, default=0)


class DelegationRevokeOutput(serializers.Serializer[Any]):
    delegation = DelegationOutput()
    revoked_ids = serializers.ListField(
        child=serializers.IntegerField(), help_text="This link and every active link below it that was revoked now."
    )


class DelegationFilter(serializers.Serializer[Any]):
    status = serializers.ChoiceField(choices=DelegationStatus.choices, required=False)
    delegate = serializers.IntegerField(min_value=1, required=False)
    root_human = serializers.IntegerField(min_value=1, required=False)
    parent = serializers.IntegerField(min_value=1, required=False)  # type: ignore[assignment]  # see NAMES_LIKE_DRF_ATTRIBUTES


# --- Agent keys -----------------------------------------------------------------------------


class AgentKeyOutput(serializers.ModelSerializer[AgentKey]):
    agent = RelatedIdField()
    # A parent agent issues its sub-agents' keys: whom the caller may not see when another line sponsors it.
    created_by = BylineField(names="agent.parent")
    revoked_by = BylineField(names="agent.parent")
    display = serializers.CharField(read_only=True, help_text="ck_<prefix>_… — never the secret.")
    # Same values as a grant's status, so the schema shares one enum.
    status = serializers.ChoiceField(choices=GrantStatus.choices, read_only=True)

    class Meta:
        model = AgentKey
        fields = [
            "id",
            "agent",
            "name",
            "prefix",
            "display",
            "status",
            "created_at",
            "created_by",
            "expires_at",
            "last_used_at",
            "revoked_at",
            "revoked_by",
            "revoked_reason",
            "leaked",
        ]
        read_only_fields = fields


class AgentKeyCreatedOutput(AgentKeyOutput):
    # Not a model attribute (only its hash is stored): the view adds it from what the service returned.
    secret = serializers.CharField(read_only=True, help_text="The full key. Shown in this response only.")

    class Meta(AgentKeyOutput.Meta):
        fields = [*AgentKeyOutput.Meta.fields, "secret"]
        read_only_fields = fields


class AgentKeyCreateInput(serializers.Serializer[Any]):
    name = text(120)
    expires_at = AwareDateTimeField(
        required=False, allow_null=True, default=None, help_text="Defaults to the configured key lifetime."
    )


class AgentKeyRotateInput(serializers.Serializer[Any]):
    name = StrictCharField(
        max_length=120, required=False, allow_blank=True, default=None, help_text="Defaults to the old key's name."
    )
    overlap_seconds = serializers.IntegerField(
        min_value=0,
        max_value=7 * 24 * 3600,
        required=False,
        allow_null=True,
        default=None,
        help_text="How long the old key keeps working (never longer than it already would). "
        "Defaults to CUSTOS_KEY_ROTATION_OVERLAP; 0 ends it now.",
    )


class AgentKeyRotatedOutput(serializers.Serializer[Any]):
    key = AgentKeyCreatedOutput(help_text="The new key, with its secret: shown in this response only.")
    previous = AgentKeyOutput(help_text="The old key, now expiring at the end of the overlap.")


# --- Access requests (just-in-time) ---------------------------------------------------------


class AccessRequestOutput(serializers.ModelSerializer[AccessRequest]):
    """Its approver sees a request whose agent they may not (an agent of another line acting for
    them), and its sponsor one whose approver they may not: that side is null."""

    agent = RelatedIdField()
    agent_name = RelatedNameField(source="agent")
    delegation = RelatedIdField()
    approver = RelatedIdField()
    approver_name = RelatedNameField(source="approver")
    resulting_delegation = RelatedIdField()
    duration_seconds = serializers.SerializerMethodField()
    status = serializers.SerializerMethodField()

    class Meta:
        model = AccessRequest
        fields = [
            "id",
            "agent",
            "agent_name",
            "delegation",
            "approver",
            "approver_name",
            "scope",
            "justification",
            "intent",
            "session_id",
            "duration_seconds",
            "status",
            "created_at",
            "expires_at",
            "decided_at",
            "decided_by",
            "decision_note",
            "resulting_delegation",
        ]
        read_only_fields = fields

    @extend_schema_field(serializers.IntegerField(help_text="How long the access lasts once approved."))
    def get_duration_seconds(self, request: AccessRequest) -> int:
        return int(request.requested_duration.total_seconds())

    @extend_schema_field(
        serializers.ChoiceField(
            choices=AccessRequestStatus.choices,
            help_text="An unanswered request past expires_at is expired, whether or not the sweep marked it yet.",
        )
    )
    def get_status(self, request: AccessRequest) -> str:
        return str(request.status_at())


class AccessRequestCreateInput(serializers.Serializer[Any]):
    scope = StrictCharField(max_length=200, help_text="resource:action")
    justification = StrictCharField(max_length=MAX_TEXT, help_text="Why the task needs it.")
    intent = text(500, help_text="The goal of the task at hand.")
    session_id = text(200)
    duration_seconds = serializers.IntegerField(
        min_value=1,
        max_value=7 * 24 * 3600,
        required=False,
        allow_null=True,
        default=None,
        help_text="How long the access should last once approved (bounded by CUSTOS_JIT_MAX_LIFETIME).",
    )


class AccessRequestFilter(serializers.Serializer[Any]):
    status = serializers.ChoiceField(choices=AccessRequestStatus.choices, required=False)
    agent = serializers.IntegerField(min_value=1, required=False, help_text="The asking agent's id.")


class AccessRequestDecideInput(serializers.Serializer[Any]):
    note = text(help_text="Kept with the decision and in the audit log.")


# --- Pages ----------------------------------------------------------------------------------

HumanPage = page_serializer(HumanOutput, "HumanPage")
AgentPage = page_serializer(AgentOutput, "AgentPage")
ResourcePage = page_serializer(ResourceOutput, "ResourcePage")
GrantPage = page_serializer(GrantOutput, "GrantPage")
DelegationPage = page_serializer(DelegationOutput, "DelegationPage")
AgentKeyPage = page_serializer(AgentKeyOutput, "AgentKeyPage")
AccessRequestPage = page_serializer(AccessRequestOutput, "AccessRequestPage")
