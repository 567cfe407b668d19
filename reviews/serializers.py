"""API v1 shapes of access reviews: campaigns, their preview, review items and the decisions on them.

Inputs are strict (an id is an integer, text is text, a list is a list); the services decide what is
allowed. Outputs leave out (as null) references the caller may not see (``console.api.fields``)."""

from __future__ import annotations

from typing import Any

from rest_framework import serializers

from console.api.fields import MAX_TEXT, RelatedIdField, RelatedNameField, StrictCharField, VisibleIdField, reason, text
from console.api.pagination import page_serializer
from governance.models import Human, Resource, Sensitivity
from reviews.models import (
    Campaign,
    CampaignKind,
    CampaignStatus,
    Decision,
    ItemStatus,
    JustificationRule,
    NoResponse,
    Recurrence,
    ReviewerRule,
    ReviewItem,
    Risk,
    Subject,
)
from reviews.services.campaigns import EDITABLE
from reviews.services.items import MAX_BULK, MAX_JUSTIFICATION


class ReviewerIdField(VisibleIdField):
    """The id of a person who can sign in to the console. Reviewers hand items to colleagues they may not
    otherwise see, so this is not narrowed to the caller's view; it reveals only people with a login."""

    default_error_messages = {
        "does_not_exist": "No person with a console login has id {pk_value}.",
        "incorrect_type": "Expected an integer id, got {data_type}.",
    }

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(Human, **kwargs)

    def get_queryset(self) -> Any:
        return Human.objects.filter(user__isnull=False)


class StrictIntegerField(serializers.IntegerField):
    """An integer, not a string of digits, a float or a boolean."""

    def to_internal_value(self, data: Any) -> int:
        if type(data) is not int:
            self.fail("invalid")
        return int(super().to_internal_value(data))


# --- Campaigns ----------------------------------------------------------------------------------


class CampaignOutput(serializers.ModelSerializer[Campaign]):
    subjects = serializers.ListField(child=serializers.ChoiceField(choices=Subject.choices))
    filter_resource = RelatedIdField()
    named_reviewer = RelatedIdField()
    fallback_reviewer = RelatedIdField()
    reminder_days = serializers.ListField(child=serializers.IntegerField())
    bulk_risks = serializers.ListField(child=serializers.ChoiceField(choices=Risk.choices))
    generating = serializers.BooleanField(help_text="Items are still being generated after the launch.")
    generation_percent = serializers.IntegerField()

    class Meta:
        model = Campaign
        fields = [
            "id",
            "kind",
            "status",
            *EDITABLE,
            "series",
            "next_launch_at",
            "created_at",
            "created_by",
            "launched_at",
            "due_at",
            "closed_at",
            "closed_by",
            "items_expected",
            "items_generated",
            "generated_at",
            "generating",
            "generation_percent",
        ]
        read_only_fields = fields


CampaignPage = page_serializer(CampaignOutput, "CampaignPage")


class CampaignInput(serializers.Serializer[Any]):
    name = StrictCharField(max_length=200)
    description = text()
    subjects = serializers.ListField(
        child=serializers.ChoiceField(choices=Subject.choices), min_length=1, max_length=len(Subject.values)
    )
    filter_resource = VisibleIdField(Resource, required=False, allow_null=True)
    filter_min_sensitivity = serializers.ChoiceField(choices=Sensitivity.choices, required=False, allow_blank=True)
    filter_department = text(120)
    filter_unused_days = serializers.IntegerField(required=False, allow_null=True, min_value=1, max_value=3650)
    reviewer_rule = serializers.ChoiceField(choices=ReviewerRule.choices, required=False)
    named_reviewer = ReviewerIdField(required=False, allow_null=True)
    fallback_reviewer = ReviewerIdField(help_text="Gets what the rule cannot route (separation of duties, a leaver).")
    duration_days = StrictIntegerField(required=False, min_value=1, max_value=365)
    recurrence = serializers.ChoiceField(choices=Recurrence.choices, required=False)
    cron = text(120, help_text="With recurrence=cron: five fields, e.g. '0 9 1 */3 *'.")
    reminder_days = serializers.ListField(
        child=StrictIntegerField(min_value=0, max_value=365), required=False, max_length=20
    )
    escalate_after_days = StrictIntegerField(required=False, allow_null=True, min_value=0, max_value=365)
    no_response = serializers.ChoiceField(choices=NoResponse.choices, required=False)
    justification = serializers.ChoiceField(choices=JustificationRule.choices, required=False)
    bulk_risks = serializers.ListField(
        child=serializers.ChoiceField(choices=Risk.choices), required=False, max_length=len(Risk.values)
    )


