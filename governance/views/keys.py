"""An agent's keys: issuing one (its secret shown once, in the response only) and revoking one."""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpResponse
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
from governance.models import AgentKey
from governance.views.agents import visible_agent


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
    response = render_form(request, "governance/agent_detail.html", fragment, context, title="New key", status=status)
    add_never_cache_headers(response)
    return response


@login_required
@role_required(ADMIN)
@require_POST
def key_revoke(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    key = get_object_or_404(AgentKey.objects.visible_to(request.user).select_related("agent"), pk=pk)
    leaked = request.POST.get("leaked") == "1"
    services.agentkey_revoke(
        actor=Actor.of(request.user), key=key, reason=ReasonForm(request.POST).reason_text(), leaked=leaked
    )
    follow_up = " Its agent's access goes to review." if leaked else ""
    messages.success(request, f"Key {key.display} revoked; it is refused from the next request on.{follow_up}")
    return go(request, back(request, reverse("console:agent", args=[key.agent_id])))
