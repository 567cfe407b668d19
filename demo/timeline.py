"""The replay's clock and its bookkeeping: a queue of dated actions run oldest first with the clock moved
to each one, and the deployed agents the actions act on.

The clock is moved by a ``time_machine`` traveller handed to ``Timeline.run``; this module never imports
``time_machine`` itself, so the demo's modules import without it (only seeding needs it).
"""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Protocol

from audit.models import ActorKind
from audit.services import Actor
from demo.agents import AgentSpec


class Traveller(Protocol):
    """What the timeline needs of ``time_machine.travel(...)``'s traveller."""

    def move_to(self, destination: datetime, tick: bool | None = None) -> None: ...


@dataclass(slots=True)
class Node:
    """One agent of a deployed family and its current links."""

    spec: AgentSpec
    name: str
    parent: Node | None
    agent_id: int = 0
    link_id: int | None = None
    key_id: int | None = None
    children: list[Node] = field(default_factory=list)

    def walk(self) -> Iterable[Node]:
        yield self
        for child in self.children:
            yield from child.walk()


@dataclass(slots=True)
class Deployment:
    spec: AgentSpec
    variant: str
    sponsor: str
    day: int
    fate: str
    root: Node
    human_id: int = 0
    stopped: bool = False  # no more renewals, rotations or grant renewals

    @property
    def name(self) -> str:
        return self.root.name

    @property
    def renews(self) -> bool:
        return not self.stopped and self.fate != "lapse"


class Timeline:
    """A queue of dated actions replayed in time order with the clock travelled to each one."""

    def __init__(self, start: datetime, end: datetime) -> None:
        self.start = start
        self.now = start
        self.end = end
        self._queue: list[tuple[datetime, int, Callable[[], None]]] = []
        self._order = itertools.count()
        self._traveller: Traveller | None = None

    def day(self, day: int, hour: int, minute: int = 0) -> datetime:
        return self.start + timedelta(days=day, hours=hour, minutes=minute)

    def at(self, when: datetime, action: Callable[[], None]) -> None:
        if when < self.end:
            heapq.heappush(self._queue, (when, next(self._order), action))

    def _move(self, when: datetime) -> None:
        self.now = when
        assert self._traveller is not None
        self._traveller.move_to(when)

    def pause(self, seconds: float) -> None:
        # Spread consecutive changes a little; never past the end of the replayed history.
        self._move(max(self.now, min(self.now + timedelta(seconds=seconds), self.end - timedelta(seconds=1))))

    def run(self, traveller: Traveller) -> None:
        """Run every action, oldest first. An action that runs late (the clock already moved past its
        time) runs at the current time: the clock never goes back, so the audit chain stays in time order."""
        self._traveller = traveller
        while self._queue:
            when, _, action = heapq.heappop(self._queue)
            if when > self.now:
                self._move(when)
            action()


def agent_actor(node: Node) -> Actor:
    return Actor(kind=ActorKind.AGENT, label=node.name, id=str(node.agent_id))


def minute(moment: datetime) -> datetime:
    return moment.replace(second=0, microsecond=0)
