"""A campaign's evidence as a file: one row per review item, as CSV (for a spreadsheet) or JSON.

Both are streamed from a server-side cursor, so a campaign of 100,000 items never sits in memory. The CSV
opens cleanly in a spreadsheet: UTF-8 with a byte-order mark, a header row, times in ISO 8601 UTC, and
no cell a spreadsheet would run as a formula.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

from django.db.models import QuerySet
from django.utils.text import slugify

from reviews.models import Campaign, ReviewItem

CHUNK = 2000
BOM = "\ufeff"
# What a spreadsheet reads as the start of a formula (CR and tab too: some strip them and read on).
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")

# Each report column and the item field it is read from (the last two are the campaign's).
_FROM: tuple[tuple[str, str], ...] = (
    ("item_id", "id"),
    ("kind", "kind"),
    ("subject", "subject_key"),
    ("agent", "agent__name"),
    ("label", "label"),
    ("scopes", "scopes"),
    ("reviewer", "reviewer__name"),
    ("routing", "routing"),
    ("risk", "risk"),
    ("recommendation", "recommendation"),
    ("recommendation_reason", "recommendation_reason"),
    ("status", "status"),
    ("justification", "justification"),
    ("decided_by", "decided_by"),
    ("decided_at", "decided_at"),
    ("applied", "applied"),
    ("applied_at", "applied_at"),
    ("renewed_until", "renewed_until"),
    ("bulk", "bulk"),
)
COLUMNS = (*(column for column, _ in _FROM), "campaign_id", "campaign")
_FIELDS = tuple(field for _, field in _FROM)


def utc(moment: datetime | None) -> str | None:
    if moment is None:
        return None
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def report_items(campaign: Campaign, items: QuerySet[ReviewItem]) -> QuerySet[ReviewItem]:
    """The rows of ``campaign``'s report among ``items`` (already scoped to the viewer)."""
    return items.filter(campaign=campaign).order_by("id")


def rows(campaign: Campaign, items: QuerySet[ReviewItem]) -> Iterator[dict[str, Any]]:
    for values in report_items(campaign, items).values_list(*_FIELDS).iterator(chunk_size=CHUNK):
        row = dict(zip(COLUMNS, values, strict=False))
        row["scopes"] = list(row["scopes"] or [])
        for name in ("decided_at", "applied_at", "renewed_until"):
            row[name] = utc(row[name])
        row["campaign_id"] = campaign.pk
        row["campaign"] = campaign.name
        yield row


def safe_cell(value: Any) -> Any:
    """A cell as a spreadsheet should show it: text that would start a formula gets a leading apostrophe."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        value = " ".join(str(v) for v in value)
    if isinstance(value, str) and value.startswith(FORMULA_STARTS):
        return "'" + value
    return value


class _Line:
    """A file-like object that hands back what the csv writer writes, one line at a time."""

    def write(self, value: str) -> str:
        return value


def csv_lines(campaign: Campaign, items: QuerySet[ReviewItem]) -> Iterator[str]:
    writer = csv.writer(_Line())
    yield BOM + writer.writerow(COLUMNS)
    for row in rows(campaign, items):
        yield writer.writerow([safe_cell(row[name]) for name in COLUMNS])


def json_chunks(campaign: Campaign, items: QuerySet[ReviewItem], *, generated_at: datetime) -> Iterator[str]:
    head = {
        "campaign": {
            "id": campaign.pk,
            "name": campaign.name,
            "kind": campaign.kind,
            "status": campaign.status,
            "launched_at": utc(campaign.launched_at),
            "due_at": utc(campaign.due_at),
            "closed_at": utc(campaign.closed_at),
            "no_response": campaign.no_response,
        },
        "generated_at": utc(generated_at),
    }
    yield json.dumps(head)[:-1] + ', "items": ['
    first = True
    for row in rows(campaign, items):
        yield ("" if first else ",") + "\n" + json.dumps(row, ensure_ascii=False)
        first = False
    yield "\n]}\n"


def filename(campaign: Campaign, fmt: str) -> str:
    """ASCII only, no quotes or separators: safe in a Content-Disposition header on every platform."""
    return f"campaign-{campaign.pk}-{slugify(campaign.name)[:60] or 'report'}.{fmt}"
