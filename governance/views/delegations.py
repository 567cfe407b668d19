"""Delegations: the list of links the viewer may see, one link's page (its chain up and down, the tokens
issued under it, the decisions made with it, its history), delegating onward from an agent's page, and
revoking a link (with everything below it)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.db.models import Q, TextField
from django.db.models.expressions import RawSQL
from django.db.models.fields.json import KeyTextTransform, KeyTransform
from django.db.models.functions import Cast
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_POST

from audit.models import ActorKind, AuditEvent
from audit.services import Actor
from console.errors import DomainError
from console.forms import ReasonForm, apply_domain_error
from console.pages import HtmxHttpRequest, back, go, render_form, render_page
from console.paging import page_newest_first, page_of, parse_key
from console.roles import ADMIN, is_admin, reads_everything, role_required
from console.trees import flatten
from console.visibility import visible_q
from governance import forms as f
from governance import services
from governance.models import Agent, Delegation, DelegationStatus, DelegationToken, Human
from governance.selectors import Decision, decisions_visible_to
from governance.views.agents import visible_agent

# The links above one link, up to its root (parents never change after creation: the walk cannot cycle).
_ANCESTOR_IDS = (
    "WITH RECURSIVE up(id, parent_id) AS (SELECT id, parent_id FROM governance_delegation WHERE id = %s "
    "UNION ALL SELECT d.id, d.parent_id FROM governance_delegation d JOIN up ON d.id = up.parent_id) "
    "SELECT parent_id FROM up WHERE parent_id IS NOT NULL"
)
# Every link below one link, at any depth.
_DESCENDANT_IDS = (
    "WITH RECURSIVE down(id) AS (SELECT id FROM governance_delegation WHERE parent_id = %s "
    "UNION ALL SELECT d.id FROM governance_delegation d JOIN down ON d.parent_id = down.id) SELECT id FROM down"
)
# A link's page shows this many links below it and tokens issued under it; the counts say how many more.
BELOW_LIMIT = 200
TOKEN_LIMIT = 25
HISTORY_LIMIT = 50
DECISIONS_PAGE = 25


def _search(qs: Any, q: str, user: Any) -> Any:
    """Links matching ``q``: its number ("#376" or "376"), its purpose or a scope, or the name of the
    agent or human at its ends, if the viewer may see them (a match on a hidden name would reveal it)."""
    number = q.removeprefix("#").strip()
    found = Q(purpose__icontains=q) | Q(scopes_text__icontains=q)
    found |= (Q(root_human__name__icontains=q) | Q(root_human__email__icontains=q)) & visible_q(
        "root_human", Human, user
    )
    found |= Q(delegate__name__icontains=q) & visible_q("delegate", Agent, user)
    if number.isascii() and number.isdigit() and len(number) <= 18:
        found |= Q(pk=int(number))
    # Scopes are a JSON list: searched as its text (no JSON containment lookup, which SQLite lacks).
    return qs.annotate(scopes_text=Cast("scopes", TextField())).filter(found)


def _by_state(qs: Any, state: str | None, now: Any) -> Any:
    if state == "all":
        return qs
    if state == "revoked":
        return qs.filter(status=DelegationStatus.REVOKED)
    if state == "expired":
        # An unswept link past its expiry is expired already (as its badge says).
        return qs.filter(Q(status=DelegationStatus.EXPIRED) | Q(status=DelegationStatus.ACTIVE, expires_at__lte=now))
    return qs.active(now)


@login_required
@role_required()
def delegations(request: HtmxHttpRequest) -> HttpResponse:
    user, now = request.user, timezone.now()
    form = f.DelegationFilterForm(request.GET or None)
    v = form.values()
    qs = _by_state(Delegation.objects.visible_to(user), v.get("state"), now)
    if q := v.get("q"):
        qs = _search(qs, q, user)
    total = qs.count()
    # Newest first by id: the marker is the number of a link the viewer saw, and reveals nothing else.
    page = page_newest_first(request, qs.select_related("root_human", "delegate", "parent__delegate"))
    context = {
        "form": form,
        "rows": [(link, link.status_at(now)) for link in page.rows],
        "page": page,
        "total": total,
        "can_revoke": is_admin(user),
        "now": now,
    }
    return render_page(request, "governance/delegations.html", "rows", context)


@dataclass(frozen=True, slots=True)
class ChainRow:
    """One row of a link's chain, from its root down: a link (None for one above that is outside the
    viewer's view, shown as a placeholder), its level, and whether it is the link the page is about."""

    link: Delegation | None
    level: int
    status: str
    current: bool = False


