"""The evidence format cannot change by accident: fixed events, a checkpoint and a bundle (committed in
tests/audit/golden/) must give exactly the bytes, digests, chain hashes and signatures recorded there,
by the writer's code (audit.hashing, audit.checkpoints) and by the standalone verifier (audit.verify).

Writer and verifier share their formulas, so a renamed key, another separator or timespec would pass
every round-trip test; only known answers catch it."""

from __future__ import annotations

import copy
import json
import subprocess
import sys
from datetime import datetime
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import rfc8785
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from audit import checkpoints, hashing, verify
from audit.models import GENESIS_HASH

GOLDEN = Path(__file__).resolve().parent / "golden"
EVENTS: dict[str, Any] = json.loads((GOLDEN / "events.json").read_text(encoding="utf-8"))
CHECKPOINT: dict[str, Any] = json.loads((GOLDEN / "checkpoint.json").read_text(encoding="utf-8"))
BUNDLE_FILE = GOLDEN / "bundle.json"
KEY = CHECKPOINT["fingerprint"]
REPO = Path(__file__).resolve().parents[2]


def fields(event: dict[str, Any]) -> dict[str, Any]:
    given = dict(event["fields"])
    given["occurred_at"] = datetime.fromisoformat(given["occurred_at"])
    return given


def golden_bundle() -> dict[str, Any]:
    return json.loads(BUNDLE_FILE.read_text(encoding="utf-8"))


EVENT_IDS = [f"{e['seq']}-{e['name']}" for e in EVENTS["events"]]


# --- Events: canonical bytes, digests, chain hashes ------------------------------------------------


def test_the_vectors_chain_from_the_genesis_hash_everyone_uses() -> None:
    assert EVENTS["genesis_hash"] == GENESIS_HASH == verify.GENESIS_HASH == "0" * 64
    previous = EVENTS["genesis_hash"]
    for seq, event in enumerate(EVENTS["events"], start=1):
        assert (event["seq"], event["prev_hash"]) == (seq, previous)
        previous = event["hash"]


@pytest.mark.parametrize("event", EVENTS["events"], ids=EVENT_IDS)
def test_the_writer_gives_the_recorded_canonical_bytes_digest_and_chain_hash(event: dict[str, Any]) -> None:
    document = hashing.content_document(**fields(event))
    expected = event["canonical"].encode("utf-8")
    assert hashing.canonical(document) == expected
    assert rfc8785.dumps(document) == expected  # the library that defines the format agrees
    assert hashing.digest_of(expected) == event["digest"]
    assert hashing.content_digest(**fields(event)) == event["digest"]
    assert hashing.chain_hash(event["seq"], event["prev_hash"], event["digest"]) == event["hash"]


@pytest.mark.parametrize("event", EVENTS["events"], ids=EVENT_IDS)
def test_an_events_columns_give_the_same_document_and_digest(event: dict[str, Any]) -> None:
    row = SimpleNamespace(**fields(event))
    assert hashing.event_document(row) == hashing.content_document(**fields(event))
    assert hashing.canonical(hashing.event_document(row)) == event["canonical"].encode("utf-8")
    assert hashing.event_digest(row) == event["digest"]


@pytest.mark.parametrize("event", EVENTS["events"], ids=EVENT_IDS)
def test_the_standalone_verifier_gives_the_recorded_digest_and_chain_hash(event: dict[str, Any]) -> None:
    assert verify.digest_of(event["canonical"]) == event["digest"]
    assert verify.chain_hash(event["seq"], event["prev_hash"], event["digest"]) == event["hash"]


def test_a_legacy_event_has_no_nonce_key_and_a_nonce_changes_only_that() -> None:
    legacy, with_nonce = EVENTS["events"][1], EVENTS["events"][2]
    assert legacy["fields"]["nonce"] == "" and '"nonce"' not in legacy["canonical"]
    assert hashing.content_document(**fields(legacy)).keys() == {
        "occurred_at",
        "actor",
        "on_behalf_of",
        "action",
        "target",
        "context",
    }
    assert json.loads(with_nonce["canonical"]) == {**json.loads(legacy["canonical"]), "nonce": "00ff" * 8}
    assert legacy["digest"] != with_nonce["digest"]


