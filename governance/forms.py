"""Console forms. They parse and present input; the services decide what is allowed.

Every choice list is built from ``visible_to(user)`` querysets, so a form never offers something the
user could not see. Rules that span rows (attenuation, expiry caps, sub-agent checks) stay in
``governance.services``; their ``DomainError`` is put back on the right field with
``console.forms.apply_domain_error``.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django import forms
from django.conf import settings

from console.forms import DateTimeLocalInput, FilterForm, minutes_from_now
from governance.models import (
    Agent,
    AgentStatus,
    Delegation,
    Human,
    HumanStatus,
    Resource,
    ResourceKind,
    RiskTier,
    Sensitivity,
)
from governance.selectors import human_held_scopes


class AgentFilterForm(FilterForm):
    q = forms.CharField(required=False, max_length=100, label="Search")
    status = forms.ChoiceField(required=False, choices=[("", "Any status"), *AgentStatus.choices])
    risk = forms.ChoiceField(required=False, choices=[("", "Any risk"), *RiskTier.choices])
    sponsor = forms.ModelChoiceField(queryset=Human.objects.none(), required=False, empty_label="Any sponsor")
    level = forms.ChoiceField(
        required=False, choices=[("", "All levels"), ("top", "Top-level agents"), ("sub", "Sub-agents")]
    )

    def __init__(self, *args: Any, user: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        sponsor_field = self.fields["sponsor"]
        assert isinstance(sponsor_field, forms.ModelChoiceField)
        sponsor_field.queryset = Human.objects.visible_to(user).filter(sponsored_agents__isnull=False).distinct()


class HumanFilterForm(FilterForm):
    q = forms.CharField(required=False, max_length=100, label="Search")
    status = forms.ChoiceField(required=False, choices=[("", "Any status"), *HumanStatus.choices])


class ResourceFilterForm(FilterForm):
    q = forms.CharField(required=False, max_length=100, label="Search")
    kind = forms.ChoiceField(required=False, choices=[("", "Any kind"), *ResourceKind.choices])
    sensitivity = forms.ChoiceField(required=False, choices=[("", "Any sensitivity"), *Sensitivity.choices])


class DelegationFilterForm(FilterForm):
    q = forms.CharField(required=False, max_length=100, label="Search")
    state = forms.ChoiceField(
        required=False,
        choices=[("", "In force"), ("expired", "Expired"), ("revoked", "Revoked"), ("all", "Any status")],
    )


class AccessRequestFilterForm(FilterForm):
    q = forms.CharField(required=False, max_length=100, label="Search")
    status = forms.ChoiceField(
        required=False,
        choices=[
            ("", "Awaiting a decision"),
            ("approved", "Approved"),
            ("denied", "Denied"),
            ("expired", "Lapsed"),
            ("all", "All requests"),
        ],
    )
    agent = forms.IntegerField(required=False, min_value=1, widget=forms.HiddenInput)


class DriftFilterForm(FilterForm):
    q = forms.CharField(required=False, max_length=100, label="Search")
    state = forms.ChoiceField(
        required=False, choices=[("", "Open"), ("acknowledged", "Acknowledged"), ("all", "All drift events")]
    )


# --- Admin forms (POST) ---------------------------------------------------------------------


class AgentCreateForm(forms.Form):
    name = forms.CharField(max_length=120)
    purpose = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 2}))
    sponsor = forms.ModelChoiceField(
        queryset=Human.objects.none(), required=False, help_text="Leave empty for a sub-agent to inherit it."
    )
    parent = forms.ModelChoiceField(
        queryset=Agent.objects.none(), required=False, empty_label="— none: a top-level agent —"
    )
    risk_tier = forms.ChoiceField(choices=RiskTier.choices, initial=RiskTier.MEDIUM)

    def __init__(self, *args: Any, user: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["sponsor"].queryset = Human.objects.visible_to(user).active()  # type: ignore[attr-defined]
        self.fields["parent"].queryset = Agent.objects.visible_to(user).active()  # type: ignore[attr-defined]


class ResourceCreateForm(forms.Form):
    name = forms.CharField(max_length=120, help_text="Dotted, lower case, e.g. crm.contacts or mcp.crm.")
    kind = forms.ChoiceField(choices=ResourceKind.choices, initial=ResourceKind.API)
    uri = forms.CharField(
        max_length=200,
        required=False,
        label="Resource URI",
        help_text="For an MCP server: its canonical URI (RFC 8707), e.g. https://mcp.example.com/mcp. "
        "Tokens asked for with this resource are good at this server only.",
    )
    actions = forms.CharField(
        max_length=2000, help_text="Separated by spaces or commas, e.g. read write. An MCP server's tools."
    )
    sensitivity = forms.ChoiceField(choices=Sensitivity.choices, initial=Sensitivity.MEDIUM)
    owner = forms.ModelChoiceField(queryset=Human.objects.none())
    description = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 2}))

    def __init__(self, *args: Any, user: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["owner"].queryset = Human.objects.visible_to(user).active()  # type: ignore[attr-defined]

    def clean_actions(self) -> list[str]:
        return self.cleaned_data["actions"].replace(",", " ").split()


class GrantCreateForm(forms.Form):
    scope = forms.ChoiceField(help_text="resource:action")
    expires_at = forms.DateTimeField(
        required=False, widget=DateTimeLocalInput(), label="Expires (UTC)", help_text="Required for agents."
    )
    justification = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 2}))

    def __init__(self, *args: Any, user: Any, for_agent: bool, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._resources = {r.name: r for r in Resource.objects.visible_to(user).only("id", "name", "actions")}
        grouped = [(name, [(f"{name}:{a}", a) for a in r.actions]) for name, r in self._resources.items()]
        self.fields["scope"].choices = [("", "Choose a scope…"), *grouped]  # type: ignore[attr-defined]
        if for_agent:
            self.fields["expires_at"].initial = minutes_from_now(
                min(timedelta(days=30), settings.CUSTOS_GRANT_MAX_LIFETIME)
            )
        else:
            self.fields["expires_at"].help_text = "Leave empty for open-ended access."

    def clean_scope(self) -> tuple[Resource, str]:
        name, _, action = self.cleaned_data["scope"].partition(":")
        return self._resources[name], action


class _DelegationForm(forms.Form):
    scopes = forms.MultipleChoiceField(widget=forms.CheckboxSelectMultiple)
    expires_at = forms.DateTimeField(widget=DateTimeLocalInput(), label="Expires (UTC)")
    purpose = forms.CharField(widget=forms.Textarea(attrs={"rows": 2}))
    max_depth = forms.IntegerField(
        min_value=0, initial=0, label="Further hops", help_text="How many more levels it may delegate down."
    )

    def _set_scopes(self, scopes: set[str]) -> None:
        self.fields["scopes"].choices = [(s, s) for s in sorted(scopes)]  # type: ignore[attr-defined]


class RootDelegationForm(_DelegationForm):
    """A human lets an agent act on their behalf with some of the access they hold."""

    delegate = forms.ModelChoiceField(queryset=Agent.objects.none())
    field_order = ["delegate", "scopes", "expires_at", "max_depth", "purpose"]

    def __init__(self, *args: Any, user: Any, human: Human, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["delegate"].queryset = Agent.objects.visible_to(user).active()  # type: ignore[attr-defined]
        self._set_scopes(human_held_scopes(human))
        self.fields["expires_at"].initial = minutes_from_now(
            min(timedelta(days=7), settings.CUSTOS_DELEGATION_MAX_LIFETIME)
        )


class _ParentChoiceField(forms.ModelChoiceField):
    def label_from_instance(self, obj: Any) -> str:
        return f"#{obj.pk} for {obj.root_human.name} · {', '.join(obj.scopes)} · until {obj.expires_at:%Y-%m-%d %H:%M}"


class ChildDelegationForm(_DelegationForm):
    """An agent passes on part of a delegation it holds to one of its own sub-agents."""

    parent = _ParentChoiceField(queryset=Delegation.objects.none(), label="From delegation")
    delegate = forms.ModelChoiceField(queryset=Agent.objects.none(), label="To sub-agent")
    field_order = ["parent", "delegate", "scopes", "expires_at", "max_depth", "purpose"]

    def __init__(self, *args: Any, user: Any, agent: Agent, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        held = Delegation.objects.visible_to(user).active().filter(delegate=agent).select_related("root_human")
        self.fields["parent"].queryset = held  # type: ignore[attr-defined]
        parents = list(held)
        self.fields["delegate"].queryset = Agent.objects.visible_to(user).active().filter(parent=agent)  # type: ignore[attr-defined]
        # Offer every scope some parent holds; the service refuses one wider than the parent picked.
        self._set_scopes({s for d in parents for s in d.scopes})
        if len(parents) == 1:
            self.fields["parent"].initial = parents[0].pk
        self.fields["expires_at"].initial = minutes_from_now(timedelta(days=1))


class KeyCreateForm(forms.Form):
    name = forms.CharField(required=False, max_length=120, help_text="Where it will be used, e.g. prod-worker.")
    expires_at = forms.DateTimeField(
        required=False,
        widget=DateTimeLocalInput(),
        label="Expires (UTC)",
        help_text=f"Empty: {settings.CUSTOS_KEY_TTL.days} days from now.",
    )


class DecisionNoteForm(forms.Form):
    note = forms.CharField(required=False, max_length=500)
