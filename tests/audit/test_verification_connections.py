"""Database verification's work in other connections: a walk long enough to be cut into pieces runs them
in threads of their own, and the search for events neither sealed nor queued runs beside it, in one
more. Other connections see only what is committed, so these tests commit (``transaction=True``), with
``CHUNK`` made small so that a short log is long enough."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import pytest

from audit import checkpoints, sealer, verification
from audit.models import AuditEvent
from audit.services import Actor, audit_append
from audit.verification import VerifyResult, verify_chain
from tests.audit.support import UNQUEUE_SQL, superuser_connection, use_checkpoint_directory

pytestmark = pytest.mark.django_db(transaction=True)

PROBLEM = "an event is neither sealed nor waiting to be (its queue entry removed?)"


@pytest.fixture(autouse=True)
def pieces(monkeypatch: pytest.MonkeyPatch, settings: Any, tmp_path: Path) -> None:
    monkeypatch.setattr(verification, "CHUNK", 3)
    monkeypatch.setattr(verification, "WORKERS", 2)
    use_checkpoint_directory(settings, tmp_path)


def grow(n: int) -> None:
    for i in range(n):
        audit_append(actor=Actor.system(), action="thing.happened", context={"i": i})
    sealer.seal_pending()


def stray() -> AuditEvent:
    """An event whose queue entry a superuser removed: neither sealed nor waiting to be."""
    event = audit_append(actor=Actor.system(), action="dropped")
    with superuser_connection() as conn:
        conn.execute(UNQUEUE_SQL, [event.pk, event.pk])
    return event


def test_a_stray_event_is_found_beside_a_walk_in_pieces_and_from_a_checkpoint_only_past_it() -> None:
    early = stray()
    grow(8)
    checkpoints.checkpoint_now()
    grow(5)
    assert verification._walk_is_split(0, 13) and verification._walk_is_split(8, 13)
    assert verify_chain() == VerifyResult(
        False, 13, 13, None, PROBLEM, first_bad_event=early.digest, columns="constraint"
    )
    # From the checkpoint at #8 only events recorded since its event are looked at: the early one is not.
    assert verify_chain(full=False) == VerifyResult(True, 5, 13, verified_from=8, checkpoints=2, columns="constraint")
    late = stray()
    result = verify_chain(full=False)
    assert (result.ok, result.problem, result.first_bad_event) == (False, PROBLEM, late.digest)


@pytest.mark.parametrize(("events", "cut_in"), [(6, 2), (13, 5)])
def test_a_walk_in_pieces_runs_at_most_workers_of_them_at_once_each_in_a_thread_of_its_own(
    monkeypatch: pytest.MonkeyPatch, events: int, cut_in: int
) -> None:
    grow(events)  # pieces of three seals (the last may be shorter), two workers
    check = verification._check_piece
    lock = threading.Lock()
    running: list[int] = [0]
    seen: list[tuple[str, int]] = []

    def noted(piece: Any) -> Any:
        with lock:
            running[0] += 1
            seen.append((threading.current_thread().name, running[0]))
        time.sleep(0.05)  # long enough for any other thread the pool has to take a piece meanwhile
        try:
            return check(piece)
        finally:
            with lock:
                running[0] -= 1

    stray = verification._stray
    searched_in: list[str] = []

    def search(since_seq: int) -> str | None:
        searched_in.append(threading.current_thread().name)
        return stray(since_seq)

    monkeypatch.setattr(verification, "_check_piece", noted)
    monkeypatch.setattr(verification, "_stray", search)
    assert verify_chain() == VerifyResult(True, events, events, columns="constraint")
    assert len(seen) == cut_in and max(at_once for _, at_once in seen) == 2
    assert all(name.startswith("audit-verify_") for name, _ in seen)
    assert searched_in == ["audit-verify-stray_0"]  # beside the walk, in one more thread (and connection)
