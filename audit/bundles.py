"""Evidence bundles: a self-contained file an auditor verifies offline with ``python -m audit.verify``.

A bundle holds the selected events with their content, the seal of every event from the first selected
one up to a signed checkpoint (the events not selected appear only as their digests), that checkpoint,
its public key, and a manifest — what was selected, the range, the count and a digest of the selected
events' ids — signed with the checkpoint key. The format is ``audit.verify.FORMAT``.
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.conf import settings
from django.db import DatabaseError
from django.db.models import Q, QuerySet
from django.utils import timezone

from audit import checkpoints, sealer
from audit.hashing import canonical, isoformat
from audit.models import AuditEvent, Checkpoint, PendingSeal, Seal
from audit.verify import FORMAT, GENESIS_HASH

# A bundle is a file people open and move around: beyond this, narrow the selection.
MAX_EVENTS = 100_000
# How long an export waits for the selected events to be sealed (by the running sealer, or here).
SEAL_WAIT_SECONDS = 10.0


class SelectionTooLarge(ValueError):
    pass


class NothingSelected(ValueError):
    pass


@dataclass(frozen=True, slots=True)
class Selection:
    """What a bundle holds: events in a time range, those of an agent or a human (as actor, target or
    someone acted for), or one decision (by its id)."""

    since: datetime | None = None
    until: datetime | None = None
    agent: int | None = None
    human: int | None = None
    decision: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "since": isoformat(self.since) if self.since else None,
            "until": isoformat(self.until) if self.until else None,
            "agent": self.agent,
            "human": self.human,
            "decision": self.decision,
        }

    def events(self) -> QuerySet[AuditEvent]:
        events = AuditEvent.objects.all()
        if self.since is not None:
            events = events.filter(occurred_at__gte=self.since)
        if self.until is not None:
            events = events.filter(occurred_at__lt=self.until)
        if self.decision is not None:
            events = events.filter(digest=self.decision)
        for kind, ident in (("agent", self.agent), ("human", self.human)):
            if ident is None:
                continue
            refers = Q(target_type=kind, target_id=str(ident)) | Q(on_behalf_of__contains=[{"type": kind, "id": ident}])
            if kind == "agent":
                refers |= Q(actor_kind="agent", actor_id=str(ident))
            events = events.filter(refers)
        return events


def _sealed(selected: QuerySet[AuditEvent]) -> None:
    """Make sure the selected events are sealed: seal here where this process may (make run, tests), or
    wait for the running sealer (in production the application's database role cannot seal)."""
    deadline = time.monotonic() + SEAL_WAIT_SECONDS
    may_seal = True
    while PendingSeal.objects.filter(event_id__in=selected.values("id")).exists():
        sealed = 0
        if may_seal:
            try:
                sealed = sealer.seal_batch().count
            except DatabaseError:
                may_seal = False
        if sealed == 0:
            if time.monotonic() > deadline:
                raise TimeoutError("the selected events are not sealed yet; is the sealer running?")
            time.sleep(0.05)


def _checkpoint_covering(seq: int) -> Checkpoint:
    """The first checkpoint at or after ``seq`` signed with the current key (the manifest's), signing
    one now when there is none yet."""
    ours = Checkpoint.objects.filter(seq__gte=seq, key_fingerprint=checkpoints.current_fingerprint()).order_by("seq")
    covering = ours.first() or checkpoints.checkpoint_now() or ours.first()
    if covering is None:
        raise RuntimeError(
            f"no checkpoint signed with the current key covers event #{seq} yet; try again after the next event"
        )
    return covering


def export_bundle(selection: Selection) -> dict[str, Any]:
    selected_events = selection.events()
    _sealed(selected_events)
    selected = list(
        Seal.objects.filter(event__in=selected_events).order_by("seq").select_related("event")[: MAX_EVENTS + 1]
    )
    if not selected:
        raise NothingSelected("no event matches this selection")
    if len(selected) > MAX_EVENTS:
        raise SelectionTooLarge(f"more than {MAX_EVENTS} events match: narrow the selection")
    first, last = selected[0], selected[-1]
    checkpoint = checkpoints.Signed.of(_checkpoint_covering(last.seq))
    seals = [
        {"seq": seq, "prev_hash": prev, "hash": sealed_hash, "digest": digest}
        for seq, prev, sealed_hash, digest in Seal.objects.filter(seq__gte=first.seq, seq__lte=checkpoint.seq)
        .order_by("seq")
        .values_list("seq", "prev_hash", "hash", "event__digest")
    ]
    digests = [seal.event.digest for seal in selected]
    manifest: dict[str, Any] = {
        "format": FORMAT,
        "log": settings.CUSTOS_ISSUER,
        "created_at": isoformat(timezone.now()),
        "selection": selection.as_dict(),
        "first_seq": first.seq,
        "first_prev_hash": first.prev_hash if first.seq > 1 else GENESIS_HASH,
        "checkpoint_seq": checkpoint.seq,
        "checkpoint_hash": checkpoint.hash,
        "event_count": len(selected),
        "events_digest": hashlib.sha256("\n".join(digests).encode("ascii")).hexdigest(),
        "key": checkpoint.key,
    }
    private = checkpoints.signing_key()
    return {
        "format": FORMAT,
        "manifest": manifest,
        "manifest_signature": checkpoints.b64url(private.sign(canonical(manifest))),
        "public_key": checkpoint.public_key,
        "checkpoint": {"payload": checkpoint.payload(), "signature": checkpoint.signature},
        "seals": seals,
        # The recorded bytes (their digest is the event's), and the same content parsed, for readers.
        "events": [
            {
                "seq": s.seq,
                "digest": s.event.digest,
                "canonical": s.event.canonical,
                "content": json.loads(s.event.canonical),
            }
            for s in selected
        ],
    }
