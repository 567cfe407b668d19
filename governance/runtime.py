"""The runtime check: the live state, a decision on it, and its record, in one round trip when it can.

``check()`` is what ``POST /api/v1/check`` calls. The state is the token or key row, every link of the
delegation chain, every agent and sponsor on it and the grant for the scope, read in one statement
(``governance.authn`` for keys, ``governance.chain`` for tokens) with the version it was read at. A
process keeps it (``governance.livestate``), and the next check of the same credential decides on it
and records its decision on condition that the version has not moved: one statement. If it has (any
change to what the check reads moves it), the state is read again and the decision made again, so a
revocation is honoured by the very next check in every process. A failure of either raises; the view
turns that into 503, never an allow.

A decision on kept state is recorded by ``governance.hot_append`` when it plainly can (its event's
constant part and the answer's JSON made once per kept state and outcome, the statement prepared once
and run through libpq): the same bytes, digest and answer as ``audit.services`` and ``json`` would
give, for half the CPU of the whole check.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import secrets
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, cast

from django.conf import settings
from django.db import DatabaseError
from django.utils import timezone

from audit.models import AuditEvent
from audit.services import Actor, Target, audit_append, audit_append_if
from governance import authn, chain, credentials, hot_append, livestate, repeats, tokens
from governance.decision import KeyState, Outcome, Reason, decide_key
from governance.models import SCOPE_SEPARATOR, Resource
from governance.resource_uri import looks_like_uri
from governance.services import drift
from governance.usage import usage

log = logging.getLogger(__name__)

CONTEXT_FIELDS = hot_append.REQUEST_FIELDS
_UNIDENTIFIED = Actor(kind="agent", label="(unidentified credential)")


# --- The check ------------------------------------------------------------------------------


@dataclass(slots=True)
class CheckResult:
    outcome: Outcome
    decision_id: str = ""
    subject: dict[str, Any] | None = None
    actors: list[dict[str, Any]] = field(default_factory=list)
    delegation_chain: list[dict[str, Any]] = field(default_factory=list)
    # The answer's JSON around its decision id, when made once for the kept state (``_record_hot``).
    encoded: tuple[str, str] | None = None

    def as_response(self) -> dict[str, Any]:
        body = {
            "decision": "allow" if self.outcome.allowed else "deny",
            "reason": self.outcome.reason,
            "detail": self.outcome.detail,
            "decision_id": self.decision_id,
            "subject": self.subject,
            "actors": self.actors,
            "delegation_chain": self.delegation_chain,
        }
        if self.encoded is None:
            return body
        return EncodedAnswer(body, json=f"{self.encoded[0]}{self.decision_id}{self.encoded[1]}".encode())


class EncodedAnswer(dict[str, Any]):
    """An answer with its JSON as ``json.dumps(answer, ensure_ascii=False, separators=(",", ":"))``
    writes it, made from pieces kept with the state, for the WSGI hot path to send as it is (the DRF
    view renders the dict itself, as any other)."""

    def __init__(self, body: dict[str, Any], *, json: bytes) -> None:
        super().__init__(body)
        self.json = json


def _encoded_around_id(result: CheckResult) -> tuple[str, str] | None:
    """``result``'s answer as JSON, cut around its decision id (None if that cannot be done plainly)."""
    mark = f"\ue000{secrets.token_hex(8)}\ue000"
    body = dataclasses.replace(result, decision_id=mark, encoded=None).as_response()
    parts = json.dumps(body, ensure_ascii=False, separators=(",", ":")).split(mark)
    return (parts[0], parts[1]) if len(parts) == 2 else None


def _agent_ref(agent_id: int, name: str) -> dict[str, Any]:
    return {"type": "agent", "id": agent_id, "label": name}


@dataclass(slots=True)
class _Decided:
    """One decision before it is recorded: the answer, who asked, with what, and the version of the
    state it was made on (None: read afresh with nothing to confirm it by)."""

    result: CheckResult
    actor: Actor
    credential_ref: dict[str, Any]
    version: int | None = None
    kept: livestate.Kept | None = None


def _decide_key(credential: str, scope: str, wanted: frozenset[str], at: datetime, mode: str) -> _Decided:
    decided = _Decided(_unrecognised(), _UNIDENTIFIED, {"kind": "agent_key"})
    key: KeyState | None
    if mode == _AFRESH:
        key = authn.load_key(credential, scope, at)
    else:
        cache_key = ("key", credentials.parse_prefix("ck", credential), scope)
        kept = livestate.live.get_kept(cache_key, at) if mode == _KEPT else None
        loaded = kept.loaded if kept is not None else authn.load_key_versioned(credential, scope, at)
        if kept is None and loaded is not None:
            kept = livestate.live.keep(cache_key, loaded)
        key = loaded.state.for_presented(credential) if loaded is not None else None
        decided.version = loaded.version if loaded is not None else None
        decided.kept = kept
    if key is not None:
        decided.credential_ref = {"kind": "agent_key", "id": key.key_id, "prefix": credential.split("_")[1]}
        decided.actor = Actor(kind="agent", label=key.agent_name, id=str(key.agent_id))
        decided.result.outcome = decide_key(key, wanted, at)
        decided.result.actors = [_agent_ref(key.agent_id, key.agent_name)]
    return decided


