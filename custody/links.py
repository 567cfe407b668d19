"""Links from the audit log to the custody pages (registered with ``audit.links`` when the app starts)."""

from __future__ import annotations

from django.urls import NoReverseMatch, reverse

from audit import links
from audit.models import AuditEvent


def _custody(event: AuditEvent) -> tuple[str, str] | None:
    return ("Custody", reverse("console:custody", args=[event.digest])) if event.digest else None


def _session(event: AuditEvent) -> tuple[str, str] | None:
    session_id = event.context.get("session_id") if isinstance(event.context, dict) else None
    if event.action.startswith("check.") and isinstance(session_id, str) and session_id:
        try:
            return ("Session", reverse("console:session", args=[session_id]))
        except NoReverseMatch:
            return None  # an id the agent chose with a "/" in it: shown, not linked
    return None


def register() -> None:
    links.register_event_link(_custody)
    links.register_event_link(_session)
