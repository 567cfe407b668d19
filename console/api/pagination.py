"""Keyset ("cursor") pagination over one unique, ever-increasing key: newest first.

A page is "rows with key below the cursor", never an offset, so rows inserted while a client walks
the list can neither repeat nor push anything off the page it is about to read. The cursor is opaque
to clients (base64 of a tiny JSON document); a malformed one is a 400, not a 404 or a 500.
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass
from typing import Any

from django.db.models import Model, QuerySet
from drf_spectacular.utils import OpenApiParameter
from rest_framework import serializers
from rest_framework.exceptions import ValidationError
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.utils.urls import replace_query_param

DEFAULT_LIMIT = 50
MAX_LIMIT = 200
_MAX_CURSOR_LENGTH = 200
_MAX_KEY = 2**63 - 1  # bigint: anything larger cannot be a row's key

PARAMETERS = [
    OpenApiParameter(
        "cursor",
        {"type": "string", "maxLength": _MAX_CURSOR_LENGTH},
        description="Opaque cursor from a previous page's next/previous.",
    ),
    OpenApiParameter(
        "limit",
        {"type": "integer", "minimum": 1, "maximum": MAX_LIMIT, "default": DEFAULT_LIMIT},
        description=f"Page size, 1 to {MAX_LIMIT} (default {DEFAULT_LIMIT}).",
    ),
]


@dataclass(frozen=True, slots=True)
class Cursor:
    key: int
    forward: bool

    def encode(self) -> str:
        raw = json.dumps({"k": self.key, "d": "n" if self.forward else "p"}, separators=(",", ":")).encode()
        return base64.urlsafe_b64encode(raw).decode().rstrip("=")

    @classmethod
    def decode(cls, token: str) -> Cursor:
        invalid = ValidationError({"cursor": ["Invalid cursor; use the next or previous link of a page."]})
        if len(token) > _MAX_CURSOR_LENGTH:
            raise invalid
        try:
            data = json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
            key, direction = data["k"], data["d"]
        except (ValueError, TypeError, KeyError, binascii.Error):
            raise invalid from None
        if type(key) is not int or not 0 <= key <= _MAX_KEY or direction not in ("n", "p"):
            raise invalid
        return cls(key=key, forward=direction == "n")


class _LimitInput(serializers.Serializer[Any]):
    limit = serializers.IntegerField(min_value=1, max_value=MAX_LIMIT, default=DEFAULT_LIMIT)


class KeysetPagination:
    def __init__(self, key: str = "id") -> None:
        self.key = key
        self._next: int | None = None
        self._previous: int | None = None
        self._request: Request | None = None

    def paginate_queryset(self, queryset: QuerySet[Any], request: Request) -> list[Any]:
        self._request = request
        limit_input = _LimitInput(data={"limit": request.query_params.get("limit", DEFAULT_LIMIT)})
        limit_input.is_valid(raise_exception=True)
        limit: int = limit_input.validated_data["limit"]
        token = request.query_params.get("cursor")
        cursor = Cursor.decode(token) if token else None

        if cursor is None or cursor.forward:
            page = queryset.order_by(f"-{self.key}")
            if cursor is not None:
                page = page.filter(**{f"{self.key}__lt": cursor.key})
            rows = list(page[: limit + 1])
            more = len(rows) > limit
            rows = rows[:limit]
            self._next = self._key_of(rows[-1]) if more else None
            # Coming from a cursor means a newer page exists (the one we came from).
            self._previous = self._key_of(rows[0]) if cursor is not None and rows else None
        else:
            page = queryset.filter(**{f"{self.key}__gt": cursor.key}).order_by(self.key)
            rows = list(page[: limit + 1])
            more = len(rows) > limit
            rows = rows[:limit]
            rows.reverse()
            self._previous = self._key_of(rows[0]) if more else None
            self._next = self._key_of(rows[-1]) if rows else None
        return rows

    def _key_of(self, row: Model) -> int:
        return int(getattr(row, self.key))

    def _link(self, key: int | None, *, forward: bool) -> str | None:
        if key is None or self._request is None:
            return None
        url = self._request.build_absolute_uri()
        return replace_query_param(url, "cursor", Cursor(key, forward).encode())

    def get_paginated_response(self, results: list[Any]) -> Response:
        return Response(
            {
                "next": self._link(self._next, forward=True),
                "previous": self._link(self._previous, forward=False),
                "results": results,
            }
        )


def page_serializer(item: type[serializers.Serializer[Any]], name: str) -> type[serializers.Serializer[Any]]:
    """The response shape of one page of ``item``, as its own named schema component."""
    fields: dict[str, Any] = {
        "next": serializers.URLField(allow_null=True, help_text="The next (older) page, or null at the end."),
        "previous": serializers.URLField(allow_null=True, help_text="The previous (newer) page, or null."),
        "results": item(many=True),
    }
    return type(name, (serializers.Serializer,), fields)