def _decide_token(
    verified: tokens.VerifiedToken, scope: str, wanted: frozenset[str], at: datetime, mode: str
) -> _Decided:
    decided = _Decided(_unrecognised(), _UNIDENTIFIED, {"kind": "delegation_token", "jti": verified.jti})
    if mode == _AFRESH:
        state, decided.result.outcome = authn.token_decision(verified, wanted, at)
    else:
        cache_key = ("token", verified.jti, scope)
        kept = livestate.live.get_kept(cache_key, at) if mode == _KEPT else None
        loaded = kept.loaded if kept is not None else chain.load_token_versioned(verified.jti, scope, at)
        if kept is None and loaded is not None:
            kept = livestate.live.keep(cache_key, loaded)
        state, decided.result.outcome = authn.token_outcome(
            verified, wanted, at, loaded.state if loaded is not None else None
        )
        decided.version = loaded.version if loaded is not None else None
        decided.kept = kept
    if state is not None and state.chain is not None:
        links = state.chain.links
        decided.actor = Actor(kind="agent", label=links[-1].agent_name, id=str(links[-1].agent_id))
        decided.result.subject = {
            "type": "human",
            "id": state.chain.root_human_id,
            "label": state.chain.root_human_name,
        }
        decided.result.actors = [_agent_ref(link.agent_id, link.agent_name) for link in reversed(links)]
        decided.result.delegation_chain = [
            {"id": link.delegation_id, "delegate": link.agent_id, "status": link.status} for link in links
        ]
    return decided


def _unrecognised() -> CheckResult:
    return CheckResult(outcome=Outcome(Reason.CREDENTIAL_INVALID, "credential not recognised"))


# How a decision's state is come by: kept from an earlier check if it still stands (else read with its
# version), read with its version, or read afresh with no version (then recorded unconditionally).
_KEPT, _VERSIONED, _AFRESH = "kept", "versioned", "afresh"


def _verify_for_resource(credential: str, at: datetime, resource: str) -> tokens.VerifiedToken:
    """A token is good at Custos itself, or at the one resource it was minted for: named by the
    resource's name, or — a token an MCP client asked for with RFC 8707 ``resource`` — by the URI
    registered for that resource, so a token for one MCP server is refused at every other. Only a URI
    audience costs a query (URIs can be registered at any time, so the answer is not kept)."""
    verified = authn.verify_token(credential, at, audiences=None)
    aud = verified.claims.get("aud")
    audiences = [aud] if isinstance(aud, str) else [a for a in aud or () if isinstance(a, str)]
    if settings.CUSTOS_ISSUER in audiences or resource in audiences:
        return verified
    uris = [a for a in audiences if looks_like_uri(a)]
    if uris and Resource.objects.filter(name=resource, uri__in=uris).exists():
        return verified
    raise authn.CredentialRefused("the token is not valid: token is not for this audience")


def check(
    *, credential: str, action: str, resource: str, context: dict[str, Any], source: str | None = None
) -> CheckResult:
    """Decide one request of an agent and record the decision. Raises on any infrastructure
    failure (the caller answers 503); every other outcome is a recorded allow or deny.

    The state decided on may be one kept from an earlier check (``governance.livestate``); the decision
    is then recorded only if that state is still current when the record is written, and otherwise made
    again on the state read afresh. At most three tries: the last reads and records without a version.

    ``source`` is the client's address as ``repeats.source_of`` gives it. With one, a denial whose
    credential identifies no agent is recorded in full only the first time in the window (the repeats
    answer with that decision's id and are counted into a summary event), and ``repeats.Throttled`` is
    raised past the source's limit. Without one (callers inside Custos), every decision is recorded."""
    at = timezone.now()
    scope = f"{resource}{SCOPE_SEPARATOR}{action}"
    wanted = frozenset({scope})
    kind = authn.kind_of(credential)
    verified: tokens.VerifiedToken | None = None
    refused: Outcome | None = None
    if kind == "delegation_token":
        try:
            verified = _verify_for_resource(credential, at, resource)
        except authn.CredentialRefused as exc:
            refused = Outcome(exc.reason, exc.detail)
    modes = (_KEPT, _VERSIONED, _AFRESH) if livestate.enabled() else (_AFRESH,)
    for mode in modes:
        if kind == "agent_key":
            decided = _decide_key(credential, scope, wanted, at, mode)
        elif verified is not None:
            decided = _decide_token(verified, scope, wanted, at, mode)
        else:
            decided = _Decided(_unrecognised(), _UNIDENTIFIED, {"kind": kind})
            if refused is not None:
                decided.result.outcome = refused
        recorded = _record(decided, scope, resource, context, source, at)
        if recorded is not None:
            break
        livestate.live.forget()  # the state changed since it was read: nothing kept stands
    result, actor = decided.result, decided.actor
    if actor.id:
        usage.record(agent_id=int(actor.id), key_id=decided.credential_ref.get("id"), at=at)
        if not result.outcome.allowed and result.outcome.reason in drift.DRIFT_REASONS:
            try:
                drift.drift_observe(agent_id=int(actor.id), reason=result.outcome.reason)
            except DatabaseError:
                # The denial is recorded already; a missed drift signal must not turn it into a 503.
                log.warning("drift detection failed", exc_info=True)
    return result


