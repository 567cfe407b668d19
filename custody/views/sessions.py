"""One agent session's decisions in order, each under the request it was made for, across sub-agents."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpResponse
from django.shortcuts import render

from console.pages import HtmxHttpRequest
from console.roles import ADMIN, AUDITOR, role_required
from custody.api import SESSION
from custody.sessions import MAX_DECISIONS, session_timeline


@login_required
@role_required(ADMIN, AUDITOR)
def session(request: HtmxHttpRequest, session_id: str) -> HttpResponse:
    if not SESSION.match(session_id):
        raise Http404("Not a session id.")
    timeline = session_timeline(session_id)
    if timeline is None:
        raise Http404("No decision was recorded in this session.")
    focus = request.GET.get("focus", "")
    return render(
        request, "custody/session.html", {"timeline": timeline, "focus": focus, "max_decisions": MAX_DECISIONS}
    )