def test_moments_are_written_to_the_microsecond_with_their_offset() -> None:
    assert hashing.isoformat(datetime.fromisoformat("2026-12-31T23:59:59+00:00")) == "2026-12-31T23:59:59.000000+00:00"
    assert '"occurred_at":"2027-01-02T03:04:05.000007-05:00"' in EVENTS["events"][3]["canonical"]


@pytest.mark.parametrize(
    ("document", "floats", "expected"),
    [
        ({"a": [1.0, 0.5]}, None, b'{"a":[1,0.5]}'),
        ({"a": {"b": 1e21}}, None, b'{"a":{"b":1e+21}}'),
        (2.5e-7, None, b"2.5e-7"),
        ({"a": [1.5e21]}, True, b'{"a":[1.5e+21]}'),
        ({"\ue000": 1, "\U0001f600": 2}, None, '{"\U0001f600":2,"\ue000":1}'.encode()),
        ({"\ue000": 1, "\U0001f600": 2}, False, '{"\U0001f600":2,"\ue000":1}'.encode()),
        ({"é": "ü", "z": "\u2028"}, None, '{"z":"\u2028","é":"ü"}'.encode()),
        ({"b": [True, None], "a": "x\u001f"}, None, b'{"a":"x\\u001f","b":[true,null]}'),
    ],
)
def test_canonical_json_is_rfc_8785_whichever_encoder_writes_it(
    document: Any, floats: bool | None, expected: bytes
) -> None:
    assert hashing.canonical(document, floats=floats) == expected == rfc8785.dumps(document)


@pytest.mark.parametrize(
    ("value", "expected"),
    [({"a": [{"b": 1.0}]}, True), ({"a": [{"b": 1}]}, False), ([0.0], True), ({"a": "1.0"}, False), (1.0, True)],
)
def test_floats_are_found_at_any_depth(value: Any, expected: bool) -> None:
    assert hashing.has_floats(value) is expected


# --- The checkpoint ---------------------------------------------------------------------------------


def golden_signed() -> checkpoints.Signed:
    return checkpoints.Signed.from_json(
        {"payload": CHECKPOINT["payload"], "public_key": CHECKPOINT["public_key"], "signature": CHECKPOINT["signature"]}
    )


def test_the_fixed_key_gives_the_recorded_public_key_and_fingerprint() -> None:
    private = Ed25519PrivateKey.from_private_bytes(bytes.fromhex(CHECKPOINT["private_key_seed_hex"]))
    raw = checkpoints.raw_public_key(private.public_key())
    assert checkpoints.b64url(raw) == CHECKPOINT["public_key"]
    assert checkpoints.unb64url(CHECKPOINT["public_key"]) == raw
    assert checkpoints.fingerprint(raw) == KEY == CHECKPOINT["payload"]["key"]


def test_the_checkpoint_signs_the_recorded_bytes_with_the_recorded_signature() -> None:
    signed_bytes = CHECKPOINT["signed_bytes"].encode("utf-8")
    assert golden_signed().payload() == CHECKPOINT["payload"]
    assert hashing.canonical(golden_signed().payload()) == signed_bytes
    assert verify._signed_bytes(CHECKPOINT["payload"]) == signed_bytes
    private = Ed25519PrivateKey.from_private_bytes(bytes.fromhex(CHECKPOINT["private_key_seed_hex"]))
    assert checkpoints.b64url(private.sign(signed_bytes)) == CHECKPOINT["signature"]  # Ed25519 is deterministic
    assert CHECKPOINT["payload"]["hash"] == EVENTS["events"][-1]["hash"]


def test_the_checkpoint_verifies_in_the_application_and_in_the_standalone_verifier() -> None:
    assert golden_signed().signature_problem() == ""
    assert golden_signed().signature_problem({KEY}) == ""
    assert golden_signed().as_json() == {
        "payload": CHECKPOINT["payload"],
        "public_key": CHECKPOINT["public_key"],
        "signature": CHECKPOINT["signature"],
    }
    assert (
        verify._signature_problem(CHECKPOINT["payload"], CHECKPOINT["signature"], CHECKPOINT["public_key"], KEY) == ""
    )


