"""Recompute the hash chain and name the first event that does not fit."""

from __future__ import annotations

from dataclasses import dataclass

from audit.hashing import chain_hash, content_digest
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
    digest = content_digest(
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
    )
    return chain_hash(event.seq, event.prev_hash, digest)


def verify_chain() -> VerifyResult:
    expected_seq = 1
    expected_prev = GENESIS_HASH
    checked = 0
    last_seq = 0
    while True:
        batch = list(AuditEvent.objects.filter(seq__gt=last_seq).order_by("seq")[:BATCH])
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
            if _recomputed_hash(event) != event.hash:
                return VerifyResult(False, checked, last_seq, event.seq, "content does not match its hash")
            checked += 1
            expected_seq += 1
            expected_prev = event.hash
            last_seq = event.seq
    head = ChainHead.objects.filter(pk=1).first()
    if head is not None and (head.seq != last_seq or head.hash != expected_prev):
        return VerifyResult(
            False,
            checked,
            last_seq,
            last_seq + 1,
            f"the chain head records event #{head.seq} but the log ends at #{last_seq} (tail removed?)",
        )
    return VerifyResult(True, checked, last_seq)
