"""Campaign services: launch and routing with separation of duties, decisions and their effect on the
runtime check, the role matrix, justification and bulk rules, closing outcomes."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from audit.models import AuditEvent
from audit.services import Actor
from console.errors import Conflict, NotAllowed, ValidationFailed
from governance import runtime
from governance import services as governance
from governance.models import AgentStatus, DelegationStatus, GrantStatus
from reviews import services
from reviews.models import Campaign, CampaignStatus, ItemStatus, ReviewItem
from tests import factories
from tests.reviews.support import Org, item, launch, linked_human, make_org

pytestmark = pytest.mark.django_db


@pytest.fixture
def org() -> Org:
    return make_org()


def decide(org: Org, user: object, review_item: ReviewItem, decision: str, justification: str = "") -> ReviewItem:
    return services.review_decide(
        actor=Actor.user(user), user=user, item=review_item, decision=decision, justification=justification
    )


# --- Launch and routing -------------------------------------------------------------------------


def test_a_launch_opens_one_item_per_access_with_its_audit_event_and_routes_it_to_the_sponsors_manager(
    org: Org,
) -> None:
    campaign = launch(org)
    keys = set(ReviewItem.objects.filter(campaign=campaign).values_list("subject_key", flat=True))
    assert keys == {f"grant:{org.grant.pk}", f"delegation:{org.delegation.pk}", f"key:{org.key.pk}"}
    assert {i.reviewer for i in ReviewItem.objects.filter(campaign=campaign)} == {org.manager}
    assert campaign.items_generated == campaign.items_expected == 3 and campaign.generated_at is not None
    opened = AuditEvent.objects.filter(action="review.item.open", context__campaign=campaign.pk)
    assert opened.count() == 3
    grant_item = item(campaign, f"grant:{org.grant.pk}")
    assert grant_item.routing == "the sponsor's manager"
    # One scope (crm.contacts:read, by grant and delegation) on a high-sensitivity resource: weight 9.
    assert grant_item.blast_radius == 9


def test_generation_resumes_without_duplicates_after_a_worker_died_mid_way(org: Org) -> None:
    actor = Actor.user(org.admin)
    campaign = services.campaign_create(
        actor=actor, name="c", subjects=["grant", "delegation", "key"], fallback_reviewer=org.fallback
    )
    services.campaign_launch(actor=actor, campaign=campaign)
    # A first worker opened one item and died with its claim held: the claim goes stale, a rerun finishes.
    services.campaign_generate(campaign_id=campaign.pk, chunk=1)
    ReviewItem.objects.filter(campaign=campaign).exclude(subject_key=f"grant:{org.grant.pk}").delete()
    Campaign.objects.filter(pk=campaign.pk).update(
        generated_at=None, generation_claimed_at=timezone.now() - timedelta(minutes=11)
    )
    assert services.campaign_generate(campaign_id=campaign.pk) == 2
    assert ReviewItem.objects.filter(campaign=campaign).count() == 3
    # A fresh claim is left alone: a second worker does nothing.
    Campaign.objects.filter(pk=campaign.pk).update(generated_at=None, generation_claimed_at=timezone.now())
    assert services.campaign_generate(campaign_id=campaign.pk) == 0


def test_nobody_reviews_an_agent_they_sponsor_so_the_sponsor_rule_routes_to_the_fallback(org: Org) -> None:
    campaign = launch(org, reviewer_rule="sponsor")
    for review_item in ReviewItem.objects.filter(campaign=campaign):
        assert review_item.reviewer == org.fallback
        assert review_item.routing.startswith("fallback reviewer: Sam Sponsor may not review")


def test_a_delegation_that_acts_for_someone_through_a_parent_agent_keeps_them_off_the_sub_agents_review(
    org: Org,
) -> None:
    # Otto delegates to the parent agent: its sub-agent's key then works for Otto too, through the parent.
    resource = factories.make_resource(name="erp.invoices")
    factories.make_grant(org.other, resource, "read")
    factories.make_delegation(org.agent, ["erp.invoices:read"], root_human=org.other)
    sub_key, _ = factories.make_key(org.sub_agent)
    campaign = launch(org, subjects=["key"], reviewer_rule="named", named_reviewer=org.other)
    assert item(campaign, f"key:{sub_key.pk}").reviewer == org.fallback
    # Without that delegation Otto would have been the reviewer.
    unrelated = factories.make_agent(sponsor=org.manager)
    unrelated_key, _ = factories.make_key(unrelated)
    again = launch(org, name="again", subjects=["key"], reviewer_rule="named", named_reviewer=org.other)
    assert item(again, f"key:{unrelated_key.pk}").reviewer == org.other


def test_an_item_nobody_may_review_is_left_unassigned_for_an_admin(org: Org) -> None:
    campaign = launch(org, reviewer_rule="sponsor", fallback_reviewer=org.sponsor)
    review_item = item(campaign, f"grant:{org.grant.pk}")
    assert review_item.reviewer is None and review_item.routing.startswith("unassigned:")
    decided = decide(org, org.admin, review_item, "certify")
    assert decided.status == ItemStatus.CERTIFIED


def test_the_preview_counts_items_per_reviewer_and_those_separation_of_duties_moved(org: Org) -> None:
    actor = Actor.user(org.admin)
    campaign = services.campaign_create(
        actor=actor, name="p", subjects=["grant", "key"], reviewer_rule="sponsor", fallback_reviewer=org.fallback
    )
    preview = services.campaign_preview(campaign)
    assert preview.total == 2 and preview.rerouted == 2 and preview.unassigned == 0
    assert [(row.reviewer, row.items) for row in preview.rows] == [(org.fallback, 2)]
    assert not ReviewItem.objects.exists()


# --- Deciding -----------------------------------------------------------------------------------


def test_a_revoke_ends_the_grant_at_once_and_the_agents_next_check_is_refused(org: Org) -> None:
    factories.make_grant(org.agent, factories.make_resource(name="crm.notes"), "read")
    before = runtime.check(credential=org.key_secret, action="read", resource="crm.contacts", context={})
    assert before.outcome.allowed
    campaign = launch(org, subjects=["grant"])
    decided = decide(org, org.manager_user, item(campaign, f"grant:{org.grant.pk}"), "revoke", "not needed")
    assert decided.status == ItemStatus.REVOKED and decided.applied == f"grant {org.grant.pk} revoked"
    org.grant.refresh_from_db()
    assert org.grant.status == GrantStatus.REVOKED
    after = runtime.check(credential=org.key_secret, action="read", resource="crm.contacts", context={})
    assert not after.outcome.allowed and after.outcome.reason == "scope_not_granted"
    event = AuditEvent.objects.get(action="review.decide", target_id=str(decided.pk))
    assert event.context["campaign"] == campaign.pk and event.context["status"] == "revoked"
    assert event.context["justification"] == "not needed"


def test_revoking_a_delegation_revokes_it_and_every_link_below(org: Org) -> None:
    child = factories.make_delegation(
        org.sub_agent, ["crm.contacts:read"], parent=org.delegation, expires_in=timedelta(hours=12)
    )
    campaign = launch(org, subjects=["delegation"])
    decide(org, org.manager_user, item(campaign, f"delegation:{org.delegation.pk}"), "revoke", "done")
    child.refresh_from_db()
    assert child.status == DelegationStatus.REVOKED


def test_revoking_an_agent_item_suspends_the_agent_and_its_sub_agents(org: Org) -> None:
    campaign = launch(org, subjects=["agent"])
    decide(org, org.manager_user, item(campaign, f"agent:{org.agent.pk}"), "revoke", "retired")
    org.sub_agent.refresh_from_db()
    assert org.sub_agent.status == AgentStatus.SUSPENDED


def test_a_reviewer_decides_only_their_own_items_and_an_auditor_none(org: Org) -> None:
    campaign = launch(org, subjects=["grant"])
    review_item = item(campaign, f"grant:{org.grant.pk}")
    with pytest.raises(NotAllowed) as other:
        decide(org, org.other_user, review_item, "certify")
    assert other.value.code == "not_your_item"
    auditor = factories.make_auditor()
    with pytest.raises(NotAllowed):
        decide(org, auditor, review_item, "certify")
    review_item.refresh_from_db()
    assert review_item.status == ItemStatus.PENDING


def test_separation_of_duties_is_checked_again_when_deciding(org: Org) -> None:
    campaign = launch(org, subjects=["grant"])
    review_item = item(campaign, f"grant:{org.grant.pk}")
    # Since routing, the manager started delegating to the agent: it now acts for them.
    factories.make_grant(org.manager, org.resource, "read")
    factories.make_delegation(org.agent, ["crm.contacts:read"], root_human=org.manager)
    with pytest.raises(NotAllowed) as refused:
        decide(org, org.manager_user, review_item, "certify")
    assert refused.value.code == "separation_of_duties"


def test_a_decided_item_cannot_be_decided_again(org: Org) -> None:
    campaign = launch(org, subjects=["grant"])
    review_item = item(campaign, f"grant:{org.grant.pk}")
    decide(org, org.manager_user, review_item, "certify")
    with pytest.raises(Conflict) as again:
        decide(org, org.manager_user, review_item, "revoke", "changed my mind")
    assert again.value.code == "item_decided"
    org.grant.refresh_from_db()
    assert org.grant.status == GrantStatus.ACTIVE


@pytest.mark.parametrize(
    ("rule", "decision", "required"),
    [("always", "certify", True), ("revoke", "certify", False), ("revoke", "revoke", True), ("never", "revoke", False)],
)
def test_the_justification_rule(org: Org, rule: str, decision: str, required: bool) -> None:
    campaign = launch(org, subjects=["grant"], justification=rule)
    review_item = item(campaign, f"grant:{org.grant.pk}")
    if required:
        with pytest.raises(ValidationFailed) as missing:
            decide(org, org.manager_user, review_item, decision, "   ")
        assert missing.value.code == "justification_required"
    else:
        assert decide(org, org.manager_user, review_item, decision).status != ItemStatus.PENDING


def test_bulk_certify_decides_only_items_the_policy_allows_in_bulk(org: Org) -> None:
    campaign = launch(org, subjects=["grant", "key"], bulk_risks=["low", "medium", "high"])
    items = list(ReviewItem.objects.filter(campaign=campaign))
    ReviewItem.objects.filter(pk=items[0].pk).update(risk="critical")
    ReviewItem.objects.filter(pk=items[1].pk).update(risk="medium")
    result = services.review_certify_bulk(actor=Actor.user(org.manager_user), user=org.manager_user, items=items)
    assert [i.pk for i in result.decided] == [items[1].pk]
    assert set(result.skipped) == {items[0].pk} and "one by one" in result.skipped[items[0].pk]
    assert ReviewItem.objects.get(pk=items[1].pk).bulk


def test_reassigning_refuses_someone_separation_of_duties_excludes(org: Org) -> None:
    campaign = launch(org, subjects=["grant"])
    review_item = item(campaign, f"grant:{org.grant.pk}")
    with pytest.raises(ValidationFailed) as refused:
        services.review_reassign(
            actor=Actor.user(org.manager_user), user=org.manager_user, item=review_item, to=org.sponsor
        )
    assert refused.value.code == "separation_of_duties"
    moved = services.review_reassign(
        actor=Actor.user(org.manager_user), user=org.manager_user, item=review_item, to=org.other, reason="holiday"
    )
    assert moved.reviewer == org.other and moved.routing == f"reassigned by {org.manager_user.username}: holiday"
    assert decide(org, org.other_user, moved, "certify").status == ItemStatus.CERTIFIED


# --- Closing ------------------------------------------------------------------------------------


@pytest.mark.parametrize(("outcome", "status"), [("revoke", "revoked"), ("keep", "kept"), ("flag", "flagged")])
def test_closing_applies_the_no_response_outcome_to_undecided_items(org: Org, outcome: str, status: str) -> None:
    campaign = launch(org, subjects=["grant", "key"], no_response=outcome)
    decide(org, org.manager_user, item(campaign, f"key:{org.key.pk}"), "certify")
    closed = services.campaign_close(actor=Actor.user(org.admin), campaign=campaign)
    assert closed.status == CampaignStatus.CLOSED
    grant_item = item(campaign, f"grant:{org.grant.pk}")
    assert grant_item.status == status and grant_item.decided_by == f"no response ({outcome})"
    assert item(campaign, f"key:{org.key.pk}").status == ItemStatus.CERTIFIED
    org.grant.refresh_from_db()
    assert (org.grant.status == GrantStatus.REVOKED) == (outcome == "revoke")
    with pytest.raises(Conflict):
        decide(org, org.manager_user, grant_item, "certify")


def test_only_a_draft_is_launched_or_edited(org: Org) -> None:
    campaign = launch(org)
    with pytest.raises(Conflict):
        services.campaign_launch(actor=Actor.user(org.admin), campaign=campaign)
    with pytest.raises(Conflict):
        services.campaign_update(actor=Actor.user(org.admin), campaign=campaign, name="renamed")


@pytest.mark.parametrize(
    ("bad", "field"),
    [
        ({"subjects": []}, "subjects"),
        ({"subjects": ["humans"]}, "subjects"),
        ({"fallback_reviewer": None}, "fallback_reviewer"),
        ({"reviewer_rule": "named"}, "named_reviewer"),
        ({"recurrence": "cron", "cron": "every tuesday"}, "cron"),
        ({"reminder_days": [-1]}, "reminder_days"),
        ({"bulk_risks": ["trivial"]}, "bulk_risks"),
        ({"duration_days": 0}, "duration_days"),
    ],
)
def test_bad_settings_are_refused_with_the_field_at_fault(org: Org, bad: dict[str, object], field: str) -> None:
    values = {"name": "c", "subjects": ["grant"], "fallback_reviewer": org.fallback, **bad}
    with pytest.raises(ValidationFailed) as refused:
        services.campaign_create(actor=Actor.user(org.admin), **values)
    assert field in refused.value.fields
    assert not Campaign.objects.exists()


def test_a_reviewer_who_left_is_replaced_by_the_fallback(org: Org) -> None:
    governance.human_set_status(actor=factories.SYSTEM, human=org.manager, status="left")
    campaign = launch(org, subjects=["grant"])
    review_item = item(campaign, f"grant:{org.grant.pk}")
    assert review_item.reviewer == org.fallback and "Mia Manager has left" in review_item.routing


def test_a_human_without_a_reviewer_login_is_not_routed_to(org: Org) -> None:
    nobody = linked_human(factories.make_outsider(), name="No Role")
    campaign = launch(org, subjects=["grant"], reviewer_rule="named", named_reviewer=nobody)
    assert item(campaign, f"grant:{org.grant.pk}").reviewer == org.fallback
