"""Serializer fields the API shares: text that must be text, times that must carry a zone, and ids of
objects the caller may see (through the model's ``visible_to``, so an answer never reveals what lies
outside the caller's view)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.db.models import Model
from django.utils import timezone
from rest_framework import serializers

# Generous, but bounded: nothing the console shows needs more, and a bound keeps megabyte strings out
# of the database and the audit log.
MAX_TEXT = 2000
MAX_LIST = 100


class StrictCharField(serializers.CharField):
    """Text only: DRF's CharField quietly turns numbers into strings, which hides client bugs."""

    def to_internal_value(self, data: Any) -> str:
        if not isinstance(data, str):
            self.fail("invalid")
        return str(super().to_internal_value(data))


class AwareDateTimeField(serializers.DateTimeField):
    """An ISO 8601 time with an offset. DRF would read a naive time in the server's zone; for
    expiries that silently shifts access by hours, so it is refused instead."""

    default_error_messages = {"naive": "Include a time zone, e.g. 2030-01-31T17:00:00Z."}

    def enforce_timezone(self, value: datetime) -> datetime:
        if timezone.is_naive(value):
            self.fail("naive")
        return super().enforce_timezone(value)


class VisibleIdField(serializers.PrimaryKeyRelatedField):
    """The integer id of an object the caller may see. Unknown and invisible ids give the same field
    error, so the answer reveals nothing about objects outside the caller's view."""

    default_error_messages = {
        "does_not_exist": "No {model} with id {pk_value} that you can see.",
        "incorrect_type": "Expected an integer id, got {data_type}.",
    }

    def __init__(self, model: type[Model], **kwargs: Any) -> None:
        self.model = model
        super().__init__(queryset=model._default_manager.all(), **kwargs)

    def get_queryset(self) -> Any:
        request = self.context.get("request")
        return self.model._default_manager.visible_to(getattr(request, "user", None))  # type: ignore[attr-defined]

    def to_internal_value(self, data: Any) -> Any:
        if type(data) is not int:
            self.fail("incorrect_type", data_type=type(data).__name__)
        if data < 1:
            self.fail("does_not_exist", model=self.model._meta.verbose_name, pk_value=data)
        try:
            return self.get_queryset().get(pk=data)
        except self.model.DoesNotExist:  # type: ignore[attr-defined]
            self.fail("does_not_exist", model=self.model._meta.verbose_name, pk_value=data)


def text(max_length: int = MAX_TEXT, **kwargs: Any) -> StrictCharField:
    kwargs.setdefault("required", False)
    kwargs.setdefault("allow_blank", True)
    kwargs.setdefault("default", "")
    return StrictCharField(max_length=max_length, **kwargs)


def reason() -> StrictCharField:
    return text(help_text="Why; kept in the audit log.")
