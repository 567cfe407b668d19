"""Whole histories: "the events about agent 7" (or human 3, or resource 12), matched by id, never by name.

Each history is a list of *arms*, conditions on ``AuditEvent`` built from subqueries over governance's
own tables: nothing is fetched to build one, so reading a history is one query however long the log and
however many keys, tokens or delegations its subject has. ``agent_events`` and its siblings join the
arms into one ``Q`` (what the audit browser filters by: ``audit_links`` registers them with
``audit.links``); ``recent`` reads the latest events of a subject for a page.

How events name what they are about (one shape per writer: ``governance/services``, ``governance/oauth.py``,
``governance/runtime.py`` and the reviews app):

- a change targets the object itself: ``agent``/``human``/``resource``/``grant``/``delegation``/``agentkey``/
  ``accessrequest``/``reviewitem`` by id as text, ``delegationtoken`` by jti. Drift (raise, acknowledge),
  suspension, sponsor changes and offboarding of an agent target the agent;
- a decision (``check.allow``/``check.deny``) is made *by* the agent (actor ``agent``/its id), targets
  ``scope``/the resource name cut to 64 characters, and names its credential in ``context.credential``
  (``{"kind": "delegation_token", "jti": …}``);
- an offboarding writes each change it makes with ``context.offboarding`` = the offboarding's id: the
  changes to the subject's own keys, links and tokens target those, the rest (sub-agents offboarded with
  it; a leaver's agents re-sponsored or suspended) target other agents;
- review events target ``reviewitem`` with ``context.agent``, except ``review.item.view`` (item id only).

Everything here runs on PostgreSQL and on SQLite: JSON values are read with ``KeyTextTransform``
(``->>``, ``JSON_EXTRACT``) and a key's ``exact``, never ``contains``.
"""

from __future__ import annotations

from typing import Any

from django.db import connection
from django.db.models import CharField, Q, QuerySet, Subquery, Value
from django.db.models.fields.json import KeyTextTransform, KeyTransform
from django.db.models.functions import Cast, Concat, Left
from django.db.models.lookups import In

from audit.models import ActorKind, AuditEvent
from governance.models import (
    AccessRequest,
    Agent,
    AgentKey,
    Delegation,
    DelegationToken,
    Grant,
    Human,
    Offboarding,
    Resource,
)

DECISION_ACTIONS = ("check.allow", "check.deny")

# ``AuditEvent.target_id`` holds 64 characters; the runtime cuts a resource name to fit (runtime._record).
TARGET_ID_LENGTH = 64


def _as_text(queryset: QuerySet[Any], field: str = "id") -> QuerySet[Any]:
    """``field`` of ``queryset`` as text, as a subquery: event target and actor ids are text."""
    return queryset.order_by().values(as_text=Cast(field, output_field=CharField()))


def _targets(target_type: str, queryset: QuerySet[Any], field: str = "id") -> Q:
    # (target_type, target_id) leads the audit_target_idx index: one index probe per object.
    return Q(target_type=target_type, target_id__in=_as_text(queryset, field))


def _context_text(key: str) -> Cast:
    # ``->>`` gives text on PostgreSQL, but SQLite's JSON_EXTRACT gives an integer for a number, and an
    # integer equals no text there: cast both to text, so 12 meets CAST(id AS text).
    return Cast(KeyTextTransform(key, "context"), output_field=CharField())


def _changed_by_offboardings(queryset: QuerySet[Any], actions: tuple[str, ...]) -> Q:
    """Changes to other agents made by these offboardings (``actions`` on agents carrying their id).
    Within the agent targets only: the condition on the context is no index's, the target type is."""
    return Q(target_type="agent", action__in=actions) & Q(In(_context_text("offboarding"), _as_text(queryset)))


def _any(arms: list[Q]) -> Q:
    condition = Q()
    for arm in arms:
        condition |= arm
    return condition


# --- Agents -------------------------------------------------------------------------------------


def agent_arms(agent_id: int, *, acting: bool = True) -> list[Q]:
    """What the agent did as itself (its decisions, the tokens, keys and links it obtained or made) and
    what was done to it: its record (drift, suspension, offboarding), keys, tokens, the delegations it
    holds, grants, access requests and review items; and the sub-agents its offboarding offboarded.
    Not its sub-agents' doings: they act as themselves, under their own ids.

    ``acting=False`` leaves out what it did as itself (mostly decisions, shown apart), keeping the
    changes to it and to what it holds: the tokens it obtained are still there, as its tokens."""
    # The reviews app's items, through the reverse relation: governance imports nothing of reviews.
    items = Agent._meta.get_field("review_items").related_model._default_manager
    acted = [Q(actor_kind=ActorKind.AGENT, actor_id=str(agent_id))] if acting else []
    return [
        *acted,
        Q(target_type="agent", target_id=str(agent_id)),
        _targets("agentkey", AgentKey.objects.filter(agent_id=agent_id)),
        _targets("delegationtoken", DelegationToken.objects.filter(agent_id=agent_id), "jti"),
        _targets("delegation", Delegation.objects.filter(delegate_id=agent_id)),
        _targets("grant", Grant.objects.filter(holder_agent_id=agent_id)),
        _targets("accessrequest", AccessRequest.objects.filter(agent_id=agent_id)),
        Q(target_type="reviewitem", context__agent=agent_id),
        _targets("reviewitem", items.filter(agent_id=agent_id)),
        _changed_by_offboardings(Offboarding.objects.filter(agent_id=agent_id), ("agent.offboard",)),
    ]


