"""The review badge in the navigation: the user's pending items plus unread notifications."""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest
from django.utils.functional import SimpleLazyObject

from reviews import selectors


def review_badge(user: Any) -> str:
    """Pending items plus unread notifications in one query (a COUNT over a UNION ALL of two index
    scans: ``reviewitem_queue_idx``, ``notification_unread_idx``), as every full page shows it: "" for
    none, "99+" past the cap."""
    if not getattr(user, "is_authenticated", False):
        return ""
    count = selectors.badge_count(user)
    if not count:
        return ""
    return f"{selectors.BADGE_CAP}+" if count > selectors.BADGE_CAP else str(count)


def console(request: HttpRequest) -> dict[str, Any]:
    user = getattr(request, "user", None)
    # Lazy: counted only when a template shows the badge (full pages, the polled badge), never otherwise.
    return {"review_badge": SimpleLazyObject(lambda: review_badge(user))}
