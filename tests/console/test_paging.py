"""Keyset paging and the markers page links carry: a marker not made here is a 400, never a 500 or
another page; a date at the end of the calendar is "no end", not an overflow."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest
from django.test import Client, RequestFactory
from django.urls import reverse

from console import paging
from tests import factories

pytestmark = pytest.mark.django_db

# What a probe sent: "²".isdigit() is true but int() refuses it; the 9999 date overflowed a timedelta.
BAD_MARKERS = [
    ("console:agents", "after=²"),
    ("console:humans", "after=²"),
    ("console:access_requests", "before=²"),
    ("console:drift", "before=²"),
    ("console:audit", "before=²"),
    ("console:agents", "after=42"),
    ("console:agents", "after=" + "A" * 500),
    ("console:humans", "after=WyJ4IiwgLTFd"),  # ["x", -1]
    ("console:audit", "before=99999999999999999999"),
    ("console:audit", "before=0"),
    ("console:drift", "before=-3"),
    ("console:access_requests", "before=1e3"),
]


@pytest.mark.parametrize(("page", "query"), BAD_MARKERS)
def test_a_marker_not_made_here_is_a_400_that_says_what_to_do(client: Client, page: str, query: str) -> None:
    client.force_login(factories.make_admin())
    response = client.get(f"{reverse(page)}?{query}")
    assert response.status_code == 400
    assert "Start again from the first page" in response.content.decode()
    # Also for htmx (a page turn), which must not get a 500 either.
    assert client.get(f"{reverse(page)}?{query}", headers={"HX-Request": "true"}).status_code == 400


@pytest.mark.parametrize("query", ["until=9999-12-31", "since=0001-01-01", "since=0001-01-01&until=9999-12-31"])
def test_the_audit_page_takes_dates_at_either_end_of_the_calendar(client: Client, query: str) -> None:
    client.force_login(factories.make_auditor())
    factories.make_human()  # one event at least
    response = client.get(f"{reverse('console:audit')}?{query}")
    assert response.status_code == 200
    assert len(response.context["events"]) >= 1


def test_a_name_marker_turns_the_page_after_the_row_it_names_without_looking_it_up(client: Client) -> None:
    client.force_login(factories.make_admin())
    names = [f"bot-{n:03d}" for n in range(paging.PAGE_SIZE + 3)]
    for name in names:
        factories.make_agent(name=name)
    first = client.get(reverse("console:agents") + "?q=bot-")
    page = first.context["page"]
    assert [a.name for a in page.rows] == names[: paging.PAGE_SIZE] and page.next_query
    second = client.get(reverse("console:agents") + "?" + page.next_query)
    assert [a.name for a in second.context["page"].rows] == names[paging.PAGE_SIZE :]
    assert second.context["page"].paged and second.context["page"].next_query is None
    assert "after" not in second.context["page"].first_query and "q=bot-" in second.context["page"].first_query


def test_parse_key_takes_ascii_digits_within_a_bigint_only() -> None:
    assert paging.parse_key(None, param="before") is None
    assert paging.parse_key("", param="before") is None
    assert paging.parse_key("1", param="before") == 1
    assert paging.parse_key(str(paging.MAX_KEY), param="before") == paging.MAX_KEY
    for bad in ("0", "²", "١٢", " 1", "1 ", "+1", "-1", "0x10", str(paging.MAX_KEY + 1), "9" * 20):
        with pytest.raises(paging.BadMarker):
            paging.parse_key(bad, param="before")


def test_newest_first_pages_go_below_the_marker() -> None:
    request = RequestFactory().get("/", {"before": "5", "q": "x"})
    rows = [factories.make_human() for _ in range(3)]
    from governance.models import Human

    page = paging.page_newest_first(request, Human.objects.filter(pk__in=[h.pk for h in rows]))
    assert [h.pk for h in page.rows] == sorted((h.pk for h in rows if h.pk < 5), reverse=True)
    assert page.paged and page.first_query == "q=x"


def test_day_range_is_whole_utc_days_and_the_last_day_has_no_end() -> None:
    start, end = paging.day_range(date(2026, 3, 1), date(2026, 3, 2))
    assert (start, end) == (datetime(2026, 3, 1, tzinfo=UTC), datetime(2026, 3, 3, tzinfo=UTC))
    assert paging.day_range(None, date.max) == (None, None)
    assert paging.day_range(date.min, None) == (datetime(1, 1, 1, tzinfo=UTC), None)