class CampaignUpdateInput(CampaignInput):
    """Every field optional: only those sent change (a standing campaign accepts only who reviews it,
    reminders, escalation, the justification rule and the bulk policy)."""


class CampaignFilter(serializers.Serializer[Any]):
    status = serializers.ChoiceField(choices=CampaignStatus.choices, required=False)
    kind = serializers.ChoiceField(choices=CampaignKind.choices, required=False)


class PreviewRowOutput(serializers.Serializer[Any]):
    reviewer = serializers.IntegerField(allow_null=True, help_text="Null: no one may review these items.")
    reviewer_name = serializers.CharField(allow_null=True)
    items = serializers.IntegerField()
    high_risk = serializers.IntegerField()
    recommend_revoke = serializers.IntegerField()
    rerouted = serializers.IntegerField(help_text="Moved to the fallback by separation of duties.")


class PreviewOutput(serializers.Serializer[Any]):
    total = serializers.IntegerField()
    rerouted = serializers.IntegerField()
    unassigned = serializers.IntegerField()
    rows = PreviewRowOutput(many=True)


def preview_data(preview: Any) -> dict[str, Any]:
    return {
        "total": preview.total,
        "rerouted": preview.rerouted,
        "unassigned": preview.unassigned,
        "rows": [
            {
                "reviewer": row.reviewer.pk if row.reviewer else None,
                "reviewer_name": row.reviewer.name if row.reviewer else None,
                "items": row.items,
                "high_risk": row.high_risk,
                "recommend_revoke": row.recommend_revoke,
                "rerouted": row.rerouted,
            }
            for row in preview.rows
        ],
    }


# --- Review items -------------------------------------------------------------------------------


class ReviewItemOutput(serializers.ModelSerializer[ReviewItem]):
    agent = RelatedIdField()
    agent_name = RelatedNameField(source="agent")
    grant = RelatedIdField()
    delegation = RelatedIdField()
    key = RelatedIdField()
    reviewer = RelatedIdField()
    reviewer_name = RelatedNameField(source="reviewer")
    scopes = serializers.ListField(child=serializers.CharField())

    class Meta:
        model = ReviewItem
        fields = [
            "id",
            "campaign",
            "kind",
            "subject_key",
            "agent",
            "agent_name",
            "grant",
            "delegation",
            "key",
            "label",
            "scopes",
            "reviewer",
            "reviewer_name",
            "routing",
            "risk",
            "risk_score",
            "blast_radius",
            "recommendation",
            "recommendation_reason",
            "created_at",
            "due_at",
            "opened_at",
            "status",
            "decided_at",
            "decided_by",
            "justification",
            "bulk",
            "applied",
            "applied_at",
            "renewed_until",
        ]
        read_only_fields = fields


ReviewItemPage = page_serializer(ReviewItemOutput, "ReviewItemPage")


class ReviewItemFilter(serializers.Serializer[Any]):
    mine = serializers.BooleanField(
        required=False, allow_null=True, default=None, help_text="Only items assigned to you (default for reviewers)."
    )
    status = serializers.ChoiceField(choices=ItemStatus.choices, required=False)
    campaign = serializers.IntegerField(required=False, min_value=1, max_value=2**63 - 1)


class DecideInput(serializers.Serializer[Any]):
    decision = serializers.ChoiceField(choices=Decision.choices)
    justification = text(MAX_JUSTIFICATION, help_text="Why; required when the campaign's rule asks for one.")


class ReassignInput(serializers.Serializer[Any]):
    reviewer = ReviewerIdField(help_text="The person to hand the item to (a reviewer with a console login).")
    reason = reason()


class BulkCertifyInput(serializers.Serializer[Any]):
    items = serializers.ListField(
        child=StrictIntegerField(min_value=1, max_value=2**63 - 1), min_length=1, max_length=MAX_BULK
    )
    justification = text(MAX_TEXT)


class BulkCertifyOutput(serializers.Serializer[Any]):
    decided = serializers.ListField(child=serializers.IntegerField(), help_text="Ids of the items certified.")
    skipped = serializers.DictField(
        child=serializers.CharField(), help_text="Item id -> why it was left for one-by-one review."
    )
