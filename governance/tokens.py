"""Delegation tokens: signed JWTs (EdDSA over Ed25519) that carry who delegated what to whom.

Signing keys are generated here, kept encrypted at rest, published as a JWKS while any token they
signed can still be valid, and rotated with that overlap. All cryptography is done by ``cryptography``
and PyJWT; nothing here implements a primitive.
"""

from __future__ import annotations

import base64
import hashlib
import re
import secrets
import threading
from collections import OrderedDict
from collections.abc import Collection
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import jwt
from cryptography.fernet import Fernet, InvalidToken
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from django.conf import settings
from django.utils import timezone
from jwt.algorithms import OKPAlgorithm

from governance.decision import TokenClaims
from governance.models import SigningKey

ALGORITHM = "EdDSA"
# What a kid Custos issues can look like (``generate_signing_key``): anything else is refused before it
# reaches the database, where e.g. a NUL byte would raise instead of simply not matching.
_KID_RE = re.compile(r"[A-Za-z0-9._-]{1,64}")
# Tokens larger than this are refused before any parsing: a real one is well under 2 KiB.
MAX_TOKEN_BYTES = 8192
# What a jti Custos issues can look like (``secrets.token_urlsafe``); it is looked up in the database,
# where e.g. a NUL byte would make the query fail instead of simply not match.
_JTI_RE = re.compile(r"[A-Za-z0-9_-]{1,64}")
# Time claims are whole seconds between the epoch and the last second datetime can hold.
_MAX_TIMESTAMP = 253_402_300_799  # 9999-12-31T23:59:59Z
# Deeper ``act`` nesting than any chain Custos allows is refused rather than walked.
_MAX_ACT_DEPTH = 16
_SUBJECT_RE = re.compile(r"(human|agent):([1-9][0-9]{0,18})")


def _fernet() -> Fernet:
    derived = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=b"custos signing keys").derive(
        settings.CUSTOS_KEY_ENCRYPTION_SECRET.encode()
    )
    return Fernet(base64.urlsafe_b64encode(derived))


def _public_jwk(public_key: Ed25519PublicKey, kid: str) -> dict[str, Any]:
    jwk: dict[str, Any] = OKPAlgorithm.to_jwk(public_key, as_dict=True)
    jwk.update({"kid": kid, "alg": ALGORITHM, "use": "sig"})
    return jwk


def generate_signing_key(*, activated_at: datetime | None = None) -> SigningKey:
    """A new Ed25519 key, unsaved: the caller (a service) saves it and writes the audit event."""
    activated_at = activated_at or timezone.now()
    private = Ed25519PrivateKey.generate()
    pem = private.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    kid = f"{activated_at:%Y%m%d}-{secrets.token_hex(4)}"
    signs_until = activated_at + settings.CUSTOS_SIGNING_KEY_ROTATION
    return SigningKey(
        kid=kid,
        algorithm=ALGORITHM,
        private_pem=_fernet().encrypt(pem).decode(),
        public_jwk=_public_jwk(private.public_key(), kid),
        activated_at=activated_at,
        signs_until=signs_until,
        # Keep verifying for as long as a token signed at the last moment may live.
        verifies_until=signs_until + settings.CUSTOS_TOKEN_MAX_LIFETIME,
    )


def private_key_of(key: SigningKey) -> Ed25519PrivateKey | None:
    """The decrypted private key, or None when it was encrypted under another secret (then a new
    key is generated for signing; the old one still verifies from its public half)."""
    try:
        pem = _fernet().decrypt(key.private_pem.encode())
    except InvalidToken:
        return None
    private = serialization.load_pem_private_key(pem, password=None)
    assert isinstance(private, Ed25519PrivateKey)
    return private


def jwks(at: datetime | None = None) -> dict[str, Any]:
    return {"keys": [key.public_jwk for key in SigningKey.objects.published(at)]}


def encode(claims: dict[str, Any], key: SigningKey) -> str:
    private = private_key_of(key)
    if private is None:
        raise RuntimeError(f"signing key {key.kid} cannot be decrypted with the configured secret")
    return jwt.encode(claims, private, algorithm=ALGORITHM, headers={"kid": key.kid, "typ": "JWT"})


