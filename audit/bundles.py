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
from django.db import DatabaseError, connection
from django.db.models import Q, QuerySet
from django.utils import timezone

from audit import checkpoints, links, sealer
from audit.hashing import canonical, isoformat
from audit.models import AuditEvent, Checkpoint, Seal
from audit.verify import FORMAT, GENESIS_HASH

# A bundle is a file people open and move around: beyond this, narrow the selection.
MAX_EVENTS = 100_000
# How long an export waits for the selected events to be sealed (by the running sealer, or here).
SEAL_WAIT_SECONDS = 10.0


class SelectionTooLarge(ValueError):
    pass


class NothingSelected(ValueError):
    pass


# The digests one bundle may name (a decision's chain of custody is a few dozen events).
MAX_DIGESTS = 1000
# The subjects a selection can be about (audit.links.subject_filter names).
SUBJECTS = ("agent", "human", "resource")


def about(kind: str, ident: int) -> Q:
    """Every event about ``kind`` ``ident``: as the app that knows the subject says (``audit.links``),
    or, while none has said, the events that name it directly — as target, as acting agent, or (where
    the database can look inside JSON lists: not SQLite) in the chain of those acted for."""
    registered = links.subject_filter(kind, ident)
    if registered is not None:
        return registered
    named = Q(target_type=kind, target_id=str(ident))
    if kind == "agent":
        named |= Q(actor_kind="agent", actor_id=str(ident))
    if connection.features.supports_json_field_contains:
        named |= Q(on_behalf_of__contains=[{"type": kind, "id": ident}])
    return named


@dataclass(frozen=True, slots=True)
class Selection:
    """What a bundle (or an export, or the audit page) holds: the events matching every condition set —
    a time range; those about an agent, a human or a resource (``about``); one decision or a list of
    event digests (a chain of custody); and the audit page's filters (action prefix, actor, target)."""

    since: datetime | None = None
    until: datetime | None = None
    agent: int | None = None
    human: int | None = None
    decision: str | None = None
    resource: int | None = None
    digests: tuple[str, ...] = ()
    action: str = ""
    actor_kind: str = ""
    actor: str = ""
    target_type: str = ""
    target_id: str = ""

    def as_dict(self) -> dict[str, Any]:
        """For the manifest: the original five keys always (older bundles read the same), the others
        only when set."""
        described: dict[str, Any] = {
            "since": isoformat(self.since) if self.since else None,
            "until": isoformat(self.until) if self.until else None,
            "agent": self.agent,
            "human": self.human,
            "decision": self.decision,
        }
        if self.resource is not None:
            described["resource"] = self.resource
        if self.digests:
            described["digests"] = list(self.digests)
        for name in ("action", "actor_kind", "actor", "target_type", "target_id"):
            if value := getattr(self, name):
                described[name] = value
        return described

    def events(self) -> QuerySet[AuditEvent]:
        events = AuditEvent.objects.all()
        if self.since is not None:
            events = events.filter(occurred_at__gte=self.since)
        if self.until is not None:
            events = events.filter(occurred_at__lt=self.until)
        if self.decision is not None:
            events = events.filter(digest=self.decision)
        if self.digests:
            events = events.filter(digest__in=self.digests)
        for kind, ident in (("agent", self.agent), ("human", self.human), ("resource", self.resource)):
            if ident is not None:
                events = events.filter(about(kind, ident))
        if self.action:
            # A prefix, so "delegation." selects every delegation event.
            events = events.filter(action__startswith=self.action)
        if self.actor_kind:
            events = events.filter(actor_kind=self.actor_kind)
        if self.actor:
            events = events.filter(actor_label__icontains=self.actor)
        if self.target_type:
            events = events.filter(target_type=self.target_type)
        if self.target_id:
            events = events.filter(target_id=self.target_id)
        return events


def _sealed(selected: QuerySet[AuditEvent]) -> None:
    """Make sure the selected events are sealed: seal here where this process may (make run, tests), or
    wait for the running sealer (in production the application's database role cannot seal)."""
    deadline = time.monotonic() + SEAL_WAIT_SECONDS
    may_seal = True
    while sealer.waiting_for_seal(selected):
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
    # Refused before waiting for seals or reading any content: one probe past the limit.
    if selected_events.order_by().values_list("id", flat=True)[MAX_EVENTS : MAX_EVENTS + 1]:
        raise SelectionTooLarge(f"more than {MAX_EVENTS:,} events match: narrow the selection")
    _sealed(selected_events)
    selected = list(
        Seal.objects.filter(event__in=selected_events).order_by("seq").select_related("event")[: MAX_EVENTS + 1]
    )
    if not selected:
        raise NothingSelected("no event matches this selection")
    if len(selected) > MAX_EVENTS:
        raise SelectionTooLarge(f"more than {MAX_EVENTS:,} events match: narrow the selection")
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
