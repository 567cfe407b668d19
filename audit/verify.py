"""Recompute the hash chain and name the first event that does not fit.

The chain is read seal by seal in sequence order, each with its event: the event's content must
still give its digest, and each seal's hash must be ``chain_hash(seq, previous hash, digest)``. Then
the chain head must be the last seal, every event must be sealed or waiting in the sealer's queue, and
none may have waited longer than ``CUSTOS_AUDIT_MAX_SEAL_DELAY``.
"""

from __future__ import annotations

from dataclasses import dataclass

import rfc8785
from django.conf import settings
from django.db.models import Max
from django.utils import timezone

from audit.hashing import chain_hash, event_digest
from audit.models import GENESIS_HASH, AuditEvent, ChainHead, PendingSeal, Seal

BATCH = 2000


@dataclass(frozen=True, slots=True)
class VerifyResult:
    ok: bool
    checked: int
    head_seq: int
    first_bad_seq: int | None = None
    problem: str = ""
    # Events committed but not sealed yet (within the sealing delay: not a problem).
    pending: int = 0
    # The digest of the first bad event when it has no place in the chain (unsealed).
    first_bad_event: str | None = None

    def as_dict(self) -> dict[str, object]:
        return {
            "ok": self.ok,
            "checked": self.checked,
            "head_seq": self.head_seq,
            "first_bad_seq": self.first_bad_seq,
            "first_bad_event": self.first_bad_event,
            "problem": self.problem,
            "pending": self.pending,
        }


def _bad(checked: int, last_seq: int, seq: int | None, problem: str, event: str | None = None) -> VerifyResult:
    return VerifyResult(False, checked, last_seq, seq, problem, first_bad_event=event)


def verify_chain() -> VerifyResult:
    # The head is read first and the chain verified up to it: seals added meanwhile are left for the
    # next run instead of looking like a removed tail.
    head = ChainHead.objects.filter(pk=1).first()
    if head is None:
        return _bad(0, 0, 1, "the chain head is missing (a database superuser deleted it?)")
    expected_prev = GENESIS_HASH
    checked = last_seq = 0
    while True:
        batch = list(
            Seal.objects.filter(seq__gt=last_seq, seq__lte=head.seq).select_related("event").order_by("seq")[:BATCH]
        )
        if not batch:
            break
        for seal in batch:
            if seal.seq != last_seq + 1:
                return _bad(checked, last_seq, last_seq + 1, f"expected event #{last_seq + 1} here, found #{seal.seq}")
            if seal.prev_hash != expected_prev:
                return _bad(checked, last_seq, seal.seq, "previous-hash link does not match the event before it")
            event = seal.event
            try:
                digest = event_digest(event)
            except rfc8785.CanonicalizationError as exc:
                # Only a write behind the application's back can store content it cannot encode.
                return _bad(checked, last_seq, seal.seq, f"content cannot be canonicalised: {exc}")
            if digest != event.digest:
                return _bad(checked, last_seq, seal.seq, "content does not match its digest")
            if chain_hash(seal.seq, seal.prev_hash, event.digest) != seal.hash:
                return _bad(checked, last_seq, seal.seq, "content does not match its hash")
            checked += 1
            expected_prev = seal.hash
            last_seq = seal.seq
    if last_seq != head.seq:
        return _bad(
            checked,
            last_seq,
            last_seq + 1,
            f"the chain head records event #{head.seq} but the log ends at #{last_seq} (tail removed?)",
        )
    if expected_prev != head.hash:
        return _bad(checked, last_seq, last_seq, "the last event is not the one the chain head records (replaced?)")
    # Seals past the head read above were either added since (each moved the head on, and is visible
    # only once committed with it) or written behind the head's back. Read them before the head again.
    beyond = Seal.objects.filter(seq__gt=head.seq).aggregate(last=Max("seq"))["last"]
    if beyond is not None:
        head_now = ChainHead.objects.filter(pk=1).first()
        if head_now is None or beyond > head_now.seq:
            at = head_now.seq if head_now is not None else head.seq
            return _bad(checked, last_seq, at + 1, f"events up to #{beyond} lie past the chain head at #{at}")
    return _unsealed(checked, last_seq)


def _unsealed(checked: int, last_seq: int) -> VerifyResult:
    """Every event not sealed must be waiting in the queue, and not for longer than the bound."""
    stray = (
        AuditEvent.objects.filter(seal__isnull=True)
        .exclude(pk__in=PendingSeal.objects.values("event_id"))
        .order_by("id")
        .values_list("digest", flat=True)
        .first()
    )
    if stray is not None:
        return _bad(
            checked, last_seq, None, "an event is neither sealed nor waiting to be (queue entry removed?)", stray
        )
    pending = PendingSeal.objects.order_by("occurred_at")
    oldest = pending.values_list("digest", "occurred_at").first()
    if oldest is not None:
        bound = settings.CUSTOS_AUDIT_MAX_SEAL_DELAY
        if timezone.now() - oldest[1] > bound:
            return _bad(
                checked,
                last_seq,
                None,
                f"an event has waited longer than {int(bound.total_seconds())} s to be sealed (is the sealer running?)",
                oldest[0],
            )
    return VerifyResult(True, checked, last_seq, pending=pending.count())
