"""One agent session's decisions in order (placeholder, built next)."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpResponse

from console.pages import HtmxHttpRequest
from console.roles import ADMIN, AUDITOR, role_required


@login_required
@role_required(ADMIN, AUDITOR)
def session(request: HtmxHttpRequest, session_id: str) -> HttpResponse:
    raise Http404
