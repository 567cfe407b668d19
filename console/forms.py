"""Form pieces every console page uses: filters that never fail a page, a local date-time input, and
putting a service's refusal back on the field it names."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

from django import forms
from django.utils import timezone

from console.errors import DomainError

_LOCAL_INPUT = "%Y-%m-%dT%H:%M"


class DateTimeLocalInput(forms.DateTimeInput):
    input_type = "datetime-local"

    def __init__(self, attrs: dict[str, Any] | None = None) -> None:
        super().__init__(attrs=attrs, format=_LOCAL_INPUT)


def minutes_from_now(delta: timedelta) -> datetime:
    """A default for a date-time input: whole minutes, since a datetime-local input drops seconds."""
    return (timezone.now() + delta).replace(second=0, microsecond=0)


def apply_domain_error(form: forms.Form, error: DomainError, aliases: Mapping[str, str] | None = None) -> None:
    """Show a service's refusal next to the field it names (or above the form when it names none)."""
    aliases = aliases or {}
    if not error.fields:
        form.add_error(None, error.detail)
        return
    for field, messages in error.fields.items():
        name = aliases.get(field, field)
        for message in messages:
            form.add_error(name if name in form.fields else None, message)


class FilterForm(forms.Form):
    """Filters never fail a page: an invalid value is ignored rather than shown as an error."""

    def values(self) -> dict[str, Any]:
        if not self.is_bound:
            return {}
        self.is_valid()
        return {k: v for k, v in getattr(self, "cleaned_data", {}).items() if v not in (None, "", [])}


class ReasonForm(forms.Form):
    """The reason a person gives for an action (suspend, revoke…); kept in the audit log."""

    reason = forms.CharField(required=False, max_length=500)

    def reason_text(self) -> str:
        return self.cleaned_data.get("reason", "") if self.is_valid() else ""