@pytest.mark.parametrize("field", ["log", "seq", "hash", "signed_at"])
def test_a_changed_checkpoint_field_breaks_the_signature_in_both(field: str) -> None:
    changed = copy.deepcopy(CHECKPOINT["payload"])
    changed[field] = changed[field] + 1 if field == "seq" else changed[field][:-1] + "X"
    document = {"payload": changed, "public_key": CHECKPOINT["public_key"], "signature": CHECKPOINT["signature"]}
    assert checkpoints.Signed.from_json(document).signature_problem({KEY}) == "its signature does not verify"
    problem = verify._signature_problem(changed, CHECKPOINT["signature"], CHECKPOINT["public_key"], KEY)
    assert problem == "its signature does not verify"


def test_the_key_derived_from_a_fixed_secret_and_its_checkpoint_are_the_recorded_ones(settings: Any) -> None:
    derived = CHECKPOINT["derived"]
    settings.CUSTOS_AUDIT_CHECKPOINT_SECRET = derived["secret"]
    settings.CUSTOS_ISSUER = derived["payload"]["log"]
    assert (
        checkpoints.b64url(checkpoints.raw_public_key(checkpoints.signing_key().public_key())) == derived["public_key"]
    )
    assert checkpoints.current_fingerprint() == derived["fingerprint"]
    signed = checkpoints._sign(
        derived["payload"]["seq"], derived["payload"]["hash"], datetime.fromisoformat(derived["payload"]["signed_at"])
    )
    assert signed.as_json() == {
        "payload": derived["payload"],
        "public_key": derived["public_key"],
        "signature": derived["signature"],
    }
    assert signed.signature_problem({derived["fingerprint"]}) == ""


# --- The bundle ----------------------------------------------------------------------------------------

OK_MESSAGE = (
    "bundle OK: 3 events between #2 and #5, under checkpoint #5 signed 2027-01-01T00:00:00.000000+00:00 "
    f"by key {KEY[:16]}…"
)


def test_the_golden_bundle_verifies_naming_what_it_holds() -> None:
    trusted = verify.verify_bundle(golden_bundle(), {KEY})
    assert trusted == verify.Result(True, OK_MESSAGE, None, KEY)
    untrusting = verify.verify_bundle(golden_bundle())
    assert untrusting == verify.Result(True, f"{OK_MESSAGE}; check that you trust key {KEY}", None, KEY)


def test_the_golden_bundles_events_are_the_golden_events() -> None:
    bundle = golden_bundle()
    by_seq = {e["seq"]: e for e in EVENTS["events"]}
    assert [e["seq"] for e in bundle["events"]] == [2, 4, 5]
    for event in bundle["events"]:
        assert (event["canonical"], event["digest"]) == (
            by_seq[event["seq"]]["canonical"],
            by_seq[event["seq"]]["digest"],
        )
    assert [(s["seq"], s["prev_hash"], s["hash"]) for s in bundle["seals"]] == [
        (e["seq"], e["prev_hash"], e["hash"]) for e in EVENTS["events"][1:]
    ]
    assert bundle["checkpoint"] == {"payload": CHECKPOINT["payload"], "signature": CHECKPOINT["signature"]}


