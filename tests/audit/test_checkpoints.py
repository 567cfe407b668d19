"""Signed checkpoints of the chain head, kept in the database and in a directory out of a database
owner's reach: a truncated or rewritten tail no longer verifies, even when the head row and the
checkpoints table are rewritten to match; forged, tampered and replayed checkpoints are refused."""

from __future__ import annotations

import datetime as dt
import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any

import pytest

from audit import checkpoints, sealer
from audit.hashing import canonical, chain_hash, digest_of, event_document
from audit.models import AuditEvent, Checkpoint, Seal
from audit.services import Actor, audit_append
from audit.verification import verify_chain
from tests.audit.support import bypassing_triggers, use_checkpoint_directory

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def directory(settings: Any, tmp_path: Path) -> Path:
    return use_checkpoint_directory(settings, tmp_path)


def grow(n: int) -> None:
    for i in range(n):
        audit_append(actor=Actor.system(), action="thing.happened", context={"i": i})
    sealer.seal_pending()


def signed(seq: int) -> Checkpoint:
    grow(seq - (Seal.objects.count()))
    checkpoint = checkpoints.checkpoint_now()
    assert checkpoint is not None and checkpoint.seq == seq
    return checkpoint


def files(directory: Path) -> list[dict[str, Any]]:
    return [json.loads(p.read_text()) for p in sorted(directory.glob("*.checkpoint.json"))]


def truncate_to(seq: int) -> None:
    """As a database superuser: drop every event after ``seq`` and make the head and the checkpoints
    table agree with the shorter log."""
    with bypassing_triggers() as cursor:
        cursor.execute("SELECT event_id FROM audit_seal WHERE seq > %s", [seq])
        doomed = [row[0] for row in cursor.fetchall()]
        cursor.execute("DELETE FROM audit_seal WHERE seq > %s", [seq])
        cursor.execute("DELETE FROM audit_auditevent WHERE id = ANY(%s)", [doomed])
        cursor.execute(
            "UPDATE audit_chainhead SET seq = %s, hash = (SELECT hash FROM audit_seal WHERE seq = %s)", [seq, seq]
        )
        cursor.execute("DELETE FROM audit_checkpoint WHERE seq > %s", [seq])


def test_a_checkpoint_signs_the_head_in_the_database_and_in_the_directory(directory: Path) -> None:
    checkpoint = signed(5)
    head = Seal.objects.get(seq=5)
    assert (checkpoint.hash, checkpoint.key_fingerprint) == (head.hash, checkpoints.current_fingerprint())
    [copy] = files(directory)
    assert copy["payload"] == {
        "log": checkpoints.settings.CUSTOS_ISSUER,
        "seq": 5,
        "hash": head.hash,
        "signed_at": checkpoints.Signed.of(checkpoint).signed_at,
        "key": checkpoint.key_fingerprint,
    }
    assert checkpoints.Signed.from_json(copy).signature_problem(checkpoints.trusted_keys()) == ""
    assert checkpoints.checkpoint_now() is None  # nothing new: nothing signed
    result = verify_chain()
    assert (result.ok, result.checkpoints) == (True, 2), result


def test_truncation_after_a_checkpoint_is_caught_by_the_copy_outside_the_database() -> None:
    signed(6)
    grow(2)
    truncate_to(4)  # the head row and the checkpoints table now agree with a log of 4 events
    result = verify_chain()
    assert not result.ok
    assert result.first_bad_seq == 5
    assert "the log ends at #4 but checkpoint #6" in result.problem and "truncated" in result.problem


def test_a_rewritten_tail_consistent_with_itself_is_caught_by_the_copy() -> None:
    signed(4)
    # A superuser rewrites event 3 and re-chains everything after it, head included, consistently.
    with bypassing_triggers() as cursor:
        cursor.execute(
            "UPDATE audit_auditevent SET context = '{\"i\": 999}'::jsonb WHERE id = (SELECT event_id FROM audit_seal WHERE seq = 3)"
        )
    prev = Seal.objects.get(seq=2).hash
    with bypassing_triggers() as cursor:
        for seq in (3, 4):
            event = AuditEvent.objects.get(seal__seq=seq)
            content = canonical(event_document(event))
            digest = digest_of(content)
            new_hash = chain_hash(seq, prev, digest)
            cursor.execute(
                "UPDATE audit_auditevent SET canonical = %s, digest = %s WHERE id = %s",
                [content.decode(), digest, event.pk],
            )
            cursor.execute("UPDATE audit_seal SET prev_hash = %s, hash = %s WHERE seq = %s", [prev, new_hash, seq])
            prev = new_hash
        cursor.execute("UPDATE audit_chainhead SET hash = %s", [prev])
        cursor.execute("DELETE FROM audit_checkpoint")
    result = verify_chain()
    assert not result.ok and result.first_bad_seq == 4
    assert "is not the one checkpoint #4 signed" in result.problem


def test_a_checkpoint_forged_with_another_key_is_refused_wherever_it_is(directory: Path, settings: Any) -> None:
    signed(3)
    settings.CUSTOS_AUDIT_CHECKPOINT_SECRET = "the attacker's own secret"
    forged = checkpoints._sign(3, Seal.objects.get(seq=3).hash, checkpoints.timezone.now())
    settings.CUSTOS_AUDIT_CHECKPOINT_SECRET = "checkpoint-secret-for-tests-only"
    (directory / "000000000000009.checkpoint.json").write_text(json.dumps(forged.as_json()))
    result = verify_chain()
    assert not result.ok and "not trusted" in result.problem


