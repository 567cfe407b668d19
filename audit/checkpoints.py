"""Signed checkpoints of the chain head (Ed25519), kept in the database and outside it.

A checkpoint is the canonical JSON payload ``{"log", "seq", "hash", "signed_at", "key"}`` (``log`` is
``CUSTOS_ISSUER``, so a checkpoint of one installation is no good for another; ``key`` the signing key's
fingerprint) and an Ed25519 signature over it. The signing key is derived from
``CUSTOS_AUDIT_CHECKPOINT_SECRET`` (the database never holds it: whoever owns the database cannot sign);
changing the secret rotates the key, and checkpoints signed before stay verifiable from the public key
each carries, once its fingerprint is listed in ``CUSTOS_AUDIT_CHECKPOINT_TRUSTED_KEYS``: trust comes
from the configuration, never from the database or the directory, so a checkpoint forged with another
key is refused wherever it is found.

Each checkpoint is written to ``CUSTOS_AUDIT_CHECKPOINT_DIR`` (one file per checkpoint, never
overwritten) and, when ``CUSTOS_AUDIT_WITNESS_URL`` is set, POSTed there as JSON. Those copies are the
point: keep the directory where a database-only attacker cannot reach (another host, a write-once
bucket).
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import json
import logging
import os
import urllib.request
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from django.conf import settings
from django.db import transaction
from django.utils import timezone

from audit.hashing import canonical, isoformat
from audit.models import ChainHead, Checkpoint

log = logging.getLogger(__name__)

FILE_SUFFIX = ".checkpoint.json"


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def unb64url(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def signing_key() -> Ed25519PrivateKey:
    seed = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=b"custos audit checkpoint key").derive(
        settings.CUSTOS_AUDIT_CHECKPOINT_SECRET.encode()
    )
    return Ed25519PrivateKey.from_private_bytes(seed)


def raw_public_key(key: Ed25519PublicKey) -> bytes:
    return key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def fingerprint(public_key_raw: bytes) -> str:
    return hashlib.sha256(public_key_raw).hexdigest()


@dataclass(frozen=True, slots=True)
class Signed:
    """A checkpoint as it travels: what was signed, the signature and the key to check it with."""

    log: str
    seq: int
    hash: str
    signed_at: str
    key: str  # fingerprint
    public_key: str  # base64url raw
    signature: str  # base64url

    def payload(self) -> dict[str, Any]:
        return {"log": self.log, "seq": self.seq, "hash": self.hash, "signed_at": self.signed_at, "key": self.key}

    def as_json(self) -> dict[str, Any]:
        return {"payload": self.payload(), "public_key": self.public_key, "signature": self.signature}

    @classmethod
    def from_json(cls, document: dict[str, Any]) -> Signed:
        payload = document["payload"]
        return cls(
            log=str(payload["log"]),
            seq=int(payload["seq"]),
            hash=str(payload["hash"]),
            signed_at=str(payload["signed_at"]),
            key=str(payload["key"]),
            public_key=str(document["public_key"]),
            signature=str(document["signature"]),
        )

    @classmethod
    def of(cls, checkpoint: Checkpoint) -> Signed:
        return cls(
            log=settings.CUSTOS_ISSUER,
            seq=checkpoint.seq,
            hash=checkpoint.hash,
            signed_at=isoformat(checkpoint.signed_at),
            key=checkpoint.key_fingerprint,
            public_key=checkpoint.public_key,
            signature=checkpoint.signature,
        )

    def signature_problem(self, trusted: set[str] | None = None) -> str:
        """Why this checkpoint cannot be believed, or "" when its signature holds under its key (and the
        key is one of ``trusted``, when given)."""
        try:
            raw = unb64url(self.public_key)
            key = Ed25519PublicKey.from_public_bytes(raw)
        except ValueError:
            return "its public key is malformed"
        if fingerprint(raw) != self.key:
            return "its public key does not match the fingerprint it names"
        if trusted is not None and self.key not in trusted:
            return f"it is signed by key {self.key[:16]}…, which is not trusted"
        try:
            key.verify(unb64url(self.signature), canonical(self.payload()))
        except (InvalidSignature, ValueError):
            return "its signature does not verify"
        return ""


def current_fingerprint() -> str:
    return fingerprint(raw_public_key(signing_key().public_key()))


def _sign(seq: int, chain_hash: str, signed_at: datetime) -> Signed:
    private = signing_key()
    public_raw = raw_public_key(private.public_key())
    unsigned = Signed(
        log=settings.CUSTOS_ISSUER,
        seq=seq,
        hash=chain_hash,
        signed_at=isoformat(signed_at),
        key=fingerprint(public_raw),
        public_key=b64url(public_raw),
        signature="",
    )
    return dataclasses.replace(unsigned, signature=b64url(private.sign(canonical(unsigned.payload()))))


def checkpoint_dir() -> Path | None:
    return Path(settings.CUSTOS_AUDIT_CHECKPOINT_DIR) if settings.CUSTOS_AUDIT_CHECKPOINT_DIR else None


def _write_file(signed: Signed) -> None:
    directory = checkpoint_dir()
    if directory is None:
        return
    directory.mkdir(parents=True, exist_ok=True)
    target = directory / f"{signed.seq:015d}{FILE_SUFFIX}"
    if target.exists():
        return  # never overwritten: the first copy is the evidence
    temporary = target.with_suffix(".tmp")
    temporary.write_text(json.dumps(signed.as_json(), indent=2, sort_keys=True) + "\n")
    os.replace(temporary, target)


def _send_to_witness(signed: Signed) -> None:
    url = settings.CUSTOS_AUDIT_WITNESS_URL
    if not url:
        return
    request = urllib.request.Request(  # noqa: S310 - an operator-configured https URL
        url, data=json.dumps(signed.as_json()).encode(), headers={"Content-Type": "application/json"}, method="POST"
    )
    try:
        with urllib.request.urlopen(request, timeout=5) as response:  # noqa: S310
            response.read()
    except OSError:
        # The checkpoint is in the database and the directory; the next one tries the witness again.
        log.warning("could not send checkpoint #%s to the witness at %s", signed.seq, url, exc_info=True)


def checkpoint_now(*, force: bool = False) -> Checkpoint | None:
    """Sign the chain head as it is now. Nothing new since the last checkpoint: nothing (unless ``force``)."""
    with transaction.atomic():
        head = ChainHead.objects.select_for_update().filter(pk=1).first()
        if head is None or head.seq == 0:
            return None
        existing = Checkpoint.objects.filter(seq=head.seq).first()
        if existing is not None and not force:
            return None
        if existing is not None:
            signed = Signed.of(existing)
        else:
            signed = _sign(head.seq, head.hash, timezone.now())
            existing = Checkpoint.objects.create(
                seq=signed.seq,
                hash=signed.hash,
                signed_at=datetime.fromisoformat(signed.signed_at),
                key_fingerprint=signed.key,
                public_key=signed.public_key,
                signature=signed.signature,
            )
    # Outside the transaction: the copies are written once the checkpoint is committed.
    _write_file(signed)
    _send_to_witness(signed)
    return existing


def external_checkpoints() -> tuple[list[Signed], list[str]]:
    """The checkpoints in the directory, oldest first, and the names of files that are not checkpoints
    at all (empty without a directory)."""
    directory = checkpoint_dir()
    if directory is None or not directory.is_dir():
        return [], []
    found, unreadable = [], []
    for path in sorted(directory.glob(f"*{FILE_SUFFIX}")):
        try:
            found.append(Signed.from_json(json.loads(path.read_text())))
        except (ValueError, KeyError, TypeError):
            unreadable.append(path.name)
    return found, unreadable


def trusted_keys() -> set[str]:
    """Keys a checkpoint may be signed with: the current one, and the earlier ones the configuration lists."""
    return {current_fingerprint(), *settings.CUSTOS_AUDIT_CHECKPOINT_TRUSTED_KEYS}


def checkpoint_if_sound() -> Checkpoint | None:
    """Verify what is new since the last checkpoint and sign the head only if it holds: a broken chain
    is logged at ERROR (alert on it) and never signed."""
    from audit.verification import verify_chain

    result = verify_chain(full=False)
    if not result.ok:
        log.error("audit chain broken at #%s: %s (no checkpoint signed)", result.first_bad_seq, result.problem)
        return None
    return checkpoint_now()
