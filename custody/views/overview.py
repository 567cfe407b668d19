"""The overview, the console's home page: counts and charts an admin or an auditor keeps open, each
linking to the list behind it, and the decisions arriving live (governance's live panel)."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.db.models import Count, Q
from django.http import HttpResponse
from django.shortcuts import render
from django.urls import reverse
from django.utils import timezone

from audit.models import AuditEvent
from console.pages import HtmxHttpRequest
from console.roles import reads_everything, role_required
from custody import overview
from governance.models import AccessRequest, Agent, AgentStatus, Delegation
from governance.views.dashboard import _live_context
from reviews import selectors as review_selectors

RECENT_EVENTS = 12


def _audit_url(**filters: str) -> str:
    return f"{reverse('console:audit')}?{urlencode(filters)}"


def _charts(days: list[overview.DayCount], revoke: overview.TimeToRevoke, readers: bool) -> dict[str, Any]:
    """What the charts draw (passed with ``json_script``; static/app.js draws them). Each bar links to the
    audit log for its day, for those who may open it."""
    decisions: dict[str, Any] = {
        "labels": [d.day.isoformat() for d in days],
        "allowed": [d.allowed for d in days],
        "denied": [d.denied for d in days],
        "links": [
            _audit_url(action="check.", since=d.day.isoformat(), until=d.day.isoformat()) if readers else None
            for d in days
        ],
    }
    revocations: dict[str, Any] = {
        "labels": [t.requested_at.strftime("%m-%d %H:%M") for t in revoke.recent],
        "ms": [t.ms for t in revoke.recent],
        "kinds": [t.kind for t in revoke.recent],
        "median": revoke.median_ms,
        "links": [
            _audit_url(target_type=t.kind, target_id=str(t.subject_id)) if readers and t.subject_id else None
            for t in revoke.recent
        ],
    }
    return {"decisions": decisions, "revocations": revocations}


@login_required
@role_required()
def home(request: HtmxHttpRequest) -> HttpResponse:
    user, now = request.user, timezone.now()
    readers = reads_everything(user)
    agents = Agent.objects.visible_to(user).aggregate(
        active=Count("id", filter=Q(status=AgentStatus.ACTIVE)),
        suspended=Count("id", filter=Q(status=AgentStatus.SUSPENDED)),
        offboarded=Count("id", filter=Q(status=AgentStatus.OFFBOARDED)),
        total=Count("id"),
    )
    days = overview.decisions_per_day(user, now.date())
    week = days[-7:]
    denied_7, checks_7 = sum(d.denied for d in week), sum(d.allowed + d.denied for d in week)
    revoke = overview.time_to_revoke(overview.offboardings_visible_to(user))
    drift = overview.drift_figures(user, now)
    reviews = overview.review_figures(user, now)
    queue = review_selectors.EVERYONE if readers else review_selectors.MINE
    context = {
        "agents": agents,
        "delegations_active": Delegation.objects.visible_to(user).active(now).count(),
        "requests_pending": AccessRequest.objects.visible_to(user).pending(now).count(),
        "drift": drift,
        "drift_open": drift["open"],
        "days": days,
        "decisions_30": sum(d.allowed + d.denied for d in days),
        "denied_30": sum(d.denied for d in days),
        "denied_7": denied_7,
        "deny_rate_7": round(100 * denied_7 / checks_7) if checks_7 else 0,
        "keys": overview.key_figures(user, now),
        "key_rows": overview.keys_to_act_on(user, now),
        "key_max_age_days": settings.CUSTOS_KEY_MAX_AGE.days,
        "reviews": reviews,
        "campaigns_active": overview.campaigns_active(user),
        "revoke": revoke,
        "revoke_median": overview.humanise_ms(revoke.median_ms),
        "charts": _charts(days, revoke, readers),
        "urls": {
            "denials_7": _audit_url(action="check.deny", since=week[0].day.isoformat()) if readers else "#live",
            "decisions_30": _audit_url(action="check.", since=days[0].day.isoformat()) if readers else "#live",
            "offboardings": _audit_url(action="agent.offboard")
            if readers
            else f"{reverse('console:agents')}?status=offboarded",
            "reviews": f"{reverse('console:reviews')}?show={queue}",
            "overdue": f"{reverse('console:reviews')}?show={queue}&overdue=on",
        },
        "events": list(AuditEvent.objects.select_related("seal").order_by("-id")[:RECENT_EVENTS]) if readers else None,
        **_live_context(user, now),
    }
    return render(request, "custody/overview.html", context)
