from __future__ import annotations

from django import forms

from audit.models import ActorKind
from console.forms import FilterForm


class AuditFilterForm(FilterForm):
    action = forms.CharField(required=False, max_length=80)
    actor_kind = forms.ChoiceField(required=False, choices=[("", "Any actor"), *ActorKind.choices])
    actor = forms.CharField(required=False, max_length=100)
    target_type = forms.CharField(required=False, max_length=40)
    target_id = forms.CharField(required=False, max_length=64)
    since = forms.DateField(required=False, widget=forms.DateInput(attrs={"type": "date"}))
    until = forms.DateField(required=False, widget=forms.DateInput(attrs={"type": "date"}))
