"""Key hygiene: stale keys and keys due for rotation flagged under a frozen clock, stale keys revoked only
when the setting says so; revoking all of an agent's keys; the leaked-key result panel."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import time_machine
from django.contrib.auth.models import User
from django.test import Client
from django.urls import reverse

from audit.models import AuditEvent
from governance import selectors, services, tasks
from governance.models import AgentKey, DelegationToken
from tests.factories import (
    SYSTEM,
    make_admin,
    make_agent,
    make_api_token,
    make_chain,
    make_chain_tokens,
    make_key,
)

pytestmark = pytest.mark.django_db

START = datetime(2031, 1, 1, 9, 0, tzinfo=UTC)


@pytest.fixture
def hygiene(settings: Any) -> Any:
    settings.CUSTOS_KEY_STALE_DAYS = 30
    settings.CUSTOS_KEY_MAX_AGE = timedelta(days=90)
    settings.CUSTOS_KEY_MAX_TTL = timedelta(days=365)
    settings.CUSTOS_KEY_AUTO_REVOKE_STALE = False
    return settings


def _keys() -> dict[str, AgentKey]:
    """At START: a key used yesterday, one never used, one last used long ago; all valid for a year."""
    with time_machine.travel(START, tick=False):
        agent = make_agent()
        keys = {
            name: make_key(agent, name=name, expires_at=START + timedelta(days=300))[0]
            for name in ("busy", "never", "idle")
        }
    AgentKey.objects.filter(pk=keys["idle"].pk).update(last_used_at=START + timedelta(days=1))
    return keys


def _flags_at(moment: datetime) -> dict[str, list[str]]:
    return {key.name: selectors.key_flags(key, moment) for key in AgentKey.objects.all()}


def test_keys_unused_for_the_stale_period_are_flagged_and_old_ones_marked_for_rotation(hygiene: Any) -> None:
    keys = _keys()
    day_40 = START + timedelta(days=40)
    AgentKey.objects.filter(pk=keys["busy"].pk).update(last_used_at=day_40 - timedelta(days=1))

    assert _flags_at(START + timedelta(days=29)) == {"busy": [], "never": [], "idle": []}
    assert _flags_at(day_40) == {"busy": [], "never": ["stale"], "idle": ["stale"]}
    assert _flags_at(START + timedelta(days=91)) == {
        "busy": ["stale", "rotate"],
        "never": ["stale", "rotate"],
        "idle": ["stale", "rotate"],
    }
    assert set(selectors.flagged_keys(day_40).values_list("name", flat=True)) == {"never", "idle"}
    services.agentkey_revoke(actor=SYSTEM, key=keys["never"], reason="retired")
    assert _flags_at(day_40)["never"] == []


def test_the_hygiene_job_only_reports_stale_keys_unless_told_to_revoke_them(hygiene: Any) -> None:
    keys = _keys()
    AgentKey.objects.filter(pk=keys["busy"].pk).update(last_used_at=START + timedelta(days=39))

    with time_machine.travel(START + timedelta(days=40), tick=False):
        counts = tasks.key_hygiene()

    assert counts == {"stale": 2, "rotate": 0, "revoked": 0}
    assert not AgentKey.objects.filter(revoked_at__isnull=False).exists()
    assert not AuditEvent.objects.filter(action="agentkey.revoke").exists()

    hygiene.CUSTOS_KEY_AUTO_REVOKE_STALE = True
    with time_machine.travel(START + timedelta(days=40), tick=False):
        counts = tasks.key_hygiene()
        again = tasks.key_hygiene()

    assert counts["revoked"] == 2 and again == {"stale": 0, "rotate": 0, "revoked": 0}
    revoked = {k.name: k.revoked_reason for k in AgentKey.objects.filter(revoked_at__isnull=False)}
    assert revoked == {"never": "stale: unused 40 days", "idle": "stale: unused 39 days"}
    assert AuditEvent.objects.filter(action="agentkey.revoke").count() == 2
    assert AgentKey.objects.get(pk=keys["busy"].pk).revoked_at is None


def test_the_hygiene_job_runs_daily_from_the_beat_schedule() -> None:
    from config.celery import app

    entries = [e for e in app.conf.beat_schedule.values() if e["task"] == "governance.tasks.key_hygiene"]
    assert len(entries) == 1


def test_the_agent_page_shows_the_flags_and_the_sponsor_reminder(hygiene: Any, admin_user: User) -> None:
    keys = _keys()

    with time_machine.travel(START + timedelta(days=95), tick=False):
        client = Client()
        client.force_login(admin_user)
        page = client.get(reverse("console:agent", args=[keys["busy"].agent_id])).content.decode()

    assert page.count(">stale</span>") == 3 and page.count(">rotate</span>") == 3
    assert 'id="rotation-reminders"' in page


# --- Revoke all ------------------------------------------------------------------------------


def test_revoke_all_revokes_every_key_in_force_one_event_each_with_the_reason() -> None:
    agent = make_agent()
    live = [make_key(agent)[0] for _ in range(3)]
    services.agentkey_revoke(actor=SYSTEM, key=live[0], reason="earlier")

    revoked = services.agentkey_revoke_all(actor=SYSTEM, agent=agent, reason="suspected compromise")

    assert {k.pk for k in revoked} == {live[1].pk, live[2].pk}
    events = AuditEvent.objects.filter(action="agentkey.revoke").order_by("id")
    assert [e.context["reason"] for e in events] == ["earlier", "suspected compromise", "suspected compromise"]
    assert not AgentKey.objects.active().filter(agent=agent).exists()


def test_an_admin_revokes_all_keys_from_the_page_and_the_api(admin_user: User) -> None:
    agent = make_agent()
    make_key(agent)
    make_key(agent)
    client = Client()
    client.force_login(admin_user)

    page = client.get(reverse("console:agent", args=[agent.pk])).content.decode()
    assert "Revoke all keys" in page
    client.post(reverse("console:agent_keys_revoke_all", args=[agent.pk]), {"reason": "drill"})
    assert not AgentKey.objects.active().filter(agent=agent).exists()

    make_key(agent)
    api = Client(headers={"Authorization": f"Bearer {make_api_token(make_admin())}"})
    body = api.post(
        f"/api/v1/agents/{agent.pk}/keys/revoke-all/", {"reason": "api drill"}, content_type="application/json"
    ).json()
    assert len(body["revoked"]) == 1 and body["revoked"][0]["revoked_reason"] == "api drill"


# --- Leaked key --------------------------------------------------------------------------------


def test_reporting_a_leaked_key_shows_what_it_cut_and_what_remains(admin_user: User) -> None:
    chain = make_chain(depth=2)
    make_chain_tokens(chain)
    top = chain["agents"][0]
    key = AgentKey.objects.filter(agent=top).get()
    client = Client()
    client.force_login(admin_user)

    response = client.post(
        reverse("console:key_revoke", args=[key.pk]), {"leaked": "1", "reason": "pasted in a public gist"}, follow=True
    )
    page = response.content.decode()

    key.refresh_from_db()
    assert key.leaked and key.revoked_reason == "pasted in a public gist"
    assert 'id="leak-report"' in page
    # Its own token and the sub-agent's token derived from it.
    assert DelegationToken.objects.filter(revoked_at__isnull=False).count() == 2
    assert "<strong>2</strong> delegation tokens" in page
    assert "A review item is opened for" in page
    assert "weighted score" in page
    # Shown once: the next visit has no panel.
    again = client.get(reverse("console:agent", args=[top.pk])).content.decode()
    assert 'id="leak-report"' not in again
