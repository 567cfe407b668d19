"""The delegation usability selector (SPEC §2): a link is usable only while every link, agent, sponsor
and root human above it is, read from the current state and from timestamps, not from sweeps."""

from __future__ import annotations

from datetime import timedelta

import pytest
import time_machine
from django.utils import timezone

from governance import services
from governance.chain import Reason, delegation_usability
from governance.models import (
    Agent,
    Delegation,
    DelegationStatus,
    Human,
    HumanStatus,
)
from tests.factories import SYSTEM, make_grant
from tests.governance.delegation_world import (
    DAY,
    Org,
    child_of,
    root_of,
    usability_reason,
)

pytestmark = pytest.mark.django_db


# --- The usability selector ------------------------------------------------------------------------


def test_a_fresh_chain_is_usable_and_the_chain_runs_root_first(org: Org) -> None:
    root = root_of(org)
    child = child_of(root, org.sub, scopes=[org.read])
    usability = delegation_usability(child)
    assert (usability.usable, usability.reason) == (True, Reason.ALLOWED)
    assert [link.pk for link in usability.chain] == [root.pk, child.pk]
    assert delegation_usability(child, scopes={org.read}).usable


def test_usability_reports_a_revoked_link(org: Org) -> None:
    root = root_of(org)
    services.delegation_revoke(actor=SYSTEM, delegation=root)
    assert usability_reason(root) == Reason.DELEGATION_REVOKED


def test_usability_reports_expiry_from_the_timestamp_without_a_sweep(org: Org, frozen: time_machine.Traveller) -> None:
    root = root_of(org, expires_in=timedelta(hours=5))
    child = child_of(root, org.sub, expires_in=timedelta(hours=1))
    frozen.shift(timedelta(hours=1))
    assert usability_reason(child) == Reason.DELEGATION_EXPIRED  # expires_at == now: no longer usable
    assert usability_reason(root) == Reason.ALLOWED
    frozen.shift(timedelta(hours=5))
    assert usability_reason(root) == Reason.DELEGATION_EXPIRED
    assert Delegation.objects.filter(status=DelegationStatus.ACTIVE).count() == 2  # nothing swept


def test_usability_reports_a_link_the_sweep_marked_expired(org: Org) -> None:
    root = root_of(org)
    Delegation.objects.filter(pk=root.pk).update(status=DelegationStatus.EXPIRED)
    assert usability_reason(root) == Reason.DELEGATION_EXPIRED


def test_usability_at_an_explicit_moment(org: Org) -> None:
    root = root_of(org, expires_in=DAY)
    assert usability_reason(root, at=timezone.now() + 2 * DAY) == Reason.DELEGATION_EXPIRED
    assert usability_reason(root, at=timezone.now() + timedelta(hours=1)) == Reason.ALLOWED


def test_usability_reports_a_broken_chain(org: Org) -> None:
    root = root_of(org)
    child = child_of(root, org.sub)
    Delegation.objects.filter(pk=root.pk).update(status=DelegationStatus.REVOKED, revoked_at=timezone.now())
    assert usability_reason(child) == Reason.CHAIN_BROKEN


def test_usability_reports_an_inactive_agent_on_the_chain(org: Org) -> None:
    root = root_of(org)
    child = child_of(root, org.sub)
    services.agent_suspend(actor=SYSTEM, agent=org.top)
    assert usability_reason(child) == Reason.AGENT_INACTIVE
    services.agent_reactivate(actor=SYSTEM, agent=org.top)
    assert usability_reason(child) == Reason.AGENT_INACTIVE  # the sub-agent was suspended with it
    services.agent_reactivate(actor=SYSTEM, agent=org.sub)
    assert usability_reason(child) == Reason.ALLOWED
    services.agent_suspend(actor=SYSTEM, agent=org.sub)
    assert usability_reason(child) == Reason.AGENT_INACTIVE
    assert usability_reason(root) == Reason.ALLOWED


def test_usability_reports_an_inactive_sponsor(org: Org) -> None:
    root = root_of(org)
    services.human_set_status(actor=SYSTEM, human=org.sponsor, status=HumanStatus.SUSPENDED)
    assert usability_reason(root) == Reason.SPONSOR_INACTIVE


def test_usability_reports_a_root_human_who_left(org: Org) -> None:
    root = root_of(org)
    child = child_of(root, org.sub)
    services.human_set_status(actor=SYSTEM, human=org.human, status=HumanStatus.LEFT)
    assert usability_reason(root) == Reason.HUMAN_INACTIVE
    assert usability_reason(child) == Reason.HUMAN_INACTIVE


def test_usability_reports_a_scope_that_was_not_delegated(org: Org) -> None:
    root = root_of(org, scopes=[org.read])
    assert usability_reason(root, scopes={org.write}) == Reason.SCOPE_NOT_DELEGATED
    assert usability_reason(root, scopes={org.read}) == Reason.ALLOWED


def test_usability_reports_a_root_human_who_no_longer_holds_the_scope(org: Org) -> None:
    root = root_of(org)
    child = child_of(root, org.sub)
    services.grant_revoke(actor=SYSTEM, grant=org.grants["write"])
    assert usability_reason(child) == Reason.DELEGATOR_LACKS_GRANT
    assert usability_reason(child, scopes={org.read}) == Reason.ALLOWED


def test_usability_reports_a_human_grant_that_expired_without_a_sweep(org: Org, frozen: time_machine.Traveller) -> None:
    make_grant(org.human, org.resource, "admin", expires_at=timezone.now() + timedelta(hours=2))
    root = root_of(org, scopes=[org.admin_scope], expires_in=DAY)
    assert usability_reason(root) == Reason.ALLOWED
    frozen.shift(timedelta(hours=3))
    assert usability_reason(root) == Reason.DELEGATOR_LACKS_GRANT


def test_usability_reads_the_current_state_not_the_object_in_hand(org: Org) -> None:
    root = root_of(org)
    child = child_of(root, org.sub)
    # Changes made through other instances (another request, another process) must show at once.
    services.agent_suspend(actor=SYSTEM, agent=Agent.objects.get(pk=org.sub.pk))
    assert usability_reason(child) == Reason.AGENT_INACTIVE
    services.agent_reactivate(actor=SYSTEM, agent=Agent.objects.get(pk=org.sub.pk))
    services.human_set_status(actor=SYSTEM, human=Human.objects.get(pk=org.sponsor.pk), status=HumanStatus.SUSPENDED)
    assert usability_reason(child) == Reason.SPONSOR_INACTIVE
    services.human_set_status(actor=SYSTEM, human=Human.objects.get(pk=org.sponsor.pk), status=HumanStatus.ACTIVE)
    services.human_set_status(actor=SYSTEM, human=Human.objects.get(pk=org.human.pk), status=HumanStatus.LEFT)
    assert usability_reason(root) == Reason.HUMAN_INACTIVE
    services.human_set_status(actor=SYSTEM, human=Human.objects.get(pk=org.human.pk), status=HumanStatus.ACTIVE)
    services.delegation_revoke(actor=SYSTEM, delegation=Delegation.objects.get(pk=child.pk))
    assert usability_reason(child) == Reason.DELEGATION_REVOKED
    assert usability_reason(root) == Reason.ALLOWED
