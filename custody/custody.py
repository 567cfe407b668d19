"""The chain of custody of one audit event: which human authorised it, through which delegations (who made
or approved each, when, why, with what scopes and hops left), which agents and sub-agents acted, with which
token and key, the decision and its context, and what followed (revocations, reviews, offboarding).

Everything is read in a fixed number of statements, whatever the size of the log or the depth of the chain:
the event by its digest; the delegation chain and the chain of tokens by recursive queries; the parties on
it; every event about any of them; the decisions of its session. Each link carries its status *then* (at the
moment of the event) and *now*: delegations, tokens and keys from their own timestamps, agents and humans
from the status changes the log recorded after the event (the first one's ``from`` is what held then).
"""

from __future__ import annotations

from datetime import datetime

from django.db import connection
from django.db.models import Q
from django.utils import timezone

from audit.models import AuditEvent
from custody.records import (
    NOT_YET,
    Credential,
    Custody,
    Hop,
    Moment,
    Party,
    Request,
    Status,
    as_request,
    is_status_change,
)
from custody.sessions import session_decisions
from governance.models import Agent, AgentKey, Delegation, DelegationToken, Human

# Events listed around the subject, before and after it together: enough for any real chain's story; the
# audit browser holds the rest.
MAX_RELATED = 400


# --- Status then and now ----------------------------------------------------------------------------


def _timed_status(
    *, start: datetime, expires_at: datetime | None, revoked_at: datetime | None, at: datetime, now: datetime
) -> Status:
    def at_moment(moment: datetime) -> str:
        if start > moment:
            return NOT_YET
        if revoked_at is not None and revoked_at <= moment:
            return "revoked"
        if expires_at is not None and expires_at <= moment:
            return "expired"
        return "active"

    return Status(then=at_moment(at), now=at_moment(now))


def _recorded_status(now_status: str, changes: list[AuditEvent]) -> Status:
    """An agent's or a human's status at the subject's moment: the ``from`` of the first status change the
    log recorded after it; with none, it has not changed since."""
    for change in changes:
        before = change.context.get("from") if isinstance(change.context, dict) else None
        if isinstance(before, str):
            return Status(then=before, now=now_status)
    return Status(then=now_status, now=now_status)


# --- Reading ------------------------------------------------------------------------------------


_ANCESTOR_DELEGATIONS = """
WITH RECURSIVE up(id, parent_id, hop) AS (
    SELECT id, parent_id, 0 FROM governance_delegation WHERE id = %s
    UNION ALL
    SELECT d.id, d.parent_id, up.hop + 1 FROM governance_delegation d JOIN up ON d.id = up.parent_id
    WHERE up.hop < 64
)
SELECT id FROM up
"""

_ANCESTOR_TOKENS = """
WITH RECURSIVE up(id, parent_token_id, hop) AS (
    SELECT id, parent_token_id, 0 FROM governance_delegationtoken WHERE jti = %s
    UNION ALL
    SELECT t.id, t.parent_token_id, up.hop + 1 FROM governance_delegationtoken t JOIN up ON t.id = up.parent_token_id
    WHERE up.hop < 64
)
SELECT id FROM up
"""


def _ids(sql: str, param: int | str) -> list[int]:
    with connection.cursor() as cursor:
        cursor.execute(sql, [param])
        return [row[0] for row in cursor.fetchall()]


def _int(value: object) -> int | None:
    if type(value) is int:
        return value
    if isinstance(value, str) and value.isascii() and value.isdigit():
        return int(value)
    return None


def _chain_of(event: AuditEvent) -> tuple[list[int], str | None, int | None]:
    """The delegation ids of the event's chain (root first), the jti of the token it concerns, and the
    id of the agent key it concerns (decisions made with a key, key events)."""
    context = event.context if isinstance(event.context, dict) else {}
    jti: str | None = None
    key_id: int | None = None
    leaf: int | None = None
    if event.action.startswith("check."):
        credential = context.get("credential") if isinstance(context.get("credential"), dict) else {}
        assert isinstance(credential, dict)
        if credential.get("kind") == "delegation_token" and isinstance(credential.get("jti"), str):
            jti = credential["jti"]
        if credential.get("kind") == "agent_key":
            key_id = _int(credential.get("id"))
        chain = context.get("delegation_chain")
        if isinstance(chain, list) and chain and all(type(i) is int for i in chain):
            return list(chain), jti, key_id
    elif event.target_type == "delegationtoken":
        jti = event.target_id
        leaf = _int(context.get("delegation"))
    elif event.target_type == "delegation":
        leaf = _int(event.target_id)
    elif event.target_type == "agentkey":
        key_id = _int(event.target_id)
    if leaf is None and jti is not None:
        leaf = DelegationToken.objects.filter(jti=jti).values_list("delegation_id", flat=True).first()
    if leaf is None:
        return [], jti, key_id
    return list(reversed(_ids(_ANCESTOR_DELEGATIONS, leaf))), jti, key_id


