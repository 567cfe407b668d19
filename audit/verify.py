"""Verify an audit evidence bundle offline: ``python -m audit.verify BUNDLE [--trust FINGERPRINT]``.

Standalone on purpose: it imports nothing but the standard library and ``cryptography``, so an auditor
can run this one file on a machine that has never seen Custos. It exits 0 when the bundle holds, and
otherwise 1, naming the first bad event.

A bundle (``manage.py audit_export`` or ``GET /api/v1/audit/export/``) holds the selected events with
their content, the seals of every event from the first selected one to a signed checkpoint (with the
digests of the events not selected), that checkpoint, and a manifest signed with the same key saying
what was selected. The verifier recomputes each selected event's digest from its recorded content (the
exact canonical JSON bytes Custos hashed: SHA-256), follows the chain of seal hashes to the checkpoint
and checks its signature,
and holds the contents to the manifest — so a changed bit, an edited field, an event deleted,
inserted or moved, a tail cut off, and a forged or replayed checkpoint all fail. The signing key is
named by its fingerprint: pass the ones you trust with ``--trust`` (otherwise the verifier says which
key it relied on, and that you should check it).
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import sys
from dataclasses import dataclass
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

FORMAT = "custos-audit-bundle/1"
GENESIS_HASH = "0" * 64

# --- The chain ---------------------------------------------------------------------------------------


def digest_of(canonical_content: str) -> str:
    """An event's digest: SHA-256 of its canonical content, the exact bytes Custos recorded."""
    return hashlib.sha256(canonical_content.encode("utf-8")).hexdigest()