_NO_TEMPLATE = object()


def _record_hot(
    decided: _Decided,
    kept: livestate.Kept,
    version: int,
    scope: str,
    resource: str,
    context: dict[str, Any],
    wrapper: Any,
) -> str | bool | None:
    """``_record`` by ``hot_append`` for a decision on kept state: what ``EventTemplate.append_if``
    answers. The event's constant part is made once per kept state and outcome, and kept with the state
    (everything in it but the outcome and the resource comes from that state)."""
    result, outcome = decided.result, decided.result.outcome
    key = (resource, outcome.allowed, outcome.reason, outcome.detail, *decided.credential_ref.values())
    template = kept.derived.get(("event", *key), _NO_TEMPLATE)
    if template is _NO_TEMPLATE:
        decision = "allow" if outcome.allowed else "deny"
        template = kept.derived[("event", *key)] = hot_append.EventTemplate.of(
            actor=decided.actor,
            action=f"check.{decision}",
            target=Target(type="scope", id=resource[:64], label=scope),
            on_behalf_of=[result.subject, *reversed(result.actors[1:])] if result.subject else [],
            context={
                "decision": decision,
                "reason": outcome.reason,
                "detail": outcome.detail,
                "scope": scope,
                "credential": decided.credential_ref,
                "delegation_chain": [link["id"] for link in result.delegation_chain],
            },
        )
    if template is None:
        return False
    assert isinstance(template, hot_append.EventTemplate)
    digest = template.append_if([context.get(name, "") for name in CONTEXT_FIELDS], version, wrapper)
    if digest:
        encoded = kept.derived.get(("answer", *key), _NO_TEMPLATE)
        if encoded is _NO_TEMPLATE:
            encoded = kept.derived[("answer", *key)] = _encoded_around_id(result)
        result.encoded = cast(tuple[str, str] | None, encoded)
    return digest


def _record(
    decided: _Decided, scope: str, resource: str, context: dict[str, Any], source: str | None, at: datetime
) -> str | None:
    """Record the decision; its id (also set on the result), or None when the state it was made on has
    changed since (nothing written)."""
    result, actor, credential_ref = decided.result, decided.actor, decided.credential_ref
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
            return first
    wrapper = hot_append.usable() if not screened and decided.kept is not None else None
    if wrapper is not None and decided.kept is not None and decided.version is not None:
        digest = _record_hot(decided, decided.kept, decided.version, scope, resource, context, wrapper)
        if digest is not False:
            if digest is None:
                return None
            assert isinstance(digest, str)
            result.decision_id = digest
            return digest
    fields: dict[str, Any] = {
        "actor": actor,
        "action": f"check.{decision}",
        # The event's target id holds 64 characters and a resource name up to 120: the full scope is in
        # the label and the context, so a long name is a recorded decision, not a failed append (503).
        "target": Target(type="scope", id=resource[:64], label=scope),
        "on_behalf_of": [result.subject, *reversed(result.actors[1:])] if result.subject else [],
        "context": {
            "decision": decision,
            "reason": result.outcome.reason,
            "detail": result.outcome.detail,
            "scope": scope,
            "credential": credential_ref,
            "delegation_chain": [link["id"] for link in result.delegation_chain],
            **{name: context.get(name, "") for name in CONTEXT_FIELDS},
            **(repeats.context_fields(source=source, at=at) if screened and source is not None else {}),
        },
    }
    if decided.version is None:
        event: AuditEvent | None = audit_append(**fields)
    else:
        event = audit_append_if(livestate.unchanged_since(decided.version), **fields)
        if event is None:
            return None
    assert event is not None
    # The decision's id is its audit event's digest: content-addressed, unique, known before sealing.
    result.decision_id = event.digest
    if screened and source is not None:
        repeats.remember(
            source=source, reason=result.outcome.reason, kind=credential_ref["kind"], at=at, decision_id=event.digest
        )
    return event.digest
