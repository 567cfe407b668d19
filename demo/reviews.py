"""The demo's access reviews, replayed with the rest of its history.

- **Agent access review** (closed): launched three weeks ago over agents' grants and
  delegations; Elena Petrova worked her items over three sittings, taking her time and following the
  recommendations where the recorded use bore them out; Nadia Haddad, the fallback reviewer, certified
  hers in bulk seconds after opening them (what the rubber-stamp signals are for); closing flagged the
  rest. Its report is the evidence an auditor asks for.
- **Support agent access, this quarter** (active, recurring quarterly): launched five days ago over the
  Support department's agents that reach sensitive data, and their access, so the demo reviewer logs in
  to a queue of a few dozen items, some advised for revocation because the seeded usage shows them
  unused; she has decided a few.
- The standing campaigns (recertification, micro-reviews) send what nobody else may review to Nadia, and
  are run once at the end, so access nearing its end and the demo's drift, leavers and leaked key are
  in the queues too.

Review choices draw on their own seeded generator, so adding reviews left the rest of the story as it was.
"""

from __future__ import annotations

import random
from datetime import datetime
from functools import partial
from typing import TYPE_CHECKING

from django.contrib.auth.models import User

from audit.services import Actor
from governance.usage import usage
from reviews import services
from reviews.models import Campaign, CampaignKind, ItemKind, ItemStatus, ReviewItem

if TYPE_CHECKING:
    from demo.lifecycle import Lifecycle

SEED = 4211 + 97
PAST_LAUNCH_DAY = 21
PAST_SITTINGS = (23, 26, 29)
PAST_CLOSE_DAY = 34
CURRENT_LAUNCH_BEFORE_END = 5


def _quarter(moment: datetime) -> str:
    return f"{moment.year} Q{(moment.month - 1) // 3 + 1}"


