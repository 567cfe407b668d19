"""Where an audit event's target can be looked at in the console, and what "events about X" means.

The audit app knows nothing of the objects its events name (it imports no other app). Apps register,
when they start:

- a function per target type that gives the page of a target (``register``);
- filters by subject (``register_subject``): "events about agent 7" is a question only governance can
  answer by id (its keys, tokens, delegations, grants…), so the audit browser and API ask it here;
- links an event offers beside it (``register_event_link``), e.g. a decision's chain of custody.
"""

from __future__ import annotations

from collections.abc import Callable

from django.db.models import Q

from audit.models import AuditEvent

TargetPage = Callable[[AuditEvent], str | None]
SubjectFilter = Callable[[int], Q]
EventLink = Callable[[AuditEvent], tuple[str, str] | None]

_pages: dict[str, TargetPage] = {}
_subjects: dict[str, SubjectFilter] = {}
_event_links: list[EventLink] = []


def register(target_type: str, page: TargetPage) -> None:
    _pages[target_type] = page


def target_types() -> list[str]:
    """The target types some app knows, for filters to offer (any other still matches when typed)."""
    return sorted(_pages)


def target_url(event: AuditEvent) -> str | None:
    page = _pages.get(event.target_type)
    return page(event) if page is not None else None


def register_subject(name: str, build: SubjectFilter) -> None:
    """``build(id)`` gives the condition on ``AuditEvent`` selecting every event about subject ``id``."""
    _subjects[name] = build


def subject_filter(name: str, subject_id: int) -> Q | None:
    """The condition for events about ``name`` ``subject_id``; None when no app knows the subject."""
    build = _subjects.get(name)
    return build(subject_id) if build is not None else None


def subjects() -> list[str]:
    return sorted(_subjects)


def register_event_link(link: EventLink) -> None:
    """``link(event)`` gives a (label, url) to show beside the event, or None."""
    _event_links.append(link)


def event_links(event: AuditEvent) -> list[tuple[str, str]]:
    return [found for link in _event_links if (found := link(event)) is not None]
