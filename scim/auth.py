"""SCIM clients authenticate with ``Authorization: Bearer cs_<prefix>_<secret>``."""

from __future__ import annotations

from datetime import timedelta

from django.http import HttpRequest
from django.utils import timezone

from governance import credentials
from scim.errors import ScimError
from scim.models import ScimClient
from scim.services import CREDENTIAL_KIND

# last_used_at is for people ("used 3 minutes ago"): one write a minute per client is plenty, so a
# burst of provisioning requests does not queue on the client's row.
LAST_USED_GRANULARITY = timedelta(minutes=1)
_REFUSED = "A valid SCIM client bearer token is required."
# Compared against when the prefix finds no client, so a miss costs what a hit costs.
_DUMMY_HASH = "0" * 64


def authenticate(request: HttpRequest) -> ScimClient:
    scheme, _, presented = request.headers.get("Authorization", "").partition(" ")
    presented = presented.strip()
    if scheme.lower() != "bearer" or not presented:
        raise ScimError(401, None, _REFUSED)
    prefix = credentials.parse_prefix(CREDENTIAL_KIND, presented)
    client = ScimClient.objects.filter(prefix=prefix).first() if prefix else None
    matched = credentials.matches(presented, client.hashed if client is not None else _DUMMY_HASH)
    if client is None or not matched:
        raise ScimError(401, None, _REFUSED)
    if client.revoked_at is not None:
        raise ScimError(401, None, "This SCIM client has been revoked.")
    now = timezone.now()
    if client.last_used_at is None or now - client.last_used_at >= LAST_USED_GRANULARITY:
        ScimClient.objects.filter(pk=client.pk).update(last_used_at=now)
        client.last_used_at = now
    return client
