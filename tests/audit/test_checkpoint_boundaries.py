"""Signed checkpoints (audit/checkpoints.py) at their edges: each reason a checkpoint cannot be believed,
in its exact words and in the order the checks run; when one is signed and when not (no head, nothing
new, forced); the copies outside the database, never overwritten; the witness, which may be down."""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from audit import checkpoints, sealer
from audit.models import ChainHead, Checkpoint, Seal
from audit.services import Actor, audit_append
from audit.verification import verify_chain
from tests.audit.support import bypassing_triggers
from tests.audit.test_golden_vectors import CHECKPOINT, KEY

SECRET = "checkpoint-boundaries-secret"


@pytest.fixture(autouse=True)
def directory(settings: Any, tmp_path: Path) -> Path:
    settings.CUSTOS_AUDIT_CHECKPOINT_DIR = str(tmp_path / "checkpoints")
    settings.CUSTOS_AUDIT_CHECKPOINT_SECRET = SECRET
    settings.CUSTOS_AUDIT_CHECKPOINT_TRUSTED_KEYS = []
    settings.CUSTOS_AUDIT_WITNESS_URL = ""
    settings.CUSTOS_ISSUER = "https://custos.example.org"
    return tmp_path / "checkpoints"


def golden(**changes: Any) -> checkpoints.Signed:
    document = {"payload": {**CHECKPOINT["payload"]}, "public_key": CHECKPOINT["public_key"]}
    document["signature"] = CHECKPOINT["signature"]
    signed = checkpoints.Signed.from_json(document)
    return checkpoints.Signed(**{**{f: getattr(signed, f) for f in signed.__slots__}, **changes})


def grow(n: int) -> None:
    for i in range(n):
        audit_append(actor=Actor.system(), action="thing.happened", context={"i": i})
    sealer.seal_pending()


def on_disk(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir()) if directory.exists() else []


# --- Believing a checkpoint ---------------------------------------------------------------------------


def test_the_golden_checkpoint_is_believed_with_or_without_a_trust_list() -> None:
    assert golden().signature_problem() == ""
    assert golden().signature_problem({KEY}) == ""
    assert golden().signature_problem({"0" * 64, KEY}) == ""


@pytest.mark.parametrize("trusted", [set(), {"0" * 64}])
def test_a_key_outside_the_trust_list_is_named_by_its_first_16_digits(trusted: set[str]) -> None:
    assert golden().signature_problem(trusted) == f"it is signed by key {KEY[:16]}…, which is not trusted"


@pytest.mark.parametrize(
    ("changes", "problem"),
    [
        ({"public_key": checkpoints.b64url(b"\x01" * 31)}, "its public key is malformed"),
        ({"public_key": "!"}, "its public key is malformed"),
        ({"key": "0" * 64}, "its public key does not match the fingerprint it names"),
        ({"signature": checkpoints.b64url(b"\x00" * 64)}, "its signature does not verify"),
        ({"signature": "!!"}, "its signature does not verify"),
        ({"seq": 4}, "its signature does not verify"),
        ({"signed_at": "2027-01-01T00:00:00+00:00"}, "its signature does not verify"),
    ],
)
def test_each_reason_a_checkpoint_cannot_be_believed_is_named(changes: dict[str, Any], problem: str) -> None:
    assert golden(**changes).signature_problem({KEY, "0" * 64}) == problem


def test_a_key_is_checked_against_its_fingerprint_before_the_trust_list() -> None:
    other = Ed25519PrivateKey.from_private_bytes(bytes(32))
    public = checkpoints.b64url(checkpoints.raw_public_key(other.public_key()))
    problem = "its public key does not match the fingerprint it names"
    assert golden(public_key=public).signature_problem({"0" * 64}) == problem