def _chain_rows(user: Any, link: Delegation, now: Any) -> tuple[list[ChainRow], int]:
    """The links above ``link`` (root first), ``link`` itself, and the tree below it (capped at
    ``BELOW_LIMIT``): two queries, recursive CTEs, however long the chain. Also how many links below
    it the viewer sees in all."""
    scoped = Delegation.objects.visible_to(user).select_related("delegate")
    above_ids = RawSQL(_ANCESTOR_IDS, [link.pk])  # noqa: S611 - constant SQL; the id is a bound parameter
    above = {a.depth: a for a in scoped.filter(id__in=above_ids)}
    rows = [
        # Every depth above has exactly one link: a missing one is one the viewer may not see.
        ChainRow(above.get(depth), depth, above[depth].status_at(now) if depth in above else "")
        for depth in range(link.depth)
    ]
    rows.append(ChainRow(link, link.depth, link.status_at(now), current=True))
    below_ids = RawSQL(_DESCENDANT_IDS, [link.pk])  # noqa: S611 - constant SQL; the id is a bound parameter
    below = list(scoped.filter(id__in=below_ids).order_by("depth", "created_at", "id")[: BELOW_LIMIT + 1])
    # Children of this link start at level 0 in ``flatten`` (their parent is not in the list).
    rows += [
        ChainRow(row.node, link.depth + 1 + row.level, row.node.status_at(now)) for row in flatten(below[:BELOW_LIMIT])
    ]
    return rows, len(below)


def _decisions(request: HttpRequest, link: Delegation) -> Any:
    """The checks the delegate made with a token issued under ``link``, newest first, one keyset page:
    matched by the agent's id and the token's jti, never by a name."""
    jtis = DelegationToken.objects.filter(delegation=link).values("jti")
    events = (
        decisions_visible_to(request.user)
        .filter(actor_kind=ActorKind.AGENT, actor_id=str(link.delegate_id))
        .annotate(credential_jti=KeyTextTransform("jti", KeyTransform("credential", "context")))
        .filter(credential_jti__in=jtis)
    )
    # As ``page_newest_first`` does, with a shorter page: the card sits among others.
    before = parse_key(request.GET.get("before"), param="before")
    events = events.only(*_DECISION_FIELDS).order_by("-id")
    if before is not None:
        events = events.filter(id__lt=before)
    page = page_of(request, events, "before", lambda event: str(event.pk), before is not None, size=DECISIONS_PAGE)
    full = reads_everything(request.user)
    return page, [Decision.of(event, full_detail=full) for event in page.rows]


# What ``Decision.of`` reads of an event (not the canonical bytes, the largest column).
_DECISION_FIELDS = (
    *("id", "digest", "occurred_at", "actor_kind", "actor_id", "actor_label", "action"),
    *("on_behalf_of", "target_label", "context"),
)


def _link_context(request: HttpRequest, link: Delegation) -> dict[str, Any]:
    user, now = request.user, timezone.now()
    chain, below_count = _chain_rows(user, link, now)
    tokens = DelegationToken.objects.visible_to(user).filter(delegation=link)
    decisions_page, decisions = _decisions(request, link)
    context: dict[str, Any] = {
        "link": link,
        "status": link.status_at(now),
        "chain": chain,
        "below_count": below_count,
        "below_limit": BELOW_LIMIT,
        "token_count": tokens.count(),
        "tokens": [
            (token, token.status_at(now))
            for token in tokens.select_related("agent", "agent_key").order_by("-issued_at", "-id")[:TOKEN_LIMIT]
        ],
        "page": decisions_page,
        "decisions": decisions,
        # The audit log is for those who read everything; decisions are shown as the agent page shows them.
        "events": list(AuditEvent.objects.for_target("delegation", link.pk)[:HISTORY_LIMIT])
        if reads_everything(user)
        else None,
        "now": now,
    }
    if is_admin(user) and context["status"] == DelegationStatus.ACTIVE:
        context["reason_form"] = ReasonForm()
    return context


@login_required
@role_required()
def delegation_detail(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    qs = Delegation.objects.visible_to(request.user).select_related("root_human", "delegate", "parent__delegate")
    link = get_object_or_404(qs, pk=pk)
    return render_page(request, "governance/delegation_detail.html", "decisions", _link_context(request, link))


@login_required
@role_required(ADMIN)
@require_POST
def agent_delegation_create(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    agent = visible_agent(request, pk)
    form = f.ChildDelegationForm(request.POST, user=request.user, agent=agent)
    if form.is_valid():
        data = form.cleaned_data
        try:
            services.delegation_create(
                actor=Actor.of(request.user),
                parent=data["parent"],
                delegate=data["delegate"],
                scopes=data["scopes"],
                expires_at=data["expires_at"],
                purpose=data["purpose"],
                max_depth=data["max_depth"],
            )
        except DomainError as error:
            apply_domain_error(form, error)
        else:
            messages.success(request, f"{agent.name} now delegates to {data['delegate'].name}.")
            return go(request, reverse("console:agent", args=[agent.pk]))
    context = {"agent": agent, "child_form": form}
    return render_form(
        request, "governance/agent_detail.html", "child-form", context, title="Delegate onward", status=422
    )


@login_required
@role_required(ADMIN)
@require_POST
def delegation_revoke(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    link = get_object_or_404(Delegation.objects.visible_to(request.user), pk=pk)
    reason = ReasonForm(request.POST).reason_text()
    revoked = services.delegation_revoke(actor=Actor.of(request.user), delegation=link, reason=reason)
    if not revoked:
        messages.info(request, f"Delegation #{link.pk} was no longer active; nothing changed.")
    else:
        below = len(revoked) - 1
        messages.success(request, f"Delegation #{link.pk} revoked" + (f" with {below} below it." if below else "."))
    return go(request, back(request, reverse("console:agent", args=[link.delegate_id])))
