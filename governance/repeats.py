"""Denials of credentials nobody holds: kept as evidence, without letting a flood fill the audit log.

Every well-formed ``POST /api/v1/check`` gets a recorded decision. For a credential that identifies no
agent (none at all, garbage, a forged or expired token, an unknown key) that would let anyone append
permanent events as fast as they can send requests. So, per **source** (the client address; an IPv6
address counts by its /64, which one host usually holds whole) and per **window**
(``CUSTOS_CHECK_REPEAT_WINDOW``, a minute):

- the first such denial of each kind (reason, credential kind) is recorded in full, as before, and its
  decision id is returned;
- the repeats are answered the same way, with that first decision's id, and counted in the cache; when
  the window has ended one ``check.deny.repeated`` event records how many there were;
- past ``CUSTOS_CHECK_INVALID_LIMIT`` of them from one source in a window, the check answers 429 without
  touching the database, and a ``check.throttled`` event records how many were refused.

Requests that identify an agent are never aggregated or throttled here: an attacker sharing a NAT with
real agents cannot starve them. If the cache cannot be reached, every denial is recorded in full (the
evidence is kept; only the saving is lost), and the answer is still a denial.

Summaries are written by ``flush_repeats`` (the beat runs it every minute) and also, for a source that
keeps going, when its next window starts. The counts live in the cache: with Redis they are shared by
every process; without it (``make run``) each process counts its own, and the web process writes them
when that source comes back in a later window.
"""

from __future__ import annotations

import functools
import ipaddress
import logging
import math
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from django.conf import settings
from django.core.cache import cache
from django.utils import timezone

from audit.models import ActorKind, AuditEvent
from audit.services import Actor, PendingEvent, Target, audit_append_many

log = logging.getLogger(__name__)

UNIDENTIFIED = Actor(kind=ActorKind.AGENT, label="(unidentified credential)")
REPEATED = "check.deny.repeated"
THROTTLED = "check.throttled"
# How far back a flush looks for windows whose summary is still to be written; counts outlive it.
LOOKBACK = timedelta(hours=1)
_PREFIX = "custos:repeats"


class Throttled(Exception):
    """Too many unidentified checks from this source in this window: answer 429."""

    def __init__(self, reason: str, retry_after: int) -> None:
        super().__init__(f"too many checks with invalid credentials from this address; retry in {retry_after} s")
        self.reason = reason
        self.retry_after = retry_after


@functools.lru_cache(maxsize=4096)  # every check names its client's address: parse each one once
def source_of(address: str | None) -> str:
    """The source a request is counted against: its address, an IPv6 one by its /64 prefix."""
    try:
        ip = ipaddress.ip_address((address or "").strip())
    except ValueError:
        return "unknown"
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.IPv6Network((ip, 64), strict=False))
    return str(ip)


def _seconds() -> int:
    return max(1, int(settings.CUSTOS_CHECK_REPEAT_WINDOW.total_seconds()))


def window_of(at: datetime) -> int:
    return int(at.timestamp()) // _seconds()


def window_bounds(window: int) -> tuple[datetime, datetime]:
    start = datetime.fromtimestamp(window * _seconds(), tz=UTC)
    return start, start + timedelta(seconds=_seconds())


def _ttl() -> int:
    # Long enough for the flush to read the counts of every window it still looks at.
    return _seconds() + int(LOOKBACK.total_seconds()) + 60


def _kind_key(window: int, source: str, reason: str, kind: str) -> str:
    return f"{_PREFIX}:{window}:{source}:{reason}:{kind}"


def _source_key(window: int, source: str) -> str:
    return f"{_PREFIX}:{window}:{source}"


def _incr(key: str) -> int:
    if cache.add(key, 1, timeout=_ttl()):
        return 1
    try:
        return int(cache.incr(key))
    except ValueError:  # expired between the two calls
        cache.add(key, 1, timeout=_ttl())
        return 1


def screen(*, source: str, reason: str, kind: str, at: datetime) -> str | None:
    """Before recording an unidentified denial. None: record it in full (then call ``remember``).
    A decision id: it repeats that recorded decision and has been counted; answer with that id.
    Raises ``Throttled`` past the source's limit for the window."""
    window = window_of(at)
    try:
        if _incr(_source_key(window, source)) > settings.CUSTOS_CHECK_INVALID_LIMIT:
            raise Throttled(reason, retry_after=max(1, (window + 1) * _seconds() - int(at.timestamp())))
        key = _kind_key(window, source, reason, kind)
        first = cache.get(f"{key}:first")
        if first is None:
            return None
        _incr(f"{key}:count")
        return str(first)
    except Throttled:
        raise
    except Exception:
        # No cache: record in full. More events than needed, never fewer.
        log.warning("repeat counting unavailable; recording the denial in full", exc_info=True)
        return None


