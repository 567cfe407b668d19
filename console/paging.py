"""Keyset paging for console lists, and strict parsing of what a page link carries.

A page is "rows after the last row shown", never an OFFSET: the hundredth page costs what the first
does, and rows added meanwhile never shift a page. Two orders are offered:

- by name (``name, id``), for lists people scan alphabetically: the marker is opaque and carries the
  last row's name and id, so turning a page looks nothing up (and so reveals nothing about rows the
  viewer cannot see, whatever a hand-made marker says);
- newest first (a key that only grows, e.g. ``id`` or ``seq``): the marker is the last row's key.

A marker that is not one these functions wrote is a 400, never a 500 or a silently different page.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from django.core.exceptions import BadRequest
from django.db.models import Q, QuerySet
from django.http import HttpRequest

PAGE_SIZE = 50
# The largest key a bigint column holds: anything larger cannot name a row.
MAX_KEY = 2**63 - 1
_MAX_MARKER = 400


class BadMarker(BadRequest):
    """A page link that was not made here (edited by hand, truncated, from another list)."""

    def __init__(self, param: str) -> None:
        super().__init__(f"The {param!r} value of this link is not valid. Start again from the first page.")


def parse_key(value: str | None, *, param: str) -> int | None:
    """A row key from a query parameter: ASCII digits only (``"²".isdigit()`` is true, but no key),
    1 to ``MAX_KEY``. None when absent or empty; ``BadMarker`` otherwise."""
    if value is None or value == "":
        return None
    if not (value.isascii() and value.isdigit()) or len(value) > 19:
        raise BadMarker(param)
    key = int(value)
    if not 1 <= key <= MAX_KEY:
        raise BadMarker(param)
    return key


def _encode_name_marker(name: str, key: int) -> str:
    raw = json.dumps([name, key], separators=(",", ":"), ensure_ascii=False).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode_name_marker(value: str, *, param: str) -> tuple[str, int]:
    if len(value) > _MAX_MARKER:
        raise BadMarker(param)
    try:
        name, key = json.loads(base64.urlsafe_b64decode(value + "=" * (-len(value) % 4)))
    except (ValueError, TypeError, binascii.Error):
        raise BadMarker(param) from None
    if not isinstance(name, str) or type(key) is not int or not 1 <= key <= MAX_KEY or "\x00" in name:
        raise BadMarker(param)
    return name, key


@dataclass(frozen=True, slots=True)
class Page:
    """One page of a list and the query strings of its neighbours, for the shared pager."""

    rows: list[Any]
    # The query string of the next page, or None on the last one.
    next_query: str | None
    # The query string of the first page (the current filters, without the marker).
    first_query: str
    # Whether this is a later page (a marker was given).
    paged: bool


def query_without(request: HttpRequest, param: str) -> str:
    params = request.GET.copy()
    params.pop(param, None)
    return params.urlencode()


def page_of(
    request: HttpRequest,
    qs: QuerySet[Any],
    param: str,
    marker_of: Callable[[Any], str],
    paged: bool,
    *,
    size: int = PAGE_SIZE,
) -> Page:
    """``size`` rows of ``qs`` (ordered and already narrowed to "after the marker" by the caller), and the
    links to the next page (``marker_of`` its last row, in ``param``) and the first."""
    rows = list(qs[: size + 1])
    next_query = None
    if len(rows) > size:
        rows = rows[:size]
        params = request.GET.copy()
        params[param] = marker_of(rows[-1])
        next_query = params.urlencode()
    return Page(rows=rows, next_query=next_query, first_query=query_without(request, param), paged=paged)


def page_by_name(request: HttpRequest, qs: QuerySet[Any], *, param: str = "after") -> Page:
    """``qs`` in (name, id) order, from just after the row the marker names."""
    qs = qs.order_by("name", "id")
    value = request.GET.get(param, "")
    if value:
        name, key = _decode_name_marker(value, param=param)
        qs = qs.filter(Q(name__gt=name) | Q(name=name, id__gt=key))
    return page_of(request, qs, param, lambda row: _encode_name_marker(row.name, row.pk), bool(value))


def page_newest_first(request: HttpRequest, qs: QuerySet[Any], *, key: str = "id", param: str = "before") -> Page:
    """``qs`` newest first by ``key`` (unique, only ever growing), from just below the marker."""
    below = parse_key(request.GET.get(param), param=param)
    qs = qs.order_by(f"-{key}")
    if below is not None:
        qs = qs.filter(**{f"{key}__lt": below})
    return page_of(request, qs, param, lambda row: str(getattr(row, key)), below is not None)


def day_range(since: date | None, until: date | None) -> tuple[datetime | None, datetime | None]:
    """Whole UTC days from ``since`` to ``until`` inclusive, as [start, end) moments. An end past the
    last representable day means no end (``until=9999-12-31`` is "until forever", not an overflow)."""
    start = datetime.combine(since, time.min, tzinfo=UTC) if since else None
    end = None
    if until is not None and until < date.max:
        end = datetime.combine(until + timedelta(days=1), time.min, tzinfo=UTC)
    return start, end