def test_a_checkpoint_forged_with_another_key_under_its_own_fingerprint_is_not_trusted() -> None:
    other = Ed25519PrivateKey.from_private_bytes(bytes(32))
    raw = checkpoints.raw_public_key(other.public_key())
    forged = golden(key=checkpoints.fingerprint(raw), public_key=checkpoints.b64url(raw), signature="")
    forged = golden(
        key=forged.key,
        public_key=forged.public_key,
        signature=checkpoints.b64url(other.sign(checkpoints.canonical(forged.payload()))),
    )
    assert forged.signature_problem() == ""
    assert forged.signature_problem({KEY}) == f"it is signed by key {forged.key[:16]}…, which is not trusted"


def test_a_checkpoint_read_from_json_is_typed() -> None:
    document = {"payload": {**CHECKPOINT["payload"], "seq": "5"}, "public_key": CHECKPOINT["public_key"]}
    document["signature"] = CHECKPOINT["signature"]
    signed = checkpoints.Signed.from_json(document)
    assert signed.seq == 5 and signed.payload() == CHECKPOINT["payload"]
    with pytest.raises(KeyError):
        checkpoints.Signed.from_json({"payload": CHECKPOINT["payload"], "public_key": CHECKPOINT["public_key"]})


@pytest.mark.parametrize(
    ("data", "text"),
    [
        (b"", ""),
        (b"\xfb", "-w"),
        (b"\xfb\xff", "-_8"),
        (b"abc", "YWJj"),
        (b"\x00\x00\x17", "AAAX"),
        (b"abcdefg", "YWJjZGVmZw"),
    ],
)
def test_base64url_is_unpadded_and_reads_back(data: bytes, text: str) -> None:
    assert checkpoints.b64url(data) == text
    assert checkpoints.unb64url(text) == data


def test_the_trusted_keys_are_the_current_one_and_those_configured(settings: Any) -> None:
    settings.CUSTOS_AUDIT_CHECKPOINT_TRUSTED_KEYS = ["a" * 64, "b" * 64]
    assert checkpoints.trusted_keys() == {checkpoints.current_fingerprint(), "a" * 64, "b" * 64}
    settings.CUSTOS_AUDIT_CHECKPOINT_SECRET = "another secret"
    assert checkpoints.current_fingerprint() in checkpoints.trusted_keys()
    assert len(checkpoints.trusted_keys()) == 3


# --- Signing: when, and what ------------------------------------------------------------------------


@pytest.mark.django_db
def test_nothing_is_signed_before_the_first_event_is_sealed(directory: Path) -> None:
    assert checkpoints.checkpoint_now() is None
    assert checkpoints.checkpoint_now(force=True) is None
    audit_append(actor=Actor.system(), action="thing.happened", context={})
    assert checkpoints.checkpoint_now(force=True) is None  # written, not sealed: the head is still #0
    assert not Checkpoint.objects.exists() and on_disk(directory) == []


@pytest.mark.django_db
def test_nothing_is_signed_without_a_chain_head_row() -> None:
    grow(1)
    with bypassing_triggers() as cursor:
        cursor.execute("DELETE FROM audit_chainhead")
    assert checkpoints.checkpoint_now() is None
    assert checkpoints.checkpoint_now(force=True) is None
    assert not Checkpoint.objects.exists()


@pytest.mark.django_db
def test_a_checkpoint_signs_the_head_as_it_is_now(directory: Path) -> None:
    grow(3)
    before = datetime.now(UTC)
    checkpoint = checkpoints.checkpoint_now()
    assert checkpoint is not None
    head = ChainHead.objects.get(pk=1)
    assert (checkpoint.seq, checkpoint.hash) == (head.seq, head.hash) == (3, Seal.objects.get(seq=3).hash)
    assert before <= checkpoint.signed_at <= datetime.now(UTC)
    assert checkpoint.key_fingerprint == checkpoints.current_fingerprint()
    stored = Checkpoint.objects.get(seq=3)
    signed = checkpoints.Signed.of(stored)
    assert signed.log == "https://custos.example.org"
    assert signed.signature_problem({checkpoints.current_fingerprint()}) == ""
    assert on_disk(directory) == ["000000000000003.checkpoint.json"]
    assert (directory / "000000000000003.checkpoint.json").read_text() == (
        json.dumps(signed.as_json(), indent=2, sort_keys=True) + "\n"
    )


