"""Serializer fields the API shares: text that must be text, times that must carry a zone, ids of
objects the caller may see (through the model's ``visible_to``, so an answer never reveals what lies
outside the caller's view), and, in answers, references to other objects that are null when those lie
outside it (the API's side of ``console.visibility``: an answer carries a hidden object's id, name or
attribution no more than a page does). Null, not omitted: every answer keeps one shape."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.db.models import Model
from django.utils import timezone
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from console.visibility import Visibility, label_of, visibility_of

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


OUTSIDE_VIEW = "Null when there is none, or when it lies outside your view."


def _visibility(field: serializers.Field[Any, Any, Any, Any]) -> Visibility:
    # No request in the context means nobody to show anything to: every reference comes out null.
    return visibility_of(field.context.get("request"))


@extend_schema_field(serializers.IntegerField(allow_null=True))
class RelatedIdField(serializers.Field[Any, Any, Any, Any]):
    """Output only: the id of the object a foreign key points at, or null when the caller may not see
    that object (``console.visibility``, through the model's ``visible_to``). Read from the key's
    column: an id needs no join, and a hidden object is never fetched."""

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("help_text", OUTSIDE_VIEW)
        super().__init__(read_only=True, allow_null=True, **kwargs)

    def get_attribute(self, instance: Model) -> tuple[type[Model], Any] | None:
        relation = instance._meta.get_field(str(self.source))
        pk = getattr(instance, relation.attname)  # type: ignore[union-attr]
        return None if pk is None else (relation.related_model, pk)  # type: ignore[return-value]

    def to_representation(self, value: tuple[type[Model], Any]) -> Any:
        model, pk = value
        return pk if _visibility(self).sees_id(model, pk) else None


@extend_schema_field(serializers.CharField(allow_null=True))
class RelatedNameField(serializers.Field[Any, Any, Any, Any]):
    """Output only: how a related object reads (its name), or null when the caller may not see it.
    ``source`` is the relation (``source="sponsor"``); select it with the rows to spare a query each."""

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("help_text", OUTSIDE_VIEW)
        super().__init__(read_only=True, allow_null=True, **kwargs)

    def to_representation(self, value: Model) -> Any:
        return label_of(value) if _visibility(self).sees(value) else None


@extend_schema_field(serializers.CharField(allow_null=True))
class BylineField(serializers.Field[Any, Any, Any, Any]):
    """Output only: an attribution kept as text ("created by …"), or null when it is the name of the
    related object ``names`` (a dotted path, e.g. ``"parent.delegate"``: the agent that may have made
    the row) and the caller may not see that object."""

    def __init__(self, names: str, **kwargs: Any) -> None:
        self.names = names
        kwargs.setdefault("help_text", "Who did it. Null when that is an agent outside your view.")
        super().__init__(read_only=True, allow_null=True, **kwargs)

    def get_attribute(self, instance: Model) -> tuple[str, Model | None]:
        obj: Any = instance
        for step in self.names.split("."):
            obj = getattr(obj, step, None) if obj is not None else None
        return str(super().get_attribute(instance)), obj

    def to_representation(self, value: tuple[str, Model | None]) -> Any:
        label, obj = value
        return None if _visibility(self).hides_label(label, obj) else label


def text(max_length: int = MAX_TEXT, **kwargs: Any) -> StrictCharField:
    kwargs.setdefault("required", False)
    kwargs.setdefault("allow_blank", True)
    kwargs.setdefault("default", "")
    return StrictCharField(max_length=max_length, **kwargs)


def reason() -> StrictCharField:
    return text(help_text="Why; kept in the audit log.")
