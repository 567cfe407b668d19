"""The web console. Every view fetches through ``visible_to(user)``, so what a page shows is decided here
and in the models, never in a template; every change goes through ``governance.services``."""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.db.models import CharField, Count, IntegerField, OuterRef, Q, QuerySet, Subquery
from django.db.models.expressions import RawSQL
from django.db.models.functions import Cast, Coalesce, TruncMinute
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404, render
from django.urls import reverse
from django.utils import timezone
from django.utils.cache import add_never_cache_headers, patch_vary_headers
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_POST
from django_htmx.http import HttpResponseClientRedirect
from django_htmx.middleware import HtmxDetails

from audit.models import ActorKind, AuditEvent
from audit.services import Actor
from governance import forms as f
from governance import jit, services
from governance.errors import DomainError
from governance.models import (
    AccessRequest,
    AccessRequestQuerySet,
    AccessRequestStatus,
    Agent,
    AgentKey,
    AgentStatus,
    Delegation,
    DelegationStatus,
    DelegationToken,
    DriftEvent,
    Grant,
    Human,
    Resource,
)
from governance.roles import ADMIN, AUDITOR, REVIEWER, is_admin, reads_everything, role_required, roles_of
from governance.selectors import Usability, delegation_usability

PAGE_SIZE = 50
# The delegation forest is one query; beyond this many links a search is the better tool anyway.
FOREST_LIMIT = 2000
TARGET_PAGES = {"agent": "console:agent", "human": "console:human", "resource": "console:resource"}
DECISION_ACTIONS = ("check.allow", "check.deny")
# What the agent page and the dashboard's live panel show of the decision stream.
AGENT_DECISIONS = 25
LIVE_DECISIONS = 10
LIVE_MINUTES = 60


class HtmxHttpRequest(HttpRequest):
    htmx: HtmxDetails


# --- Helpers --------------------------------------------------------------------------------


def _actor(request: HttpRequest) -> Actor:
    return Actor.user(request.user)


def _wants_fragment(request: HtmxHttpRequest) -> bool:
    # A history-restore request wants the whole page even though htmx sent it.
    return bool(request.htmx) and not request.htmx.history_restore_request


def _render_page(request: HtmxHttpRequest, template: str, fragment: str, context: dict[str, Any]) -> HttpResponse:
    """A list page, or only its rows when htmx refreshes them after a filter change."""
    name = f"{template}#{fragment}" if _wants_fragment(request) else template
    response = render(request, name, context)
    patch_vary_headers(response, ("HX-Request",))
    return response


def _render_form(
    request: HtmxHttpRequest, template: str, fragment: str, context: dict[str, Any], *, title: str, status: int = 200
) -> HttpResponse:
    """A form fragment for htmx; without JavaScript, the same fragment on a page of its own."""
    name = f"{template}#{fragment}"
    if request.htmx:
        return render(request, name, context, status=status)
    return render(request, "governance/form_page.html", {**context, "fragment": name, "title": title}, status=status)


def _go(request: HtmxHttpRequest, url: str) -> HttpResponse:
    return HttpResponseClientRedirect(url) if request.htmx else HttpResponseRedirect(url)


def _back(request: HttpRequest, default: str) -> str:
    target = request.POST.get("next", "")
    if target and url_has_allowed_host_and_scheme(target, {request.get_host()}, require_https=request.is_secure()):
        return target
    return default


def _keyset(qs: QuerySet[Any], after: str | None) -> QuerySet[Any]:
    """Rows after the row ``after`` in (name, id) order. A keyset rather than an OFFSET: the hundredth
    page costs what the first does, and rows added meanwhile never shift a page."""
    qs = qs.order_by("name", "id")
    if not after or not after.isdigit():
        return qs
    # The anchor only positions the page (its name is never shown), so it needs no scoping.
    anchor = Subquery(qs.model.objects.filter(pk=int(after)).values("name")[:1])
    return qs.filter(Q(name__gt=anchor) | Q(name=anchor, id__gt=int(after)))


def _page(
    request: HttpRequest, qs: QuerySet[Any], param: str, key: Callable[[Any], object]
) -> tuple[list[Any], str | None]:
    """One page of ``qs`` and the query string of the next one (None on the last page)."""
    rows = list(qs[: PAGE_SIZE + 1])
    if len(rows) <= PAGE_SIZE:
        return rows, None
    rows = rows[:PAGE_SIZE]
    params = request.GET.copy()
    params[param] = str(key(rows[-1]))
    return rows, params.urlencode()


def _query_without(request: HttpRequest, param: str) -> str:
    params = request.GET.copy()
    params.pop(param, None)
    return params.urlencode()


def _count_of(rows: QuerySet[Any], field: str) -> Coalesce:
    """A correlated COUNT over ``rows`` (already scoped to the user): one query for the whole page,
    whatever the number of rows, and a count of only what the user could open."""
    counted = rows.filter(**{field: OuterRef("pk")}).order_by().values(field).annotate(n=Count("pk")).values("n")
    return Coalesce(Subquery(counted, output_field=IntegerField()), 0)