@pytest.mark.django_db
def test_nothing_new_since_the_last_checkpoint_signs_nothing_unless_forced(directory: Path) -> None:
    grow(2)
    first = checkpoints.checkpoint_now()
    assert first is not None
    assert checkpoints.checkpoint_now() is None
    (directory / "000000000000002.checkpoint.json").unlink()
    again = checkpoints.checkpoint_now(force=True)
    assert again is not None and again.pk == first.pk and again.signature == first.signature
    assert Checkpoint.objects.count() == 1
    assert json.loads((directory / "000000000000002.checkpoint.json").read_text()) == (
        checkpoints.Signed.of(first).as_json()
    )
    grow(1)
    assert checkpoints.checkpoint_now().seq == 3  # type: ignore[union-attr]


@pytest.mark.django_db
def test_a_copy_outside_the_database_is_never_overwritten(directory: Path) -> None:
    grow(2)
    directory.mkdir(parents=True)
    first = directory / "000000000000002.checkpoint.json"
    first.write_text("the first copy is the evidence\n")
    assert checkpoints.checkpoint_now() is not None
    assert first.read_text() == "the first copy is the evidence\n"
    assert on_disk(directory) == ["000000000000002.checkpoint.json"]


@pytest.mark.django_db
def test_the_directory_is_made_with_its_parents(settings: Any, tmp_path: Path) -> None:
    nested = tmp_path / "outside" / "the" / "database"
    settings.CUSTOS_AUDIT_CHECKPOINT_DIR = str(nested)
    grow(1)
    assert checkpoints.checkpoint_now() is not None
    assert on_disk(nested) == ["000000000000001.checkpoint.json"]


@pytest.mark.django_db
def test_without_a_directory_the_checkpoint_stays_in_the_database(settings: Any, tmp_path: Path) -> None:
    settings.CUSTOS_AUDIT_CHECKPOINT_DIR = ""
    assert checkpoints.checkpoint_dir() is None
    grow(1)
    assert checkpoints.checkpoint_now() is not None
    assert [p.name for p in tmp_path.iterdir()] == []
    assert checkpoints.external_checkpoints() == ([], [])


def test_a_directory_not_made_yet_holds_no_checkpoints(directory: Path) -> None:
    assert not directory.exists()
    assert checkpoints.external_checkpoints() == ([], [])


def test_the_directory_is_read_oldest_first_naming_what_is_not_a_checkpoint(directory: Path) -> None:
    directory.mkdir(parents=True)
    document = golden().as_json()
    (directory / "000000000000012.checkpoint.json").write_text(json.dumps(document))
    (directory / "000000000000005.checkpoint.json").write_text(json.dumps({**document, "payload": {"seq": 1}}))
    (directory / "000000000000009.checkpoint.json").write_text(json.dumps(document))
    (directory / "000000000000007.checkpoint.json").write_text("[1, 2]")
    (directory / "000000000000008.checkpoint.json").write_text("{not json")
    (directory / "notes.txt").write_text("not read at all")
    found, unreadable = checkpoints.external_checkpoints()
    assert found == [golden(), golden()]
    assert unreadable == [
        "000000000000005.checkpoint.json",
        "000000000000007.checkpoint.json",
        "000000000000008.checkpoint.json",
    ]


# --- The witness ----------------------------------------------------------------------------------------


@pytest.fixture
def witness() -> Iterator[tuple[str, list[tuple[str, str, dict[str, Any]]]]]:
    received: list[tuple[str, str, dict[str, Any]]] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            received.append((self.path, self.headers["Content-Type"], body))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = HTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/witness/checkpoints", received
    finally:
        server.shutdown()


