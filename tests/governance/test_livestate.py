"""The state a check decides on may be kept between checks (``governance.livestate``), and a decision on
it stands only if nothing the check reads has changed by the time it is recorded.

Held here on real PostgreSQL: a repeated check is one statement; every change to what the check reads
moves the state version (database triggers, whoever writes), use-only columns move nothing; a change
made behind the services' back by another connection is honoured by the very next check; a grant's
start or end ends what was kept of it; and every decision is recorded exactly once.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

import psycopg
import pytest
import time_machine
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from audit.models import AuditEvent
from governance import livestate, runtime
from governance.models import Grant, StateVersion
from tests.factories import make_chain, make_chain_tokens, make_grant, make_key

pytestmark = pytest.mark.django_db


def version() -> int:
    return StateVersion.objects.get(pk=1).version


def decide(credential: str, resource: str, **context: str) -> runtime.CheckResult:
    return runtime.check(credential=credential, action="read", resource=resource, context=context)


@pytest.fixture
def world() -> dict[str, Any]:
    chain = make_chain(depth=2)
    chain.update(make_chain_tokens(chain))
    return chain


# --- One statement --------------------------------------------------------------------------------------


def test_a_repeated_check_is_one_statement_and_each_is_recorded(world: dict[str, Any]) -> None:
    token, resource = world["tokens"][1], world["resource"].name
    with CaptureQueriesContext(connection) as first:
        assert decide(token, resource).outcome.allowed
    with CaptureQueriesContext(connection) as again:
        answers = [decide(token, resource, request_id=f"r{n}") for n in range(5)]
    assert len(first) == 2  # the state with its version, then the record
    assert len(again) == 5, [q["sql"][:80] for q in again.captured_queries]  # the conditional record only
    assert all(a.outcome.allowed for a in answers)
    recorded = AuditEvent.objects.filter(action="check.allow", context__request_id__startswith="r")
    assert sorted(e.digest for e in recorded) == sorted(a.decision_id for a in answers)


def test_an_agent_key_is_kept_too_and_a_wrong_secret_is_still_refused(world: dict[str, Any]) -> None:
    agent = world["agents"][0]
    make_grant(agent, world["resource"], "read")
    key = make_key(agent)[1]
    assert decide(key, world["resource"].name).outcome.allowed
    with CaptureQueriesContext(connection) as again:
        assert decide(key, world["resource"].name).outcome.allowed
    assert len(again) == 1
    forged = key[: key.rindex("_") + 1] + "x" * (len(key) - key.rindex("_") - 1)
    refused = decide(forged, world["resource"].name)
    assert not refused.outcome.allowed and refused.outcome.reason == "credential_invalid"
    assert AuditEvent.objects.get(digest=refused.decision_id).actor_id == ""


def test_without_the_setting_every_check_reads_the_state_afresh(world: dict[str, Any], settings: Any) -> None:
    settings.CUSTOS_CHECK_STATE_CACHE = False
    token, resource = world["tokens"][1], world["resource"].name
    decide(token, resource)
    with CaptureQueriesContext(connection) as again:
        assert decide(token, resource).outcome.allowed
    assert len(again) == 2


# --- The version --------------------------------------------------------------------------------------

CHANGES: dict[str, str] = {
    "human": "UPDATE governance_human SET name = name || ' (renamed)'",
    "agent": "UPDATE governance_agent SET name = name || '-renamed'",
    "resource": "UPDATE governance_resource SET description = description || '.'",
    "grant": "UPDATE governance_grant SET expires_at = expires_at",
    "delegation": "UPDATE governance_delegation SET scopes = scopes",
    "agent key": "UPDATE governance_agentkey SET expires_at = expires_at + interval '1 second'",
    "delegation token": "UPDATE governance_delegationtoken SET audience = audience",
    "a deleted token": "DELETE FROM governance_delegationtoken WHERE id = (SELECT max(id) FROM governance_delegationtoken)",
}


@pytest.mark.parametrize("change", CHANGES, ids=list(CHANGES))
def test_any_write_to_what_the_check_reads_moves_the_version(world: dict[str, Any], change: str) -> None:
    before = version()
    with connection.cursor() as cursor:
        cursor.execute(CHANGES[change])
        assert cursor.rowcount > 0
    assert version() > before


def test_a_new_grant_moves_the_version(world: dict[str, Any]) -> None:
    before = version()
    make_grant(world["agents"][0], world["resource"], "read")
    assert version() > before


@pytest.mark.parametrize(
    "sql",
    [
        "UPDATE governance_agentkey SET last_used_at = now()",
        "UPDATE governance_agent SET last_activity_at = now()",
    ],
    ids=["a key's last use", "an agent's last activity"],
)
def test_recording_use_moves_nothing(world: dict[str, Any], sql: str) -> None:
    before = version()
    with connection.cursor() as cursor:
        cursor.execute(sql)
        assert cursor.rowcount > 0
    assert version() == before


# --- Changes honoured on the very next check -------------------------------------------------------------


def other_connection() -> psycopg.Connection[Any]:
    db = connection.settings_dict
    return psycopg.connect(
        dbname=db["NAME"], user=db["USER"], host=db["HOST"] or "127.0.0.1", port=db["PORT"] or 5432, autocommit=True
    )


BEHIND_THE_BACK: dict[str, Callable[[dict[str, Any]], tuple[str, list[Any]]]] = {
    "token revoked": lambda w: ("UPDATE governance_delegationtoken SET revoked_at = now()", []),
    "delegation revoked": lambda w: (
        "UPDATE governance_delegation SET status = 'revoked', revoked_at = now() WHERE id = %s",
        [w["links"][0].pk],
    ),
    "agent suspended": lambda w: (
        "UPDATE governance_agent SET status = 'suspended' WHERE id = %s",
        [w["agents"][0].pk],
    ),
    "human left": lambda w: ("UPDATE governance_human SET status = 'departed' WHERE id = %s", [w["human"].pk]),
    "grant revoked": lambda w: (
        "UPDATE governance_grant SET status = 'revoked', revoked_at = now() WHERE holder_human_id = %s",
        [w["human"].pk],
    ),
    "resource renamed": lambda w: (
        "UPDATE governance_resource SET name = name || '.old' WHERE id = %s",
        [w["resource"].pk],
    ),
}


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("change", BEHIND_THE_BACK, ids=list(BEHIND_THE_BACK))
def test_a_change_from_another_connection_is_honoured_by_the_next_check(change: str) -> None:
    world = make_chain(depth=2)
    world.update(make_chain_tokens(world))
    token, resource = world["tokens"][1], world["resource"].name
    assert decide(token, resource).outcome.allowed
    with CaptureQueriesContext(connection) as kept:
        assert decide(token, resource).outcome.allowed
    assert len(kept) == 1, "the second check decided on the state kept from the first"
    sql, params = BEHIND_THE_BACK[change](world)
    with other_connection() as conn:
        assert conn.execute(sql, params).rowcount > 0
    after = decide(token, resource, request_id="after")
    assert not after.outcome.allowed, after.outcome
    # Recorded once, as the denial it is: the conditional record of the kept allow wrote nothing.
    recorded = AuditEvent.objects.filter(context__request_id="after")
    assert [(e.action, e.digest) for e in recorded] == [("check.deny", after.decision_id)]


def test_a_revocation_through_the_services_is_honoured_by_the_next_check(world: dict[str, Any]) -> None:
    from governance import services
    from tests.factories import SYSTEM

    token, resource = world["tokens"][1], world["resource"].name
    for _ in range(2):
        assert decide(token, resource).outcome.allowed
    services.delegation_revoke(actor=SYSTEM, delegation=world["links"][1], reason="done")
    assert decide(token, resource).outcome.reason == "delegation_revoked"


# --- Time ---------------------------------------------------------------------------------------------


def test_a_grant_that_ends_ends_what_was_kept_of_it(world: dict[str, Any]) -> None:
    start = timezone.now()
    Grant.objects.filter(holder_human=world["human"]).update(expires_at=start + timedelta(seconds=30))
    token, resource = world["tokens"][1], world["resource"].name
    with time_machine.travel(start, tick=False) as clock:
        assert decide(token, resource).outcome.allowed
        assert decide(token, resource).outcome.allowed  # kept
        clock.move_to(start + timedelta(seconds=31))
        late = decide(token, resource)
    assert not late.outcome.allowed and late.outcome.reason == "delegator_lacks_grant", late.outcome


def test_a_grant_that_starts_later_is_held_from_then(world: dict[str, Any]) -> None:
    start = timezone.now()
    Grant.objects.filter(holder_human=world["human"]).update(valid_from=start + timedelta(seconds=30))
    token, resource = world["tokens"][1], world["resource"].name
    with time_machine.travel(start, tick=False) as clock:
        assert not decide(token, resource).outcome.allowed
        assert not decide(token, resource).outcome.allowed  # kept
        clock.move_to(start + timedelta(seconds=31))
        assert decide(token, resource).outcome.allowed


# --- The store ----------------------------------------------------------------------------------------


def test_the_store_is_bounded_and_entries_age_out() -> None:
    from governance.chain import Versioned

    now = timezone.now()
    store = livestate.LiveState(size=3, ttl=60)
    for n in range(5):
        store.keep(n, Versioned(state=n, version=1, until=None))
    assert len(store) == 3 and store.get(0, now) is None and store.get(4, now) is not None
    store.keep("unversioned", Versioned(state="x", version=None, until=None))
    assert store.get("unversioned", now) is None, "a state with no version to confirm it by is not kept"
    aged = livestate.LiveState(size=3, ttl=0)
    aged.keep("k", Versioned(state="x", version=1, until=None))
    assert aged.get("k", now) is None
    store.forget()
    assert len(store) == 0