def run_verifier(path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """``python -m audit.verify`` with Django, rfc8785 and the application's audit modules unimportable."""
    script = (
        "import runpy, sys\n"
        "for name in ('django', 'rfc8785', 'psycopg', 'rest_framework', 'audit.hashing', 'audit.models'):\n"
        "    sys.modules[name] = None\n"
        f"sys.argv = ['audit.verify', *{[str(path), *args]!r}]\n"
        "runpy.run_module('audit.verify', run_name='__main__', alter_sys=True)\n"
    )
    return subprocess.run([sys.executable, "-c", script], cwd=REPO, capture_output=True, text=True, check=False)


def test_the_command_accepts_the_golden_bundle_file() -> None:
    done = run_verifier(BUNDLE_FILE, "--trust", KEY)
    assert (done.returncode, done.stdout, done.stderr) == (0, OK_MESSAGE + "\n", "")


def flipped(raw: bytes, needle: str, occurrence: int, offset: int) -> bytes:
    """``raw`` with one bit flipped in the byte ``offset`` into the ``occurrence``-th (0-based) ``needle``."""
    encoded = needle.encode("utf-8")
    position = -1
    for _ in range(occurrence + 1):
        position = raw.index(encoded, position + 1)
    corrupted = bytearray(raw)
    corrupted[position + offset] ^= 0x01
    return bytes(corrupted)


def seal(seq: int) -> dict[str, Any]:
    return next(e for e in EVENTS["events"] if e["seq"] == seq)


# Where a flipped bit lands, and what the verifier must then say. The bundle's order is: manifest,
# its signature, the public key, the checkpoint, the seals (2..5), the events (2, 4, 5).
FLIPS = [
    ("event 4's recorded bytes", "Custös", 0, 0, 4, "content does not match its digest"),
    ("event 2's digest in its entry", f'"digest": "{seal(2)["digest"]}', 1, 12, 2, "content does not match its digest"),
    ("event 5's content as shown", '"count": 2', 0, 9, 5, "the content shown is not the content recorded"),
    ("seal 3's digest", seal(3)["digest"], 0, 7, 3, "content does not match its hash"),
    (
        "seal 2's link to event 1",
        f'"prev_hash": "{seal(2)["prev_hash"]}',
        0,
        20,
        2,
        "previous-hash link does not match the event before it",
    ),
    ("seal 4's hash", f'"hash": "{seal(4)["hash"]}', 0, 15, 4, "content does not match its hash"),
    ("seal 5's hash", f'"hash": "{seal(5)["hash"]}', 1, 15, 5, "content does not match its hash"),
    ("seal 5's sequence number", '"seq": 5,\n   "prev_hash"', 0, 7, 5, "expected event #5 here, found #4"),
]


@pytest.mark.parametrize(
    ("where", "needle", "occurrence", "offset", "seq", "problem"), FLIPS, ids=[f[0] for f in FLIPS]
)
def test_a_flipped_bit_is_named_at_the_first_bad_event(
    where: str, needle: str, occurrence: int, offset: int, seq: int, problem: str
) -> None:
    raw = BUNDLE_FILE.read_bytes()
    corrupted = json.loads(flipped(raw, needle, occurrence, offset).decode("utf-8"))
    assert corrupted != golden_bundle(), where
    result = verify.verify_bundle(corrupted, {KEY})
    assert result == verify.Result(False, f"BROKEN at event #{seq}: {problem}", seq, "")


@pytest.mark.parametrize(
    ("needle", "occurrence", "offset", "message"),
    [
        ('"event_count": 3', 0, 15, "the manifest cannot be believed: its signature does not verify"),
        ('"manifest_signature": "', 0, 25, "the manifest cannot be believed: its signature does not verify"),
        ('"signed_at": "2027', 0, 17, "checkpoint #5 cannot be believed: its signature does not verify"),
        (
            f'"signature": "{CHECKPOINT["signature"]}',
            0,
            20,
            "checkpoint #5 cannot be believed: its signature does not verify",
        ),
    ],
)
def test_a_flipped_bit_in_what_is_signed_is_refused_for_the_whole_bundle(
    needle: str, occurrence: int, offset: int, message: str
) -> None:
    corrupted = json.loads(flipped(BUNDLE_FILE.read_bytes(), needle, occurrence, offset).decode("utf-8"))
    assert verify.verify_bundle(corrupted, {KEY}) == verify.Result(False, f"BROKEN at the bundle: {message}", None, "")


def test_the_command_names_the_first_bad_event_of_a_flipped_file(tmp_path: Path) -> None:
    path = tmp_path / "bundle.json"
    path.write_bytes(flipped(BUNDLE_FILE.read_bytes(), "Custös", 0, 0))
    done = run_verifier(path, "--trust", KEY)
    assert (done.returncode, done.stdout, done.stderr) == (
        1,
        "",
        "BROKEN at event #4: content does not match its digest\n",
    )
