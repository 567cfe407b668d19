"""Review jobs and races: two reviewers deciding one item from two connections, a recurring campaign asked
to launch by two beats at once, reminders and escalation under a frozen clock, recertification of
access nearing its end, micro-reviews, and notification emails."""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
import time_machine
from django.core import mail
from django.db import connection
from django.utils import timezone

from audit.models import AuditEvent
from audit.services import Actor
from console.errors import Conflict
from governance import runtime
from governance import services as governance
from governance.models import Agent, DriftEvent, GrantStatus
from reviews import services
from reviews.models import Campaign, CampaignKind, ItemKind, ItemStatus, Notification, ReviewItem
from tests import factories
from tests.reviews.support import Org, item, launch, make_org


def race(*calls: Callable[[], Any]) -> list[Any]:
    """Run the calls at the same moment in threads, each on its own database connection; return what
    each returned or raised."""
    barrier = threading.Barrier(len(calls))
    results: list[Any] = [None] * len(calls)

    def run(index: int, call: Callable[[], Any]) -> None:
        try:
            barrier.wait()
            results[index] = call()
        except Exception as exc:  # the outcome under test
            results[index] = exc
        finally:
            connection.close()

    threads = [threading.Thread(target=run, args=(i, c)) for i, c in enumerate(calls)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    return results


@pytest.mark.django_db(transaction=True)
def test_two_reviewers_deciding_one_item_at_once_exactly_one_wins_and_it_is_applied_once() -> None:
    org = make_org()
    campaign = launch(org, subjects=["grant"])
    review_item = item(campaign, f"grant:{org.grant.pk}")
    # The reviewer has the item open in two tabs (or two reviewers share it after an escalation).
    results = race(
        lambda: services.review_decide(
            actor=Actor.user(org.manager_user), user=org.manager_user, item=review_item, decision="revoke",
            justification="unused",
        ),
        lambda: services.review_decide(
            actor=Actor.user(org.manager_user), user=org.manager_user, item=review_item, decision="certify"
        ),
    )  # fmt: skip
    winners = [r for r in results if isinstance(r, ReviewItem)]
    losers = [r for r in results if isinstance(r, Conflict)]
    assert len(winners) == 1 and len(losers) == 1, results
    assert losers[0].code == "item_decided" and losers[0].status == 409
    assert AuditEvent.objects.filter(action="review.decide", target_id=str(review_item.pk)).count() == 1
    final = ReviewItem.objects.get(pk=review_item.pk)
    assert final.status == winners[0].status
    revokes = AuditEvent.objects.filter(action="grant.revoke", target_id=str(org.grant.pk)).count()
    assert revokes == (1 if final.status == ItemStatus.REVOKED else 0)


@pytest.mark.django_db(transaction=True)
def test_a_recurring_campaign_asked_by_two_beats_at_once_launches_its_occurrence_once() -> None:
    org = make_org()
    series = launch(org, name="Monthly keys", subjects=["key"], recurrence="monthly")
    assert series.next_launch_at is not None
    due = series.next_launch_at + timedelta(minutes=1)
    results = race(lambda: services.campaign_launch_due(now=due), lambda: services.campaign_launch_due(now=due))
    launched = [c for r in results for c in r]
    assert len(launched) == 1, results
    occurrence = Campaign.objects.get(series=series)
    assert occurrence.name.startswith("Monthly keys — ") and occurrence.status == "active"
    series.refresh_from_db()
    assert series.next_launch_at is not None and series.next_launch_at > due
    # Asked again at the same moment: nothing new.
    assert services.campaign_launch_due(now=due) == []


@pytest.fixture
def org(db: None) -> Org:
    return make_org()


def test_cron_recurrence_computes_the_next_launch() -> None:
    start = timezone.datetime(2026, 12, 1, 10, 0, tzinfo=timezone.UTC)
    assert services.next_occurrence("cron", "0 9 1 */3 *", start) == timezone.datetime(
        2027, 1, 1, 9, 0, tzinfo=timezone.UTC
    )
    assert services.next_occurrence("quarterly", "", timezone.datetime(2026, 11, 30, tzinfo=timezone.UTC)) == (
        timezone.datetime(2027, 2, 28, tzinfo=timezone.UTC)
    )


def test_reviewers_are_reminded_once_per_threshold_then_overdue_items_escalate_to_their_manager(org: Org) -> None:
    top = factories.make_reviewer()
    top_human = factories.make_human(user=top, name="Tess Top")
    org.manager.manager = top_human
    org.manager.save(update_fields=["manager"])
    start = timezone.now()
    campaign = launch(org, subjects=["grant", "key"], duration_days=10, reminder_days=[3, 1], escalate_after_days=2)
    with time_machine.travel(start + timedelta(days=6), tick=False):
        assert services.reviews_remind_due() == 0
    with time_machine.travel(start + timedelta(days=7, hours=1), tick=False):
        assert services.reviews_remind_due() == 2  # 3 days before: both items, one notification
        assert services.reviews_remind_due() == 0  # already reminded for this threshold
    with time_machine.travel(start + timedelta(days=9, hours=1), tick=False):
        assert services.reviews_remind_due() == 2  # 1 day before
    notes = Notification.objects.filter(campaign=campaign, kind="reminder", user=org.manager_user)
    assert notes.count() == 2 and all(n.items == 2 for n in notes)
    with time_machine.travel(start + timedelta(days=11), tick=False):
        assert services.reviews_escalate_due() == 0  # overdue, but not for 2 days yet
    with time_machine.travel(start + timedelta(days=12, hours=1), tick=False):
        assert services.reviews_escalate_due() == 2
        assert services.reviews_escalate_due() == 0
    escalated = item(campaign, f"grant:{org.grant.pk}")
    assert escalated.reviewer == top_human and escalated.escalated_from == org.manager
    assert Notification.objects.filter(kind="escalation", user=top).get().items == 2
    assert Notification.objects.filter(kind="escalation", user=org.manager_user).exists()
    assert AuditEvent.objects.filter(action="review.escalate").count() == 2
    # The manager can still read it; the new reviewer decides it.
    assert ReviewItem.objects.visible_to(org.manager_user).filter(pk=escalated.pk).exists()
    services.review_decide(actor=Actor.user(top), user=top, item=escalated, decision="certify")


def test_notifications_are_emailed_once(org: Org) -> None:
    org.manager_user.email = "mia@example.test"
    org.manager_user.save()
    launch(org, subjects=["grant"])
    assert services.notifications_send() == 1
    assert services.notifications_send() == 0
    assert len(mail.outbox) == 1
    assert mail.outbox[0].to == ["mia@example.test"] and "1 items await your review" in mail.outbox[0].body


def test_access_nearing_its_end_opens_a_renewal_that_renews_it_or_lapses_in_silence(org: Org) -> None:
    soon = factories.make_resource(name="crm.leads")
    factories.make_grant(org.sponsor, soon, "read")
    renewing = factories.make_grant(org.agent, soon, "read", expires_at=timezone.now() + timedelta(days=3))
    standing = services.standing_campaign(CampaignKind.RECERTIFICATION)
    services.campaign_update(actor=factories.SYSTEM, campaign=standing, fallback_reviewer=org.fallback)
    opened = services.recertification_open_due()
    assert opened["opened"] >= 1
    renewal = ReviewItem.objects.get(campaign=standing, grant=renewing, kind=ItemKind.RENEWAL)
    assert renewal.reviewer == org.manager and renewal.due_at == renewing.expires_at
    assert renewal.recommendation == "revoke" and renewal.recommendation_reason.endswith("; let it expire")
    assert services.recertification_open_due()["opened"] == 0  # idempotent
    renewed = services.review_decide(
        actor=Actor.user(org.manager_user), user=org.manager_user, item=renewal, decision="certify"
    )
    renewing.refresh_from_db()
    assert renewed.renewed_until == renewing.expires_at
    assert renewing.expires_at > timezone.now() + timedelta(days=29)
    # Another grant ends undecided: its item lapses when it does, and the grant expires as planned.
    lapsing = factories.make_grant(org.agent, factories.make_resource(name="crm.deals"), "read",
                                   expires_at=timezone.now() + timedelta(days=2))  # fmt: skip
    services.recertification_open_due()
    with time_machine.travel(timezone.now() + timedelta(days=3)):
        assert services.recertification_open_due()["lapsed"] >= 1
    lapsed = ReviewItem.objects.get(campaign=standing, grant=lapsing)
    assert lapsed.status == ItemStatus.LAPSED
    lapsing.refresh_from_db()
    assert lapsing.status == GrantStatus.ACTIVE and lapsing.expires_at < timezone.now() + timedelta(days=3)


def test_micro_reviews_open_for_drift_a_sponsor_gone_and_a_leaked_key_once_each(org: Org) -> None:
    drift = DriftEvent.objects.create(agent=org.agent, kind="repeated_out_of_scope", reason="scope_not_granted",
                                      count=6, window_seconds=600, detail={"scopes": ["erp.invoices:read"]})  # fmt: skip
    orphan = factories.make_agent(sponsor=factories.make_human(name="Lee Leaver"))
    governance.human_set_status(actor=factories.SYSTEM, human=orphan.sponsor, status="left")
    governance.agentkey_revoke(actor=factories.SYSTEM, key=org.key, reason="in a public log", leaked=True)
    micro = services.standing_campaign(CampaignKind.MICRO)
    services.campaign_update(actor=factories.SYSTEM, campaign=micro, fallback_reviewer=org.fallback)
    assert services.micro_reviews_open()["opened"] == 3
    assert services.micro_reviews_open()["opened"] == 0
    kinds = dict(ReviewItem.objects.filter(campaign=micro).values_list("subject_key", "kind"))
    assert kinds == {
        f"drift:{drift.pk}": ItemKind.DRIFT,
        f"sponsor:{orphan.pk}:{orphan.sponsor_id}:left": ItemKind.SPONSOR_INACTIVE,
        f"leak:{org.key.pk}": ItemKind.KEY_LEAKED,
    }
    orphaned = ReviewItem.objects.get(campaign=micro, kind=ItemKind.SPONSOR_INACTIVE)
    assert orphaned.recommendation == "revoke" and orphaned.risk in ("high", "critical")
    # Certifying the drift review acknowledges the drift event.
    drift_item = ReviewItem.objects.get(campaign=micro, kind=ItemKind.DRIFT)
    services.review_decide(actor=Actor.user(org.manager_user), user=org.manager_user, item=drift_item,
                           decision="certify")  # fmt: skip
    drift.refresh_from_db()
    assert drift.acknowledged_at is not None
    # An agent that stops meanwhile takes its pending micro-reviews with it.
    governance.agent_suspend(actor=factories.SYSTEM, agent=orphan)
    assert services.micro_reviews_open()["ended"] == 1
    assert ReviewItem.objects.get(campaign=micro, kind=ItemKind.SPONSOR_INACTIVE).status == ItemStatus.OBSOLETE


def test_a_just_in_time_grant_opens_a_micro_review_once_it_is_used_and_revoking_ends_it(org: Org) -> None:
    factories.make_grant(org.sponsor, org.resource, "write")
    asked = governance.access_request_create(
        actor=Actor.agent(org.agent),
        agent=org.agent,
        delegation=org.delegation,
        scope="crm.contacts:write",
        justification="fix a duplicated contact",
    )
    approved = governance.access_request_approve(
        actor=Actor.user(org.sponsor_user), user=org.sponsor_user, request=asked
    )
    micro = services.standing_campaign(CampaignKind.MICRO)
    services.campaign_update(actor=factories.SYSTEM, campaign=micro, fallback_reviewer=org.fallback)
    assert services.micro_reviews_open()["opened"] == 0  # granted, not used yet
    token = factories.make_token(org.key_secret, approved.resulting_delegation)
    allowed = runtime.check(credential=token, action="write", resource="crm.contacts", context={})
    assert allowed.outcome.allowed
    assert services.micro_reviews_open()["opened"] == 1
    used = ReviewItem.objects.get(campaign=micro, kind=ItemKind.JIT_USED)
    assert used.access_request_id == asked.pk and used.reviewer == org.manager
    assert used.recommendation == "certify" and used.recommendation_reason.startswith("used once")
    services.review_decide(actor=Actor.user(org.manager_user), user=org.manager_user, item=used, decision="revoke",
                           justification="one-off fix done")  # fmt: skip
    again = runtime.check(credential=token, action="write", resource="crm.contacts", context={})
    assert not again.outcome.allowed


def test_an_agent_handed_to_a_new_sponsor_opens_a_succession_review_for_the_new_sponsors_manager(org: Org) -> None:
    micro = services.standing_campaign(CampaignKind.MICRO)
    services.campaign_update(actor=factories.SYSTEM, campaign=micro, fallback_reviewer=org.fallback)
    # As governance's human offboarding leaves it: the agent moved to the leaver's manager (Sam).
    heir = factories.make_agent(sponsor=org.sponsor, name="inherited-bot")
    Agent.objects.filter(pk=heir.pk).update(sponsor_changed_at=timezone.now())
    assert services.micro_reviews_open()["opened"] == 1
    succession = ReviewItem.objects.get(campaign=micro, agent=heir)
    assert succession.label == "inherited-bot: now sponsored by Sam Sponsor (its sponsor left)"
    assert succession.reviewer == org.manager and succession.recommendation == "certify"
    assert services.micro_reviews_open()["opened"] == 0
