"""Group commit (``governance.group_commit``): concurrent writes run as one batch, each thread gets its own
result only after its batch ran, a failed batch fails every thread in it and the next batch still runs.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from governance.group_commit import GroupCommit


class Gate:
    """A batch runner that holds its first batch until ``waiting`` more items have queued behind it, so a
    test knows what the second batch holds; it records every batch it ran and with which context."""

    def __init__(self, waiting: int, fail_on: str | None = None) -> None:
        self.waiting = waiting
        self.fail_on = fail_on
        self.ran: list[tuple[list[str], Any]] = []
        self.group: GroupCommit[str, str] | None = None

    def __call__(self, items: Sequence[str], context: Any) -> list[str]:
        assert self.group is not None
        if not self.ran:
            deadline = time.monotonic() + 10
            while len(self.group._queue) < self.waiting:
                assert time.monotonic() < deadline, "the other threads never queued"
                time.sleep(0.001)
        self.ran.append((list(items), context))
        if self.fail_on is not None and self.fail_on in items:
            raise ValueError(f"refused {self.fail_on}")
        return [item.upper() for item in items]


def make(waiting: int, *, limit: int = 32, fail_on: str | None = None) -> tuple[GroupCommit[str, str], Gate]:
    gate = Gate(waiting, fail_on)
    gate.group = GroupCommit(gate, limit=limit)
    return gate.group, gate


def submit_all(group: GroupCommit[str, str], items: list[str]) -> list[Any]:
    """Submit the first item, then the others from their own threads while it runs; each thread's result
    or exception, in the items' order."""

    def one(item: str) -> Any:
        try:
            return group.submit(item, context=f"ctx-{item}")
        except Exception as error:  # the outcome under test
            return error

    with ThreadPoolExecutor(max_workers=len(items)) as pool:
        first = pool.submit(one, items[0])
        while not group._leading:
            time.sleep(0.001)
        rest = [pool.submit(one, item) for item in items[1:]]
        return [first.result(timeout=20)] + [future.result(timeout=20) for future in rest]


def test_a_lone_write_runs_at_once_alone_with_its_own_context() -> None:
    group, gate = make(0)
    assert group.submit("a", context="mine") == "A"
    assert gate.ran == [(["a"], "mine")]
    assert (group.batches, group.items) == (1, 1)
    assert not group._leading and not group._queue


def test_writes_arriving_during_a_batch_run_together_in_the_next_one() -> None:
    group, gate = make(5)
    items = ["a", "b", "c", "d", "e", "f"]
    assert submit_all(group, items) == ["A", "B", "C", "D", "E", "F"]
    assert gate.ran[0] == (["a"], "ctx-a")
    second, context = gate.ran[1]
    assert sorted(second) == ["b", "c", "d", "e", "f"] and len(gate.ran) == 2
    assert context == f"ctx-{second[0]}"  # run by the first thread that queued, on its own context
    assert (group.batches, group.items) == (2, 6)
    assert not group._leading and not group._queue


def test_a_batch_holds_at_most_the_limit() -> None:
    group, gate = make(5, limit=2)
    assert submit_all(group, ["a", "b", "c", "d", "e", "f"]) == ["A", "B", "C", "D", "E", "F"]
    assert [len(items) for items, _ in gate.ran] == [1, 2, 2, 1]
    assert (group.batches, group.items) == (4, 6)


def test_a_failed_batch_fails_each_of_its_threads_and_the_next_batch_still_runs() -> None:
    group, _ = make(3, fail_on="c")
    outcomes = submit_all(group, ["a", "b", "c", "d"])
    assert outcomes[0] == "A"
    failed = outcomes[1:]
    assert all(isinstance(error, ValueError) and error.args == ("refused c",) for error in failed)
    # The batch's leader raised the original; each other thread its own copy, caused by the original.
    originals = [error for error in failed if error.__cause__ is None]
    assert len(originals) == 1
    assert all(error.__cause__ is originals[0] for error in failed if error is not originals[0])
    assert not group._leading and not group._queue
    assert group.submit("e", context=None) == "E"


class Short(Gate):
    """Gives one result fewer than its batch's items, from the second batch on."""

    def __call__(self, items: Sequence[str], context: Any) -> list[str]:
        results = super().__call__(items, context)
        return results if len(self.ran) == 1 else results[1:]


def test_a_runner_giving_the_wrong_number_of_results_fails_that_batch_only() -> None:
    gate = Short(2)
    group: GroupCommit[str, str] = GroupCommit(gate, limit=8)
    gate.group = group
    outcomes = submit_all(group, ["a", "b", "c"])
    assert outcomes[0] == "A"
    assert all(isinstance(error, RuntimeError) for error in outcomes[1:])
    assert {str(error) for error in outcomes[1:]} == {"a batch of 2 items gave 1 results"}
    assert not group._leading and not group._queue


def test_a_limit_below_one_is_refused() -> None:
    with pytest.raises(ValueError, match="at least one"):
        GroupCommit(lambda items, context: list(items), limit=0)
