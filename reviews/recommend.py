"""What a reviewer is advised to do, and why; and how risky an item is. Plain functions over plain data.

A recommendation is grounded in recorded use: the allowed checks per scope (``governance.selectors.
scope_usage``), a key's last use, an agent's last activity. It is advice with its reason shown beside it
(revoke: "crm.contacts:write unused in 60 days (last used 71 days ago)"), never applied by itself.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from governance.models import SENSITIVITY_WEIGHT
from governance.selectors import ScopeUse
from reviews.models import RISK_ORDER, Decision, ItemKind, Risk

# Use on at least this share of the window's days counts as "used daily" in a reason.
DAILY_SHARE = 0.6
WINDOW_DAYS = 30
RISK_LEVELS = [Risk.LOW, Risk.MEDIUM, Risk.HIGH, Risk.CRITICAL]
# Plain strings to their level: read once per item, so not through the enum's (slow) ``values``.
_LEVEL = {str(risk): level for risk, level in RISK_ORDER.items()}


@dataclass(frozen=True, slots=True)
class Advice:
    recommendation: str  # Decision.CERTIFY, Decision.REVOKE or "" (no advice)
    reason: str


def _ago(moment: datetime, now: datetime) -> str:
    days = (now - moment).days
    if days <= 0:
        return "today"
    return "yesterday" if days == 1 else f"{days} days ago"


def scopes_advice(
    scopes: Sequence[str], usage: Mapping[str, ScopeUse], *, now: datetime, unused_days: int, renewal: bool = False
) -> Advice:
    """Advice on access to ``scopes`` (a grant, a delegation, a renewal) from their recorded use."""
    horizon = now - timedelta(days=unused_days)
    used = {s: usage[s] for s in scopes if s in usage and usage[s].last_at >= horizon}
    if not scopes:
        return Advice("", "")
    if not used:
        lasts = [usage[s].last_at for s in scopes if s in usage]
        when = f"last used {_ago(max(lasts), now)}" if lasts else "never used"
        what = f"{scopes[0]} unused" if len(scopes) == 1 else f"none of its {len(scopes)} scopes used"
        expire = "; let it expire" if renewal else ""
        return Advice(Decision.REVOKE, f"{what} in {unused_days} days ({when}){expire}")
    busiest = max(used.values(), key=lambda u: (u.days, u.count))
    recent_days = min(busiest.days, WINDOW_DAYS)
    rhythm = "daily" if recent_days >= DAILY_SHARE * WINDOW_DAYS else f"on {recent_days} of the last {WINDOW_DAYS} days"
    unused = [s for s in scopes if s not in used]
    reason = f"used {rhythm} ({busiest.count} allowed checks, last {_ago(busiest.last_at, now)})"
    if unused:
        reason += f"; unused: {', '.join(unused[:3])}{'…' if len(unused) > 3 else ''}"
    return Advice(Decision.CERTIFY, reason)


def last_use_advice(what: str, last_at: datetime | None, *, now: datetime, unused_days: int) -> Advice:
    """Advice on a key or an agent from when it was last used or active."""
    if last_at is None:
        return Advice(Decision.REVOKE, f"{what} never used")
    if last_at < now - timedelta(days=unused_days):
        return Advice(Decision.REVOKE, f"{what} unused for {(now - last_at).days} days")
    return Advice(Decision.CERTIFY, f"{what} in use (last {_ago(last_at, now)})")


def risk_of(
    kind: str,
    *,
    agent_tier: str,
    sensitivities: Sequence[str],
    recommendation: str,
    blast_radius: int,
) -> tuple[str, int]:
    """The item's risk level and its place in the queue (a higher score comes first).

    The level is the higher of the agent's risk tier and the most sensitive resource reached, one level
    up when the advice is to revoke or the item is an alarm (drift, a leaked key, a sponsor gone). The
    score orders within a level by the same parts, then by how much the access reaches."""
    tier = _LEVEL.get(agent_tier, 1)
    sensitivity = max((_LEVEL.get(s, 0) for s in sensitivities), default=0)
    alarm = kind in (ItemKind.DRIFT, ItemKind.KEY_LEAKED, ItemKind.SPONSOR_INACTIVE)
    level = min(3, max(tier, sensitivity) + (1 if recommendation == Decision.REVOKE or alarm else 0))
    weight = max((SENSITIVITY_WEIGHT.get(s, 0) for s in sensitivities), default=0)
    score = level * 100_000 + tier * 10_000 + min(weight, 99) * 100 + (50 if alarm else 0) + min(blast_radius, 49)
    return RISK_LEVELS[level], score
