"""CSV and JSON exports of what the audit page's filters show, streamed: rows are read in chunks from a
database cursor and written out as they come, so exporting the whole log never holds it in memory.

These are for reading and spreadsheets; the evidence that verifies offline is the bundle
(``audit.bundles``).
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from datetime import datetime
from typing import Any

from django.db.models import QuerySet

from audit.hashing import isoformat
from audit.models import AuditEvent

# Rows fetched per round trip: a few megabytes of events at most.
CHUNK = 2000
BOM = "\ufeff"
# What a spreadsheet reads as the start of a formula (CR and tab too: some strip them and read on).
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")

COLUMNS = (
    "seq",
    "digest",
    "occurred_at",
    "actor_kind",
    "actor_id",
    "actor_label",
    "on_behalf_of",
    "action",
    "target_type",
    "target_id",
    "target_label",
    "context",
    "hash",
    "prev_hash",
)


def rows(events: QuerySet[AuditEvent]) -> Iterator[dict[str, Any]]:
    """Each event as an export row, newest first (the page's order), its seal null until sealed."""
    for event in events.select_related("seal").order_by("-id").iterator(chunk_size=CHUNK):
        seal = getattr(event, "seal", None)
        yield {
            "seq": seal.seq if seal is not None else None,
            "digest": event.digest,
            "occurred_at": isoformat(event.occurred_at),
            "actor_kind": event.actor_kind,
            "actor_id": event.actor_id,
            "actor_label": event.actor_label,
            "on_behalf_of": event.on_behalf_of,
            "action": event.action,
            "target_type": event.target_type,
            "target_id": event.target_id,
            "target_label": event.target_label,
            "context": event.context,
            "hash": seal.hash if seal is not None else None,
            "prev_hash": seal.prev_hash if seal is not None else None,
        }


def safe_cell(value: Any) -> Any:
    """A cell as a spreadsheet should show it: JSON for structures, and text that would start a formula
    (labels and contexts come from agents) behind a leading apostrophe."""
    if value is None:
        return ""
    if isinstance(value, dict | list):
        value = json.dumps(value, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    if isinstance(value, str) and value.startswith(FORMULA_STARTS):
        return "'" + value
    return value


class _Line:
    """A file-like object that hands back what the csv writer writes, one line at a time."""

    def write(self, value: str) -> str:
        return value


def csv_lines(events: QuerySet[AuditEvent]) -> Iterator[str]:
    writer = csv.writer(_Line())
    yield BOM + writer.writerow(COLUMNS)
    for row in rows(events):
        yield writer.writerow([safe_cell(row[name]) for name in COLUMNS])


def json_chunks(events: QuerySet[AuditEvent], *, selection: dict[str, Any], exported_at: datetime) -> Iterator[str]:
    head = json.dumps({"exported_at": isoformat(exported_at), "selection": selection}, ensure_ascii=False)
    yield head[:-1] + ', "events": ['
    first = True
    for row in rows(events):
        yield ("" if first else ",") + "\n" + json.dumps(row, ensure_ascii=False)
        first = False
    yield "\n]}\n"


def filename(exported_at: datetime, fmt: str) -> str:
    """ASCII only, no quotes or separators: safe in a Content-Disposition header on every platform."""
    return f"custos-audit-{exported_at.strftime('%Y%m%dT%H%M%SZ')}.{fmt}"
