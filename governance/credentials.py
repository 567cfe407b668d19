"""Random bearer credentials: ``<kind>_<prefix>_<secret>``.

They are long random strings, not passwords, so a keyed hash (HMAC-SHA256 with a server-side pepper)
is the right store: a slow password hash would only slow every request. The prefix is stored in clear
to find the row; the comparison of hashes is constant-time.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import string
from dataclasses import dataclass

from django.conf import settings

_PREFIX_ALPHABET = string.ascii_lowercase + string.digits
_SECRET_ALPHABET = string.ascii_letters + string.digits
PREFIX_LENGTH = 10
SECRET_LENGTH = 40
MAX_LENGTH = 80


@dataclass(frozen=True, slots=True)
class NewCredential:
    full: str
    prefix: str
    hashed: str


def keyed_hash(full: str) -> str:
    return hmac.new(settings.CUSTOS_CREDENTIAL_PEPPER.encode(), full.encode(), hashlib.sha256).hexdigest()


def generate(kind: str) -> NewCredential:
    prefix = "".join(secrets.choice(_PREFIX_ALPHABET) for _ in range(PREFIX_LENGTH))
    secret = "".join(secrets.choice(_SECRET_ALPHABET) for _ in range(SECRET_LENGTH))
    full = f"{kind}_{prefix}_{secret}"
    return NewCredential(full=full, prefix=prefix, hashed=keyed_hash(full))


def parse_prefix(kind: str, presented: str) -> str | None:
    """The prefix of a well-formed credential of ``kind``, else None (nothing is looked up)."""
    if len(presented) > MAX_LENGTH:
        return None
    parts = presented.split("_")
    if len(parts) != 3 or parts[0] != kind:
        return None
    prefix, secret = parts[1], parts[2]
    if not (8 <= len(prefix) <= 16 and all(c in _PREFIX_ALPHABET for c in prefix)):
        return None
    if not secret or not all(c in _SECRET_ALPHABET for c in secret):
        return None
    return prefix


def matches(presented: str, hashed: str) -> bool:
    return hmac.compare_digest(keyed_hash(presented), hashed)
