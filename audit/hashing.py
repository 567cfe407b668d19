"""How an event's digest and its seal's hash are computed. Shared by the writer, the sealer and the
verifiers (``audit.verify`` and the standalone bundle verifier) so they cannot drift.

content digest = SHA-256 of the RFC 8785 canonical JSON of the event's content fields;
seal hash      = SHA-256 of "<seq>|<prev_hash>|<content digest>" (ASCII).

The digest is the event's public id (a decision's id), known before the event is sealed. The document
holds a random ``nonce`` so two otherwise identical events differ; events written before sealing existed
have none, and their document has no ``nonce`` key (so their digests, and every seal after them, stay as
they were).
"""

from __future__ import annotations

import hashlib
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
    """What an event's digest is taken over (and what an evidence bundle carries of each event)."""
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


def content_digest(**fields: Any) -> str:
    return hashlib.sha256(rfc8785.dumps(content_document(**fields))).hexdigest()


def event_document(event: Any) -> dict[str, Any]:
    """The content document of an event (saved or not): the one place its fields are listed."""
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
    return hashlib.sha256(rfc8785.dumps(event_document(event))).hexdigest()


def chain_hash(seq: int, prev_hash: str, digest: str) -> str:
    return hashlib.sha256(f"{seq}|{prev_hash}|{digest}".encode("ascii")).hexdigest()
