"""``manage.py seed_demo``: the demo organisation is realistic, consistent with every invariant, carries
weeks of verifiable history (its agents' runtime decisions included), and a second run changes nothing.

Seeding takes a while, so the organisation is built once for the module inside a transaction that is
rolled back at the end (the audit log refuses DELETE and TRUNCATE, so nothing else could clean up).
The refusal tests come first, before that transaction exists.
"""

from __future__ import annotations

import io
import itertools
import re
import sys
from collections import Counter
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.core.management import CommandError, call_command
from django.db import transaction
from django.db.models import Q
from django.test import override_settings
from django.utils import timezone

from audit.models import AuditEvent, Seal
from audit.verification import verify_chain
from console import roles
from demo import catalogue, history, people
from governance import runtime, services
from governance.chain import Reason, delegation_chain, delegation_usability
from governance.models import (
    Agent,
    AgentKey,
    AgentStatus,
    Delegation,
    DelegationStatus,
    DelegationToken,
    DriftEvent,
    Grant,
    GrantSource,
    GrantStatus,
    Human,
    HumanStatus,
    Resource,
)
from tests import factories

pytestmark = [pytest.mark.django_db, pytest.mark.slow]


# --- Refusals (run before the module's organisation is built) ----------------------------------


def test_it_refuses_to_mix_the_demo_into_an_existing_organisation() -> None:
    factories.make_human(email="someone@elsewhere.test")
    with pytest.raises(CommandError, match=r"already holds an organisation \(1 humans\)"):
        call_command("seed_demo", stdout=io.StringIO())
    assert not Human.objects.filter(email__endswith=f"@{people.DOMAIN}").exists()


def test_it_refuses_when_recent_audit_history_would_fall_out_of_time_order() -> None:
    services.api_token_create(actor=factories.SYSTEM, user=factories.make_admin())
    before = AuditEvent.objects.count()
    with pytest.raises(CommandError, match="out of time order"):
        call_command("seed_demo", stdout=io.StringIO())
    assert AuditEvent.objects.count() == before


def test_without_time_machine_it_says_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "time_machine", None)  # as on a production install: the import fails
    with pytest.raises(CommandError, match=r"pip install -r requirements-demo\.txt"):
        call_command("seed_demo", stdout=io.StringIO())
    assert not Human.objects.exists()
    assert not AuditEvent.objects.exists()


def test_the_catalogue_is_consistent() -> None:
    catalogue.check_catalogue()  # raises on a sub-agent wider than its parent or a sponsor lacking a scope
    for family in catalogue.FAMILIES:
        for spec in family.spec.walk():
            for child in spec.children:
                assert set(child.scopes) < set(spec.scopes), (child.name, spec.name)


# --- The organisation ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def seeded(django_db_setup: Any, django_db_blocker: Any) -> Iterator[str]:
    # As the suite's autouse fixture does per test: PBKDF2's slowness tests nothing here.
    fast_hashing = override_settings(PASSWORD_HASHERS=["django.contrib.auth.hashers.MD5PasswordHasher"])
    with django_db_blocker.unblock(), transaction.atomic(), fast_hashing:
        out = io.StringIO()
        call_command("seed_demo", stdout=out)
        yield out.getvalue()
        transaction.set_rollback(True)


def _state() -> dict[str, Any]:
    return {
        "humans": Human.objects.count(),
        "resources": Resource.objects.count(),
        "agents": Agent.objects.count(),
        "grants": sorted(Counter(Grant.objects.values_list("status", flat=True)).items()),
        "delegations": sorted(Counter(Delegation.objects.values_list("status", flat=True)).items()),
        "keys": AgentKey.objects.count(),
        "revoked keys": AgentKey.objects.filter(revoked_at__isnull=False).count(),
        "users": User.objects.count(),
        "events": AuditEvent.objects.count(),
    }


def test_it_reports_what_it_made_and_how_to_log_in(seeded: str) -> None:
    assert "Seeded the Halyard Payments demo organisation" in seeded
    assert people.DEMO_PASSWORD in seeded
    for username in ("admin", "reviewer", "auditor"):
        assert f"  {username} " in seeded


