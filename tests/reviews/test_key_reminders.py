"""Rotation reminders to sponsors: keys expiring within the notice, past the maximum age or stale are told
to the agent's sponsor once per key and reason, one notification (and email) per sponsor per run, in a
constant number of queries; keys out of force are not."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import time_machine
from django.core import mail
from django.test import Client
from django.urls import reverse

from audit.models import AuditEvent
from governance import services as gov
from governance.models import Agent, AgentKey, Human
from reviews import services, tasks
from reviews.models import KeyReminder, Notification, NotificationKind
from reviews.services import key_reminders
from tests.factories import SYSTEM, make_agent, make_human, make_key, make_reviewer

pytestmark = pytest.mark.django_db

START = datetime(2031, 3, 1, 9, 0, tzinfo=UTC)


@pytest.fixture(autouse=True)
def hygiene(settings: Any) -> Any:
    settings.CUSTOS_KEY_STALE_DAYS = 30
    settings.CUSTOS_KEY_MAX_AGE = timedelta(days=90)
    settings.CUSTOS_KEY_MAX_TTL = timedelta(days=365)
    settings.CUSTOS_KEY_ROTATION_NOTICE = timedelta(days=14)
    settings.CUSTOS_ISSUER = "https://custos.example.test"
    return settings


def _sponsor(*, console: bool = True) -> Human:
    return make_human(user=make_reviewer() if console else None)


def _key(agent: Agent, *, at: datetime = START, days: int, **kwargs: Any) -> AgentKey:
    """A key issued at ``at`` that expires ``days`` later."""
    with time_machine.travel(at, tick=False):
        return make_key(agent, expires_at=at + timedelta(days=days), **kwargs)[0]


def _remind(at: datetime = START) -> dict[str, int]:
    with time_machine.travel(at, tick=False):
        return services.key_rotation_remind_due()


def _reasons() -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for r in KeyReminder.objects.select_related("key").order_by("key__name", "reason"):
        found.setdefault(r.key.name, []).append(r.reason)
    return found


def test_a_key_expiring_within_the_notice_reminds_its_sponsor_once_by_console_and_email() -> None:
    sponsor = _sponsor()
    agent = make_agent(sponsor=sponsor, name="invoice-bot")
    key = _key(agent, days=10, name="soon")
    _key(agent, days=20, name="later")  # beyond the 14-day notice

    assert _remind() == {"keys": 1, "reminders": 1, "notifications": 1}
    note = Notification.objects.get()
    assert note.user == sponsor.user and note.kind == NotificationKind.KEY_ROTATION and note.items == 1
    assert note.campaign is None and note.read_at is None
    assert _reasons() == {"soon": ["expiring"]}
    assert services.notifications_send() == 1
    assert len(mail.outbox) == 1
    email = mail.outbox[0]
    assert email.to == [sponsor.email]  # the login has no address of its own: the sponsor's
    assert f"invoice-bot: key {key.display} (soon) expires 2031-03-11 09:00 UTC (in 10 days)" in email.body
    assert f"https://custos.example.test/agents/{agent.pk}/" in email.body
    assert "this key of an agent you sponsor needs attention" in email.body
    assert "keeps working for 1 hour" in email.body and "review queue" not in email.body
    event = AuditEvent.objects.get(action="key.rotation_remind")
    assert event.target_type == "agentkey" and event.target_id == str(key.pk)
    assert event.context["reasons"] == ["expiring"] and event.context["sponsor"] == sponsor.pk
    assert event.context["notification"] == note.pk

    # A second run (the next day, say) sends nothing new.
    assert _remind(START + timedelta(days=1)) == {"keys": 0, "reminders": 0, "notifications": 0}
    assert services.notifications_send() == 0
    assert Notification.objects.count() == 1 and len(mail.outbox) == 1
    assert AuditEvent.objects.filter(action="key.rotation_remind").count() == 1


def test_keys_past_the_maximum_age_and_stale_keys_are_included_with_their_reason() -> None:
    agent = make_agent(sponsor=_sponsor(), name="ledger-bot")
    old = _key(agent, days=300, name="old")  # used lately, but issued 91 days before the run
    AgentKey.objects.filter(pk=old.pk).update(last_used_at=START + timedelta(days=90))
    _key(agent, at=START + timedelta(days=50), days=200, name="idle")  # never used for 41 days
    fresh = _key(agent, at=START + timedelta(days=80), days=200, name="fresh")
    AgentKey.objects.filter(pk=fresh.pk).update(last_used_at=START + timedelta(days=90))

    assert _remind(START + timedelta(days=91)) == {"keys": 2, "reminders": 2, "notifications": 1}
    assert _reasons() == {"idle": ["stale"], "old": ["rotate"]}
    body = Notification.objects.get().body
    assert "key" in body and "(old) 91 days old, past the maximum age of 90 days: rotate it" in body
    assert "(idle) never used since it was issued 41 days ago" in body and "fresh" not in body
    events = AuditEvent.objects.filter(action="key.rotation_remind")
    assert sorted(e.context["reasons"] for e in events) == [["rotate"], ["stale"]]

    # A reason that newly applies to a key already reminded for another is told; the old ones are not.
    assert _remind(START + timedelta(days=121)) == {"keys": 2, "reminders": 2, "notifications": 1}
    assert _reasons() == {"fresh": ["stale"], "idle": ["stale"], "old": ["rotate", "stale"]}


def test_revoked_and_expired_keys_and_suspended_agents_are_not_reminded() -> None:
    agent = make_agent(sponsor=_sponsor())
    revoked = _key(agent, days=5, name="revoked")
    gov.agentkey_revoke(actor=SYSTEM, key=revoked, reason="retired")
    _key(agent, days=1, name="expired")  # expired by the run, two days later
    paused = make_agent(sponsor=_sponsor())
    _key(paused, days=10, name="paused")
    gov.agent_suspend(actor=SYSTEM, agent=paused, reason="investigating")

    assert _remind(START + timedelta(days=2)) == {"keys": 0, "reminders": 0, "notifications": 0}
    assert not Notification.objects.exists() and not KeyReminder.objects.exists()


def test_a_sponsor_with_two_agents_gets_one_notification_listing_both() -> None:
    sponsor = _sponsor()
    first = make_agent(sponsor=sponsor, name="first-bot")
    second = make_agent(sponsor=sponsor, name="second-bot")
    _key(first, days=3, name="a")
    _key(second, days=12, name="b")
    other = _sponsor()
    _key(make_agent(sponsor=other, name="third-bot"), days=7, name="c")

    assert _remind() == {"keys": 3, "reminders": 3, "notifications": 2}
    mine = Notification.objects.get(user=sponsor.user)
    assert mine.items == 2 and mine.subject == "2 agent keys to rotate or retire"
    for agent in (first, second):
        assert f"- {agent.name}: key" in mine.body
        assert f"https://custos.example.test{agent.get_absolute_url()}" in mine.body
    assert "third-bot" not in mine.body
    assert Notification.objects.get(user=other.user).items == 1
    assert services.notifications_send() == 2
    assert sorted(m.to[0] for m in mail.outbox) == sorted([sponsor.email, other.email])


def test_the_time_left_is_told_in_hours_on_the_last_day_and_rounded_to_days_before() -> None:
    agent = make_agent(sponsor=_sponsor())
    _key(agent, days=1, name="last-day")
    run = START + timedelta(hours=19)
    _key(agent, at=run - timedelta(minutes=1), days=9, name="nine")  # 8 days 23:59 left at the run

    _remind(run)
    details = dict(KeyReminder.objects.values_list("key__name", "detail"))
    assert details == {
        "last-day": "expires 2031-03-02 09:00 UTC (in 5 hours)",
        "nine": "expires 2031-03-11 03:59 UTC (in 9 days)",
    }


def test_a_sponsor_without_a_console_login_is_emailed_only() -> None:
    sponsor = _sponsor(console=False)
    _key(make_agent(sponsor=sponsor, name="mailer-bot"), days=4)

    assert _remind()["notifications"] == 1
    note = Notification.objects.get()
    assert note.user is None and note.email == sponsor.email
    assert services.notifications_send() == 1
    assert mail.outbox[0].to == [sponsor.email] and "mailer-bot" in mail.outbox[0].body


def test_the_sponsor_sees_the_reminder_with_links_to_the_agents_and_the_badge_counts_it() -> None:
    sponsor = _sponsor()
    agent = make_agent(sponsor=sponsor, name="portal-bot")
    key = _key(agent, days=9)
    _remind()
    assert sponsor.user is not None
    client = Client()
    client.force_login(sponsor.user)
    page = client.get(reverse("console:review_notifications"))
    assert page.status_code == 200
    assert f'<a href="{agent.get_absolute_url()}">portal-bot</a> <code>{key.display}</code>' in page.text
    assert "1 agent key to rotate or retire" in page.text
    badge = client.get(reverse("console:review_notifications_badge"))
    assert b"1 pending items and unread notifications" in badge.content


def test_the_query_count_does_not_grow_with_keys_or_sponsors(django_assert_num_queries: Any) -> None:
    def batch(sponsors: int, keys_each: int, at: datetime) -> None:
        for _ in range(sponsors):
            agent = make_agent(sponsor=_sponsor())
            for _ in range(keys_each):
                _key(agent, at=at, days=10)

    batch(1, 2, START)
    # The keys (with the reasons already reminded), the notifications, the reminders, the audit events
    # (two statements: their ids, then the events), and two savepoints (the service's and the bulk
    # append's), each set and released.
    with django_assert_num_queries(9):
        assert _remind()["keys"] == 2
    batch(4, 5, START + timedelta(days=30))
    with django_assert_num_queries(9):
        assert _remind(START + timedelta(days=30))["keys"] == 20
    with django_assert_num_queries(3):  # nothing new: the select, in its savepoint
        assert _remind(START + timedelta(days=30))["keys"] == 0


def test_two_runs_at_once_remind_once(monkeypatch: pytest.MonkeyPatch) -> None:
    _key(make_agent(sponsor=_sponsor()), days=10)
    with time_machine.travel(START, tick=False):
        read_before_the_other_committed = key_reminders._due(START, 1000)
    assert _remind()["keys"] == 1
    monkeypatch.setattr(key_reminders, "_due", lambda now, batch_size: read_before_the_other_committed)
    assert _remind() == {"keys": 0, "reminders": 0, "notifications": 0}
    assert Notification.objects.count() == 1 and KeyReminder.objects.count() == 1
    assert AuditEvent.objects.filter(action="key.rotation_remind").count() == 1


def test_the_daily_task_works_through_every_batch() -> None:
    sponsor = _sponsor()
    for _ in range(3):
        _key(make_agent(sponsor=sponsor), days=10)
    with time_machine.travel(START, tick=False):
        assert tasks.remind_key_rotation(batch_size=2) == {"keys": 3, "reminders": 3, "notifications": 2}
    assert KeyReminder.objects.count() == 3
