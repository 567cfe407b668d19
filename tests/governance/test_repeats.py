"""Amplification: a check whose credential identifies no agent must not let its sender fill the audit
log. Per source and window the first denial of each kind is recorded in full, the repeats are counted
into one summary event, and past the limit the source gets 429; agents that identify themselves are
never aggregated or throttled. Real Redis (the suite's cache) and real PostgreSQL throughout."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import time_machine
from django.test import Client, override_settings

from audit import sealer
from audit.models import AuditEvent
from audit.verification import verify_chain
from governance import repeats, tasks
from tests.factories import make_chain, make_chain_tokens

pytestmark = pytest.mark.django_db

# Well inside a one-minute window, so nothing here straddles a window's end by accident.
START = datetime(2026, 11, 30, 12, 0, 5, tzinfo=UTC)
GARBAGE = "not-a-credential"


@pytest.fixture
def clock() -> Iterator[Any]:
    with time_machine.travel(START, tick=False) as traveller:
        yield traveller


def check(credential: str, address: str = "203.0.113.7", resource: str = "crm") -> Any:
    return Client(REMOTE_ADDR=address).post(
        "/api/v1/check",
        {"action": "read", "resource": resource, "context": {"intent": "probe"}},
        content_type="application/json",
        HTTP_AUTHORIZATION=f"Bearer {credential}",
    )


def events(action: str) -> list[AuditEvent]:
    return list(AuditEvent.objects.filter(action=action).order_by("id"))


# --- Sources -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("address", "source"),
    [
        ("203.0.113.7", "203.0.113.7"),
        ("2001:db8:1:2:aaaa::1", "2001:db8:1:2::/64"),
        ("2001:db8:1:2:ffff:ffff:ffff:ffff", "2001:db8:1:2::/64"),  # same host's /64: one source
        ("::ffff:198.51.100.4", "198.51.100.4"),
        ("", "unknown"),
        ("not an address", "unknown"),
    ],
)
def test_a_source_is_the_address_and_an_ipv6_one_its_64(address: str, source: str) -> None:
    assert repeats.source_of(address) == source


# --- Aggregation --------------------------------------------------------------------------------------


def test_repeats_of_a_garbage_credential_are_answered_and_counted_not_each_recorded(clock: Any) -> None:
    answers = [check(GARBAGE) for _ in range(6)]
    assert {a.status_code for a in answers} == {200}
    bodies = [a.json() for a in answers]
    assert {(b["decision"], b["reason"]) for b in bodies} == {("deny", "credential_invalid")}
    [first] = events("check.deny")
    # Every answer names the decision that was recorded, which stands for the repeats.
    assert {b["decision_id"] for b in bodies} == {first.digest}
    assert first.context["source"] == "203.0.113.7" and first.context["intent"] == "probe"

    clock.move_to(START + timedelta(minutes=1, seconds=10))  # the window has ended and settled
    assert tasks.flush_repeats() == 1
    [summary] = events(repeats.REPEATED)
    assert summary.context["repeats"] == 5
    assert summary.context["first_decision_id"] == first.digest
    assert summary.context["source"] == "203.0.113.7"
    assert summary.context["reason"] == "credential_invalid"
    assert summary.context["window_start"] == "2026-11-30T12:00:00+00:00"
    assert summary.context["window_end"] == "2026-11-30T12:01:00+00:00"
    assert summary.target_label == "203.0.113.7"
    assert tasks.flush_repeats() == 0, "a summary is written once"
    assert len(events(repeats.REPEATED)) == 1


def test_each_source_reason_and_window_is_recorded_once_in_full(clock: Any) -> None:
    chain = make_chain(depth=1)
    token = make_chain_tokens(chain)["tokens"][0]
    forged = token[:-4] + ("AAAA" if not token.endswith("AAAA") else "BBBB")
    answers = []
    for _ in range(3):
        answers.append(check(forged))  # a token whose signature does not hold
        answers.append(check(GARBAGE))  # not a token at all: the same kind of denial
        check("ck_0123456789_unknownsecret")  # an agent key nobody holds: another kind
        check(forged, address="198.51.100.9")  # another source
    recorded = events("check.deny")
    assert len(recorded) == 3
    assert {(e.context["source"], e.context["credential"]["kind"]) for e in recorded} == {
        ("203.0.113.7", "delegation_token"),
        ("203.0.113.7", "agent_key"),
        ("198.51.100.9", "delegation_token"),
    }
    # A repeat says what was wrong with it, and that it was counted with the recorded one it names.
    garbage = answers[1].json()
    assert "not a compact JWS" in garbage["detail"] and "counted" in garbage["detail"]
    assert garbage["decision_id"] == answers[0].json()["decision_id"]
    assert "Signature verification failed" in recorded[0].context["detail"]
    clock.move_to(START + timedelta(minutes=1))  # the next window: a new first, in full
    again = check(GARBAGE)
    assert again.json()["decision_id"] not in {e.digest for e in recorded}
    assert len(events("check.deny")) == 4


def test_a_source_coming_back_later_writes_its_earlier_windows_summary_itself(clock: Any) -> None:
    for _ in range(4):
        check(GARBAGE)
    clock.move_to(START + timedelta(minutes=3))
    check(GARBAGE)  # first of a new window: the old window's summary is owed and written now
    [summary] = events(repeats.REPEATED)
    assert summary.context["repeats"] == 3
    assert summary.context["window_start"] == "2026-11-30T12:00:00+00:00"


def test_an_identified_agent_is_never_aggregated_or_throttled(clock: Any, settings: Any) -> None:
    settings.CUSTOS_CHECK_INVALID_LIMIT = 2
    chain = make_chain(depth=1)
    token = make_chain_tokens(chain)["tokens"][0]
    for _ in range(3):
        assert check(GARBAGE).status_code in (200, 429)
    # From the same address (a shared NAT): every check of the real agent is answered and recorded.
    answers = [check(token, resource=chain["resource"].name) for _ in range(4)]
    answers += [check(token, resource="elsewhere") for _ in range(4)]
    assert [a.status_code for a in answers] == [200] * 8
    assert [a.json()["decision"] for a in answers] == ["allow"] * 4 + ["deny"] * 4
    assert len({a.json()["decision_id"] for a in answers}) == 8
    assert len(events("check.allow")) == 4
    assert len([e for e in events("check.deny") if e.actor_id]) == 4


# --- Throttling ---------------------------------------------------------------------------------------


def test_past_the_limit_a_source_gets_429_and_the_log_one_event_saying_so(clock: Any, settings: Any) -> None:
    settings.CUSTOS_CHECK_INVALID_LIMIT = 5
    answers = [check(GARBAGE) for _ in range(12)]
    assert [a.status_code for a in answers] == [200] * 5 + [429] * 7
    refused = answers[-1]
    assert refused.json()["code"] == "rate_limited" and refused.json()["decision"] == "deny"
    assert 1 <= int(refused["Retry-After"]) <= 55  # until this window ends
    assert check(GARBAGE, address="198.51.100.9").status_code == 200  # other sources are not held up
    clock.move_to(START + timedelta(minutes=1, seconds=10))
    assert check(GARBAGE).status_code == 200, "a new window starts afresh"
    tasks.flush_repeats()
    [throttled] = events(repeats.THROTTLED)
    assert throttled.context["refused"] == 7 and throttled.context["limit"] == 5
    assert throttled.context["source"] == "203.0.113.7"
    [summary] = [e for e in events(repeats.REPEATED) if e.context["source"] == "203.0.113.7"]
    assert summary.context["repeats"] == 4  # the five answered: one recorded, four counted
    # Thirteen requests from this source, two recorded in full: the first of each window.
    assert len([e for e in events("check.deny") if e.context.get("source") == "203.0.113.7"]) == 2


def test_summaries_are_sealed_into_a_chain_that_verifies(clock: Any) -> None:
    for address in ("203.0.113.7", "198.51.100.9"):
        for _ in range(3):
            check(GARBAGE, address=address)
    clock.move_to(START + timedelta(minutes=1, seconds=10))
    assert tasks.flush_repeats() == 2
    sealer.seal_pending()
    assert verify_chain(full=True).ok


# --- Without the cache ----------------------------------------------------------------------------------


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_without_the_cache_every_denial_is_recorded_in_full_and_still_denied(clock: Any) -> None:
    unreachable = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": f"redis://127.0.0.1:{_closed_port()}/0",
            "OPTIONS": {"socket_connect_timeout": 0.2, "socket_timeout": 0.2},
        }
    }
    with override_settings(CACHES=unreachable):
        answers = [check(GARBAGE) for _ in range(3)]
    assert [(a.status_code, a.json()["decision"]) for a in answers] == [(200, "deny")] * 3
    assert len({a.json()["decision_id"] for a in answers}) == 3
    assert len(events("check.deny")) == 3
