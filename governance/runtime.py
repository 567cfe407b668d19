"""The runtime check: load the live state in one round trip, decide, record, answer.

``check()`` is what ``POST /api/v1/check`` calls. It never caches anything a revocation could change:
each call reads the token or key row, every link of the delegation chain, every agent and sponsor on
it and the root human's grant for the scope, in one statement (``governance.authn`` for keys,
``governance.chain`` for tokens), then writes the decision to the audit log in one more. A failure of
either raises; the view turns that into 503, never an allow.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings
from django.db import DatabaseError
from django.utils import timezone

from audit.services import Actor, Target, audit_append
from governance import authn, repeats
from governance.decision import Outcome, Reason, decide_key
from governance.models import SCOPE_SEPARATOR
from governance.services import drift
from governance.usage import usage

log = logging.getLogger(__name__)

CONTEXT_FIELDS = ("intent", "tool", "session_id", "request_id", "parent_request_id")


# --- The check ------------------------------------------------------------------------------


@dataclass(slots=True)
class CheckResult:
    outcome: Outcome
    decision_id: str = ""
    subject: dict[str, Any] | None = None
    actors: list[dict[str, Any]] = field(default_factory=list)
    delegation_chain: list[dict[str, Any]] = field(default_factory=list)

    def as_response(self) -> dict[str, Any]:
        return {
            "decision": "allow" if self.outcome.allowed else "deny",
            "reason": self.outcome.reason,
            "detail": self.outcome.detail,
            "decision_id": self.decision_id,
            "subject": self.subject,
            "actors": self.actors,
            "delegation_chain": self.delegation_chain,
        }


def _agent_ref(agent_id: int, name: str) -> dict[str, Any]:
    return {"type": "agent", "id": agent_id, "label": name}


def check(
    *, credential: str, action: str, resource: str, context: dict[str, Any], source: str | None = None
) -> CheckResult:
    """Decide one request of an agent and record the decision. Raises on any infrastructure
    failure (the caller answers 503); every other outcome is a recorded allow or deny.

    ``source`` is the client's address as ``repeats.source_of`` gives it. With one, a denial whose
    credential identifies no agent is recorded in full only the first time in the window (the repeats
    answer with that decision's id and are counted into a summary event), and ``repeats.Throttled`` is
    raised past the source's limit. Without one (callers inside Custos), every decision is recorded."""
    at = timezone.now()
    scope = f"{resource}{SCOPE_SEPARATOR}{action}"
    wanted = frozenset({scope})
    result = CheckResult(outcome=Outcome(Reason.CREDENTIAL_INVALID, "credential not recognised"))
    actor = Actor(kind="agent", label="(unidentified credential)")
    credential_ref: dict[str, Any] = {"kind": "unknown"}

    kind = authn.kind_of(credential)
    if kind == "agent_key":
        credential_ref = {"kind": "agent_key"}
        key = authn.load_key(credential, scope, at)
        if key is not None:
            credential_ref = {"kind": "agent_key", "id": key.key_id, "prefix": credential.split("_")[1]}
            actor = Actor(kind="agent", label=key.agent_name, id=str(key.agent_id))
            result.outcome = decide_key(key, wanted, at)
            result.actors = [_agent_ref(key.agent_id, key.agent_name)]
    elif kind == "delegation_token":
        credential_ref = {"kind": "delegation_token"}
        try:
            # A token is good at Custos itself, or at the one resource it was minted for.
            verified = authn.verify_token(credential, at, (settings.CUSTOS_ISSUER, resource))
        except authn.CredentialRefused as refused:
            result.outcome = Outcome(refused.reason, refused.detail)
        else:
            credential_ref = {"kind": "delegation_token", "jti": verified.jti}
            state, result.outcome = authn.token_decision(verified, wanted, at)
            if state is not None and state.chain is not None:
                live = state.chain
                links = live.links
                actor = Actor(kind="agent", label=links[-1].agent_name, id=str(links[-1].agent_id))
                result.subject = {"type": "human", "id": live.root_human_id, "label": live.root_human_name}
                result.actors = [_agent_ref(link.agent_id, link.agent_name) for link in reversed(links)]
                result.delegation_chain = [
                    {"id": link.delegation_id, "delegate": link.agent_id, "status": link.status} for link in links
                ]

    decision = "allow" if result.outcome.allowed else "deny"
    screened = source is not None and not actor.id
    if screened:
        assert source is not None
        first = repeats.screen(source=source, reason=result.outcome.reason, kind=credential_ref["kind"], at=at)
        if first is not None:
            # Counted into the window's summary, which names the first one; the answer still says why.
            result.decision_id = first
            detail = f"{result.outcome.detail} (a repeat from this address: counted, not recorded on its own)"
            result.outcome = Outcome(result.outcome.reason, detail.lstrip())
            return result
    event = audit_append(
        actor=actor,
        action=f"check.{decision}",
        # The event's target id holds 64 characters and a resource name up to 120: the full scope is in
        # the label and the context, so a long name is a recorded decision, not a failed append (503).
        target=Target(type="scope", id=resource[:64], label=scope),
        on_behalf_of=[result.subject, *reversed(result.actors[1:])] if result.subject else [],
        context={
            "decision": decision,
            "reason": result.outcome.reason,
            "detail": result.outcome.detail,
            "scope": scope,
            "credential": credential_ref,
            "delegation_chain": [link["id"] for link in result.delegation_chain],
            **{name: context.get(name, "") for name in CONTEXT_FIELDS},
            **(repeats.context_fields(source=source, at=at) if screened and source is not None else {}),
        },
    )
    # The decision's id is its audit event's digest: content-addressed, unique, known before sealing.
    result.decision_id = event.digest
    if screened and source is not None:
        repeats.remember(
            source=source, reason=result.outcome.reason, kind=credential_ref["kind"], at=at, decision_id=event.digest
        )
    if actor.id:
        usage.record(agent_id=int(actor.id), key_id=credential_ref.get("id"), at=at)
        if not result.outcome.allowed and result.outcome.reason in drift.DRIFT_REASONS:
            try:
                drift.drift_observe(agent_id=int(actor.id), reason=result.outcome.reason)
            except DatabaseError:
                # The denial is recorded already; a missed drift signal must not turn it into a 503.
                log.warning("drift detection failed", exc_info=True)
    return result