def _related(
    *, delegation_ids: list[int], jtis: list[str], agent_ids: set[int], human_ids: set[int], key_ids: set[int]
) -> Q:
    """Events about any party or credential on the chain: the story around the subject."""
    q = Q(target_type="delegation", target_id__in=[str(i) for i in delegation_ids])
    if jtis:
        q |= Q(target_type="delegationtoken", target_id__in=jtis)
    if agent_ids:
        ids = [str(i) for i in agent_ids]
        # Changes to the agents themselves (suspension, offboarding, drift) and reviews of them; not their
        # decisions, which are the session's and the audit browser's business.
        q |= Q(target_type="agent", target_id__in=ids)
        q |= Q(target_type="reviewitem", context__agent__in=sorted(agent_ids))
    if human_ids:
        q |= Q(target_type="human", target_id__in=[str(i) for i in human_ids])
    if key_ids:
        q |= Q(target_type="agentkey", target_id__in=[str(i) for i in key_ids])
    return q


def _same_target(event: AuditEvent) -> Q:
    """The subject's own target's story (a grant's creation before its revocation), for changes; not for
    decisions, whose target is a resource every decision on it shares."""
    if not event.target_type or not event.target_id or event.target_type == "scope":
        return Q(pk__in=[])
    return Q(target_type=event.target_type, target_id=event.target_id)


