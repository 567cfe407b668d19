"""Every delegation invariant of SPEC §2, positive and negative, through the services and the usability
selector; plus the rules on grants and agent keys the delegation model stands on."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import pytest
import time_machine
from django.db import IntegrityError, transaction
from django.test import Client
from django.utils import timezone

from audit.models import AuditEvent
from console.errors import Conflict, DomainError, ValidationFailed
from governance import credentials, services
from governance.chain import Reason, delegation_usability
from governance.models import (
    Agent,
    AgentKey,
    AgentStatus,
    Delegation,
    DelegationStatus,
    Grant,
    GrantStatus,
    Human,
    HumanStatus,
    Resource,
)
from tests.factories import SYSTEM, make_agent, make_delegation, make_grant, make_human, make_key, make_resource

pytestmark = pytest.mark.django_db

DAY = timedelta(days=1)


# --- The organisation every test starts from ---------------------------------------------------


@dataclass
class Org:
    human: Human  # the root human: holds read and write on the resource
    sponsor: Human  # sponsors the agents; deliberately not the root human
    resource: Resource
    read: str
    write: str
    admin_scope: str  # a scope of the resource nobody holds
    top: Agent  # top-level agent
    sub: Agent  # sub-agent of top
    subsub: Agent  # sub-agent of sub
    sibling: Agent  # another sub-agent of top
    other: Agent  # an unrelated top-level agent
    grants: dict[str, Grant]


@pytest.fixture
def org() -> Org:
    human = make_human()
    sponsor = make_human()
    resource = make_resource(actions=("read", "write", "admin"))
    grants = {action: make_grant(human, resource, action) for action in ("read", "write")}
    top = make_agent(sponsor=sponsor)
    sub = make_agent(parent=top)
    return Org(
        human=human,
        sponsor=sponsor,
        resource=resource,
        read=resource.scope("read"),
        write=resource.scope("write"),
        admin_scope=resource.scope("admin"),
        top=top,
        sub=sub,
        subsub=make_agent(parent=sub),
        sibling=make_agent(parent=top),
        other=make_agent(sponsor=sponsor),
        grants=grants,
    )


@pytest.fixture
def frozen() -> Iterator[time_machine.Traveller]:
    with time_machine.travel(timezone.now(), tick=False) as traveller:
        yield traveller


def root_of(
    org: Org, *, scopes: list[str] | None = None, max_depth: int = 2, expires_in: timedelta = 2 * DAY
) -> Delegation:
    return make_delegation(
        org.top, scopes or [org.read, org.write], root_human=org.human, max_depth=max_depth, expires_in=expires_in
    )


def child_of(
    parent: Delegation,
    delegate: Agent,
    *,
    scopes: list[str] | None = None,
    max_depth: int = 0,
    expires_in: timedelta | None = None,
) -> Delegation:
    expires_at = parent.expires_at if expires_in is None else timezone.now() + expires_in
    return create(
        delegate=delegate,
        parent=parent,
        scopes=scopes or list(parent.scopes),
        max_depth=max_depth,
        expires_at=expires_at,
    )


def create(**kwargs: Any) -> Delegation:
    kwargs.setdefault("actor", SYSTEM)
    kwargs.setdefault("purpose", "summarise the week's tickets")
    parent = kwargs.get("parent")
    kwargs.setdefault("expires_at", parent.expires_at if parent is not None else timezone.now() + DAY)
    return services.delegation_create(**kwargs)


def refused(code: str, attempt: Callable[[], object], *, error: type[DomainError] = ValidationFailed) -> DomainError:
    """Run ``attempt``, expect ``error`` with ``code``, and check that it wrote nothing at all."""
    counts = (Delegation.objects.count(), Grant.objects.count(), AgentKey.objects.count(), AuditEvent.objects.count())
    with pytest.raises(error) as caught:
        attempt()
    assert caught.value.code == code, f"expected {code}, got {caught.value.code}: {caught.value.detail}"
    after = (Delegation.objects.count(), Grant.objects.count(), AgentKey.objects.count(), AuditEvent.objects.count())
    assert after == counts, "a refused change wrote rows or audit events"
    return caught.value


def usability_reason(link: Delegation, **kwargs: Any) -> str:
    return delegation_usability(link, **kwargs).reason


def fresh(obj: Any) -> Any:
    return type(obj).objects.get(pk=obj.pk)


# --- Root delegations: from a human's active grants ---------------------------------------------


def test_a_root_delegation_within_the_humans_grants_is_created_and_audited(org: Org) -> None:
    events_before = AuditEvent.objects.count()
    link = create(delegate=org.top, root_human=org.human, scopes=[org.write, org.read, org.read], max_depth=1)

    link = fresh(link)
    assert (link.parent_id, link.root_human_id, link.delegate_id) == (None, org.human.pk, org.top.pk)
    assert link.scopes == sorted([org.read, org.write])
    assert (link.depth, link.max_depth, link.status) == (0, 1, DelegationStatus.ACTIVE)
    assert AuditEvent.objects.count() == events_before + 1
    event = AuditEvent.objects.get(action="delegation.create", target_id=str(link.pk))
    assert event.context["scopes"] == link.scopes
    assert event.context["parent"] is None
    assert event.on_behalf_of[0] == {"type": "human", "id": org.human.pk, "label": org.human.name}
    assert delegation_usability(link).usable


def test_it_refuses_a_root_scope_the_human_does_not_hold(org: Org) -> None:
    refused(
        "delegator_lacks_grant",
        lambda: create(delegate=org.top, root_human=org.human, scopes=[org.read, org.admin_scope]),
    )


def test_a_grant_held_by_someone_else_does_not_count_for_the_root_human(org: Org) -> None:
    make_grant(org.sponsor, org.resource, "admin")
    make_grant(org.top, org.resource, "admin")
    refused("delegator_lacks_grant", lambda: create(delegate=org.top, root_human=org.human, scopes=[org.admin_scope]))


def test_a_revoked_grant_does_not_count(org: Org) -> None:
    services.grant_revoke(actor=SYSTEM, grant=org.grants["write"], reason="moved team")
    refused("delegator_lacks_grant", lambda: create(delegate=org.top, root_human=org.human, scopes=[org.write]))
    assert create(delegate=org.top, root_human=org.human, scopes=[org.read]).scopes == [org.read]


def test_an_expired_grant_does_not_count_even_before_any_sweep(org: Org, frozen: time_machine.Traveller) -> None:
    make_grant(org.human, org.resource, "admin", expires_at=timezone.now() + timedelta(hours=1))
    assert create(delegate=org.top, root_human=org.human, scopes=[org.admin_scope]).scopes == [org.admin_scope]
    frozen.shift(timedelta(hours=2))
    assert Grant.objects.get(holder_human=org.human, action="admin").status == GrantStatus.ACTIVE  # no sweep ran
    refused("delegator_lacks_grant", lambda: create(delegate=org.top, root_human=org.human, scopes=[org.admin_scope]))


def test_a_grant_not_yet_valid_does_not_count(org: Org) -> None:
    start = timezone.now() + timedelta(hours=3)
    make_grant(org.human, org.resource, "admin", valid_from=start, expires_at=start + DAY)
    refused("delegator_lacks_grant", lambda: create(delegate=org.top, root_human=org.human, scopes=[org.admin_scope]))
    with time_machine.travel(start + timedelta(minutes=1), tick=False):
        assert create(delegate=org.top, root_human=org.human, scopes=[org.admin_scope]).scopes == [org.admin_scope]


def test_root_expiry_is_capped_by_the_configured_maximum(
    org: Org, settings: Any, frozen: time_machine.Traveller
) -> None:
    settings.CUSTOS_DELEGATION_MAX_LIFETIME = timedelta(days=3)
    now = timezone.now()
    refused(
        "lifetime_exceeds_maximum",
        lambda: create(
            delegate=org.top, root_human=org.human, scopes=[org.read], expires_at=now + 3 * DAY + timedelta(seconds=1)
        ),
    )
    assert (
        create(delegate=org.top, root_human=org.human, scopes=[org.read], expires_at=now + 3 * DAY).expires_at
        == now + 3 * DAY
    )


def test_root_max_depth_is_capped_by_the_configured_maximum(org: Org, settings: Any) -> None:
    settings.CUSTOS_DELEGATION_MAX_DEPTH = 2
    refused(
        "depth_exceeds_maximum", lambda: create(delegate=org.top, root_human=org.human, scopes=[org.read], max_depth=3)
    )
    assert create(delegate=org.top, root_human=org.human, scopes=[org.read], max_depth=2).max_depth == 2


def test_it_refuses_a_negative_max_depth(org: Org) -> None:
    refused("invalid_depth", lambda: create(delegate=org.top, root_human=org.human, scopes=[org.read], max_depth=-1))


@pytest.mark.parametrize("status", [HumanStatus.SUSPENDED, HumanStatus.LEFT])
def test_an_inactive_human_cannot_start_a_chain(org: Org, status: str) -> None:
    services.human_set_status(actor=SYSTEM, human=org.human, status=status)
    refused("human_inactive", lambda: create(delegate=org.top, root_human=org.human, scopes=[org.read]))


def test_it_refuses_a_suspended_delegate(org: Org) -> None:
    services.agent_suspend(actor=SYSTEM, agent=org.top)
    refused("agent_inactive", lambda: create(delegate=org.top, root_human=org.human, scopes=[org.read]))


def test_it_refuses_a_delegate_whose_sponsor_is_suspended(org: Org) -> None:
    services.human_set_status(actor=SYSTEM, human=org.sponsor, status=HumanStatus.SUSPENDED)
    refused("sponsor_inactive", lambda: create(delegate=org.top, root_human=org.human, scopes=[org.read]))


# --- Input that is wrong whatever the chain -------------------------------------------------------


def test_it_refuses_an_expiry_in_the_past_or_now(org: Org, frozen: time_machine.Traveller) -> None:
    now = timezone.now()
    for moment in (now - timedelta(seconds=1), now):
        refused(
            "expiry_in_past",
            lambda m=moment: create(delegate=org.top, root_human=org.human, scopes=[org.read], expires_at=m),
        )


def test_it_refuses_a_missing_or_naive_expiry(org: Org) -> None:
    refused("required", lambda: create(delegate=org.top, root_human=org.human, scopes=[org.read], expires_at=None))
    naive = datetime.now() + DAY  # a naive datetime is the point of the test
    refused(
        "naive_datetime", lambda: create(delegate=org.top, root_human=org.human, scopes=[org.read], expires_at=naive)
    )


@pytest.mark.parametrize(
    ("scopes", "code"),
    [
        (["nosuch.resource:read"], "unknown_resource"),
        (["{resource}:delete"], "unknown_action"),
        (["{resource}"], "invalid_scope"),
        ([":read"], "invalid_scope"),
        (["{resource}:"], "invalid_scope"),
        ([], "required"),
        (["  "], "required"),
    ],
)
def test_it_refuses_scopes_not_in_the_catalogue(org: Org, scopes: list[str], code: str) -> None:
    wanted = [s.format(resource=org.resource.name) for s in scopes]
    refused(code, lambda: create(delegate=org.top, root_human=org.human, scopes=wanted))


def test_it_refuses_a_delegation_with_neither_or_both_delegators(org: Org) -> None:
    root = root_of(org)
    refused("invalid_delegator", lambda: create(delegate=org.top, scopes=[org.read]))
    refused("invalid_delegator", lambda: create(delegate=org.sub, scopes=[org.read], root_human=org.human, parent=root))


def test_it_requires_a_purpose(org: Org) -> None:
    refused("required", lambda: create(delegate=org.top, root_human=org.human, scopes=[org.read], purpose="   "))


# --- Child delegations: attenuation only --------------------------------------------------------


def test_a_narrower_child_is_created_one_level_down_for_the_same_human(org: Org) -> None:
    root = root_of(org, max_depth=2)
    child = create(delegate=org.sub, parent=root, scopes=[org.read], max_depth=1)
    grandchild = create(delegate=org.subsub, parent=child, scopes=[org.read], max_depth=0)

    assert (child.depth, child.root_human_id, child.parent_id) == (1, org.human.pk, root.pk)
    assert (grandchild.depth, grandchild.root_human_id, grandchild.parent_id) == (2, org.human.pk, child.pk)
    event = AuditEvent.objects.get(action="delegation.create", target_id=str(grandchild.pk))
    # The evidence names who the chain acts for and every agent it passed through.
    assert [ref["type"] for ref in event.on_behalf_of] == ["human", "agent", "agent"]
    assert [ref["id"] for ref in event.on_behalf_of] == [org.human.pk, org.top.pk, org.sub.pk]
    assert delegation_usability(grandchild).usable


def test_it_refuses_a_scope_wider_than_the_parent_even_when_the_human_holds_it(org: Org) -> None:
    root = root_of(org, scopes=[org.read])
    refused("scope_not_delegated", lambda: create(delegate=org.sub, parent=root, scopes=[org.read, org.write]))
    refused("scope_not_delegated", lambda: create(delegate=org.sub, parent=root, scopes=[org.write]))


def test_a_child_may_keep_every_scope_of_its_parent(org: Org) -> None:
    root = root_of(org)
    assert create(delegate=org.sub, parent=root, scopes=list(root.scopes)).scopes == root.scopes


def test_a_child_may_not_outlive_its_parent(org: Org) -> None:
    root = root_of(org, expires_in=DAY)
    refused(
        "expiry_exceeds_parent",
        lambda: create(
            delegate=org.sub, parent=root, scopes=[org.read], expires_at=root.expires_at + timedelta(seconds=1)
        ),
    )
    assert (
        create(delegate=org.sub, parent=root, scopes=[org.read], expires_at=root.expires_at).expires_at
        == root.expires_at
    )


def test_a_parent_with_no_remaining_depth_cannot_delegate(org: Org) -> None:
    root = root_of(org, max_depth=0)
    refused("depth_exhausted", lambda: create(delegate=org.sub, parent=root, scopes=[org.read]))


def test_a_child_cannot_allow_more_depth_than_its_parent_has_left(org: Org) -> None:
    root = root_of(org, max_depth=1)
    refused("depth_exceeds_parent", lambda: create(delegate=org.sub, parent=root, scopes=[org.read], max_depth=1))
    child = create(delegate=org.sub, parent=root, scopes=[org.read], max_depth=0)
    refused("depth_exhausted", lambda: create(delegate=org.subsub, parent=child, scopes=[org.read]))


def test_depth_runs_out_along_a_chain(org: Org) -> None:
    root = root_of(org, max_depth=2)
    child = create(delegate=org.sub, parent=root, scopes=[org.read], max_depth=1)
    grandchild = create(delegate=org.subsub, parent=child, scopes=[org.read], max_depth=0)
    deepest = make_agent(parent=org.subsub)
    refused("depth_exhausted", lambda: create(delegate=deepest, parent=grandchild, scopes=[org.read]))


@pytest.mark.parametrize("who", ["subsub", "sibling", "other", "top", "parent_of_parent_delegate"])
def test_the_delegate_of_a_child_must_be_a_sub_agent_of_the_parents_delegate(org: Org, who: str) -> None:
    root = root_of(org, max_depth=2)
    child = create(delegate=org.sub, parent=root, scopes=[org.read], max_depth=1)
    # Below child (delegate: sub), only sub's own sub-agents qualify: subsub.
    candidates = {
        "subsub": (root, org.subsub),  # a grandchild of root's delegate, skipping a level
        "sibling": (child, org.sibling),  # a sibling of child's delegate
        "other": (child, org.other),  # unrelated
        "top": (child, org.top),  # back up the chain
        "parent_of_parent_delegate": (root, org.top),  # the parent's own delegate
    }
    parent, delegate = candidates[who]
    refused("delegate_not_sub_agent", lambda: create(delegate=delegate, parent=parent, scopes=[org.read]))


def test_a_chain_never_revisits_an_agent_even_if_the_agent_tree_were_corrupted(org: Org) -> None:
    # A direct write (not possible through the services) turns top -> sub into a loop.
    root = root_of(org, max_depth=3)
    child = create(delegate=org.sub, parent=root, scopes=[org.read], max_depth=2)
    Agent.objects.filter(pk=org.top.pk).update(parent=org.sub, depth=2)
    refused("delegation_cycle", lambda: create(delegate=org.top, parent=child, scopes=[org.read]))


def test_a_link_cannot_be_its_own_parent_in_the_database(org: Org) -> None:
    root = root_of(org)
    with transaction.atomic(), pytest.raises(IntegrityError):
        Delegation.objects.filter(pk=root.pk).update(parent=root.pk, depth=1)


# --- Everything on the chain must be active --------------------------------------------------------


def test_a_revoked_parent_cannot_delegate(org: Org) -> None:
    root = root_of(org)
    services.delegation_revoke(actor=SYSTEM, delegation=root)
    refused("delegation_revoked", lambda: create(delegate=org.sub, parent=root, scopes=[org.read]))


def test_an_expired_parent_cannot_delegate_even_before_any_sweep(org: Org, frozen: time_machine.Traveller) -> None:
    root = root_of(org, expires_in=timedelta(hours=2))
    frozen.shift(timedelta(hours=3))
    assert fresh(root).status == DelegationStatus.ACTIVE
    refused(
        "delegation_expired",
        lambda: create(
            delegate=org.sub, parent=root, scopes=[org.read], expires_at=timezone.now() + timedelta(hours=1)
        ),
    )


def test_a_broken_link_further_up_stops_delegation(org: Org) -> None:
    root = root_of(org)
    child = create(delegate=org.sub, parent=root, scopes=[org.read], max_depth=1)
    # As if a revocation had reached the root but not yet its children.
    Delegation.objects.filter(pk=root.pk).update(status=DelegationStatus.REVOKED, revoked_at=timezone.now())
    refused("chain_broken", lambda: create(delegate=org.subsub, parent=child, scopes=[org.read]))


def test_a_suspended_agent_on_the_chain_stops_delegation(org: Org) -> None:
    root = root_of(org)
    child = create(delegate=org.sub, parent=root, scopes=[org.read], max_depth=1)
    services.agent_suspend(actor=SYSTEM, agent=org.top)
    refused("agent_inactive", lambda: create(delegate=org.subsub, parent=child, scopes=[org.read]))


def test_a_suspended_child_delegate_is_refused(org: Org) -> None:
    root = root_of(org)
    services.agent_suspend(actor=SYSTEM, agent=org.sub)
    refused("agent_inactive", lambda: create(delegate=org.sub, parent=root, scopes=[org.read]))


def test_a_suspended_sponsor_on_the_chain_stops_delegation(org: Org) -> None:
    root = root_of(org)
    # sub gets its own sponsor, who is then suspended; the new delegate (subsub) keeps sub's old one.
    other_sponsor = make_human()
    services.agent_update(actor=SYSTEM, agent=org.sub, sponsor=other_sponsor)
    child = create(delegate=org.sub, parent=root, scopes=[org.read], max_depth=1)
    services.human_set_status(actor=SYSTEM, human=other_sponsor, status=HumanStatus.SUSPENDED)
    refused("sponsor_inactive", lambda: create(delegate=org.subsub, parent=child, scopes=[org.read]))


def test_a_root_human_who_left_stops_delegation(org: Org) -> None:
    root = root_of(org)
    services.human_set_status(actor=SYSTEM, human=org.human, status=HumanStatus.LEFT)
    refused("human_inactive", lambda: create(delegate=org.sub, parent=root, scopes=[org.read]))


def test_a_root_human_who_lost_a_grant_stops_delegation_of_that_scope_only(org: Org) -> None:
    root = root_of(org)
    services.grant_revoke(actor=SYSTEM, grant=org.grants["write"])
    # Creation checks what the new link asks for (SPEC §3), as the check does on every request.
    refused("delegator_lacks_grant", lambda: create(delegate=org.sub, parent=root, scopes=[org.write]))
    refused("delegator_lacks_grant", lambda: create(delegate=org.sub, parent=root, scopes=[org.read, org.write]))
    child = create(delegate=org.sub, parent=root, scopes=[org.read])
    assert child.scopes == [org.read]
    assert delegation_usability(child).usable


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


# --- Revocation cascades ---------------------------------------------------------------------------


def test_revoking_a_link_revokes_every_active_descendant_with_one_event_each(org: Org) -> None:
    root = root_of(org, max_depth=2)
    child = child_of(root, org.sub, max_depth=1)
    sibling_child = child_of(root, org.sibling)
    grandchild = child_of(child, org.subsub)
    unrelated = make_delegation(org.other, [org.read], root_human=org.human)

    revoked = services.delegation_revoke(actor=SYSTEM, delegation=root, reason="project ended")

    assert {link.pk for link in revoked} == {root.pk, child.pk, sibling_child.pk, grandchild.pk}
    for link in (root, child, sibling_child, grandchild):
        link = fresh(link)
        assert link.status == DelegationStatus.REVOKED
        assert link.revoked_at is not None
        events = AuditEvent.objects.filter(action="delegation.revoke", target_id=str(link.pk))
        assert events.count() == 1
        assert events.get().context["cascade_from"] == (None if link.pk == root.pk else root.pk)
    assert fresh(root).revoked_reason == "project ended"
    assert fresh(unrelated).status == DelegationStatus.ACTIVE
    assert usability_reason(unrelated) == Reason.ALLOWED


def test_revoking_a_middle_link_leaves_its_ancestors_alone(org: Org) -> None:
    root = root_of(org, max_depth=2)
    child = child_of(root, org.sub, max_depth=1)
    grandchild = child_of(child, org.subsub)
    services.delegation_revoke(actor=SYSTEM, delegation=child)
    assert [fresh(link).status for link in (root, child, grandchild)] == [
        DelegationStatus.ACTIVE,
        DelegationStatus.REVOKED,
        DelegationStatus.REVOKED,
    ]


def test_revoking_again_changes_nothing_and_records_nothing(org: Org) -> None:
    root = root_of(org)
    child = child_of(root, org.sub)
    services.delegation_revoke(actor=SYSTEM, delegation=child)
    events = AuditEvent.objects.count()
    assert services.delegation_revoke(actor=SYSTEM, delegation=child) == []
    # The parent's cascade skips the already-revoked child.
    assert [link.pk for link in services.delegation_revoke(actor=SYSTEM, delegation=root)] == [root.pk]
    assert AuditEvent.objects.count() == events + 1


# --- Grants -----------------------------------------------------------------------------------------


def test_an_agents_grant_must_expire(org: Org) -> None:
    refused(
        "required", lambda: services.grant_create(actor=SYSTEM, holder=org.top, resource=org.resource, action="read")
    )


def test_an_agents_grant_is_capped_by_the_configured_maximum(
    org: Org, settings: Any, frozen: time_machine.Traveller
) -> None:
    settings.CUSTOS_GRANT_MAX_LIFETIME = timedelta(days=10)
    now = timezone.now()
    refused(
        "lifetime_exceeds_maximum",
        lambda: make_grant(org.top, org.resource, "read", expires_at=now + timedelta(days=10, seconds=1)),
    )
    grant = make_grant(org.top, org.resource, "read", expires_at=now + timedelta(days=10))
    assert grant.expires_at == now + timedelta(days=10)


def test_a_humans_grant_may_be_open_ended(org: Org) -> None:
    grant = make_grant(make_human(), org.resource, "admin")
    assert grant.expires_at is None
    assert grant.is_in_force()


def test_a_duplicate_active_grant_is_refused_until_the_first_ends(org: Org, frozen: time_machine.Traveller) -> None:
    refused("duplicate_grant", lambda: make_grant(org.human, org.resource, "read"), error=Conflict)
    services.grant_revoke(actor=SYSTEM, grant=org.grants["read"])
    assert make_grant(org.human, org.resource, "read").is_in_force()

    make_grant(org.top, org.resource, "read", expires_at=timezone.now() + timedelta(hours=1))
    refused("duplicate_grant", lambda: make_grant(org.top, org.resource, "read"), error=Conflict)
    frozen.shift(timedelta(hours=2))  # expired by its timestamp; no sweep needed
    assert make_grant(org.top, org.resource, "read").is_in_force()


def test_grants_go_to_active_holders_for_real_actions(org: Org) -> None:
    refused("unknown_action", lambda: make_grant(org.human, org.resource, "delete"))
    services.agent_suspend(actor=SYSTEM, agent=org.other)
    refused("holder_inactive", lambda: make_grant(org.other, org.resource, "read"))


@pytest.mark.parametrize(
    "fields",
    [
        pytest.param({"holder": "agent", "expires_at": None}, id="agent-grant-without-expiry"),
        pytest.param({"holder": "both"}, id="two-holders"),
        pytest.param({"holder": "none"}, id="no-holder"),
        pytest.param({"holder": "human", "expires_before_start": True}, id="expires-before-start"),
        pytest.param({"holder": "human", "status": GrantStatus.REVOKED}, id="revoked-without-time"),
    ],
)
def test_grant_constraints_hold_against_direct_orm_writes(org: Org, fields: dict[str, Any]) -> None:
    now = timezone.now()
    row: dict[str, Any] = {"resource": org.resource, "action": "read", "granted_by": "direct write", "valid_from": now}
    holder = fields["holder"]
    if holder in ("human", "both"):
        row["holder_human"] = org.human
    if holder in ("agent", "both"):
        row["holder_agent"] = org.top
    row["expires_at"] = fields.get("expires_at", now + DAY)
    if fields.get("expires_before_start"):
        row["expires_at"] = now - timedelta(seconds=1)
    row["status"] = fields.get("status", GrantStatus.ACTIVE)
    with transaction.atomic(), pytest.raises(IntegrityError):
        Grant.objects.create(**row)
    assert not Grant.objects.filter(granted_by="direct write").exists()


def test_delegation_constraints_hold_against_direct_orm_writes(org: Org) -> None:
    now = timezone.now()
    base: dict[str, Any] = {
        "root_human": org.human,
        "delegate": org.top,
        "purpose": "x",
        "scopes": [org.read],
        "created_by": "direct",
    }
    with transaction.atomic(), pytest.raises(IntegrityError):
        Delegation.objects.create(**base, depth=1, expires_at=now + DAY)  # a root link one level down
    with transaction.atomic(), pytest.raises(IntegrityError):
        Delegation.objects.create(**base, expires_at=now - DAY)  # expired before it was made
    with transaction.atomic(), pytest.raises(IntegrityError):
        Delegation.objects.create(**base, expires_at=now + DAY, status=DelegationStatus.REVOKED)  # revoked, but when?
    assert not Delegation.objects.filter(created_by="direct").exists()


def test_agent_constraints_hold_against_direct_orm_writes(org: Org) -> None:
    with transaction.atomic(), pytest.raises(IntegrityError):
        Agent.objects.filter(pk=org.top.pk).update(parent=org.top.pk, depth=1)
    with transaction.atomic(), pytest.raises(IntegrityError):
        Agent.objects.create(name="orphan-depth", sponsor=org.sponsor, depth=1)


# --- Agent keys -------------------------------------------------------------------------------------

KEY_RE = re.compile(r"^ck_(?P<prefix>[a-z0-9]{8,16})_(?P<secret>[A-Za-z0-9]{20,})$")


def test_a_key_has_the_documented_format_and_only_its_keyed_hash_is_stored(org: Org) -> None:
    key, full = make_key(org.top, name="ci runner")
    match = KEY_RE.match(full)
    assert match, full
    secret = match["secret"]
    assert key.prefix == match["prefix"]

    row = AgentKey.objects.filter(pk=key.pk).values().get()
    stored = " ".join(str(value) for value in row.values())
    assert secret not in stored and full not in stored
    assert row["hashed"] == credentials.keyed_hash(full) != full

    event = AuditEvent.objects.get(action="agentkey.create", target_id=str(key.pk))
    event_row = AuditEvent.objects.filter(pk=event.pk).values().get()
    assert secret not in str(event_row)
    assert event.context["prefix"] == key.prefix


def test_two_keys_never_share_a_prefix_or_secret(org: Org) -> None:
    keys = [make_key(org.top) for _ in range(5)]
    assert len({key.prefix for key, _ in keys}) == 5
    assert len({full for _, full in keys}) == 5


def test_a_presented_key_matches_only_its_own_hash(org: Org) -> None:
    key, full = make_key(org.top)
    _, other_full = make_key(org.top)
    assert credentials.parse_prefix("ck", full) == key.prefix
    assert credentials.matches(full, key.hashed)
    assert not credentials.matches(other_full, key.hashed)
    tampered = full[:-1] + ("a" if full[-1] != "a" else "b")
    assert not credentials.matches(tampered, key.hashed)
    assert credentials.parse_prefix("ck", "cu_" + full[3:]) is None
    assert credentials.parse_prefix("ck", full + "_extra") is None
    assert credentials.parse_prefix("ck", "ck_" + "x" * 100) is None


def test_key_comparison_is_constant_time(org: Org, monkeypatch: pytest.MonkeyPatch) -> None:
    key, full = make_key(org.top)
    compared: list[tuple[Any, Any]] = []
    real = credentials.hmac.compare_digest

    def spy(a: Any, b: Any) -> bool:
        compared.append((a, b))
        return real(a, b)

    monkeypatch.setattr(credentials.hmac, "compare_digest", spy)
    assert credentials.matches(full, key.hashed)
    assert compared == [(credentials.keyed_hash(full), key.hashed)]


def test_a_key_expires_by_default_and_never_past_the_maximum(
    org: Org, settings: Any, frozen: time_machine.Traveller
) -> None:
    settings.CUSTOS_KEY_TTL = timedelta(days=2)
    settings.CUSTOS_KEY_MAX_TTL = timedelta(days=5)
    now = timezone.now()
    key, _ = make_key(org.top)
    assert key.expires_at == now + timedelta(days=2)
    refused("lifetime_exceeds_maximum", lambda: make_key(org.top, expires_at=now + timedelta(days=5, seconds=1)))
    refused("expiry_in_past", lambda: make_key(org.top, expires_at=now - timedelta(seconds=1)))
    assert make_key(org.top, expires_at=now + timedelta(days=5))[0].expires_at == now + timedelta(days=5)
    frozen.shift(timedelta(days=2))
    assert key.status_at() == "expired"
    assert not AgentKey.objects.active().filter(pk=key.pk).exists()


def test_keys_go_to_active_agents_only(org: Org) -> None:
    services.agent_suspend(actor=SYSTEM, agent=org.other)
    refused("agent_inactive", lambda: make_key(org.other))


def test_suspending_an_agent_suspends_every_sub_agent_below_it_and_their_checks_deny() -> None:
    top = make_agent()
    child = make_agent(parent=top)
    grandchild = make_agent(parent=child)
    resource = make_resource()
    make_grant(grandchild, resource, "read")
    _, secret = make_key(grandchild)
    before = AuditEvent.objects.filter(action="agent.suspend").count()

    services.agent_suspend(actor=SYSTEM, agent=top, reason="incident")

    for agent in (top, child, grandchild):
        agent.refresh_from_db()
        assert agent.status == AgentStatus.SUSPENDED
    assert AuditEvent.objects.filter(action="agent.suspend").count() == before + 3
    answer = (
        Client()
        .post(
            "/api/v1/check",
            {"action": "read", "resource": resource.name},
            content_type="application/json",
            HTTP_AUTHORIZATION=f"Bearer {secret}",
        )
        .json()
    )
    assert (answer["decision"], answer["reason"]) == ("deny", "agent_inactive")


def test_a_sub_agent_cannot_be_reactivated_while_its_parent_is_suspended() -> None:
    top = make_agent()
    child = make_agent(parent=top)
    services.agent_suspend(actor=SYSTEM, agent=top)

    with pytest.raises(Conflict) as refused:
        services.agent_reactivate(actor=SYSTEM, agent=child)
    assert refused.value.code == "parent_inactive"
    services.agent_reactivate(actor=SYSTEM, agent=top)
    services.agent_reactivate(actor=SYSTEM, agent=child)
    child.refresh_from_db()
    assert child.status == AgentStatus.ACTIVE