def test_it_builds_a_company_with_a_real_reporting_line(seeded: str) -> None:
    humans = list(Human.objects.select_related("manager"))
    assert len(humans) >= 40
    assert all(h.email.endswith(f"@{people.DOMAIN}") and h.department and h.title for h in humans)
    ceos = [h for h in humans if h.manager is None]
    assert len(ceos) == 1
    assert len({h.department for h in humans}) >= 8

    def levels_below_the_top(human: Human) -> int:
        n = 0
        while human.manager is not None:
            human, n = human.manager, n + 1
        return n

    # CEO → VP → manager → staff
    assert max(levels_below_the_top(h) for h in humans) >= 3
    statuses = Counter(h.status for h in humans)
    assert statuses[HumanStatus.SUSPENDED] >= 1
    assert statuses[HumanStatus.LEFT] >= 2


def test_resources_are_a_mixed_catalogue_with_owners(seeded: str) -> None:
    resources = list(Resource.objects.select_related("owner"))
    assert len(resources) >= 25
    assert len({r.sensitivity for r in resources}) >= 3
    assert {r.kind for r in resources} == {"tool", "api", "dataset", "service"}
    assert all("." in r.name and r.actions and r.owner_id for r in resources)
    assert {"crm.contacts", "payments.refunds", "github.repos", "slack.messages", "warehouse.customers_pii"} <= {
        r.name for r in resources
    }


def test_humans_hold_the_access_their_jobs_need(seeded: str) -> None:
    active = Human.objects.filter(status=HumanStatus.ACTIVE)
    assert all(Grant.objects.active().filter(holder_human=h).exists() for h in active)
    leavers = Human.objects.filter(status=HumanStatus.LEFT)
    assert not Grant.objects.active().filter(holder_human__in=leavers).exists()


def test_agents_have_sponsors_tiers_and_chains_of_sub_agents(seeded: str) -> None:
    agents = Agent.objects.all()
    assert agents.count() >= 150
    assert not agents.filter(sponsor__isnull=True).exists()
    assert agents.filter(depth__gte=2).exists()
    assert agents.filter(status=AgentStatus.SUSPENDED).count() >= 3
    assert len(set(agents.values_list("risk_tier", flat=True))) >= 3
    # A sub-agent's depth follows its parent.
    for agent in agents.filter(parent__isnull=False).select_related("parent"):
        assert agent.parent is not None
        assert agent.depth == agent.parent.depth + 1


def test_every_delegation_link_is_attenuated_from_its_parent(seeded: str) -> None:
    links = list(Delegation.objects.select_related("parent", "delegate"))
    assert len(links) >= 150
    for link in links:
        parent = link.parent
        if parent is None:
            assert link.depth == 0
            assert link.expires_at <= link.created_at + timedelta(days=30)
            continue
        assert link.scope_set <= parent.scope_set, link.pk
        assert link.expires_at <= parent.expires_at, link.pk
        assert link.depth == parent.depth + 1
        assert link.max_depth <= parent.max_depth - 1
        assert link.root_human_id == parent.root_human_id
        assert link.delegate.parent_id == parent.delegate_id
        # The parent was in force when the child was made.
        assert parent.created_at <= link.created_at < parent.expires_at
        assert parent.revoked_at is None or parent.revoked_at >= link.created_at


def test_root_delegations_only_pass_on_what_the_human_held_at_the_time(seeded: str) -> None:
    for link in Delegation.objects.filter(parent__isnull=True).select_related("root_human"):
        at = link.created_at
        held = {
            f"{name}:{action}"
            for name, action in Grant.objects.filter(holder_human=link.root_human, valid_from__lte=at)
            .filter(Q(expires_at__isnull=True) | Q(expires_at__gt=at))
            .filter(Q(revoked_at__isnull=True) | Q(revoked_at__gt=at))
            .values_list("resource__name", "action")
        }
        assert link.scope_set <= held, link.pk


