"""Group commit within a process: writes submitted by concurrent threads, run together as one.

A check's decision is one short statement, and most of what PostgreSQL spends on it (parsing the
message, planning, starting and committing a transaction, flushing the WAL) is paid per statement, not
per row. Under a threaded server (granian's WSGI workers, gunicorn's ``gthread``) several checks of one
process are in flight at once; each would send its own statement and wait for its own commit. Here they
wait for each other instead, and one statement carries all of them:

- a thread that finds nobody writing becomes the *leader*: it takes what is waiting (its own item first,
  at most ``limit``), runs the batch on its own connection, and hands each waiting thread its result;
- a thread that arrives while a batch runs queues its item and waits. When the batch ends, the first
  thread still queued is woken as the next leader and takes everything that queued meanwhile.

Nothing waits on a timer: a lone thread leads at once and writes alone (the same latency as without
this; a sync worker is always alone), and a batch grows only by what arrived while the previous one
ran. Each thread returns only once its own item's statement has committed, so an answer never goes out
before its record is durable; if the batch fails, every thread in it gets the failure (a 503 deny, each
in its own request), and leadership still passes on.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable, Sequence
from typing import Any


class _Slot[Item, Result]:
    __slots__ = ("done", "error", "item", "lead", "result")

    def __init__(self, item: Item) -> None:
        self.item = item
        self.done = threading.Event()
        self.lead = False
        self.result: Result | None = None
        self.error: BaseException | None = None


class GroupCommit[Item, Result]:
    """Runs ``run(items, context)`` for batches of concurrently submitted items; ``run`` returns one
    result per item, in order, or raises (then every item of the batch fails with that error)."""

    def __init__(self, run: Callable[[Sequence[Item], Any], Sequence[Result]], *, limit: int) -> None:
        if limit < 1:
            raise ValueError("a batch holds at least one item")
        self._run = run
        self._limit = limit
        self._lock = threading.Lock()
        self._queue: deque[_Slot[Item, Result]] = deque()
        self._leading = False
        # For tests and the benchmark's report: batches run and items written through them.
        self.batches = 0
        self.items = 0

    def submit(self, item: Item, context: Any) -> Result:
        """``item``'s result once the batch holding it has run; ``context`` (e.g. this thread's database
        connection) is what ``run`` gets if this thread leads."""
        slot: _Slot[Item, Result] = _Slot(item)
        with self._lock:
            self._queue.append(slot)
            lead = not self._leading
            self._leading = True
        if not lead:
            slot.done.wait()
            if not slot.lead:
                return self._outcome(slot)
        # Leading: this slot is the queue's first (a new leader finds the queue empty but for its own; a
        # woken one was first in line), so the batch always holds it.
        with self._lock:
            batch = [self._queue.popleft() for _ in range(min(self._limit, len(self._queue)))]
        try:
            results = self._run([each.item for each in batch], context)
            if len(results) != len(batch):
                raise RuntimeError(f"a batch of {len(batch)} items gave {len(results)} results")
            for each, result in zip(batch, results, strict=True):
                each.result = result
        except BaseException as error:  # handed to every thread of the batch, raised in each
            for each in batch:
                each.error = error
        finally:
            with self._lock:
                self.batches += 1
                self.items += len(batch)
                if self._queue:
                    following = self._queue[0]
                    following.lead = True
                    following.done.set()
                else:
                    self._leading = False
            for each in batch:
                if each is not slot:
                    each.done.set()
        if slot.error is not None:
            raise slot.error
        return slot.result  # type: ignore[return-value]

    @staticmethod
    def _outcome[I, R](slot: _Slot[I, R]) -> R:
        """A waiting thread's result, or the batch's failure: a copy of the leader's exception (one
        exception object raised in several threads would collect all their tracebacks), the original
        as its cause."""
        error = slot.error
        if error is None:
            return slot.result  # type: ignore[return-value]
        try:
            copy = type(error)(*error.args)
        except Exception:  # an exception type that cannot be rebuilt from its arguments
            copy = RuntimeError(f"the batch holding this write failed: {error!r}")
        raise copy from error