@dataclass(frozen=True, slots=True)
class TreeRow:
    node: Any
    level: int


def _flatten(nodes: Iterable[Any]) -> list[TreeRow]:
    """Depth-first rows of a forest given as one flat list with ``parent_id``. Nodes whose parent is not
    in the list (not visible to this user, or filtered out) start a tree of their own."""
    nodes = list(nodes)
    present = {n.pk for n in nodes}
    children: dict[int | None, list[Any]] = defaultdict(list)
    for node in nodes:
        children[node.parent_id if node.parent_id in present else None].append(node)
    rows: list[TreeRow] = []

    def walk(parent: int | None, level: int) -> None:
        for node in children.get(parent, []):
            rows.append(TreeRow(node, level))
            walk(node.pk, level + 1)

    walk(None, 0)
    return rows


def _status_of(link: Delegation, now: datetime) -> str:
    """What a badge should say: an unswept link past its expiry is already expired."""
    if link.status == DelegationStatus.ACTIVE and link.expires_at <= now:
        return DelegationStatus.EXPIRED
    return link.status


# --- Runtime decisions ----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class DecisionRow:
    """One recorded runtime check, read from its audit event (the decision's evidence)."""

    event: AuditEvent

    def _context(self, name: str) -> str:
        context = self.event.context if isinstance(self.event.context, dict) else {}
        value = context.get(name)
        return "" if value is None else str(value)

    @property
    def allowed(self) -> bool:
        return self.event.action == "check.allow"

    @property
    def reason(self) -> str:
        return self._context("reason")

    @property
    def detail(self) -> str:
        return self._context("detail")

    @property
    def scope(self) -> str:
        return self._context("scope") or self.event.target_label

    @property
    def intent(self) -> str:
        return self._context("intent")

    @property
    def tool(self) -> str:
        return self._context("tool")

    @property
    def session_id(self) -> str:
        return self._context("session_id")

    @property
    def credential(self) -> str:
        credential = self.event.context.get("credential") if isinstance(self.event.context, dict) else None
        return str(credential.get("kind", "")) if isinstance(credential, dict) else ""

    @property
    def agent_id(self) -> int | None:
        actor_id = self.event.actor_id
        return int(actor_id) if self.event.actor_kind == ActorKind.AGENT and actor_id.isdigit() else None

    @property
    def on_behalf_of(self) -> str:
        refs = self.event.on_behalf_of
        return str(refs[0].get("label", "")) if refs and isinstance(refs[0], dict) else ""


def _decisions_visible_to(user: Any) -> QuerySet[AuditEvent]:
    """Recorded checks a user may read. The audit log has no owner to scope by, so the decisions are
    scoped through their actor: a reviewer reads those of the agents ``Agent.visible_to`` lets them see
    (never the unidentified ones); admins and auditors read them all."""
    decisions = AuditEvent.objects.filter(action__in=DECISION_ACTIONS)
    if reads_everything(user):
        return decisions
    agent_refs = Agent.objects.visible_to(user).annotate(ref=Cast("id", CharField())).values("ref")
    return decisions.filter(actor_kind=ActorKind.AGENT, actor_id__in=agent_refs)


@dataclass(frozen=True, slots=True)
class MinuteBar:
    minute: datetime
    allow: int
    deny: int
    allow_pct: float
    deny_pct: float