def _signed_bytes(document: dict[str, Any]) -> bytes:
    """What a checkpoint or manifest signature covers: the document as canonical JSON (RFC 8785). Every
    value in these documents is a string, an integer or an object of them, for which Python's encoder
    with sorted keys and no spaces gives exactly the canonical bytes."""
    for value in document.values():
        if not isinstance(value, str | int | dict | type(None)) or isinstance(value, bool | float):
            raise ValueError(f"a signed document holds a {type(value).__name__}")
    return json.dumps(document, sort_keys=True, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def _exact(value: Any) -> str:
    """A JSON value written so that equal texts mean equal JSON: Python's ``==`` holds ``1``, ``1.0`` and
    ``true`` equal, and content shown as ``true`` where ``1`` was recorded must not pass. Keys are sorted:
    the order of an object's members means nothing in JSON."""
    return json.dumps(value, sort_keys=True)


def chain_hash(seq: int, prev_hash: str, digest: str) -> str:
    return hashlib.sha256(f"{seq}|{prev_hash}|{digest}".encode("ascii")).hexdigest()


def _unb64url(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _signature_problem(signed: dict[str, Any], signature: str, public_key: str, key: str) -> str:
    try:
        raw = _unb64url(public_key)
        verifier = Ed25519PublicKey.from_public_bytes(raw)
    except ValueError:
        return "its public key is malformed"
    if hashlib.sha256(raw).hexdigest() != key:
        return "its public key does not match the fingerprint it names"
    try:
        verifier.verify(_unb64url(signature), _signed_bytes(signed))
    except (InvalidSignature, ValueError):
        return "its signature does not verify"
    return ""


@dataclass(frozen=True, slots=True)
class Result:
    ok: bool
    message: str
    first_bad_seq: int | None = None
    key: str = ""


class Broken(Exception):
    def __init__(self, message: str, seq: int | None = None) -> None:
        super().__init__(message)
        self.message, self.seq = message, seq


def verify_bundle(bundle: Any, trusted: set[str] | None = None) -> Result:
    try:
        return _verify(bundle, trusted)
    except Broken as broken:
        where = f"event #{broken.seq}" if broken.seq is not None else "the bundle"
        return Result(False, f"BROKEN at {where}: {broken.message}", broken.seq)
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        return Result(False, f"BROKEN at the bundle: it is not a well-formed bundle ({type(exc).__name__}: {exc})")


def _verify(bundle: Any, trusted: set[str] | None) -> Result:
    if not isinstance(bundle, dict) or bundle.get("format") != FORMAT:
        raise Broken(f"not a {FORMAT} file")
    manifest, checkpoint = bundle["manifest"], bundle["checkpoint"]
    key = str(manifest["key"])
    if trusted is not None and key not in trusted:
        raise Broken(f"it is signed by key {key}, which you did not trust")
    problem = _signature_problem(manifest, bundle["manifest_signature"], bundle["public_key"], key)
    if problem:
        raise Broken(f"the manifest cannot be believed: {problem}")
    payload = checkpoint["payload"]
    problem = _signature_problem(payload, checkpoint["signature"], bundle["public_key"], str(payload["key"]))
    if problem or payload["key"] != key:
        raise Broken(f"checkpoint #{payload.get('seq')} cannot be believed: {problem or 'signed by another key'}")
    if (payload["log"], payload["seq"], payload["hash"]) != (
        manifest["log"],
        manifest["checkpoint_seq"],
        manifest["checkpoint_hash"],
    ):
        raise Broken(f"checkpoint #{payload['seq']} is not the one the manifest names (replayed?)")

    seals = bundle["seals"]
    first, last = int(manifest["first_seq"]), int(manifest["checkpoint_seq"])
    events: dict[int, Any] = {}
    for event in bundle["events"]:
        if int(event["seq"]) in events:
            # Only one of the two could be checked: the other would be shown unverified.
            raise Broken("the bundle holds this event twice", int(event["seq"]))
        events[int(event["seq"])] = event
    expected_seq, prev = first, str(manifest["first_prev_hash"])
    for seal in seals:
        seq = int(seal["seq"])
        if seq != expected_seq:
            raise Broken(f"expected event #{expected_seq} here, found #{seq}", expected_seq)
        if seal["prev_hash"] != prev:
            raise Broken("previous-hash link does not match the event before it", seq)
        digest = str(seal["digest"])
        if seq in events:
            event = events[seq]
            if digest_of(event["canonical"]) != digest or event["digest"] != digest:
                raise Broken("content does not match its digest", seq)
            if _exact(json.loads(event["canonical"])) != _exact(event["content"]):
                raise Broken("the content shown is not the content recorded", seq)
        if chain_hash(seq, prev, digest) != seal["hash"]:
            raise Broken("content does not match its hash", seq)
        prev = str(seal["hash"])
        expected_seq += 1
    if expected_seq - 1 < last:
        raise Broken(f"the chain stops at #{expected_seq - 1}, before checkpoint #{last} (cut short?)", expected_seq)
    if expected_seq - 1 > last:
        raise Broken(f"the chain runs on past checkpoint #{last}, to #{expected_seq - 1}", last + 1)
    if prev != payload["hash"]:
        raise Broken(f"the chain does not lead to the hash checkpoint #{last} signed", last)
    selected = sorted(events)
    if len(selected) != int(manifest["event_count"]) or any(not first <= seq <= last for seq in selected):
        missing = int(manifest["event_count"]) - len(selected)
        raise Broken(
            f"the bundle holds {len(selected)} selected events, the manifest {manifest['event_count']}"
            + (f" ({missing} removed?)" if missing > 0 else " (added?)")
        )
    listed = "\n".join(str(events[seq]["digest"]) for seq in selected).encode("ascii")
    if hashlib.sha256(listed).hexdigest() != manifest["events_digest"]:
        raise Broken("the selected events are not those the manifest lists (swapped?)")
    note = "" if trusted is not None else f"; check that you trust key {key}"
    return Result(
        True,
        f"bundle OK: {len(selected)} events between #{first} and #{last}, under checkpoint #{last} "
        f"signed {payload['signed_at']} by key {key[:16]}…{note}",
        key=key,
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m audit.verify", description=__doc__.split("\n\n")[0])
    parser.add_argument("bundle", help="the bundle file (JSON)")
    parser.add_argument(
        "--trust",
        action="append",
        metavar="FINGERPRINT",
        help="a checkpoint key you trust (SHA-256 of its raw public key, hex); repeatable",
    )
    args = parser.parse_args(argv)
    try:
        with open(args.bundle, "rb") as handle:
            bundle = json.loads(handle.read().decode("utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        print(f"BROKEN at the bundle: it cannot be read as JSON ({exc})", file=sys.stderr)
        return 1
    result = verify_bundle(bundle, set(args.trust) if args.trust else None)
    print(result.message, file=sys.stdout if result.ok else sys.stderr)
    return 0 if result.ok else 1


if __name__ == "__main__":
    sys.exit(main())