class DemoReviews:
    def __init__(self, seeder: Lifecycle, history_days: int) -> None:
        self.seeder = seeder
        self.tl = seeder.tl
        self.rng = random.Random(SEED)  # noqa: S311 - a reproducible demo, not a secret
        self.history_days = history_days
        self.past: Campaign | None = None
        self.current: Campaign | None = None

    # -- people ------------------------------------------------------------------------------

    @property
    def elena(self) -> User:
        return self.seeder.users["elena-petrova"]

    @property
    def nadia(self) -> User:
        return self.seeder.users["nadia-haddad"]

    def plan(self) -> None:
        tl = self.tl
        tl.at(tl.day(PAST_LAUNCH_DAY, 9, 30), self.launch_past)
        for share, day in enumerate(PAST_SITTINGS):
            tl.at(tl.day(day, 10, 5), partial(self.sitting, share))
        tl.at(tl.day(PAST_SITTINGS[0], 16, 40), self.rubber_stamp)
        tl.at(tl.day(PAST_CLOSE_DAY, 17, 0), self.close_past)
        launch_day = self.history_days - CURRENT_LAUNCH_BEFORE_END
        tl.at(tl.day(launch_day, 9, 0), self.launch_current)
        tl.at(tl.day(launch_day + 2, 10, 20), self.first_look)

    # -- last quarter ----------------------------------------------------------------------------

    def launch_past(self) -> None:
        usage.flush()  # keys' last use and agents' last activity, as a running system would have them
        admin = self.seeder.admin
        nadia = self.seeder.human("nadia-haddad")
        for kind in (CampaignKind.RECERTIFICATION, CampaignKind.MICRO):
            standing = services.standing_campaign(kind)
            services.campaign_update(actor=admin, campaign=standing, fallback_reviewer=nadia)
        campaign = services.campaign_create(
            actor=admin,
            name=f"Agent access review — {self.tl.now:%B %Y}",
            description="Quarterly certification of every agent's grants and delegations.",
            subjects=["grant", "delegation"],
            reviewer_rule="sponsor_manager",
            fallback_reviewer=nadia,
            duration_days=14,
            reminder_days=[7, 1],
            escalate_after_days=3,
            no_response="flag",
            justification="revoke",
            bulk_risks=["low", "medium", "high"],
        )
        services.campaign_launch(actor=admin, campaign=campaign)
        services.campaign_generate(campaign_id=campaign.pk)
        self.past = campaign

    def _decide(self, user: User, item: ReviewItem, *, think: tuple[int, int]) -> None:
        actor = Actor.user(user)
        services.review_mark_opened(actor=actor, user=user, item=item)
        self.tl.pause(self.rng.randint(*think))
        # Grants unused for months go; a delegation advised for revocation is kept with a reason (the
        # demo's later history still relies on its delegations).
        if item.recommendation == "revoke" and item.kind == ItemKind.GRANT:
            decision, why = "revoke", f"Agreed: {item.recommendation_reason}."
        elif item.recommendation == "revoke":
            decision, why = "certify", "Seasonal work: needed again for the quarter-end close."
        else:
            decision, why = "certify", ""
        services.review_decide(actor=actor, user=user, item=item, decision=decision, justification=why)

    def sitting(self, share: int) -> None:
        """Elena works through a third of her items each sitting, opening and reading each one."""
        assert self.past is not None
        mine = list(ReviewItem.objects.pending().filter(campaign=self.past, reviewer__user=self.elena).order_by("id"))
        last = share == len(PAST_SITTINGS) - 1
        # She leaves a couple for later and never comes back to them: closing flags those.
        take = mine[:-2] if last else mine[: len(mine) // (len(PAST_SITTINGS) - share)]
        for item in take:
            self._decide(self.elena, item, think=(25, 150))

    def rubber_stamp(self) -> None:
        """Nadia clears her queue in minutes: a dozen items certified a second or two after opening each,
        then the rest of the low-risk ones in bulk. The signals admins see on the campaign page."""
        assert self.past is not None
        actor = Actor.user(self.nadia)
        hers = list(ReviewItem.objects.pending().filter(campaign=self.past, reviewer__user=self.nadia).order_by("id"))
        for item in hers[:12]:
            services.review_mark_opened(actor=actor, user=self.nadia, item=item)
            self.tl.pause(self.rng.randint(1, 3))
            services.review_decide(actor=actor, user=self.nadia, item=item, decision="certify")
        eligible = [i for i in hers[12:] if i.risk in self.past.bulk_risks][:30]
        services.review_certify_bulk(actor=actor, user=self.nadia, items=eligible)

    def close_past(self) -> None:
        assert self.past is not None
        services.campaign_close(actor=self.seeder.admin, campaign=self.past)

    # -- this quarter ---------------------------------------------------------------------------

    def launch_current(self) -> None:
        usage.flush()
        admin = self.seeder.admin
        campaign = services.campaign_create(
            actor=admin,
            name=f"Support agent access — {_quarter(self.tl.now)}",
            description=(
                "Support's agents that reach high or critical data, with their grants, delegations and keys, "
                "reviewed by the sponsors' managers."
            ),
            subjects=["agent", "grant", "delegation", "key"],
            filter_department="Support",
            filter_min_sensitivity="high",
            reviewer_rule="sponsor_manager",
            fallback_reviewer=self.seeder.human("nadia-haddad"),
            duration_days=21,
            recurrence="quarterly",
            reminder_days=[7, 2],
            escalate_after_days=3,
            no_response="flag",
            justification="revoke",
            bulk_risks=["low", "medium"],
        )
        services.campaign_launch(actor=admin, campaign=campaign)
        services.campaign_generate(campaign_id=campaign.pk)
        self.current = campaign

    def first_look(self) -> None:
        """Elena decides a handful: the campaign page has progress to show, her queue plenty left."""
        assert self.current is not None
        mine = ReviewItem.objects.pending().filter(campaign=self.current, reviewer__user=self.elena)
        for item in list(mine.filter(recommendation="certify").order_by("id")[:6]):
            self._decide(self.elena, item, think=(20, 90))

    # -- at the end --------------------------------------------------------------------------

    def finish(self) -> None:
        """Run the standing campaigns' jobs once, at the real now."""
        services.recertification_open_due()
        services.micro_reviews_open()


def summary() -> str:
    campaigns = Campaign.objects.filter(kind=CampaignKind.CAMPAIGN)
    pending = ReviewItem.objects.filter(status=ItemStatus.PENDING)
    mine = pending.filter(reviewer__user__username="reviewer").count()
    return f"{campaigns.count()} campaigns, {pending.count()} items pending ({mine} in the demo reviewer's queue)"
