"""The audit page's filters, shared by its exports and its evidence bundle.

Unlike the other console lists, a bad filter value is shown as an error rather than ignored: on an audit
log, silently widening a filter an auditor typed (a mistyped date, an agent id that is not a number)
would present the wrong evidence as the right one.
"""

from __future__ import annotations

import re
from typing import Any

from django import forms
from django.core.exceptions import ValidationError

from audit.bundles import MAX_DIGESTS, Selection
from audit.models import ActorKind
from console.paging import MAX_KEY, day_range

_DIGEST = re.compile(r"[0-9a-f]{64}")


def _subject_id(label: str) -> forms.IntegerField:
    return forms.IntegerField(
        required=False,
        min_value=1,
        max_value=MAX_KEY,
        label=label,
        error_messages={"invalid": f"The {label.lower()} id must be a whole number, e.g. 42."},
    )


class AuditFilterForm(forms.Form):
    action = forms.CharField(required=False, max_length=80)
    actor_kind = forms.ChoiceField(required=False, choices=[("", "Any actor"), *ActorKind.choices])
    actor = forms.CharField(required=False, max_length=100)
    target_type = forms.CharField(required=False, max_length=40)
    target_id = forms.CharField(required=False, max_length=64)
    since = forms.DateField(required=False, widget=forms.DateInput(attrs={"type": "date"}))
    until = forms.DateField(required=False, widget=forms.DateInput(attrs={"type": "date"}))
    # "Every event about" a subject, as the app that knows it says (audit.bundles.about).
    agent = _subject_id("Agent")
    human = _subject_id("Human")
    resource = _subject_id("Resource")

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        since, until = cleaned.get("since"), cleaned.get("until")
        if since and until and until < since:
            self.add_error("until", "The end date is before the start date.")
        return cleaned

    def selection(self, **extra: Any) -> Selection | None:
        """The events these filters show (None when a value is invalid: nothing is shown then)."""
        if self.is_bound and not self.is_valid():
            return None
        v: dict[str, Any] = getattr(self, "cleaned_data", {})
        since, until = day_range(v.get("since"), v.get("until"))
        return Selection(
            since=since,
            until=until,
            agent=v.get("agent"),
            human=v.get("human"),
            resource=v.get("resource"),
            action=v.get("action", ""),
            actor_kind=v.get("actor_kind", ""),
            actor=v.get("actor", ""),
            target_type=v.get("target_type", ""),
            target_id=v.get("target_id", ""),
            **extra,
        )

    def subjects(self) -> list[tuple[str, int]]:
        """The subjects filtered by, e.g. [("agent", 7)], to say on the page whom the log is narrowed to."""
        if not self.is_bound or not self.is_valid():
            return []
        return [(name, self.cleaned_data[name]) for name in ("agent", "human", "resource") if self.cleaned_data[name]]


class DigestsField(forms.Field):
    """``digest=`` repeated: event digests (lowercase hex SHA-256), at most ``MAX_DIGESTS``."""

    widget = forms.MultipleHiddenInput

    def to_python(self, value: Any) -> tuple[str, ...]:
        values = [str(v).strip() for v in (value or []) if str(v).strip()]
        if len(values) > MAX_DIGESTS:
            raise ValidationError(f"At most {MAX_DIGESTS} event digests in one bundle.")
        bad = next((v for v in values if not _DIGEST.fullmatch(v)), None)
        if bad is not None:
            raise ValidationError(f"{bad[:70]!r} is not an event digest (64 lowercase hex characters).")
        return tuple(dict.fromkeys(values))


class BundleForm(AuditFilterForm):
    """The bundle of what the filters show, or of given events: one decision, or a list of digests (a
    decision's chain of custody)."""

    decision = forms.RegexField(
        regex=r"\A[0-9a-f]{64}\Z",
        required=False,
        error_messages={"invalid": "A decision id is 64 lowercase hex characters."},
    )
    digest = DigestsField(required=False)

    def selection(self, **extra: Any) -> Selection | None:
        if self.is_bound and not self.is_valid():
            return None
        v = self.cleaned_data if self.is_bound else {}
        return super().selection(decision=v.get("decision") or None, digests=v.get("digest") or (), **extra)