def test_a_tampered_signature_or_payload_is_refused(directory: Path) -> None:
    signed(3)
    [path] = sorted(directory.glob("*.checkpoint.json"))
    document = json.loads(path.read_text())
    document["payload"]["seq"] = 2  # a genuine signature replayed for another position
    path.write_text(json.dumps(document))
    result = verify_chain()
    assert not result.ok and "signature does not verify" in result.problem
    document["payload"]["seq"] = 3
    document["signature"] = document["signature"][:-2] + ("AA" if document["signature"][-2:] != "AA" else "BB")
    path.write_text(json.dumps(document))
    assert "signature does not verify" in verify_chain().problem


def test_a_checkpoint_of_another_installation_is_refused(directory: Path, settings: Any) -> None:
    signed(3)
    settings.CUSTOS_ISSUER = "https://another-custos.example"
    assert "of another log" in verify_chain().problem


def test_an_unreadable_checkpoint_file_is_a_failure(directory: Path) -> None:
    signed(2)
    (directory / "000000000000007.checkpoint.json").write_text("{not json")
    assert "cannot be read" in verify_chain().problem


def test_after_a_key_rotation_old_checkpoints_verify_once_their_key_is_listed(settings: Any) -> None:
    old = signed(3).key_fingerprint
    settings.CUSTOS_AUDIT_CHECKPOINT_SECRET = "the next secret"
    signed(5)
    result = verify_chain()
    assert not result.ok and "not trusted" in result.problem
    settings.CUSTOS_AUDIT_CHECKPOINT_TRUSTED_KEYS = [old]
    assert verify_chain().ok


def test_incremental_verification_starts_at_the_latest_checkpoint_and_full_reads_it_all() -> None:
    signed(10)
    grow(3)
    incremental = verify_chain(full=False)
    assert (incremental.ok, incremental.verified_from, incremental.checked) == (True, 10, 3)
    # An old event edited behind the application's back: not re-read from the checkpoint on, caught in full.
    with bypassing_triggers() as cursor:
        cursor.execute(
            # Its content edited alike: the columns still match it, so the constraint tying them holds again
            # and only the digest, read by a run that reaches #2, tells.
            "UPDATE audit_auditevent SET action = 'x', canonical = replace(canonical, '\"action\":\"' || action || '\"', "
            '\'"action":"x"\') WHERE id = (SELECT event_id FROM audit_seal WHERE seq = 2)'
        )
    assert verify_chain(full=False).ok
    full = verify_chain(full=True)
    assert (full.ok, full.first_bad_seq) == (False, 2)


def test_the_sealers_periodic_checkpoint_refuses_to_sign_a_broken_chain(caplog: pytest.LogCaptureFixture) -> None:
    grow(4)
    assert checkpoints.checkpoint_if_sound() is not None
    grow(2)
    with bypassing_triggers() as cursor:
        cursor.execute("DELETE FROM audit_seal WHERE seq = 5")
    assert checkpoints.checkpoint_if_sound() is None
    assert list(Checkpoint.objects.values_list("seq", flat=True)) == [4]
    assert "audit chain broken at #5" in caplog.text


@pytest.fixture
def witness() -> Iterator[tuple[str, list[dict[str, Any]]]]:
    received: list[dict[str, Any]] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            received.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = HTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/checkpoints", received
    finally:
        server.shutdown()


def test_each_checkpoint_is_sent_to_the_witness(
    settings: Any, directory: Path, witness: tuple[str, list[dict[str, Any]]]
) -> None:
    settings.CUSTOS_AUDIT_WITNESS_URL, received = witness
    signed(3)
    assert received == files(directory)


def test_an_unreachable_witness_does_not_stop_checkpoints(settings: Any, directory: Path) -> None:
    settings.CUSTOS_AUDIT_WITNESS_URL = "http://127.0.0.1:1/nothing-listens-here"
    assert signed(2).seq == 2
    assert len(files(directory)) == 1


@pytest.mark.django_db(transaction=True)
def test_a_sealer_working_through_a_backlog_signs_checkpoints_on_time(
    settings: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Never idle: batches of one over a backlog of many. Checkpoints must not wait for the queue to empty.
    settings.CUSTOS_AUDIT_CHECKPOINT_INTERVAL = dt.timedelta(milliseconds=20)
    monkeypatch.setattr(sealer, "BATCH", 1)
    backlog = 300
    for n in range(backlog):
        audit_append(actor=Actor.system(), action="backlog", context={"n": n})
    stop = threading.Event()
    worker = threading.Thread(target=sealer.run, kwargs={"idle_seconds": 0.01, "stop": stop})
    worker.start()
    try:
        deadline = time.monotonic() + 30
        while not Checkpoint.objects.exists() and time.monotonic() < deadline:
            time.sleep(0.01)
    finally:
        stop.set()
        worker.join(timeout=30)
    first = Checkpoint.objects.order_by("seq").first()
    assert first is not None, "no checkpoint while the sealer was busy"
    assert 0 < first.seq < backlog, "signed while there was still a backlog, not only once it ran out"
    assert first.hash == Seal.objects.get(seq=first.seq).hash
