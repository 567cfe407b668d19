"""An agent's keys: issuing one (its secret shown once, in the response only) and revoking one."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404
from django.urls import reverse
from django.utils import timezone
from django.utils.cache import add_never_cache_headers
from django.views.decorators.http import require_POST

from audit.services import Actor
from console.errors import DomainError
from console.forms import ReasonForm, apply_domain_error
from console.pages import HtmxHttpRequest, back, go, render_form
from console.roles import ADMIN, role_required
from governance import forms as f
from governance import services
from governance.blast import agent_blast_radius
from governance.models import AgentKey, DelegationToken
from governance.views.agents import key_rows, visible_agent


@login_required
@role_required(ADMIN)
@require_POST
def agent_key_create(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    agent = visible_agent(request, pk)
    form = f.KeyCreateForm(request.POST)
    context: dict[str, Any] = {"agent": agent, "key_form": form}
    status = 422
    if form.is_valid():
        try:
            key, secret = services.agentkey_create(
                actor=Actor.of(request.user),
                agent=agent,
                name=form.cleaned_data["name"],
                expires_at=form.cleaned_data["expires_at"],
            )
        except DomainError as error:
            apply_domain_error(form, error, {"agent": "name"})
        else:
            # The secret lives only in this response: never in the session, a message or a log.
            now = timezone.now()
            keys = list(AgentKey.objects.visible_to(request.user).filter(agent=agent)[:50])
            context |= {
                "new_key": key,
                "new_secret": secret,
                "key_form": f.KeyCreateForm(),
                "keys": keys,
                "key_rows": key_rows(keys, now),
                "now": now,
                "status_actions": True,
            }
            status = 201
    fragment = "key-created" if status == 201 else "key-form"
    response = render_form(request, "governance/agent_detail.html", fragment, context, title="New key", status=status)
    add_never_cache_headers(response)
    return response


@login_required
@role_required(ADMIN)
@require_POST
def key_revoke(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    key = get_object_or_404(AgentKey.objects.visible_to(request.user).select_related("agent"), pk=pk)
    leaked = request.POST.get("leaked") == "1"
    reason = ReasonForm(request.POST).reason_text() or ("reported leaked" if leaked else "")
    key = services.agentkey_revoke(actor=Actor.of(request.user), key=key, reason=reason, leaked=leaked)
    if leaked:
        # The leak report is shown once on the agent page, from the figures taken now (after the
        # revocation): what the key obtained is cut, what the agent can still do is its blast radius.
        request.session[LEAK_REPORT] = leak_report(key)
        messages.success(request, f"Key {key.display} revoked as leaked, with every token it obtained.")
    else:
        messages.success(request, f"Key {key.display} revoked; it is refused from the next request on.")
    return go(request, back(request, reverse("console:agent", args=[key.agent_id])))


LEAK_REPORT = "custos_leak_report"


def _tokens_revoked_with(key: AgentKey) -> int:
    """Tokens the key's revocation cut: those it obtained, and those derived from them (sub-agents')."""
    frontier = list(
        DelegationToken.objects.filter(agent_key=key, revoked_reason=f"agent key {key.display} revoked").values_list(
            "pk", "jti"
        )
    )
    count = 0
    while frontier:
        count += len(frontier)
        frontier = list(
            DelegationToken.objects.filter(
                parent_token__in=[pk for pk, _jti in frontier],
                revoked_reason__in=[f"parent token {jti} revoked" for _pk, jti in frontier],
            ).values_list("pk", "jti")
        )
    return count


def leak_report(key: AgentKey) -> dict[str, Any]:
    """What the leaked-key panel shows, as plain values (it travels in the session to the next page)."""
    now = timezone.now()
    blast = agent_blast_radius(key.agent, at=now)
    end = key.revoked_at or now
    return {
        "agent": key.agent_id,
        "key": key.display,
        "tokens_revoked": _tokens_revoked_with(key),
        "key_created_at": key.created_at.isoformat(),
        "revoked_at": end.isoformat(),
        "computed_at": now.isoformat(),
        "key_last_used_at": key.last_used_at.isoformat() if key.last_used_at else None,
        "scopes": len(blast.scopes),
        "score": blast.score,
        "exposure_until": blast.exposure_until.isoformat() if blast.exposure_until else None,
        "critical": blast.by_sensitivity.get("critical", 0),
        "high": blast.by_sensitivity.get("high", 0),
    }


def pop_leak_report(request: HttpRequest, agent_id: int) -> dict[str, Any] | None:
    report = request.session.get(LEAK_REPORT)
    if not isinstance(report, dict) or report.get("agent") != agent_id:
        return None
    del request.session[LEAK_REPORT]
    report = dict(report)
    for name in ("key_created_at", "revoked_at", "computed_at", "key_last_used_at", "exposure_until"):
        report[name] = datetime.fromisoformat(report[name]) if report[name] else None
    return report


@login_required
@role_required(ADMIN)
@require_POST
def agent_keys_revoke_all(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    agent = visible_agent(request, pk)
    revoked = services.agentkey_revoke_all(
        actor=Actor.of(request.user), agent=agent, reason=ReasonForm(request.POST).reason_text()
    )
    if revoked:
        messages.success(request, f"Revoked {len(revoked)} key(s) of {agent.name}, with the tokens they obtained.")
    else:
        messages.info(request, f"{agent.name} had no key in force; nothing changed.")
    return go(request, reverse("console:agent", args=[agent.pk]))
