"""Every delegation invariant of SPEC §2, positive and negative, through the services: root links from a
human's grants, input refused whatever the chain, attenuation at every hop, an active chain, and
revocation cascading down it. The usability selector and the rules on grants and agent keys the
delegation model stands on are in ``test_delegation_usability.py`` and ``test_grant_and_key_rules.py``."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import pytest
import time_machine
from django.db import IntegrityError, transaction
from django.utils import timezone

from audit.models import AuditEvent
from governance import services
from governance.chain import Reason, delegation_usability
from governance.models import (
    Agent,
    Delegation,
    DelegationStatus,
    Grant,
    GrantStatus,
    HumanStatus,
)
from tests.factories import SYSTEM, make_agent, make_delegation, make_grant, make_human
from tests.governance.delegation_world import (
    DAY,
    Org,
    child_of,
    create,
    fresh,
    refused,
    root_of,
    usability_reason,
)

pytestmark = pytest.mark.django_db


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