def custody_of(digest: str, *, now: datetime | None = None) -> Custody | None:
    """The chain of custody of the event with this digest (a decision's ``decision_id``), or None."""
    now = now or timezone.now()
    event = AuditEvent.objects.select_related("seal").filter(digest=digest).first()
    if event is None:
        return None
    at = event.occurred_at
    delegation_ids, jti, key_id = _chain_of(event)

    links = {
        d.pk: d
        for d in Delegation.objects.filter(pk__in=delegation_ids).select_related(
            "root_human", "delegate__sponsor", "from_access_request__approver"
        )
    }
    chain = [links[i] for i in delegation_ids if i in links]

    tokens: dict[int, DelegationToken] = {}
    if jti is not None:
        token_ids = _ids(_ANCESTOR_TOKENS, jti)
        tokens = {
            t.delegation_id: t for t in DelegationToken.objects.filter(pk__in=token_ids).select_related("agent_key")
        }
    key = AgentKey.objects.select_related("agent__sponsor").filter(pk=key_id).first() if key_id is not None else None

    agents: dict[int, Agent] = {d.delegate_id: d.delegate for d in chain}
    if key is not None:
        agents[key.agent_id] = key.agent
    humans: dict[int, Human] = {a.sponsor_id: a.sponsor for a in agents.values()}
    if chain:
        humans[chain[0].root_human_id] = chain[0].root_human
    key_ids = {k for k in [key_id, *(t.agent_key_id for t in tokens.values())] if k is not None}

    # Everything around the subject: the latest events before it and the first ones after it (what
    # followed), each capped, in two reads.
    around = AuditEvent.objects.select_related("seal").filter(
        _related(
            delegation_ids=delegation_ids,
            jtis=[t.jti for t in tokens.values()],
            agent_ids=set(agents),
            human_ids=set(humans),
            key_ids=key_ids,
        )
        | _same_target(event)
    )
    before = list(around.filter(pk__lt=event.pk).order_by("-id")[: MAX_RELATED // 2 + 1])
    after = list(around.filter(pk__gt=event.pk).order_by("id")[: MAX_RELATED // 2 + 1])
    truncated = len(before) > MAX_RELATED // 2 or len(after) > MAX_RELATED // 2
    related = [*reversed(before[: MAX_RELATED // 2]), event, *after[: MAX_RELATED // 2]]
    after_changes: dict[tuple[str, str], list[AuditEvent]] = {}
    for e in related:
        if e.pk > event.pk and e.target_type in ("agent", "human") and is_status_change(e):
            after_changes.setdefault((e.target_type, e.target_id), []).append(e)

    def party_human(h: Human) -> Party:
        return Party("human", h.pk, h.name, _recorded_status(h.status, after_changes.get(("human", str(h.pk)), [])))

    def party_agent(a: Agent) -> Party:
        status = _recorded_status(a.status, after_changes.get(("agent", str(a.pk)), []))
        return Party("agent", a.pk, a.name, status, sponsor=party_human(a.sponsor))

    hops = []
    for link in chain:
        token = tokens.get(link.pk)
        request = getattr(link, "from_access_request", None)
        hops.append(
            Hop(
                delegation_id=link.pk,
                agent=party_agent(link.delegate),
                created_at=link.created_at,
                created_by=link.created_by,
                purpose=link.purpose,
                scopes=list(link.scopes),
                expires_at=link.expires_at,
                hops_left=link.max_depth,
                depth=link.depth,
                status=_timed_status(
                    start=link.created_at, expires_at=link.expires_at, revoked_at=link.revoked_at, at=at, now=now
                ),
                revoked_reason=link.revoked_reason,
                approved_by=(request.decided_by or request.approver.name) if request is not None else "",
                justification=request.justification if request is not None else "",
                token=_token(token, at, now) if token is not None else None,
            )
        )

    credential: Credential | None = None
    if jti is not None and chain and chain[-1].pk in tokens:
        credential = hops[-1].token
    elif key is not None:
        credential = Credential(
            kind="agent_key",
            ref=key.display,
            issued_at=key.created_at,
            expires_at=key.expires_at,
            status=_timed_status(
                start=key.created_at, expires_at=key.expires_at, revoked_at=key.revoked_at, at=at, now=now
            ),
            revoked_reason=key.revoked_reason,
        )
    actor: Party | None = None
    if hops:
        actor = hops[-1].agent
    elif key is not None:
        actor = party_agent(key.agent)

    requests, children = _session_requests(event)
    timeline = [Moment(e, "this" if e.pk == event.pk else "before" if e.pk < event.pk else "after") for e in related]
    return Custody(
        event=event,
        at=at,
        human=party_human(chain[0].root_human) if chain else None,
        hops=hops,
        actor=actor,
        credential=credential,
        requests=requests,
        children=children,
        timeline=timeline,
        truncated=truncated,
    )


def _token(token: DelegationToken, at: datetime, now: datetime) -> Credential:
    return Credential(
        kind="delegation_token",
        ref=token.jti,
        issued_at=token.issued_at,
        expires_at=token.expires_at,
        status=_timed_status(
            start=token.issued_at, expires_at=token.expires_at, revoked_at=token.revoked_at, at=at, now=now
        ),
        scopes=list(token.scopes),
        key=token.agent_key.display if token.agent_key is not None else "",
        revoked_reason=token.revoked_reason,
    )


def _session_requests(event: AuditEvent) -> tuple[list[Request], list[Request]]:
    """The decision's request path from the session's first request down to it, and the requests made
    on behalf of it. One read of the session."""
    context = event.context if isinstance(event.context, dict) else {}
    session_id, request_id = context.get("session_id"), context.get("request_id")
    if not event.action.startswith("check.") or not isinstance(session_id, str) or not session_id:
        return [], []
    decisions = session_decisions(session_id)
    by_request: dict[str, AuditEvent] = {}
    for e in decisions:
        rid = e.context.get("request_id") if isinstance(e.context, dict) else None
        if isinstance(rid, str) and rid:
            by_request.setdefault(rid, e)
    path = [as_request(event)]
    seen = {event.pk}
    parent = context.get("parent_request_id")
    while isinstance(parent, str) and parent in by_request and by_request[parent].pk not in seen:
        above = by_request[parent]
        seen.add(above.pk)
        path.append(as_request(above))
        parent = above.context.get("parent_request_id") if isinstance(above.context, dict) else None
    children = [
        as_request(e)
        for e in decisions
        if isinstance(request_id, str)
        and request_id
        and isinstance(e.context, dict)
        and e.context.get("parent_request_id") == request_id
    ]
    return list(reversed(path)), children