def test_a_chain_two_hops_deep_narrows_and_shortens_at_each_hop(seeded: str) -> None:
    deepest = Delegation.objects.filter(depth=2).order_by("id").first()
    assert deepest is not None
    chain = delegation_chain(deepest)
    assert [link.depth for link in chain] == [0, 1, 2]
    for parent, child in itertools.pairwise(chain):
        assert child.scope_set < parent.scope_set
        assert child.expires_at < parent.expires_at
    assert chain[0].delegate.depth == 0 and chain[2].delegate.depth == 2


def test_links_in_force_are_usable_or_fail_for_a_stated_reason(seeded: str) -> None:
    now = timezone.now()
    in_force = list(Delegation.objects.active(now))
    reasons = Counter(delegation_usability(link, at=now).reason for link in in_force)
    explained = {
        Reason.ALLOWED,
        Reason.AGENT_INACTIVE,
        Reason.SPONSOR_INACTIVE,
        Reason.HUMAN_INACTIVE,
        Reason.DELEGATOR_LACKS_GRANT,
        Reason.CHAIN_BROKEN,
    }
    assert set(reasons) <= explained, reasons
    assert reasons[Reason.ALLOWED] >= 100
    assert reasons[Reason.ALLOWED] >= 0.8 * len(in_force)
    usable_deep = [link for link in in_force if link.depth == 2 and delegation_usability(link, at=now).usable]
    assert usable_deep


def test_history_includes_expired_and_revoked_delegations(seeded: str) -> None:
    statuses = Counter(Delegation.objects.values_list("status", flat=True))
    assert statuses[DelegationStatus.EXPIRED] >= 20
    assert statuses[DelegationStatus.REVOKED] >= 10
    assert statuses[DelegationStatus.ACTIVE] >= 100
    # The sweep at seeding time left nothing past its expiry marked active.
    assert not Delegation.objects.expiring_before(timezone.now()).exists()


def test_agents_grants_always_expire_and_some_already_have(seeded: str) -> None:
    agent_grants = Grant.objects.filter(holder_agent__isnull=False)
    assert agent_grants.count() >= 20
    assert not agent_grants.filter(expires_at__isnull=True).exists()
    assert agent_grants.filter(status=GrantStatus.EXPIRED).exists()
    assert agent_grants.filter(source=GrantSource.JIT).exists()
    assert agent_grants.filter(source=GrantSource.RENEWAL).exists()
    assert Grant.objects.filter(status=GrantStatus.REVOKED).exists()


def test_keys_are_active_expired_and_revoked(seeded: str) -> None:
    now = timezone.now()
    statuses = Counter(key.status_at(now) for key in AgentKey.objects.all())
    assert statuses["active"] >= 50
    assert statuses["expired"] >= 1
    assert statuses["revoked"] >= 5
    assert not AgentKey.objects.filter(hashed="").exists()


def test_history_spans_weeks_in_time_order_and_verifies(seeded: str) -> None:
    events = list(
        Seal.objects.order_by("seq").values_list("seq", "event__occurred_at", "event__actor_kind", "event__action")
    )
    seqs = [e[0] for e in events]
    assert seqs == list(range(1, len(events) + 1)) and len(events) == AuditEvent.objects.count()
    times = [e[1] for e in events]
    assert all(a <= b for a, b in itertools.pairwise(times))
    assert times[-1] - times[0] >= timedelta(weeks=3)
    assert times[-1] <= timezone.now()
    assert {e[2] for e in events} == {"user", "agent", "system"}
    actions = {e[3] for e in events}
    assert {"agent.create", "delegation.create", "delegation.revoke", "delegation.expire", "agentkey.revoke"} <= actions
    result = verify_chain()
    assert result.ok, result
    assert result.checked == len(events)


def test_each_demo_role_has_a_console_user_linked_to_a_human(seeded: str) -> None:
    for username, role in (("admin", roles.ADMIN), ("reviewer", roles.REVIEWER), ("auditor", roles.AUDITOR)):
        user = User.objects.get(username=username)
        assert roles.roles_of(user) == {role}
        assert user.check_password(people.DEMO_PASSWORD)
        assert Human.objects.get(user=user).status == HumanStatus.ACTIVE


