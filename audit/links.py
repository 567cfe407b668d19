"""Where an audit event's target can be looked at in the console.

The audit app knows nothing of the objects its events name (it imports no other app). Apps register,
when they start, a function per target type that gives the page of a target; the audit pages ask here.
"""

from __future__ import annotations

from collections.abc import Callable

from audit.models import AuditEvent

TargetPage = Callable[[AuditEvent], str | None]

_pages: dict[str, TargetPage] = {}


def register(target_type: str, page: TargetPage) -> None:
    _pages[target_type] = page


def target_types() -> list[str]:
    """The target types some app knows, for filters to offer (any other still matches when typed)."""
    return sorted(_pages)


def target_url(event: AuditEvent) -> str | None:
    page = _pages.get(event.target_type)
    return page(event) if page is not None else None
