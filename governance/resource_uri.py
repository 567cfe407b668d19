"""RFC 8707 resource indicators: the one place a resource's URI is validated and normalised, so that
what an admin registers and what a client sends as ``resource`` compare equal as strings.

Normalising stays minimal (scheme and host lower-cased, RFC 3986 §6.2.2.1): the URI becomes a token's
``aud`` verbatim, and the MCP server checking that audience is configured with the same string, so
rewriting paths or ports here would only make the two disagree.
"""

from __future__ import annotations

from urllib.parse import urlsplit

# A token's recorded audience (DelegationToken.audience) holds 200 characters.
MAX_URI_LENGTH = 200
SCHEMES = ("https", "http")


class InvalidResourceUri(ValueError):
    pass


def looks_like_uri(value: str) -> bool:
    """Whether a ``resource``/``audience`` value is meant as a URI rather than a resource's name (names
    are dotted lower-case words and never hold a colon)."""
    return ":" in value


def normalise_resource_uri(value: str) -> str:
    value = value.strip()
    if not value:
        raise InvalidResourceUri("the URI is empty")
    if len(value) > MAX_URI_LENGTH:
        raise InvalidResourceUri(f"the URI is longer than {MAX_URI_LENGTH} characters")
    if any(c.isspace() or ord(c) < 0x20 or ord(c) == 0x7F for c in value):
        raise InvalidResourceUri("the URI contains whitespace or control characters")
    if "#" in value:
        # RFC 8707 §2: "MUST NOT include a fragment component".
        raise InvalidResourceUri("a resource URI must not have a fragment (#…)")
    try:
        parts = urlsplit(value)
        parts.port  # noqa: B018 - raises ValueError on a port that is not a number in range
    except ValueError as exc:
        raise InvalidResourceUri(f"the URI cannot be parsed: {exc}") from None
    scheme = parts.scheme.lower()
    if scheme not in SCHEMES:
        raise InvalidResourceUri("a resource URI is absolute and starts with https:// or http://")
    if not parts.hostname:
        raise InvalidResourceUri("the URI names no host")
    if "@" in parts.netloc:
        raise InvalidResourceUri("a resource URI must not carry credentials (user@host)")
    query = f"?{parts.query}" if parts.query else ""
    return f"{scheme}://{parts.netloc.lower()}{parts.path}{query}"