def test_the_reviewer_manages_people_who_sponsor_agents(seeded: str) -> None:
    reviewer = User.objects.get(username="reviewer")
    human = Human.objects.get(user=reviewer)
    assert human.reports.count() >= 4
    sponsored_by_reports = Agent.objects.filter(sponsor__manager=human).count()
    assert sponsored_by_reports >= 10
    visible = Agent.objects.visible_to(reviewer).count()
    assert sponsored_by_reports <= visible < Agent.objects.count()


def test_a_second_run_changes_nothing(seeded: str) -> None:
    before = _state()
    out = io.StringIO()
    call_command("seed_demo", stdout=out)
    assert "nothing changed" in out.getvalue()
    assert _state() == before


# --- Six weeks of agents at work: the runtime decisions --------------------------------------


def _decisions() -> list[AuditEvent]:
    return list(AuditEvent.objects.filter(action__in=("check.allow", "check.deny")).order_by("id"))


def test_decisions_run_through_the_weeks_allowed_and_denied(seeded: str) -> None:
    decisions = _decisions()
    assert 1500 <= len(decisions) <= 6000, len(decisions)
    now = timezone.now()
    weeks = Counter((now - d.occurred_at).days // 7 for d in decisions)
    assert len(weeks) >= 5, weeks
    outcomes = Counter(d.context["decision"] for d in decisions)
    assert outcomes["allow"] > 0.8 * len(decisions)
    assert outcomes["deny"] >= 50
    assert {d.action for d in decisions} == {"check.allow", "check.deny"}
    assert "decisions" in seeded and f"{len(decisions)} (" in seeded


def test_denials_are_the_runtimes_own_for_what_happened_in_the_story(seeded: str) -> None:
    reasons = Counter(d.context["reason"] for d in _decisions() if d.action == "check.deny")
    # Stray calls, a lapsed delegation still in use at its end, a leaked key tried after its revocation,
    # agents at work for someone who just left or went on leave.
    assert {
        Reason.SCOPE_NOT_DELEGATED,
        Reason.DELEGATION_EXPIRED,
        Reason.CREDENTIAL_REVOKED,
        Reason.SPONSOR_INACTIVE,
    } <= set(reasons), reasons
    assert Reason.ALLOWED not in reasons
    # Enough out-of-scope attempts in a row for the runtime to raise drift.
    assert DriftEvent.objects.exists()
    assert AuditEvent.objects.filter(action="drift.raise").exists()


def test_every_decision_carries_the_agents_telemetry(seeded: str) -> None:
    decisions = _decisions()
    for d in decisions:
        # A token past its expiry is refused before it is read, so who presented it is not known.
        assert d.actor_kind == "agent" and (d.actor_id or d.context["reason"] == Reason.CREDENTIAL_EXPIRED), d.pk
        assert d.context["tool"] and d.context["session_id"] and d.context["request_id"], d.pk
        assert set(runtime.CONTEXT_FIELDS) <= set(d.context), d.pk
    # Only an outsider trying a leaked key says nothing of what it is after.
    with_intent = [d for d in decisions if d.context["intent"]]
    assert len(with_intent) >= 0.97 * len(decisions)
    assert len({d.context["request_id"] for d in decisions}) == len(decisions)
    sessions = Counter(d.context["session_id"] for d in decisions)
    assert max(sessions.values()) >= 5  # several calls per session, under one goal
    for session_id in list(sessions)[:50]:
        assert len({d.context["intent"] for d in decisions if d.context["session_id"] == session_id}) == 1


def test_sub_agents_calls_name_their_parents_request(seeded: str) -> None:
    decisions = _decisions()
    by_request = {d.context["request_id"]: d for d in decisions}
    children = [d for d in decisions if d.context["parent_request_id"]]
    assert len(children) >= 200
    parents_of = dict(Agent.objects.values_list("id", "parent_id"))
    deep = 0
    for child in children:
        parent = by_request[child.context["parent_request_id"]]  # the parent's own recorded request
        assert parent.seq < child.pk
        assert parent.context["session_id"] == child.context["session_id"]
        assert parents_of[int(child.actor_id)] == int(parent.actor_id)
        if child.context["decision"] == "allow":
            # The sub-agent's token came from the parent's: its chain is the parent's and one more link.
            assert child.context["delegation_chain"][:-1] == parent.context["delegation_chain"]
        deep += bool(parent.context["parent_request_id"])
    assert deep >= 10  # a sub-agent's sub-agent, helping the helper


def test_delegated_calls_use_tokens_from_the_token_exchange(seeded: str) -> None:
    decisions = _decisions()
    kinds = Counter(d.context["credential"]["kind"] for d in decisions)
    assert kinds["delegation_token"] > 0.9 * len(decisions)
    assert kinds["agent_key"] >= 50  # agents acting as themselves, on grants of their own
    jtis = {d.context["credential"]["jti"] for d in decisions if "jti" in d.context["credential"]}
    assert DelegationToken.objects.filter(jti__in=jtis).count() == len(jtis)
    assert AuditEvent.objects.filter(action="token.issue").count() == DelegationToken.objects.count()


def test_usage_is_written_up_to_the_latest_decisions(seeded: str) -> None:
    """Agents' last activity and keys' last use reach the moments of their latest decisions: the usage
    buffered by the replayed checks was written before seeding ended."""
    latest_by_agent: dict[int, Any] = {}
    latest_by_key: dict[int, Any] = {}
    for d in _decisions():
        if not d.actor_id:
            continue
        latest_by_agent[int(d.actor_id)] = d.occurred_at
        if "id" in d.context["credential"]:
            latest_by_key[d.context["credential"]["id"]] = d.occurred_at
    activity = dict(Agent.objects.filter(pk__in=latest_by_agent).values_list("id", "last_activity_at"))
    assert all(activity[pk] is not None and activity[pk] >= at for pk, at in latest_by_agent.items())
    used = dict(AgentKey.objects.filter(pk__in=latest_by_key).values_list("id", "last_used_at"))
    assert all(used[pk] is not None and used[pk] >= at for pk, at in latest_by_key.items())


def test_agents_at_work_at_the_end_were_active_on_the_last_day(seeded: str) -> None:
    now = timezone.now()
    working = [
        link.delegate
        for link in Delegation.objects.active(now).filter(parent__isnull=True).select_related("delegate")
        if link.delegate.status == AgentStatus.ACTIVE
        and delegation_usability(link, at=now).usable
        and any(key.status_at(now) == "active" for key in AgentKey.objects.filter(agent=link.delegate))
    ]
    assert len(working) >= 50
    end_of_history = now.replace(hour=0, minute=0, second=0, microsecond=0)  # the replay stops at midnight
    for agent in working:
        assert agent.last_activity_at is not None, agent.name
        assert end_of_history - agent.last_activity_at < timedelta(hours=history.LAST_DAY_HOURS[1] + 6), agent.name
    # Their sub-agents with a key and a link of their own take turns helping: most have worked.
    helpers = [
        link.delegate
        for link in Delegation.objects.active(now).filter(parent__isnull=False).select_related("delegate")
        if link.delegate.status == AgentStatus.ACTIVE
        and any(key.status_at(now) == "active" for key in AgentKey.objects.filter(agent=link.delegate))
    ]
    assert len(helpers) >= 40
    assert sum(agent.last_activity_at is not None for agent in helpers) >= 0.75 * len(helpers)


def test_no_agent_key_secret_is_written_anywhere(seeded: str) -> None:
    full_key = re.compile(r"ck_[A-Za-z0-9]+_[A-Za-z0-9_-]{16,}")
    for context, label in AuditEvent.objects.values_list("context", "target_label"):
        assert not full_key.search(f"{context} {label}")
