"""The live decisions panel of the overview (the overview itself is custody's home page, which reuses
``_live_context``): decisions per minute over the last hour and the latest few."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.contrib.auth.decorators import login_required
from django.http import HttpResponse
from django.utils import timezone

from console.pages import HtmxHttpRequest, render_live
from console.roles import role_required
from governance import selectors

LIVE_DECISIONS = 10
LIVE_MINUTES = 60


@dataclass(frozen=True, slots=True)
class MinuteBar:
    minute: datetime
    allow: int
    deny: int
    # Heights relative to the busiest minute, in whole percent (the sparkline's SVG units, 100 high).
    allow_pct: int
    deny_pct: int

    @property
    def allow_y(self) -> int:
        return 100 - self.allow_pct

    @property
    def deny_y(self) -> int:
        return 100 - self.allow_pct - self.deny_pct


def _live_context(user: Any, now: datetime) -> dict[str, Any]:
    """The live panel: decisions per minute over the last hour and the latest few, two queries."""
    start = now.replace(second=0, microsecond=0) - timedelta(minutes=LIVE_MINUTES - 1)
    counts = selectors.decisions_per_minute(user, start, LIVE_MINUTES)
    peak = max((c.allowed + c.denied for c in counts), default=0) or 1
    bars = [
        MinuteBar(
            minute=c.minute,
            allow=c.allowed,
            deny=c.denied,
            allow_pct=round(100 * c.allowed / peak),
            # Stacked on the allowed part, so the two together never exceed the peak when rounded.
            deny_pct=round(100 * (c.allowed + c.denied) / peak) - round(100 * c.allowed / peak),
        )
        for c in counts
    ]
    allowed, denied = sum(b.allow for b in bars), sum(b.deny for b in bars)
    return {
        "live_bars": bars,
        "live_allowed": allowed,
        "live_denied": denied,
        "live_deny_rate": round(100 * denied / (allowed + denied)) if allowed + denied else 0,
        "live_decisions": selectors.recent_decisions(user, LIVE_DECISIONS),
        "live_at": now,
    }


@login_required
@role_required()
def live(request: HtmxHttpRequest) -> HttpResponse:
    """The live panel alone, polled by htmx."""
    return render_live(request, "governance/live.html#live", _live_context(request.user, timezone.now()))