def _live_context(user: Any, now: datetime) -> dict[str, Any]:
    """The dashboard's live panel: decisions per minute over the last hour (one grouped query) and the
    latest few (one more), whatever the traffic."""
    decisions = _decisions_visible_to(user)
    start = now.replace(second=0, microsecond=0) - timedelta(minutes=LIVE_MINUTES - 1)
    per_minute = (
        decisions.filter(occurred_at__gte=start)
        .annotate(minute=TruncMinute("occurred_at"))
        .order_by()  # the model's ordering would otherwise join the GROUP BY
        .values("minute", "action")
        .annotate(n=Count("id"))
    )
    counts: dict[int, dict[str, int]] = defaultdict(lambda: {"check.allow": 0, "check.deny": 0})
    for row in per_minute:
        index = int((row["minute"] - start).total_seconds() // 60)
        if 0 <= index < LIVE_MINUTES:
            counts[index][row["action"]] += row["n"]
    peak = max((sum(c.values()) for c in counts.values()), default=0) or 1
    bars = [
        MinuteBar(
            minute=start + timedelta(minutes=i),
            allow=counts[i]["check.allow"],
            deny=counts[i]["check.deny"],
            allow_pct=round(100 * counts[i]["check.allow"] / peak, 1),
            deny_pct=round(100 * counts[i]["check.deny"] / peak, 1),
        )
        for i in range(LIVE_MINUTES)
    ]
    allowed, denied = sum(b.allow for b in bars), sum(b.deny for b in bars)
    return {
        "live_bars": bars,
        "live_allowed": allowed,
        "live_denied": denied,
        "live_deny_rate": round(100 * denied / (allowed + denied)) if allowed + denied else 0,
        "live_decisions": [DecisionRow(e) for e in decisions.order_by("-seq")[:LIVE_DECISIONS]],
        "live_at": now,
    }


# --- Home -----------------------------------------------------------------------------------


@login_required
@role_required()
def home(request: HtmxHttpRequest) -> HttpResponse:
    user, now = request.user, timezone.now()
    soon = now + timedelta(days=7)
    agents = Agent.objects.visible_to(user).aggregate(
        active=Count("id", filter=Q(status=AgentStatus.ACTIVE)),
        suspended=Count("id", filter=Q(status=AgentStatus.SUSPENDED)),
        total=Count("id"),
    )
    expiring_keys = AgentKey.objects.visible_to(user).active(now).filter(expires_at__lte=soon)
    context = {
        "agents": agents,
        "delegations_active": Delegation.objects.visible_to(user).active(now).count(),
        "grants_expiring": Grant.objects.visible_to(user).active(now).filter(expires_at__lte=soon).count(),
        "keys_expiring": expiring_keys.count(),
        "keys_expiring_list": list(expiring_keys.select_related("agent").order_by("expires_at")[:8]),
        "requests_pending": AccessRequest.objects.visible_to(user).pending(now).count(),
        "drift_open": DriftEvent.objects.visible_to(user).open().count(),
        "events": list(AuditEvent.objects.order_by("-seq")[:12]) if reads_everything(user) else None,
        **_live_context(user, now),
    }
    return render(request, "governance/home.html", context)


@login_required
@role_required()
def live(request: HtmxHttpRequest) -> HttpResponse:
    """The dashboard's live panel alone, polled by htmx."""
    response = render(request, "governance/home.html#live", _live_context(request.user, timezone.now()))
    add_never_cache_headers(response)
    return response


# --- Humans ---------------------------------------------------------------------------------


@login_required
@role_required()
def humans(request: HtmxHttpRequest) -> HttpResponse:
    form = f.HumanFilterForm(request.GET or None)
    v = form.values()
    qs = Human.objects.visible_to(request.user)
    if q := v.get("q"):
        qs = qs.filter(Q(name__icontains=q) | Q(email__icontains=q) | Q(department__icontains=q))
    if status := v.get("status"):
        qs = qs.filter(status=status)
    total = qs.count()
    qs = qs.select_related("manager").annotate(agent_count=_count_of(Agent.objects.visible_to(request.user), "sponsor"))
    rows, next_query = _page(request, _keyset(qs, request.GET.get("after")), "after", lambda h: h.pk)
    context = {
        "form": form,
        "humans": rows,
        "total": total,
        "next_query": next_query,
        "paged": "after" in request.GET,
        "first_query": _query_without(request, "after"),
    }
    return _render_page(request, "governance/humans.html", "rows", context)


def _human_context(request: HttpRequest, human: Human) -> dict[str, Any]:
    user, now = request.user, timezone.now()
    links = Delegation.objects.visible_to(user).filter(root_human=human).select_related("delegate")
    manager = Human.objects.visible_to(user).filter(pk=human.manager_id).first() if human.manager_id else None
    context: dict[str, Any] = {
        "human": human,
        "manager": manager,
        "reports": list(Human.objects.visible_to(user).filter(manager=human)),
        "grants": list(Grant.objects.visible_to(user).filter(holder_human=human).select_related("resource")[:200]),
        "agents": list(Agent.objects.visible_to(user).filter(sponsor=human).select_related("parent")),
        "delegation_rows": [
            (row, _status_of(row.node, now)) for row in _flatten(links.order_by("depth", "-created_at")[:FOREST_LIMIT])
        ],
        "now": now,
    }
    if is_admin(user):
        context["grant_form"] = f.GrantCreateForm(user=user, for_agent=False)
        context["delegation_form"] = f.RootDelegationForm(user=user, human=human)
    return context


@login_required
@role_required()
def human_detail(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    human = get_object_or_404(Human.objects.visible_to(request.user).select_related("manager"), pk=pk)
    return render(request, "governance/human_detail.html", _human_context(request, human))


# --- Agents ---------------------------------------------------------------------------------


@login_required
@role_required()
def agents(request: HtmxHttpRequest) -> HttpResponse:
    user = request.user
    form = f.AgentFilterForm(request.GET or None, user=user)
    v = form.values()
    qs = Agent.objects.visible_to(user)
    if q := v.get("q"):
        qs = qs.filter(Q(name__icontains=q) | Q(purpose__icontains=q))
    if status := v.get("status"):
        qs = qs.filter(status=status)
    if risk := v.get("risk"):
        qs = qs.filter(risk_tier=risk)
    if sponsor := v.get("sponsor"):
        qs = qs.filter(sponsor=sponsor)
    if level := v.get("level"):
        qs = qs.filter(parent__isnull=level == "top")
    total = qs.count()
    qs = qs.select_related("sponsor", "parent").annotate(
        sub_agents=_count_of(Agent.objects.visible_to(user), "parent"),
        live_keys=_count_of(AgentKey.objects.visible_to(user).active(), "agent"),
    )
    rows, next_query = _page(request, _keyset(qs, request.GET.get("after")), "after", lambda a: a.pk)
    context: dict[str, Any] = {
        "form": form,
        "agents": rows,
        "total": total,
        "next_query": next_query,
        "paged": "after" in request.GET,
        "first_query": _query_without(request, "after"),
    }
    if is_admin(user):
        context["agent_form"] = f.AgentCreateForm(user=user)
    return _render_page(request, "governance/agents.html", "rows", context)


@login_required
@role_required(ADMIN)
@require_POST
def agent_create(request: HtmxHttpRequest) -> HttpResponse:
    form = f.AgentCreateForm(request.POST, user=request.user)
    if form.is_valid():
        data = form.cleaned_data
        try:
            agent = services.agent_create(
                actor=_actor(request),
                name=data["name"],
                purpose=data["purpose"],
                sponsor=data["sponsor"],
                parent=data["parent"],
                risk_tier=data["risk_tier"],
            )
        except DomainError as error:
            f.apply_domain_error(form, error)
        else:
            messages.success(request, f"Registered agent {agent.name}.")
            return _go(request, reverse("console:agent", args=[agent.pk]))
    context = {"agent_form": form}
    return _render_form(request, "governance/agents.html", "agent-form", context, title="New agent", status=422)


# Every sub-agent below one agent, at any depth. Parents never change after creation, so the walk
# cannot cycle.
_SUB_AGENT_IDS = (
    "WITH RECURSIVE sub(id) AS (SELECT id FROM governance_agent WHERE parent_id = %s "
    "UNION ALL SELECT a.id FROM governance_agent a JOIN sub ON a.parent_id = sub.id) SELECT id FROM sub"
)


# The agents above one agent, up to its top-level agent.
_ANCESTOR_IDS = (
    "WITH RECURSIVE up(id, parent_id) AS (SELECT id, parent_id FROM governance_agent WHERE id = %s "
    "UNION ALL SELECT a.id, a.parent_id FROM governance_agent a JOIN up ON a.id = up.parent_id) "
    "SELECT parent_id FROM up WHERE parent_id IS NOT NULL"
)


def _visible_ancestors(user: Any, agent: Agent) -> list[Agent]:
    """Top-level agent first; only those this user may see (a sub-agent's sponsor can differ)."""
    above = RawSQL(_ANCESTOR_IDS, [agent.pk])  # noqa: S611 - constant SQL; the id is a bound parameter
    return list(Agent.objects.visible_to(user).filter(id__in=above).order_by("depth"))


def _sub_agent_rows(user: Any, agent: Agent) -> list[TreeRow]:
    """The sub-agent tree in one query (a recursive CTE), arranged in Python, not a query per node."""
    below = RawSQL(_SUB_AGENT_IDS, [agent.pk])  # noqa: S611 - constant SQL; the id is a bound parameter
    nodes = Agent.objects.visible_to(user).filter(id__in=below).order_by("depth", "name", "id")
    return _flatten(nodes)


@dataclass(frozen=True, slots=True)
class DelegationRow:
    link: Delegation
    status: str
    usability: Usability | None


def _agent_decisions(agent: Agent) -> list[DecisionRow]:
    """The agent's latest checks, in one query down the audit log's (actor_kind, actor_id, -seq) index.
    Scoped by the agent, which the caller fetched through ``visible_to``."""
    events = AuditEvent.objects.for_actor(ActorKind.AGENT, agent.pk).filter(action__in=DECISION_ACTIONS)
    return [DecisionRow(e) for e in events.order_by("-seq")[:AGENT_DECISIONS]]


def _agent_context(request: HttpRequest, agent: Agent) -> dict[str, Any]:
    user, now = request.user, timezone.now()
    held = (
        Delegation.objects.visible_to(user)
        .filter(delegate=agent)
        .select_related("root_human", "delegate__sponsor", "parent__delegate")
        .order_by("-created_at", "-id")[:50]
    )
    # Usability walks the chain (a few queries per link): worth it for the agent's own delegations,
    # and only for those still marked active.
    rows = [
        DelegationRow(d, _status_of(d, now), delegation_usability(d, at=now) if d.is_in_force(now) else None)
        for d in held
    ]
    ancestors = _visible_ancestors(user, agent)
    drift_events = list(DriftEvent.objects.visible_to(user).filter(agent=agent)[:10])
    context: dict[str, Any] = {
        "agent": agent,
        "ancestors": ancestors,
        "parent": ancestors[-1] if ancestors and ancestors[-1].pk == agent.parent_id else None,
        "tree": _sub_agent_rows(user, agent),
        "delegations": rows,
        "onward": [
            (d, _status_of(d, now))
            for d in Delegation.objects.visible_to(user)
            .filter(parent__delegate=agent)
            .select_related("delegate")
            .order_by("-created_at")[:50]
        ],
        "grants": list(Grant.objects.visible_to(user).filter(holder_agent=agent).select_related("resource")[:200]),
        "keys": list(AgentKey.objects.visible_to(user).filter(agent=agent)[:50]),
        "tokens": list(
            DelegationToken.objects.visible_to(user)
            .active(now)
            .filter(agent=agent)
            .select_related("delegation__root_human")[:25]
        ),
        "decisions": _agent_decisions(agent),
        "drift_events": drift_events,
        "drift_unacknowledged": any(e.acknowledged_at is None for e in drift_events),
        "access_requests": list(
            AccessRequest.objects.visible_to(user).pending(now).filter(agent=agent).select_related("approver")[:10]
        ),
        "events": list(AuditEvent.objects.for_target("agent", agent.pk)[:10]) if reads_everything(user) else None,
        "now": now,
    }
    if is_admin(user):
        context["grant_form"] = f.GrantCreateForm(user=user, for_agent=True)
        context["key_form"] = f.KeyCreateForm()
        context["child_form"] = f.ChildDelegationForm(user=user, agent=agent)
        context["status_actions"] = True
    return context


@login_required
@role_required()
def agent_detail(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    agent = get_object_or_404(Agent.objects.visible_to(request.user).select_related("sponsor"), pk=pk)
    return render(request, "governance/agent_detail.html", _agent_context(request, agent))


def _visible_agent(request: HttpRequest, pk: int) -> Agent:
    return get_object_or_404(Agent.objects.visible_to(request.user).select_related("sponsor"), pk=pk)


@login_required
@role_required()
def agent_decisions(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    """The agent page's recent decisions alone, polled by htmx."""
    agent = get_object_or_404(Agent.objects.visible_to(request.user), pk=pk)
    context = {"agent": agent, "decisions": _agent_decisions(agent), "now": timezone.now()}
    response = render(request, "governance/agent_detail.html#decisions", context)
    add_never_cache_headers(response)
    return response


@login_required
@role_required(ADMIN)
@require_POST
def agent_set_status(request: HtmxHttpRequest, pk: int, verb: str) -> HttpResponse:
    agent = _visible_agent(request, pk)
    reason = f.ReasonForm(request.POST)
    reason.is_valid()
    change = services.agent_suspend if verb == "suspend" else services.agent_reactivate
    try:
        change(actor=_actor(request), agent=agent, reason=reason.cleaned_data.get("reason", ""))
    except DomainError as error:
        messages.error(request, error.detail)
    else:
        messages.success(request, f"{agent.name} is now {'suspended' if verb == 'suspend' else 'active'}.")
    return _go(request, reverse("console:agent", args=[agent.pk]))


@login_required
@role_required(ADMIN)
@require_POST
def agent_key_create(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    agent = _visible_agent(request, pk)
    form = f.KeyCreateForm(request.POST)
    context: dict[str, Any] = {"agent": agent, "key_form": form}
    status = 422
    if form.is_valid():
        try:
            key, secret = services.agentkey_create(
                actor=_actor(request),
                agent=agent,
                name=form.cleaned_data["name"],
                expires_at=form.cleaned_data["expires_at"],
            )
        except DomainError as error:
            f.apply_domain_error(form, error, {"agent": "name"})
        else:
            # The secret lives only in this response: never in the session, a message or a log.
            context |= {
                "new_key": key,
                "new_secret": secret,
                "key_form": f.KeyCreateForm(),
                "keys": list(AgentKey.objects.visible_to(request.user).filter(agent=agent)[:50]),
                "now": timezone.now(),
                "status_actions": True,
            }
            status = 201
    fragment = "key-created" if status == 201 else "key-form"
    response = _render_form(request, "governance/agent_detail.html", fragment, context, title="New key", status=status)
    add_never_cache_headers(response)
    return response


@login_required
@role_required(ADMIN)
@require_POST
def key_revoke(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    key = get_object_or_404(AgentKey.objects.visible_to(request.user).select_related("agent"), pk=pk)
    reason = f.ReasonForm(request.POST)
    reason.is_valid()
    services.agentkey_revoke(actor=_actor(request), key=key, reason=reason.cleaned_data.get("reason", ""))
    messages.success(request, f"Key {key.display} revoked; it is refused from the next request on.")
    return _go(request, _back(request, reverse("console:agent", args=[key.agent_id])))


# --- Grants ---------------------------------------------------------------------------------


def _grant_create(request: HtmxHttpRequest, holder: Human | Agent) -> HttpResponse:
    for_agent = isinstance(holder, Agent)
    form = f.GrantCreateForm(request.POST, user=request.user, for_agent=for_agent)
    if form.is_valid():
        resource, action = form.cleaned_data["scope"]
        try:
            grant = services.grant_create(
                actor=_actor(request),
                holder=holder,
                resource=resource,
                action=action,
                expires_at=form.cleaned_data["expires_at"],
                justification=form.cleaned_data["justification"],
            )
        except DomainError as error:
            f.apply_domain_error(form, error, {"action": "scope", "holder": "scope"})
        else:
            messages.success(request, f"Granted {grant.scope} to {holder.name}.")
            page = "console:agent" if for_agent else "console:human"
            return _go(request, reverse(page, args=[holder.pk]))
    template = "governance/agent_detail.html" if for_agent else "governance/human_detail.html"
    context = {"agent" if for_agent else "human": holder, "grant_form": form}
    return _render_form(request, template, "grant-form", context, title="New grant", status=422)


@login_required
@role_required(ADMIN)
@require_POST
def agent_grant_create(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    return _grant_create(request, _visible_agent(request, pk))


@login_required
@role_required(ADMIN)
@require_POST
def human_grant_create(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    return _grant_create(request, get_object_or_404(Human.objects.visible_to(request.user), pk=pk))


# --- Delegations ----------------------------------------------------------------------------


@login_required
@role_required(ADMIN)
@require_POST
def human_delegation_create(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    human = get_object_or_404(Human.objects.visible_to(request.user), pk=pk)
    form = f.RootDelegationForm(request.POST, user=request.user, human=human)
    if form.is_valid():
        data = form.cleaned_data
        try:
            services.delegation_create(
                actor=_actor(request),
                root_human=human,
                delegate=data["delegate"],
                scopes=data["scopes"],
                expires_at=data["expires_at"],
                purpose=data["purpose"],
                max_depth=data["max_depth"],
            )
        except DomainError as error:
            f.apply_domain_error(form, error, {"root_human": "delegate"})
        else:
            messages.success(request, f"{human.name} now delegates to {data['delegate'].name}.")
            return _go(request, reverse("console:human", args=[human.pk]))
    context = {"human": human, "delegation_form": form}
    return _render_form(
        request, "governance/human_detail.html", "delegation-form", context, title="New delegation", status=422
    )


@login_required
@role_required(ADMIN)
@require_POST
def agent_delegation_create(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    agent = _visible_agent(request, pk)
    form = f.ChildDelegationForm(request.POST, user=request.user, agent=agent)
    if form.is_valid():
        data = form.cleaned_data
        try:
            services.delegation_create(
                actor=_actor(request),
                parent=data["parent"],
                delegate=data["delegate"],
                scopes=data["scopes"],
                expires_at=data["expires_at"],
                purpose=data["purpose"],
                max_depth=data["max_depth"],
            )
        except DomainError as error:
            f.apply_domain_error(form, error)
        else:
            messages.success(request, f"{agent.name} now delegates to {data['delegate'].name}.")
            return _go(request, reverse("console:agent", args=[agent.pk]))
    context = {"agent": agent, "child_form": form}
    return _render_form(
        request, "governance/agent_detail.html", "child-form", context, title="Delegate onward", status=422
    )


@login_required
@role_required(ADMIN)
@require_POST
def delegation_revoke(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    link = get_object_or_404(Delegation.objects.visible_to(request.user), pk=pk)
    reason = f.ReasonForm(request.POST)
    reason.is_valid()
    revoked = services.delegation_revoke(
        actor=_actor(request), delegation=link, reason=reason.cleaned_data.get("reason", "")
    )
    if not revoked:
        messages.info(request, f"Delegation #{link.pk} was no longer active; nothing changed.")
    else:
        below = len(revoked) - 1
        messages.success(request, f"Delegation #{link.pk} revoked" + (f" with {below} below it." if below else "."))
    return _go(request, _back(request, reverse("console:agent", args=[link.delegate_id])))


@login_required
@role_required()
def delegations(request: HtmxHttpRequest) -> HttpResponse:
    now = timezone.now()
    form = f.DelegationFilterForm(request.GET or None)
    v = form.values()
    qs = Delegation.objects.visible_to(request.user).select_related("root_human", "delegate")
    if v.get("state") != "all":
        qs = qs.active(now)
    if q := v.get("q"):
        people = Q(root_human__name__icontains=q) | Q(root_human__email__icontains=q)
        qs = qs.filter(people | Q(delegate__name__icontains=q))
    links = list(qs.order_by("depth", "-created_at", "-id")[:FOREST_LIMIT])
    groups: dict[int, list[Delegation]] = defaultdict(list)
    for link in links:
        groups[link.root_human_id].append(link)
    forest = sorted(
        (
            (group[0].root_human, [(row, _status_of(row.node, now)) for row in _flatten(group)])
            for group in groups.values()
        ),
        key=lambda item: (item[0].name, item[0].pk),
    )
    context = {
        "form": form,
        "forest": forest,
        "total": len(links),
        "truncated": len(links) == FOREST_LIMIT,
        "can_revoke": is_admin(request.user),
        "now": now,
    }
    return render(request, "governance/delegations.html", context)


# --- Resources ------------------------------------------------------------------------------


@login_required
@role_required()
def resources(request: HtmxHttpRequest) -> HttpResponse:
    form = f.ResourceFilterForm(request.GET or None)
    v = form.values()
    qs = Resource.objects.visible_to(request.user).select_related("owner")
    if q := v.get("q"):
        qs = qs.filter(Q(name__icontains=q) | Q(description__icontains=q))
    if kind := v.get("kind"):
        qs = qs.filter(kind=kind)
    if sensitivity := v.get("sensitivity"):
        qs = qs.filter(sensitivity=sensitivity)
    qs = qs.annotate(active_grants=_count_of(Grant.objects.visible_to(request.user).active(), "resource"))
    return render(request, "governance/resources.html", {"form": form, "resources": list(qs.order_by("name"))})


@login_required
@role_required()
def resource_detail(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    resource = get_object_or_404(Resource.objects.visible_to(request.user).select_related("owner"), pk=pk)
    grants = (
        Grant.objects.visible_to(request.user)
        .filter(resource=resource)
        .select_related("holder_human", "holder_agent")[:200]
    )
    context = {"resource": resource, "grants": list(grants), "now": timezone.now()}
    return render(request, "governance/resource_detail.html", context)


# --- Just-in-time access requests -----------------------------------------------------------


# A pending request this close to lapsing is shown as urgent.
URGENT_SECONDS = 120


@dataclass(frozen=True, slots=True)
class RequestRow:
    request: AccessRequest
    status: str
    # The scope's resource, when it is in the catalogue: its sensitivity colours the scope.
    resource: Resource | None
    can_decide: bool
    seconds_left: int
    # An approver may decide for an agent whose page is outside their view (and a sponsor may see a
    # request that goes to someone else): no link to a 404 then.
    agent_visible: bool
    approver_visible: bool
    error: DomainError | None = None

    @property
    def urgent(self) -> bool:
        return self.status == AccessRequestStatus.PENDING and self.seconds_left < URGENT_SECONDS

    @property
    def duration(self) -> str:
        minutes = int(self.request.requested_duration.total_seconds() // 60)
        if minutes < 60 or minutes % 60:
            return f"{minutes} min"
        return f"{minutes // 60} h"


def _request_status(request: AccessRequest, now: datetime) -> str:
    """An unswept pending request past its lapse time has lapsed already."""
    if request.status == AccessRequestStatus.PENDING and request.expires_at <= now:
        return AccessRequestStatus.EXPIRED
    return request.status


def _request_rows(
    user: Any, requests: list[AccessRequest], now: datetime, error: DomainError | None = None
) -> list[RequestRow]:
    names = {r.scope.partition(":")[0] for r in requests}
    catalogue = {
        r.name: r for r in Resource.objects.visible_to(user).filter(name__in=names).only("name", "sensitivity")
    }
    agent_ids, human_ids = {r.agent_id for r in requests}, {r.approver_id for r in requests}
    if not reads_everything(user):
        agent_ids = set(Agent.objects.visible_to(user).filter(pk__in=agent_ids).values_list("pk", flat=True))
        human_ids = set(Human.objects.visible_to(user).filter(pk__in=human_ids).values_list("pk", flat=True))
    decides = bool(roles_of(user) & {ADMIN, REVIEWER})
    rows = []
    for r in requests:
        status = _request_status(r, now)
        rows.append(
            RequestRow(
                request=r,
                status=status,
                resource=catalogue.get(r.scope.partition(":")[0]),
                can_decide=decides and status == AccessRequestStatus.PENDING and jit.may_decide(user, r),
                seconds_left=max(0, int((r.expires_at - now).total_seconds())),
                agent_visible=r.agent_id in agent_ids,
                approver_visible=r.approver_id in human_ids,
                error=error,
            )
        )
    return rows


def _requests_visible_to(user: Any) -> AccessRequestQuerySet:
    return AccessRequest.objects.visible_to(user).select_related("agent__sponsor", "approver")


@login_required
@role_required()
def access_requests(request: HtmxHttpRequest) -> HttpResponse:
    user, now = request.user, timezone.now()
    form = f.AccessRequestFilterForm(request.GET or None)
    v = form.values()
    qs = _requests_visible_to(user)
    status = v.get("status", "")
    if not status:
        qs = qs.pending(now)
    elif status == AccessRequestStatus.EXPIRED:
        qs = qs.lapsed(now)
    elif status != "all":
        qs = qs.filter(status=status)
    if q := v.get("q"):
        qs = qs.filter(Q(agent__name__icontains=q) | Q(scope__icontains=q) | Q(intent__icontains=q))
    if agent := v.get("agent"):
        qs = qs.filter(agent_id=agent)
    before = request.GET.get("before", "")
    if before.isdigit():
        qs = qs.filter(pk__lt=int(before))
    found, next_query = _page(request, qs.order_by("-id"), "before", lambda r: r.pk)
    context = {
        "form": form,
        "rows": _request_rows(user, found, now),
        "next_query": next_query,
        "paged": bool(before),
        "first_query": _query_without(request, "before"),
        "status": status,
        "now": now,
        "back": request.get_full_path(),
    }
    return _render_page(request, "governance/access_requests.html", "rows", context)


@login_required
@role_required(ADMIN, REVIEWER)
@require_POST
def access_request_decide(request: HtmxHttpRequest, pk: int, verb: str) -> HttpResponse:
    user = request.user
    access = get_object_or_404(_requests_visible_to(user), pk=pk)
    if not jit.may_decide(user, access):
        raise PermissionDenied
    note = f.DecisionNoteForm(request.POST)
    note.is_valid()
    decide = jit.access_request_approve if verb == "approve" else jit.access_request_deny
    error: DomainError | None = None
    try:
        decide(actor=_actor(request), user=user, request=access, note=note.cleaned_data.get("note", ""))
    except DomainError as exc:
        error = exc
    back = _back(request, reverse("console:access_requests"))
    if not request.htmx:
        if error:
            messages.error(request, error.detail)
        else:
            messages.success(request, f"{'Approved' if verb == 'approve' else 'Denied'}: {access}.")
        return HttpResponseRedirect(back)
    # The row as it now stands (a refusal may mean someone else decided first), and the badge.
    now = timezone.now()
    row = _request_rows(user, [_requests_visible_to(user).get(pk=pk)], now, error)[0]
    context = {"row": row, "now": now, "back": back, "oob_badge": True}
    return render(request, "governance/access_requests.html#decided", context, status=422 if error else 200)


@login_required
@role_required()
def access_requests_badge(request: HtmxHttpRequest) -> HttpResponse:
    """The navigation badge alone, polled by htmx: how many requests await this user's decision."""
    response = render(request, "base.html#jit-badge")
    add_never_cache_headers(response)
    return response


# --- Drift ----------------------------------------------------------------------------------


@login_required
@role_required()
def drift(request: HtmxHttpRequest) -> HttpResponse:
    user = request.user
    form = f.DriftFilterForm(request.GET or None)
    v = form.values()
    qs = DriftEvent.objects.visible_to(user).select_related("agent__sponsor")
    state = v.get("state", "")
    if not state:
        qs = qs.open()
    elif state == "acknowledged":
        qs = qs.filter(acknowledged_at__isnull=False)
    if q := v.get("q"):
        qs = qs.filter(Q(agent__name__icontains=q) | Q(reason__icontains=q) | Q(kind__icontains=q))
    before = request.GET.get("before", "")
    if before.isdigit():
        qs = qs.filter(pk__lt=int(before))
    found, next_query = _page(request, qs.order_by("-id"), "before", lambda e: e.pk)
    context = {
        "form": form,
        "drift_events": found,
        "next_query": next_query,
        "paged": bool(before),
        "first_query": _query_without(request, "before"),
        "state": state,
        "can_acknowledge": is_admin(user),
    }
    return _render_page(request, "governance/drift.html", "rows", context)


@login_required
@role_required(ADMIN)
@require_POST
def drift_acknowledge(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    event = get_object_or_404(DriftEvent.objects.visible_to(request.user), pk=pk)
    event = jit.drift_acknowledge(actor=_actor(request), event=event)
    if not request.htmx:
        messages.success(request, f"Drift of {event.agent.name} acknowledged.")
        return HttpResponseRedirect(_back(request, reverse("console:drift")))
    event = DriftEvent.objects.visible_to(request.user).select_related("agent__sponsor").get(pk=pk)
    return render(request, "governance/drift.html#row", {"event": event, "can_acknowledge": True})


# --- Audit ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class EventRow:
    event: AuditEvent
    target_url: str | None

    @property
    def context_json(self) -> str:
        return json.dumps(self.event.context, indent=2, sort_keys=True, ensure_ascii=False)


def _target_url(event: AuditEvent) -> str | None:
    page = TARGET_PAGES.get(event.target_type)
    if page and event.target_id.isdigit():
        return reverse(page, args=[int(event.target_id)])
    agent_id = event.context.get("agent") if isinstance(event.context, dict) else None
    if event.target_type == "agentkey" and isinstance(agent_id, int):
        return reverse("console:agent", args=[agent_id])
    return None


@login_required
@role_required(ADMIN, AUDITOR)
def audit_events(request: HtmxHttpRequest) -> HttpResponse:
    form = f.AuditFilterForm(request.GET or None)
    v = form.values()
    qs = AuditEvent.objects.order_by("-seq")
    if action := v.get("action"):
        # A prefix, so "delegation." lists every delegation event.
        qs = qs.filter(action__startswith=action)
    if actor_kind := v.get("actor_kind"):
        qs = qs.filter(actor_kind=actor_kind)
    if actor := v.get("actor"):
        qs = qs.filter(actor_label__icontains=actor)
    if target_type := v.get("target_type"):
        qs = qs.filter(target_type=target_type)
    if target_id := v.get("target_id"):
        qs = qs.filter(target_id=target_id)
    if since := v.get("since"):
        qs = qs.filter(occurred_at__gte=datetime.combine(since, time.min, tzinfo=UTC))
    if until := v.get("until"):
        qs = qs.filter(occurred_at__lt=datetime.combine(until + timedelta(days=1), time.min, tzinfo=UTC))
    before = request.GET.get("before", "")
    if before.isdigit():
        qs = qs.filter(seq__lt=int(before))
    events, next_query = _page(request, qs, "before", lambda e: e.seq)
    context = {
        "form": form,
        "events": [EventRow(e, _target_url(e)) for e in events],
        "next_query": next_query,
        "paged": bool(before),
        "first_query": _query_without(request, "before"),
        "target_types": f.AUDIT_TARGET_TYPES,
    }
    return _render_page(request, "governance/audit.html", "rows", context)
