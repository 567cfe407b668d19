"""What a chain of custody holds (``custody.custody`` reads it): the parties and credentials on the chain,
each with its status then and now, the links, the session's requests and the timeline, as plain records
with their API form (``as_dict``), and a line of words for each event."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from audit.models import AuditEvent

NOT_YET = "not yet"


@dataclass(frozen=True, slots=True)
class Status:
    then: str
    now: str

    @property
    def changed(self) -> bool:
        return self.then != self.now


@dataclass(slots=True)
class Party:
    """A human or an agent on the chain."""

    kind: str  # "human" | "agent"
    id: int
    label: str
    status: Status
    sponsor: Party | None = None  # an agent's accountable human

    def as_dict(self) -> dict[str, Any]:
        return {
            "type": self.kind,
            "id": self.id,
            "label": self.label,
            "status_then": self.status.then,
            "status_now": self.status.now,
            **({"sponsor": self.sponsor.as_dict()} if self.sponsor is not None else {}),
        }


@dataclass(slots=True)
class Credential:
    """The token a hop held, or the key an agent acting as itself presented."""

    kind: str  # "delegation_token" | "agent_key"
    ref: str  # the jti, or the key's display form
    issued_at: datetime
    expires_at: datetime
    status: Status
    scopes: list[str] = field(default_factory=list)
    key: str = ""  # for a token: the agent key that obtained it
    revoked_reason: str = ""

    def as_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "ref": self.ref,
            "issued_at": self.issued_at,
            "expires_at": self.expires_at,
            "status_then": self.status.then,
            "status_now": self.status.now,
            "scopes": self.scopes,
            "agent_key": self.key or None,
            "revoked_reason": self.revoked_reason,
        }


@dataclass(slots=True)
class Hop:
    """One delegation link, the agent it let act, and the token that agent held."""

    delegation_id: int
    agent: Party
    created_at: datetime
    created_by: str
    purpose: str
    scopes: list[str]
    expires_at: datetime
    hops_left: int
    depth: int
    status: Status
    revoked_reason: str
    approved_by: str = ""
    justification: str = ""
    token: Credential | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "delegation": self.delegation_id,
            "depth": self.depth,
            "agent": self.agent.as_dict(),
            "created_at": self.created_at,
            "created_by": self.created_by,
            "approved_by": self.approved_by or None,
            "justification": self.justification or self.purpose,
            "scopes": self.scopes,
            "expires_at": self.expires_at,
            "hops_left": self.hops_left,
            "status_then": self.status.then,
            "status_now": self.status.now,
            "revoked_reason": self.revoked_reason,
            "token": self.token.as_dict() if self.token is not None else None,
        }


@dataclass(frozen=True, slots=True)
class Request:
    """A decision seen from its session: the request it answered."""

    digest: str
    occurred_at: datetime
    agent_id: str
    agent: str
    scope: str
    decision: str
    reason: str
    request_id: str

    def as_dict(self) -> dict[str, Any]:
        return {
            "decision_id": self.digest,
            "occurred_at": self.occurred_at,
            "agent": {"id": int(self.agent_id) if self.agent_id.isdigit() else None, "label": self.agent},
            "scope": self.scope,
            "decision": self.decision,
            "reason": self.reason,
            "request_id": self.request_id,
        }


@dataclass(frozen=True, slots=True)
class Moment:
    """One entry of the timeline: an event about a party on the chain, placed before, at or after the
    subject."""

    event: AuditEvent
    when: str  # "before" | "this" | "after"

    @property
    def is_followup(self) -> bool:
        return self.when == "after"

    def as_dict(self) -> dict[str, Any]:
        e = self.event
        return {
            "when": self.when,
            "id": e.digest,
            "seq": e.seq,
            "occurred_at": e.occurred_at,
            "actor": {"kind": e.actor_kind, "id": e.actor_id or None, "label": e.actor_label},
            "action": e.action,
            "target": {"type": e.target_type, "id": e.target_id, "label": e.target_label},
            "summary": summary(e),
        }


@dataclass(slots=True)
class Custody:
    event: AuditEvent
    at: datetime
    human: Party | None
    hops: list[Hop]
    actor: Party | None  # the agent that acted (the last hop's, or a key's agent)
    credential: Credential | None
    requests: list[Request]  # the decision's request path in its session, root request first, itself last
    children: list[Request]  # requests made on behalf of this one
    timeline: list[Moment]
    truncated: bool

    @property
    def is_decision(self) -> bool:
        return self.event.action.startswith("check.")

    @property
    def context(self) -> dict[str, Any]:
        return self.event.context if isinstance(self.event.context, dict) else {}

    @property
    def followed(self) -> list[Moment]:
        return [m for m in self.timeline if m.is_followup]

    @property
    def session_id(self) -> str:
        value = self.context.get("session_id")
        return value if isinstance(value, str) else ""

    @property
    def broken_now(self) -> bool:
        """Would the same chain still stand today? (Any link no longer active.)"""
        parties = [p for p in (self.human, self.actor) if p is not None]
        parties += [h.agent for h in self.hops] + [h.agent.sponsor for h in self.hops if h.agent.sponsor]
        credentials = [h.token for h in self.hops if h.token is not None]
        if self.credential is not None:
            credentials.append(self.credential)
        return (
            any(h.status.now != "active" for h in self.hops)
            or any(p.status.now != "active" for p in parties)
            or any(c.status.now != "active" for c in credentials)
        )

    def as_dict(self) -> dict[str, Any]:
        e, context = self.event, self.context
        return {
            "id": e.digest,
            "seq": e.seq,
            "occurred_at": e.occurred_at,
            "action": e.action,
            "actor": {"kind": e.actor_kind, "id": e.actor_id or None, "label": e.actor_label},
            "target": {"type": e.target_type, "id": e.target_id, "label": e.target_label},
            "decision": (
                {
                    name: context.get(name, "")
                    for name in (
                        "decision",
                        "reason",
                        "detail",
                        "scope",
                        "intent",
                        "tool",
                        "session_id",
                        "request_id",
                        "parent_request_id",
                    )
                }
                if self.is_decision
                else None
            ),
            "human": self.human.as_dict() if self.human is not None else None,
            "chain": [hop.as_dict() for hop in self.hops],
            "acting_agent": self.actor.as_dict() if self.actor is not None else None,
            "credential": self.credential.as_dict() if self.credential is not None else None,
            "request_path": [r.as_dict() for r in self.requests],
            "child_requests": [r.as_dict() for r in self.children],
            "timeline": [m.as_dict() for m in self.timeline],
            "timeline_truncated": self.truncated,
            "chain_stands_now": not self.broken_now,
        }


def is_status_change(event: AuditEvent) -> bool:
    context = event.context if isinstance(event.context, dict) else {}
    return isinstance(context.get("from"), str) and isinstance(context.get("to"), str)


def as_request(event: AuditEvent) -> Request:
    context = event.context if isinstance(event.context, dict) else {}
    return Request(
        digest=event.digest,
        occurred_at=event.occurred_at,
        agent_id=event.actor_id,
        agent=event.actor_label,
        scope=str(context.get("scope", "")),
        decision=str(context.get("decision", "")),
        reason=str(context.get("reason", "")),
        request_id=str(context.get("request_id", "")),
    )


# --- Words ---------------------------------------------------------------------------------------


def summary(event: AuditEvent) -> str:
    """One line saying what an event did, for the timeline."""
    context = event.context if isinstance(event.context, dict) else {}
    action, label = event.action, event.target_label or event.target_id
    if action.startswith("check."):
        reason = context.get("reason", "")
        return f"{context.get('decision', '')} {context.get('scope', '')}" + (
            f" ({reason})" if reason != "allowed" else ""
        )
    if action == "token.issue":
        return f"token issued for {', '.join(context.get('scopes', []))} under delegation #{context.get('delegation')}"
    if action == "delegation.create":
        return f"delegation #{event.target_id} {label}: {', '.join(context.get('scopes', []))}"
    if context.get("reason"):
        return f"{label}: {context['reason']}"
    if is_status_change(event):
        return f"{label}: {context['from']} → {context['to']}"
    return str(label)
