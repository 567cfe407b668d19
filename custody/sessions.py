"""One goal-driven agent session: every decision made in it, in the order recorded, each placed under the
request it was made for (``parent_request_id``), across the agent and its sub-agents. One read, by the
partial index on decisions' session id."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.db.models.fields.json import KeyTextTransform
from django.db.models.lookups import Exact

from audit.models import CHECK_ACTIONS, AuditEvent

MAX_DECISIONS = 2000


def session_decisions(session_id: str, *, limit: int = MAX_DECISIONS) -> list[AuditEvent]:
    """A session's decisions in the order they were recorded (the partial index on the session id)."""
    return list(
        AuditEvent.objects.select_related("seal")
        .filter(CHECK_ACTIONS)
        # The plain Exact lookup: a key transform's own would compare JSON values, and on SQLite wrap the
        # session id in JSON_EXTRACT (not JSON: an error); this one is the indexed expression = the text.
        .filter(Exact(KeyTextTransform("session_id", "context"), session_id))
        .order_by("id")[:limit]
    )


@dataclass(frozen=True, slots=True)
class Entry:
    event: AuditEvent
    depth: int  # 0 for a request made for no other in the session
    lane: int  # the column of its agent: agents ordered by how deep in the chain they act
    parent: Entry | None

    @property
    def context(self) -> dict[str, Any]:
        return self.event.context if isinstance(self.event.context, dict) else {}

    def text(self, name: str) -> str:
        value = self.context.get(name, "")
        return value if isinstance(value, str) else ""

    @property
    def allowed(self) -> bool:
        return self.event.action == "check.allow"

    @property
    def chain(self) -> list[int]:
        chain = self.context.get("delegation_chain")
        return [i for i in chain if type(i) is int] if isinstance(chain, list) else []

    def as_dict(self) -> dict[str, Any]:
        e = self.event
        return {
            "decision_id": e.digest,
            "occurred_at": e.occurred_at,
            "agent": {"id": int(e.actor_id) if e.actor_id.isdigit() else None, "label": e.actor_label},
            "scope": self.text("scope"),
            "decision": self.text("decision"),
            "reason": self.text("reason"),
            "request_id": self.text("request_id"),
            "parent_request_id": self.text("parent_request_id"),
            "depth": self.depth,
            "delegation_chain": self.chain,
            "intent": self.text("intent"),
            "tool": self.text("tool"),
        }


@dataclass(frozen=True, slots=True)
class Lane:
    agent_id: str
    label: str
    depth: int


@dataclass(frozen=True, slots=True)
class SessionTimeline:
    session_id: str
    entries: list[Entry]
    lanes: list[Lane]
    human: dict[str, Any] | None
    truncated: bool

    @property
    def started_at(self) -> datetime:
        return self.entries[0].event.occurred_at

    @property
    def ended_at(self) -> datetime:
        return self.entries[-1].event.occurred_at

    @property
    def denied(self) -> int:
        return sum(1 for e in self.entries if not e.allowed)

    @property
    def allowed(self) -> int:
        return len(self.entries) - self.denied

    @property
    def intents(self) -> list[str]:
        return sorted({e.text("intent") for e in self.entries if e.text("intent")})

    def as_dict(self) -> dict[str, Any]:
        return {
            "session_id": self.session_id,
            "human": self.human,
            "agents": [
                {"id": int(lane.agent_id) if lane.agent_id.isdigit() else None, "label": lane.label}
                for lane in self.lanes
            ],
            "started_at": self.started_at,
            "ended_at": self.ended_at,
            "allowed": self.allowed,
            "denied": self.denied,
            "truncated": self.truncated,
            "decisions": [e.as_dict() for e in self.entries],
        }


def session_timeline(session_id: str) -> SessionTimeline | None:
    events = session_decisions(session_id, limit=MAX_DECISIONS + 1)
    if not events:
        return None
    truncated = len(events) > MAX_DECISIONS
    events = events[:MAX_DECISIONS]

    # Agents in the order they act down the chain (the length of the chain they acted through), then
    # by first appearance.
    lanes: dict[str, Lane] = {}
    for event in events:
        chain = event.context.get("delegation_chain") if isinstance(event.context, dict) else None
        depth = len(chain) if isinstance(chain, list) else 0
        if event.actor_id not in lanes:
            lanes[event.actor_id] = Lane(event.actor_id, event.actor_label, depth)
    ordered = sorted(lanes.values(), key=lambda lane: lane.depth)
    lane_of = {lane.agent_id: i for i, lane in enumerate(ordered)}

    by_request: dict[str, Entry] = {}
    entries: list[Entry] = []
    for event in events:
        context = event.context if isinstance(event.context, dict) else {}
        parent_id = context.get("parent_request_id")
        parent = by_request.get(parent_id) if isinstance(parent_id, str) and parent_id else None
        entry = Entry(event, parent.depth + 1 if parent else 0, lane_of[event.actor_id], parent)
        entries.append(entry)
        request_id = context.get("request_id")
        if isinstance(request_id, str) and request_id:
            by_request.setdefault(request_id, entry)

    human = None
    for event in events:
        subject = event.on_behalf_of[0] if isinstance(event.on_behalf_of, list) and event.on_behalf_of else None
        if isinstance(subject, dict) and subject.get("type") == "human":
            human = {"id": subject.get("id"), "label": subject.get("label", "")}
            break
    return SessionTimeline(session_id, entries, ordered, human, truncated)
