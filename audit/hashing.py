"""What an event's digest and its seal's hash are computed over. Shared by the writer, the sealer and the
verifiers so they cannot drift.

canonical content = the RFC 8785 canonical JSON of the event's content document (below), stored with
                    the event: the exact bytes its digest is taken over;
content digest    = SHA-256 of the canonical content: the event's public id (a decision's id), known
                    before the event is sealed;
seal hash         = SHA-256 of "<seq>|<prev_hash>|<content digest>" (ASCII).

Storing the canonical bytes lets anyone (PostgreSQL itself, the offline bundle verifier) check a digest
by hashing bytes, without encoding JSON again; the event's columns are checked against those bytes.

The document holds a random ``nonce`` so two otherwise identical events differ; events written before
sealing existed have none, and their document has no ``nonce`` key (their digests stay as they were).
"""

from __future__ import annotations

import hashlib
import json
import re
import secrets
from datetime import datetime
from typing import Any

import rfc8785


def isoformat(moment: datetime) -> str:
    return moment.isoformat(timespec="microseconds")


def content_document(
    *,
    occurred_at: datetime,
    actor_kind: str,
    actor_id: str,
    actor_label: str,
    on_behalf_of: list[Any],
    action: str,
    target_type: str,
    target_id: str,
    target_label: str,
    context: dict[str, Any],
    nonce: str = "",
) -> dict[str, Any]:
    """What an event's digest is taken over."""
    document: dict[str, Any] = {
        "occurred_at": isoformat(occurred_at),
        "actor": {"kind": actor_kind, "id": actor_id, "label": actor_label},
        "on_behalf_of": on_behalf_of,
        "action": action,
        "target": {"type": target_type, "id": target_id, "label": target_label},
        "context": context,
    }
    if nonce:
        document["nonce"] = nonce
    return document


# Characters beyond the Basic Multilingual Plane: RFC 8785 sorts object keys by UTF-16 code units,
# Python by code points, and the two orders differ only when such characters are in keys.
ASTRAL = re.compile("[\U00010000-\U0010ffff]")


def has_floats(value: Any) -> bool:
    if isinstance(value, dict):
        return any(has_floats(item) for item in value.values())
    if isinstance(value, list):
        return any(has_floats(item) for item in value)
    return isinstance(value, float)


def canonical(document: Any, *, floats: bool | None = None) -> bytes:
    """The RFC 8785 canonical JSON of ``document``: by Python's C encoder when that gives the same bytes
    (always but with floats, which ECMAScript formats otherwise, or characters beyond the BMP), by the
    rfc8785 library otherwise. ``floats`` says whether ``document`` holds any, when the caller knows."""
    if not (has_floats(document) if floats is None else floats):
        text = json.dumps(document, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
        if text.isascii() or not ASTRAL.search(text):
            return text.encode()
    return rfc8785.dumps(document)


def digest_of(canonical_content: bytes) -> str:
    return hashlib.sha256(canonical_content).hexdigest()


def content_digest(**fields: Any) -> str:
    return digest_of(canonical(content_document(**fields)))


def event_document(event: Any) -> dict[str, Any]:
    """The content document of an event (saved or not), from its columns: the one place they are listed."""
    return content_document(
        occurred_at=event.occurred_at,
        actor_kind=event.actor_kind,
        actor_id=event.actor_id,
        actor_label=event.actor_label,
        on_behalf_of=event.on_behalf_of,
        action=event.action,
        target_type=event.target_type,
        target_id=event.target_id,
        target_label=event.target_label,
        context=event.context,
        nonce=event.nonce,
    )


def event_digest(event: Any) -> str:
    return digest_of(canonical(event_document(event)))


def chain_hash(seq: int, prev_hash: str, digest: str) -> str:
    return hashlib.sha256(f"{seq}|{prev_hash}|{digest}".encode("ascii")).hexdigest()


class SqlCanonical:
    """The canonical content of events a database statement writes in bulk, as one SQL expression: for
    writers whose events differ only in a few values the database has in hand (an id, a timestamp, a
    nonce). The document is encoded here, once, by ``canonical`` (so key order and string escaping are
    exactly this module's), with ``value`` placeholders where the database supplies a value; ``sql``
    cuts the text at them into literal pieces (parameters) joined by the SQL expressions.

        sql = SqlCanonical()
        document = content_document(..., target_id=sql.value("'\"' || e.id || '\"'"), ...)
        expression, params = sql.sql(document)

    Each expression must yield the value's JSON text exactly as RFC 8785 writes it, a string's quotes
    included; PostgreSQL's ``to_json(text)::text`` does for any text (tests/audit/test_sql_events.py).
    """

    def __init__(self) -> None:
        # Unguessable and beyond what JSON escapes, so a placeholder encodes as itself and no value of
        # the document can contain one by accident.
        self._mark = f"\ue000{secrets.token_hex(8)}:"
        self._expressions: list[str] = []

    def value(self, expression: str) -> str:
        """A placeholder to put in the document where ``expression``'s JSON text goes."""
        self._expressions.append(expression)
        return f"{self._mark}{len(self._expressions) - 1}\ue000"

    def sql(self, document: Any) -> tuple[str, list[str]]:
        """``(expression, params)``: an SQL text expression (``%s`` for each literal piece, in order) that
        gives ``canonical(document)`` with each placeholder replaced by its expression's value."""
        text = canonical(document).decode()
        # Split at each placeholder, quotes included: [piece, index, piece, index, ..., piece].
        parts = re.split(f'"{re.escape(self._mark)}([0-9]+)\ue000"', text)
        pieces, indexes = parts[::2], [int(i) for i in parts[1::2]]
        if sorted(indexes) != list(range(len(self._expressions))) or any(self._mark in p for p in pieces):
            raise ValueError("each placeholder must appear once in the document, as a value")
        expression = ["%s::text"]
        for i in indexes:
            expression += [f"({self._expressions[i]})", "%s::text"]
        return " || ".join(expression), pieces
