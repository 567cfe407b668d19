"""Console forms of access reviews. They parse and present input; ``reviews.services`` decides what is
allowed, and its refusals are put back on the field they name (``console.forms.apply_domain_error``)."""

from __future__ import annotations

from typing import Any

from django import forms

from governance.models import Human, Resource, Sensitivity
from reviews.models import (
    Campaign,
    CampaignStatus,
    JustificationRule,
    NoResponse,
    Recurrence,
    ReviewerRule,
    Risk,
    Subject,
)
from reviews.services.campaigns import EDITABLE, MAX_DURATION_DAYS, STANDING_EDITABLE


class _ReviewerChoice(forms.ModelChoiceField):
    def label_from_instance(self, obj: Any) -> str:
        return f"{obj.name} · {obj.email}"


def reviewers() -> Any:
    """People who can review: active, with a console login."""
    return Human.objects.active().filter(user__isnull=False).order_by("name", "id")


class CampaignForm(forms.Form):
    name = forms.CharField(max_length=200)
    description = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 2}))
    subjects = forms.MultipleChoiceField(
        choices=Subject.choices, widget=forms.CheckboxSelectMultiple, label="What to review"
    )
    filter_resource = forms.ModelChoiceField(
        queryset=Resource.objects.none(), required=False, label="Only on resource", empty_label="Any resource"
    )
    filter_min_sensitivity = forms.ChoiceField(
        required=False, choices=[("", "Any sensitivity"), *Sensitivity.choices], label="Minimum sensitivity"
    )
    filter_department = forms.CharField(required=False, max_length=120, label="Sponsor's department")
    filter_unused_days = forms.IntegerField(
        required=False, min_value=1, max_value=3650, label="Unused for (days)", help_text="Only access idle this long."
    )
    reviewer_rule = forms.ChoiceField(choices=ReviewerRule.choices, initial=ReviewerRule.SPONSOR_MANAGER)
    named_reviewer = _ReviewerChoice(
        queryset=Human.objects.none(), required=False, help_text="For the \u201cnamed reviewer\u201d rule."
    )
    fallback_reviewer = _ReviewerChoice(
        queryset=Human.objects.none(),
        help_text="Gets what the rule cannot route: separation of duties, a reviewer who left.",
    )
    duration_days = forms.IntegerField(min_value=1, max_value=MAX_DURATION_DAYS, initial=14, label="Duration (days)")
    recurrence = forms.ChoiceField(choices=Recurrence.choices, initial=Recurrence.NONE)
    cron = forms.CharField(
        required=False, max_length=120, label="Cron expression", help_text="With \u201ccron\u201d: e.g. 0 9 1 */3 *"
    )
    reminder_days = forms.CharField(
        required=False,
        max_length=120,
        initial="7, 1",
        label="Remind (days before due)",
        help_text="Comma-separated, e.g. 7, 1.",
    )
    escalate_after_days = forms.IntegerField(
        required=False, min_value=0, max_value=365, label="Escalate after (days overdue)", help_text="Empty: never."
    )
    no_response = forms.ChoiceField(choices=NoResponse.choices, initial=NoResponse.FLAG, label="If nobody answers")
    justification = forms.ChoiceField(
        choices=JustificationRule.choices, initial=JustificationRule.REVOKE, label="Justification required for"
    )
    bulk_risks = forms.MultipleChoiceField(
        required=False,
        choices=Risk.choices,
        widget=forms.CheckboxSelectMultiple,
        label="May be certified in bulk",
        help_text="Risk levels a reviewer may certify many at once.",
    )

    def __init__(self, *args: Any, user: Any, campaign: Campaign | None = None, **kwargs: Any) -> None:
        if campaign is not None and "initial" not in kwargs:
            kwargs["initial"] = initial_of(campaign)
        super().__init__(*args, **kwargs)
        self.fields["filter_resource"].queryset = Resource.objects.visible_to(user).order_by("name")  # type: ignore[attr-defined]
        for name in ("named_reviewer", "fallback_reviewer"):
            self.fields[name].queryset = reviewers()  # type: ignore[attr-defined]
        if campaign is not None and campaign.is_standing:
            for name in set(self.fields) - set(STANDING_EDITABLE):
                del self.fields[name]

    def clean_reminder_days(self) -> list[int]:
        text = (self.cleaned_data.get("reminder_days") or "").replace(";", ",")
        days: list[int] = []
        for part in filter(None, (p.strip() for p in text.split(","))):
            if not (part.isascii() and part.isdigit()) or int(part) > 365:
                raise forms.ValidationError("Whole days from 0 to 365, separated by commas (e.g. 7, 1).")
            days.append(int(part))
        return days

    def values(self) -> dict[str, Any]:
        """What to pass to the service: every setting this form shows."""
        data = self.cleaned_data
        out = {name: data.get(name) for name in self.fields if name in EDITABLE}
        for name in ("filter_min_sensitivity", "filter_department", "cron", "description"):
            if name in out:
                out[name] = out[name] or ""
        return out


def initial_of(campaign: Campaign) -> dict[str, Any]:
    values = {name: getattr(campaign, name) for name in EDITABLE}
    values["reminder_days"] = ", ".join(str(d) for d in campaign.reminder_days)
    values["filter_resource"] = campaign.filter_resource_id
    values["named_reviewer"] = campaign.named_reviewer_id
    values["fallback_reviewer"] = campaign.fallback_reviewer_id
    return values


def editable(campaign: Campaign) -> bool:
    return campaign.is_standing or campaign.status == CampaignStatus.DRAFT
