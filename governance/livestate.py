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
from dataclasses import dataclass, field
from datetime import datetime
from functools import cache
from typing import Any

from django.conf import settings
from django.db import connection

from audit.services import Precondition
from governance.chain import Versioned

SIZE = 10_000
TTL = 60.0

_CONFIRM_SQL = "SELECT 1 FROM governance_stateversion WHERE id = 1 AND version = %s"


def enabled() -> bool:
    return bool(settings.CUSTOS_CHECK_STATE_CACHE) and _on_postgresql()


@cache
def _on_postgresql() -> bool:
    """Whether the default database is PostgreSQL: fixed for the life of the process."""
    return connection.vendor == "postgresql"


def unchanged_since(version: int) -> Precondition:
    """Holds while nothing the check reads has changed since ``version`` was read."""
    return Precondition(_CONFIRM_SQL, (version,))


@dataclass(frozen=True, slots=True)
class Kept:
    """What is kept for a key: the state as loaded, when it stops being kept, and what checks derive from
    it and would otherwise make again every time (``derived``: e.g. their audit events' constant part,
    ``governance.hot_append``), which goes when the state goes."""

    loaded: Versioned
    expires: float
    derived: dict[Hashable, Any] = field(default_factory=dict)


class LiveState:
    def __init__(self, size: int = SIZE, ttl: float = TTL) -> None:
        self._entries: OrderedDict[Hashable, Kept] = OrderedDict()
        self._lock = threading.Lock()
        self._size = size
        self._ttl = ttl

    def get(self, key: Hashable, at: datetime) -> Versioned | None:
        """What was kept for ``key``, if it still stands at ``at``."""
        kept = self.get_kept(key, at)
        return kept.loaded if kept is not None else None

    def get_kept(self, key: Hashable, at: datetime) -> Kept | None:
        """``get``, with what has been derived from the state."""
        with self._lock:
            entry = self._entries.get(key)
            if entry is None:
                return None
            until = entry.loaded.until
            if entry.expires <= time.monotonic() or (until is not None and at >= until):
                del self._entries[key]
                return None
            self._entries.move_to_end(key)
            return entry

    def keep(self, key: Hashable, loaded: Versioned) -> Kept | None:
        """Keep ``loaded`` for ``key``; what is kept (None: not kept, having no version to confirm it by)."""
        if loaded.version is None:
            return None
        kept = Kept(loaded, time.monotonic() + self._ttl)
        with self._lock:
            self._entries[key] = kept
            self._entries.move_to_end(key)
            while len(self._entries) > self._size:
                self._entries.popitem(last=False)
        return kept

    def forget(self) -> None:
        """The version moved: nothing kept stands any more."""
        with self._lock:
            self._entries.clear()

    def __len__(self) -> int:
        return len(self._entries)


live = LiveState()
