"""The console's SCIM clients page: admins create one (its secret shown once) and revoke one."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404, render
from django.urls import reverse
from django.utils.cache import add_never_cache_headers
from django.views.decorators.http import require_POST

from audit.services import Actor
from console.errors import DomainError
from console.forms import ReasonForm, apply_domain_error
from console.roles import ADMIN, AUDITOR, is_admin, role_required
from scim import services
from scim.models import ScimClient


class ScimClientForm(forms.Form):
    name = forms.CharField(max_length=120, help_text="The identity provider, e.g. “Okta production”.")


def _page(request: HttpRequest, form: ScimClientForm, status: int = 200, **extra: Any) -> HttpResponse:
    clients = ScimClient.objects.visible_to(request.user)[:200]
    context = {
        "clients": clients,
        "form": form,
        "may_change": is_admin(request.user),
        "endpoint": request.build_absolute_uri("/scim/v2/"),
        **extra,
    }
    response = render(request, "scim/clients.html", context, status=status)
    add_never_cache_headers(response)
    return response


@login_required
@role_required(ADMIN, AUDITOR)
def scim_clients(request: HttpRequest) -> HttpResponse:
    if request.method != "POST":
        return _page(request, ScimClientForm())
    if not is_admin(request.user):
        raise PermissionDenied
    form = ScimClientForm(request.POST)
    if form.is_valid():
        try:
            client, secret = services.scim_client_create(actor=Actor.of(request.user), name=form.cleaned_data["name"])
        except DomainError as error:
            apply_domain_error(form, error, {})
        else:
            # The secret lives only in this response: never in the session, a message or a log.
            return _page(request, ScimClientForm(), 201, new_client=client, new_secret=secret)
    return _page(request, form, 422)


@login_required
@role_required(ADMIN)
@require_POST
def scim_client_revoke(request: HttpRequest, pk: int) -> HttpResponse:
    client = get_object_or_404(ScimClient.objects.visible_to(request.user), pk=pk)
    reason = ReasonForm(request.POST).reason_text()
    try:
        services.scim_client_revoke(actor=Actor.of(request.user), client=client, reason=reason)
    except DomainError as error:
        messages.error(request, error.detail)
    else:
        messages.success(request, f"SCIM client {client.name} revoked: its next request is refused.")
    return HttpResponseRedirect(reverse("console:scim_clients"))