# --- Verification ---------------------------------------------------------------------------


class TokenInvalid(Exception):
    """The presented token is not a token Custos issued (bad form, signature, key, audience…)."""


class TokenExpired(Exception):
    pass


@dataclass(frozen=True, slots=True)
class VerifiedToken:
    claims: dict[str, Any]
    kid: str
    parsed: TokenClaims

    @property
    def jti(self) -> str:
        return str(self.claims["jti"])

    @property
    def exp(self) -> int:
        return int(self.claims["exp"])

    @property
    def expires_at(self) -> datetime:
        return datetime.fromtimestamp(self.exp, tz=UTC)


class _PublicKeys:
    """Public keys by kid. Keys never change once made, so a hit never goes stale; a miss reads the
    database (a new key from a rotation in another process)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._keys: dict[str, tuple[Ed25519PublicKey, datetime, datetime]] = {}

    def get(self, kid: str, at: datetime) -> Ed25519PublicKey | None:
        entry = self._keys.get(kid)
        if entry is None:
            row = SigningKey.objects.filter(kid=kid).first()
            if row is None:
                return None
            public = OKPAlgorithm.from_jwk(row.public_jwk)
            assert isinstance(public, Ed25519PublicKey)
            entry = (public, row.activated_at, row.verifies_until)
            with self._lock:
                self._keys[kid] = entry
        public, activated_at, verifies_until = entry
        return public if activated_at <= at < verifies_until else None

    def clear(self) -> None:
        with self._lock:
            self._keys.clear()


class _SignatureCache:
    """Tokens whose signature and claims were already verified, keyed by the token's hash.

    Only what revocation cannot change is cached (the signature is valid; the claims say this). Expiry
    and every revocation are still checked on each use against the clock and the database."""

    def __init__(self, size: int = 4096) -> None:
        self._size = size
        self._lock = threading.Lock()
        self._entries: OrderedDict[bytes, VerifiedToken] = OrderedDict()

    def get(self, digest: bytes) -> VerifiedToken | None:
        with self._lock:
            hit = self._entries.get(digest)
            if hit is not None:
                self._entries.move_to_end(digest)
            return hit

    def put(self, digest: bytes, value: VerifiedToken) -> None:
        with self._lock:
            self._entries[digest] = value
            self._entries.move_to_end(digest)
            while len(self._entries) > self._size:
                self._entries.popitem(last=False)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()


public_keys = _PublicKeys()
signature_cache = _SignatureCache()

_REQUIRED = ["exp", "iat", "nbf", "jti", "sub", "aud", "iss", "act", "scope"]


def verify(token: str, *, audiences: Collection[str] | None = None, at: datetime | None = None) -> VerifiedToken:
    """Verify a token Custos issued: algorithm pinned, kid known and published, signature, issuer,
    audience, time claims. Raises TokenInvalid or TokenExpired; never returns an unverified token."""
    at = at or timezone.now()
    if len(token) > MAX_TOKEN_BYTES or token.count(".") != 2 or not token.isascii():
        raise TokenInvalid("not a compact JWS")
    digest = hashlib.sha256(token.encode("ascii")).digest()
    verified = signature_cache.get(digest)
    if verified is None:
        verified = _verify_uncached(token, at)
        signature_cache.put(digest, verified)
    now = at.timestamp()
    leeway = settings.CUSTOS_TOKEN_LEEWAY.total_seconds()
    if verified.exp <= now - leeway:
        raise TokenExpired("token has expired")
    if int(verified.claims["nbf"]) > now + leeway:
        raise TokenInvalid("token is not valid yet")
    if audiences is not None and not set(audiences) & set(_audiences(verified.claims)):
        raise TokenInvalid("token is not for this audience")
    return verified


def _audiences(claims: dict[str, Any]) -> list[str]:
    aud = claims.get("aud")
    return [aud] if isinstance(aud, str) else list(aud or [])


def _verify_uncached(token: str, at: datetime) -> VerifiedToken:
    try:
        header = jwt.get_unverified_header(token)
    except jwt.PyJWTError as exc:
        raise TokenInvalid(f"malformed header: {exc}") from None
    if header.get("alg") != ALGORITHM:
        raise TokenInvalid("algorithm not accepted")
    kid = header.get("kid")
    if not isinstance(kid, str) or not _KID_RE.fullmatch(kid):
        raise TokenInvalid("no key id, or not one Custos issues")
    public = public_keys.get(kid, at)
    if public is None:
        raise TokenInvalid("unknown or retired key id")
    try:
        claims = jwt.decode(
            token,
            public,
            algorithms=[ALGORITHM],
            issuer=settings.CUSTOS_ISSUER,
            # Audience and time are checked by the caller on every use (they must not be cached).
            options={"require": _REQUIRED, "verify_aud": False, "verify_exp": False, "verify_nbf": False},
        )
    except jwt.PyJWTError as exc:
        raise TokenInvalid(str(exc)) from None
    return VerifiedToken(claims=claims, kid=kid, parsed=_parse_claims(claims))


def _parse_claims(claims: dict[str, Any]) -> TokenClaims:
    """Check the shape of every claim Custos relies on and parse it. The signature only says the token
    was signed with a key Custos published; a key that leaked can sign anything, so nothing here may
    fail other than as ``TokenInvalid``."""
    for name in ("exp", "iat", "nbf"):
        value = claims[name]
        if type(value) is not int or not 0 <= value <= _MAX_TIMESTAMP:
            raise TokenInvalid(f"malformed {name} claim")
    if not isinstance(claims["jti"], str) or not _JTI_RE.fullmatch(claims["jti"]):
        raise TokenInvalid("malformed jti claim")
    scope, aud, delegation_id = claims["scope"], claims["aud"], claims.get("delegation_id")
    if not isinstance(scope, str) or not isinstance(aud, str):
        raise TokenInvalid("malformed delegation claims")
    if delegation_id is not None and (type(delegation_id) is not int or delegation_id < 1):
        raise TokenInvalid("malformed delegation_id claim")
    return TokenClaims(
        human_id=_subject_id("human", claims["sub"]),
        agent_ids=_act_chain(claims["act"]),
        scopes=frozenset(scope.split()),
        audience=aud,
        delegation_id=delegation_id,
    )


def _subject_id(kind: str, subject: Any) -> int | None:
    match = _SUBJECT_RE.fullmatch(subject) if isinstance(subject, str) else None
    return int(match.group(2)) if match and match.group(1) == kind else None


def _act_chain(act: Any) -> tuple[int | None, ...]:
    """The agents of a nested ``act`` claim, the one acting now first (RFC 8693 §4.1)."""
    agents: list[int | None] = []
    while act is not None:
        if not isinstance(act, dict) or len(agents) >= _MAX_ACT_DEPTH:
            raise TokenInvalid("malformed act claim")
        agents.append(_subject_id("agent", act.get("sub")))
        act = act.get("act")
    if not agents:
        raise TokenInvalid("malformed act claim")
    return tuple(agents)


def human_subject(human_id: int) -> str:
    return f"human:{human_id}"


def agent_subject(agent_id: int) -> str:
    return f"agent:{agent_id}"


def nested_act(agent_subjects: list[str]) -> dict[str, Any]:
    """RFC 8693 ``act`` for a chain of agents given first to last: the outermost ``act`` is the
    agent acting now, each nested one the agent it acts for, down to the first agent."""
    act: dict[str, Any] | None = None
    for subject in agent_subjects:
        act = {"sub": subject, "act": act} if act is not None else {"sub": subject}
    assert act is not None
    return act


def token_lifetime(requested: timedelta | None, delegation_expires_at: datetime, at: datetime) -> timedelta:
    """A token's lifetime: what was asked for (the configured default otherwise), and never past the
    delegation. Asking for more than the configured maximum is refused, never silently shortened."""
    maximum = settings.CUSTOS_TOKEN_MAX_LIFETIME
    if requested is not None and requested > maximum:
        raise LifetimeExceedsMaximum(
            f"expires_in may be at most {int(maximum.total_seconds())} seconds (CUSTOS_TOKEN_MAX_LIFETIME)"
        )
    return min(requested or settings.CUSTOS_TOKEN_LIFETIME, delegation_expires_at - at)


class LifetimeExceedsMaximum(ValueError):
    pass
