"""When keys were last used and agents last active, recorded without a database write per request.

Each process keeps the latest moment per key and per agent in memory and writes them in one batch at
most once per ``FLUSH_SECONDS``, from whichever request comes after that. The console is then at most
that much behind; nothing that decides access reads these values.
"""

from __future__ import annotations

import logging
import threading
import time
from datetime import datetime

from django.db import DatabaseError
from django.db.models import Q

log = logging.getLogger(__name__)

FLUSH_SECONDS = 30.0


class _UsageBuffer:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._keys: dict[int, datetime] = {}
        self._agents: dict[int, datetime] = {}
        self._last_flush = time.monotonic()

    def record(self, *, agent_id: int, at: datetime, key_id: int | None = None) -> None:
        with self._lock:
            if key_id is not None and (key_id not in self._keys or self._keys[key_id] < at):
                self._keys[key_id] = at
            if agent_id not in self._agents or self._agents[agent_id] < at:
                self._agents[agent_id] = at
            due = time.monotonic() - self._last_flush >= FLUSH_SECONDS
        if due:
            self.flush()

    def flush(self) -> None:
        from governance.models import Agent, AgentKey

        with self._lock:
            keys, self._keys = self._keys, {}
            agents, self._agents = self._agents, {}
            self._last_flush = time.monotonic()
        try:
            # Only ever move the moment forward: another process may have flushed a later one.
            for key_id, at in keys.items():
                AgentKey.objects.filter(Q(last_used_at__isnull=True) | Q(last_used_at__lt=at), pk=key_id).update(
                    last_used_at=at
                )
            for agent_id, at in agents.items():
                Agent.objects.filter(Q(last_activity_at__isnull=True) | Q(last_activity_at__lt=at), pk=agent_id).update(
                    last_activity_at=at
                )
        except DatabaseError:
            # Usage is informational; losing one batch must not fail a request.
            log.warning("could not record key and agent usage", exc_info=True)


usage = _UsageBuffer()
