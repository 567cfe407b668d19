"""The state the runtime check decides on, kept between checks and confirmed by the check's own write.

Reading a token's chain (or a key's agent) costs a round trip, and recording the decision another. So a
process keeps what it read under the ``StateVersion`` it read it at (``chain.load_token_versioned``,
``authn.load_key_versioned``: state and version in one statement), and the next check of the same
credential and scope decides on that and records its decision with ``audit_append_if``, which writes
only if the version is still the same at that moment, in the same statement: one round trip.

Every change to what the check reads moves the version, by database trigger, in the transaction of the
change (``models.StateVersion``). So if anything changed in between, nothing is written, everything kept
is dropped, the state is read afresh and the decision made again: a revocation is honoured by the very
next check in every process, as when every check read everything afresh. What changes by time alone is
decided from the timestamps kept (link, key and token expiry), and a grant's start or end is kept as the
moment the entry stops standing.

Per process, bounded (``SIZE`` entries, least recently used dropped first), an entry at most ``TTL``
seconds; only on PostgreSQL (where the triggers are) and while ``CUSTOS_CHECK_STATE_CACHE`` is on.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Hashable
from dataclasses import dataclass
from datetime import datetime

from django.conf import settings
from django.db import connection

from audit.services import Precondition
from governance.chain import Versioned

SIZE = 10_000
TTL = 60.0

_CONFIRM_SQL = "SELECT 1 FROM governance_stateversion WHERE id = 1 AND version = %s"


def enabled() -> bool:
    return bool(settings.CUSTOS_CHECK_STATE_CACHE) and connection.vendor == "postgresql"


def unchanged_since(version: int) -> Precondition:
    """Holds while nothing the check reads has changed since ``version`` was read."""
    return Precondition(_CONFIRM_SQL, (version,))


@dataclass(frozen=True, slots=True)
class _Entry:
    loaded: Versioned
    expires: float


class LiveState:
    def __init__(self, size: int = SIZE, ttl: float = TTL) -> None:
        self._entries: OrderedDict[Hashable, _Entry] = OrderedDict()
        self._lock = threading.Lock()
        self._size = size
        self._ttl = ttl

    def get(self, key: Hashable, at: datetime) -> Versioned | None:
        """What was kept for ``key``, if it still stands at ``at``."""
        with self._lock:
            entry = self._entries.get(key)
            if entry is None:
                return None
            until = entry.loaded.until
            if entry.expires <= time.monotonic() or (until is not None and at >= until):
                del self._entries[key]
                return None
            self._entries.move_to_end(key)
            return entry.loaded

    def keep(self, key: Hashable, loaded: Versioned) -> None:
        if loaded.version is None:
            return  # nothing to confirm it by
        with self._lock:
            self._entries[key] = _Entry(loaded, time.monotonic() + self._ttl)
            self._entries.move_to_end(key)
            while len(self._entries) > self._size:
                self._entries.popitem(last=False)

    def forget(self) -> None:
        """The version moved: nothing kept stands any more."""
        with self._lock:
            self._entries.clear()

    def __len__(self) -> int:
        return len(self._entries)


live = LiveState()