def remember(*, source: str, reason: str, kind: str, at: datetime, decision_id: str) -> None:
    """After recording an unidentified denial in full: later ones like it in this window repeat it.
    The first of a new window also writes the summaries this source's earlier windows still owe."""
    window = window_of(at)
    try:
        cache.add(f"{_kind_key(window, source, reason, kind)}:first", decision_id, timeout=_ttl())
    except Exception:
        log.warning("repeat counting unavailable", exc_info=True)
        return
    try:
        flush_repeats(now=at, source=source)
    except Exception:
        # The denial is recorded; a summary not written now is written by the next flush.
        log.warning("could not write the summaries of earlier windows", exc_info=True)


def context_fields(*, source: str, at: datetime) -> dict[str, Any]:
    """What a fully recorded unidentified denial adds to its context, so a flush can find it."""
    return {"source": source, "window": window_of(at)}


@dataclass(frozen=True, slots=True)
class _Owed:
    window: int
    source: str
    reason: str
    kind: str
    first: str
    scope: str


def _recorded_firsts(since: datetime, before: datetime, source: str | None) -> Iterable[_Owed]:
    events = AuditEvent.objects.filter(
        action="check.deny",
        actor_kind=ActorKind.AGENT,
        actor_id="",
        occurred_at__gte=since,
        occurred_at__lt=before,
        context__has_key="window",
    )
    if source is not None:
        events = events.filter(context__source=source)
    seen: set[tuple[int, str, str, str]] = set()
    for digest, context in events.order_by("id").values_list("digest", "context"):
        try:
            owed = _Owed(
                window=int(context["window"]),
                source=str(context["source"]),
                reason=str(context["reason"]),
                kind=str(context["credential"]["kind"]),
                first=digest,
                scope=str(context.get("scope", "")),
            )
        except (KeyError, TypeError, ValueError):
            continue
        identity = (owed.window, owed.source, owed.reason, owed.kind)
        if identity not in seen:  # two recorded in the same instant: the first one stands for them
            seen.add(identity)
            yield owed


def _claim(key: str) -> bool:
    """True once per key, across processes: whoever adds the mark writes the summary."""
    return bool(cache.add(f"{key}:written", 1, timeout=_ttl()))


def _window_context(window: int, source: str) -> dict[str, Any]:
    start, end = window_bounds(window)
    return {"source": source, "window_start": start.isoformat(), "window_end": end.isoformat()}


def flush_repeats(*, now: datetime | None = None, source: str | None = None) -> int:
    """Write one ``check.deny.repeated`` event per (source, reason, credential kind, window) that saw
    repeats, and one ``check.throttled`` per (source, window) that was throttled, for the windows that
    have ended, in one bulk append. Each is written once, whoever calls. Returns how many were written."""
    now = now or timezone.now()
    current = window_of(now)
    # A window is settled a little after it ends: requests in flight at its end are counted first.
    settled = current if (now - window_bounds(current)[0]).total_seconds() >= _grace() else current - 1
    before = window_bounds(settled)[0]
    owed = list(_recorded_firsts(now - LOOKBACK - timedelta(seconds=_seconds()), before, source))
    if not owed:
        return 0
    counts = cache.get_many(
        [f"{_kind_key(o.window, o.source, o.reason, o.kind)}:count" for o in owed]
        + [_source_key(o.window, o.source) for o in owed]
    )
    summaries: list[PendingEvent] = []
    claimed: list[str] = []
    throttled_seen: set[str] = set()
    limit = settings.CUSTOS_CHECK_INVALID_LIMIT
    for o in owed:
        key = _kind_key(o.window, o.source, o.reason, o.kind)
        repeats = int(counts.get(f"{key}:count") or 0)
        if repeats and _claim(key):
            claimed.append(key)
            summaries.append(
                PendingEvent(
                    actor=UNIDENTIFIED,
                    action=REPEATED,
                    target=Target(type="source", id=o.source[:64], label=o.source),
                    context={
                        **_window_context(o.window, o.source),
                        "reason": o.reason,
                        "credential": {"kind": o.kind},
                        "repeats": repeats,
                        "first_decision_id": o.first,
                        "first_scope": o.scope,
                    },
                )
            )
        source_key = _source_key(o.window, o.source)
        refused = int(counts.get(source_key) or 0) - limit
        if refused > 0 and source_key not in throttled_seen and _claim(source_key):
            throttled_seen.add(source_key)
            claimed.append(source_key)
            summaries.append(
                PendingEvent(
                    actor=UNIDENTIFIED,
                    action=THROTTLED,
                    target=Target(type="source", id=o.source[:64], label=o.source),
                    context={**_window_context(o.window, o.source), "refused": refused, "limit": limit},
                )
            )
    if not summaries:
        return 0
    try:
        audit_append_many(summaries)
    except Exception:
        # Give the claims back, so the next flush writes them.
        cache.delete_many([f"{key}:written" for key in claimed])
        raise
    return len(summaries)


def _grace() -> float:
    return min(5.0, math.ceil(_seconds() / 10))
