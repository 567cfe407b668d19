"""Recompute the hash chain and name the first event that does not fit."""

from __future__ import annotations

from dataclasses import dataclass

import rfc8785
from django.db.models import Max

from audit.hashing import chain_hash, event_digest
from audit.models import GENESIS_HASH, AuditEvent, ChainHead

BATCH = 2000


@dataclass(frozen=True, slots=True)
class VerifyResult:
    ok: bool
    checked: int
    head_seq: int
    first_bad_seq: int | None = None
    problem: str = ""

    def as_dict(self) -> dict[str, object]:
        return {
            "ok": self.ok,
            "checked": self.checked,
            "head_seq": self.head_seq,
            "first_bad_seq": self.first_bad_seq,
            "problem": self.problem,
        }


def _recomputed_hash(event: AuditEvent) -> str:
    digest = event_digest(event)
    return chain_hash(event.seq, event.prev_hash, digest)


def verify_chain() -> VerifyResult:
    # The head is read first and the log verified up to it. An append commits its event together with
    # the head, so every event the head counts is visible; events appended while this runs are left for
    # the next run instead of looking like a removed tail.
    head = ChainHead.objects.filter(pk=1).first()
    expected_seq = 1
    expected_prev = GENESIS_HASH
    checked = 0
    last_seq = 0
    while True:
        events = AuditEvent.objects.filter(seq__gt=last_seq)
        if head is not None:
            events = events.filter(seq__lte=head.seq)
        batch = list(events.order_by("seq")[:BATCH])
        if not batch:
            break
        for event in batch:
            if event.seq != expected_seq:
                return VerifyResult(
                    False, checked, last_seq, event.seq, f"expected event #{expected_seq} here, found #{event.seq}"
                )
            if event.prev_hash != expected_prev:
                return VerifyResult(
                    False, checked, last_seq, event.seq, "previous-hash link does not match the event before it"
                )
            try:
                recomputed = _recomputed_hash(event)
            except rfc8785.CanonicalizationError as exc:
                # Only a write behind the application's back can store content it cannot encode.
                return VerifyResult(False, checked, last_seq, event.seq, f"content cannot be canonicalised: {exc}")
            if recomputed != event.hash:
                return VerifyResult(False, checked, last_seq, event.seq, "content does not match its hash")
            checked += 1
            expected_seq += 1
            expected_prev = event.hash
            last_seq = event.seq
    if head is None:
        return VerifyResult(True, checked, last_seq)
    if last_seq != head.seq:
        return VerifyResult(
            False,
            checked,
            last_seq,
            last_seq + 1,
            f"the chain head records event #{head.seq} but the log ends at #{last_seq} (tail removed?)",
        )
    if expected_prev != head.hash:
        return VerifyResult(
            False, checked, last_seq, last_seq, "the last event is not the one the chain head records (replaced?)"
        )
    # Events past the head read above were either appended since (each moved the head on, and is
    # visible only once committed with it) or written behind the head's back. Read them before the head.
    beyond = AuditEvent.objects.filter(seq__gt=head.seq).aggregate(last=Max("seq"))["last"]
    if beyond is not None:
        head_now = ChainHead.objects.get(pk=1)
        if beyond > head_now.seq:
            return VerifyResult(
                False,
                checked,
                last_seq,
                head_now.seq + 1,
                f"events up to #{beyond} lie past the chain head at #{head_now.seq} (added behind its back?)",
            )
    return VerifyResult(True, checked, last_seq)