@pytest.mark.django_db
def test_the_witness_receives_each_checkpoint_as_json(
    settings: Any, witness: tuple[str, list[tuple[str, str, dict[str, Any]]]]
) -> None:
    settings.CUSTOS_AUDIT_WITNESS_URL, received = witness
    grow(2)
    checkpoint = checkpoints.checkpoint_now()
    assert checkpoint is not None
    assert received == [("/witness/checkpoints", "application/json", checkpoints.Signed.of(checkpoint).as_json())]


@pytest.mark.django_db
def test_a_witness_that_is_down_is_logged_and_tried_again_next_time(
    settings: Any, caplog: pytest.LogCaptureFixture
) -> None:
    settings.CUSTOS_AUDIT_WITNESS_URL = "http://127.0.0.1:1/nothing-listens-here"
    grow(2)
    with caplog.at_level(logging.WARNING, logger="audit.checkpoints"):
        assert checkpoints.checkpoint_now() is not None
    [record] = [r for r in caplog.records if r.name == "audit.checkpoints"]
    assert record.levelno == logging.WARNING
    assert record.exc_info is not None and isinstance(record.exc_info[1], OSError)
    assert record.getMessage() == (
        "could not send checkpoint #2 to the witness at http://127.0.0.1:1/nothing-listens-here"
    )


# --- Signing only a sound chain ---------------------------------------------------------------------


@pytest.mark.django_db
def test_a_sound_chain_is_signed_and_a_broken_one_is_not(caplog: pytest.LogCaptureFixture) -> None:
    grow(3)
    signed = checkpoints.checkpoint_if_sound()
    assert signed is not None and signed.seq == 3
    assert checkpoints.checkpoint_if_sound() is None  # sound, but nothing new
    grow(2)
    with bypassing_triggers() as cursor:
        cursor.execute("UPDATE audit_seal SET hash = %s WHERE seq = 4", ["f" * 64])
    with caplog.at_level(logging.ERROR, logger="audit.checkpoints"):
        assert checkpoints.checkpoint_if_sound() is None
    assert list(Checkpoint.objects.values_list("seq", flat=True)) == [3]
    [record] = [r for r in caplog.records if r.name == "audit.checkpoints"]
    assert record.levelno == logging.ERROR
    problem = verify_chain(full=False).problem
    assert problem and record.getMessage() == f"audit chain broken at #4: {problem} (no checkpoint signed)"


@pytest.mark.django_db
def test_the_periodic_checkpoint_verifies_what_is_new_since_the_last_one() -> None:
    grow(3)
    assert checkpoints.checkpoint_if_sound() is not None
    with bypassing_triggers() as cursor:
        cursor.execute(
            # Its content edited alike: the columns still match it, so the constraint tying them holds again
            # and only the digest, read by a run that reaches #2, tells.
            "UPDATE audit_auditevent SET action = 'x', canonical = replace(canonical, '\"action\":\"' || action || '\"', "
            '\'"action":"x"\') WHERE id = (SELECT event_id FROM audit_seal WHERE seq = 2)'
        )
    grow(2)
    # The full check (verify_chain(), the audit_verify command) finds the old edit; the periodic one
    # reads from the latest checkpoint on, as each run must stay short however long the log grows.
    assert verify_chain(full=True).first_bad_seq == 2
    signed = checkpoints.checkpoint_if_sound()
    assert signed is not None and signed.seq == 5


@pytest.mark.django_db
def test_the_witness_is_given_five_seconds(settings: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    settings.CUSTOS_AUDIT_WITNESS_URL = "https://witness.example.org/checkpoints"
    calls: list[tuple[str, float | None]] = []

    def urlopen(request: Any, timeout: float | None = None) -> Any:
        calls.append((request.full_url, timeout))
        raise OSError("no network in this test")

    monkeypatch.setattr(checkpoints.urllib.request, "urlopen", urlopen)
    grow(1)
    assert checkpoints.checkpoint_now() is not None
    assert calls == [("https://witness.example.org/checkpoints", 5)]