def agent_events(agent_id: int) -> Q:
    return _any(agent_arms(agent_id))


# --- Humans -------------------------------------------------------------------------------------


def human_arms(human_id: int, *, decisions: bool = True) -> list[Q]:
    """Everything done by the human (through their console login, if they have one) or on their behalf:
    their record, the grants they hold, every link of the delegation chains rooted at them, the tokens
    issued under those links and the decisions made with those tokens however many hops down, the access
    requests they are asked to decide, the resources they own, and what their leaving changed.
    ``decisions=False`` leaves out the decisions made for them."""
    rooted = Delegation.objects.filter(root_human_id=human_id)
    tokens = DelegationToken.objects.filter(delegation__root_human_id=human_id)
    login = Human.objects.filter(pk=human_id, user_id__isnull=False)
    made_for_them = Q(
        # The delegates' decisions (audit_actor_idx leads with the actor), then those made with a token
        # of these chains: a delegate may act for other humans too. No index holds the jti, so with a
        # long log PostgreSQL may still read it backwards for a human whose agents decide little.
        actor_kind=ActorKind.AGENT,
        actor_id__in=_as_text(rooted, "delegate_id"),
        action__in=DECISION_ACTIONS,
    ) & Q(In(KeyTextTransform("jti", KeyTransform("credential", "context")), _as_text(tokens, "jti")))
    return [
        Q(actor_kind=ActorKind.USER, actor_id=_as_text(login, "user_id")[:1]),
        Q(target_type="human", target_id=str(human_id)),
        _targets("grant", Grant.objects.filter(holder_human_id=human_id)),
        _targets("delegation", rooted),
        _targets("delegationtoken", tokens, "jti"),
        *([made_for_them] if decisions else []),
        _targets("accessrequest", AccessRequest.objects.filter(approver_id=human_id)),
        _targets("resource", Resource.objects.filter(owner_id=human_id)),
        _changed_by_offboardings(
            Offboarding.objects.filter(human_id=human_id), ("agent.sponsor_change", "agent.suspend")
        ),
    ]


def human_events(human_id: int) -> Q:
    return _any(human_arms(human_id))


# --- Resources ----------------------------------------------------------------------------------


def resource_arms(resource_id: int, *, decisions: bool = True) -> list[Q]:
    """The resource's record, the grants on it, the decisions on any of its scopes and the access
    requests for them (``decisions=False``: all but the decisions)."""
    resource = Resource.objects.filter(pk=resource_id).order_by()
    # Scopes are "<name>:<action>" and a name holds no colon: "<name>:" prefixes this resource's only.
    scope_prefix = Concat(Subquery(resource.values("name")), Value(":"), output_field=CharField())
    # A scalar subquery, not IN: PostgreSQL computes it first and reads this resource's decisions down
    # audit_target_idx newest first, rather than the whole log backwards looking for them.
    made_on_it = Q(
        target_type="scope",
        target_id=resource.values(cut=Left("name", TARGET_ID_LENGTH))[:1],
        action__in=DECISION_ACTIONS,
    )
    return [
        Q(target_type="resource", target_id=str(resource_id)),
        _targets("grant", Grant.objects.filter(resource_id=resource_id)),
        *([made_on_it] if decisions else []),
        _targets("accessrequest", AccessRequest.objects.filter(scope__startswith=scope_prefix)),
    ]


def resource_events(resource_id: int) -> Q:
    return _any(resource_arms(resource_id))


# --- Reading ------------------------------------------------------------------------------------


def recent(arms: list[Q], limit: int) -> list[AuditEvent]:
    """The latest ``limit`` events matching any of ``arms``, newest first, in one query.

    On PostgreSQL, the latest ``limit`` of each arm (each down its own index) and then the latest of
    those: the cost follows the subject's events, not the log's. One ``OR`` of the arms would walk the
    whole log backwards for a subject with few events. SQLite refuses a LIMIT inside a UNION; its logs
    are a demo's, and it reads the ``OR``."""
    if not connection.features.supports_slicing_ordering_in_compound:
        return list(AuditEvent.objects.filter(_any(arms)).order_by("-id")[:limit])
    parts = [AuditEvent.objects.filter(arm).order_by("-id")[:limit] for arm in arms]
    # UNION, not UNION ALL: an event can match two arms (an agent revoking its own key).
    return list(parts[0].union(*parts[1:]).order_by("-id")[:limit])
