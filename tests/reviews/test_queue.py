"""The review queue's console pages: who sees and decides what, that a decision goes through the services
and takes effect on the agent's next check, keyset paging at a constant query count, bulk certify, the
notifications page and its badge."""

from __future__ import annotations

import base64
import html
import json
import re
from dataclasses import dataclass
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from governance import runtime
from governance.models import Agent, Grant, GrantStatus, Human, Resource
from reviews import selectors
from reviews import services as review_services
from reviews.models import Campaign, ItemStatus, Notification, NotificationKind, ReviewItem, queue_key
from tests import factories

pytestmark = pytest.mark.django_db

HTMX = {"HTTP_HX_REQUEST": "true"}


@dataclass
class World:
    """``rita`` reviews every grant by name, except those of the agent Rita sponsors (``ritas_bot``),
    which separation of duties routes to the fallback ``fred``. Keys are kept to call the check."""

    users: dict[str, User]
    rita: Human
    fred: Human
    resource: Resource
    agents: list[Agent]
    keys: list[str]
    ritas_bot: Agent
    campaign: Campaign

    def client(self, role: str) -> Client:
        client = Client()
        if role != "anonymous":
            client.force_login(self.users[role])
        return client

    def items_of(self, role: str) -> list[ReviewItem]:
        return list(ReviewItem.objects.pending().assigned_to(self.users[role]).order_by("id"))


def build_world(n_agents: int = 3, *, bulk_risks: list[str] | None = None, justification: str = "revoke") -> World:
    users = {
        "rita": factories.make_reviewer(),
        "fred": factories.make_reviewer(),
        "admin": factories.make_admin(),
        "auditor": factories.make_auditor(),
        "outsider": factories.make_outsider(),
    }
    rita = factories.make_human(name="Rita Reviewer", user=users["rita"])
    fred = factories.make_human(name="Fred Fallback", user=users["fred"])
    owner = factories.make_human(name="Olga Owner")
    resource = factories.make_resource(owner=owner)
    agents, keys = [], []
    for _ in range(n_agents):
        agent = factories.make_agent(sponsor=factories.make_human())
        factories.make_grant(agent, resource, "read")
        agents.append(agent)
        keys.append(factories.make_key(agent)[1])
    ritas_bot = factories.make_agent(sponsor=rita, name="ritas-bot")
    factories.make_grant(ritas_bot, resource, "read")
    campaign = review_services.campaign_create(
        actor=factories.SYSTEM,
        name="Quarterly grants",
        subjects=["grant"],
        reviewer_rule="named",
        named_reviewer=rita,
        fallback_reviewer=fred,
        justification=justification,
        bulk_risks=bulk_risks if bulk_risks is not None else ["low", "medium", "high", "critical"],
    )
    review_services.campaign_launch(actor=factories.SYSTEM, campaign=campaign)
    review_services.campaign_generate(campaign_id=campaign.pk)
    return World(users, rita, fred, resource, agents, keys, ritas_bot, campaign)


@pytest.fixture
def world() -> World:
    return build_world()


def _decide(client: Client, item: ReviewItem, decision: str, justification: str = "", **headers: Any) -> Any:
    url = reverse("console:review_item_decide", args=[item.pk])
    return client.post(url, {"decision": decision, "justification": justification}, **headers)


# --- Routing as the queue shows it ---------------------------------------------------------------


def test_the_world_routes_the_sponsors_own_agent_to_the_fallback(world: World) -> None:
    assert len(world.items_of("rita")) == 3
    [freds] = world.items_of("fred")
    assert freds.agent_id == world.ritas_bot.pk


# --- Role matrix ---------------------------------------------------------------------------------


def test_a_reviewer_sees_only_their_own_items(world: World) -> None:
    response = world.client("rita").get(reverse("console:reviews"))
    assert response.status_code == 200
    shown = {item.pk for item in ReviewItem.objects.all() if f'id="item-{item.pk}"' in response.text}
    assert shown == {item.pk for item in world.items_of("rita")}
    assert b"data-open" in response.content and b"bulk-form" in response.content


def test_an_auditor_reads_every_pending_item_and_decides_none(world: World) -> None:
    client = world.client("auditor")
    response = client.get(reverse("console:reviews"))
    assert response.status_code == 200
    for item in ReviewItem.objects.all():
        assert f'id="item-{item.pk}"' in response.text
    assert b"bulk-form" not in response.content
    item = world.items_of("rita")[0]
    drawer = client.get(reverse("console:review_item", args=[item.pk]), **HTMX)
    assert drawer.status_code == 200
    assert b"data-decide" not in drawer.content and b"Read-only" in drawer.content
    assert _decide(client, item, "certify").status_code == 403
    item.refresh_from_db()
    assert item.status == ItemStatus.PENDING and item.opened_at is None


@pytest.mark.parametrize("role", ["outsider", "anonymous"])
def test_people_without_a_role_get_nothing(world: World, role: str) -> None:
    client = world.client(role)
    item = world.items_of("rita")[0]
    expected = 403 if role == "outsider" else 302
    assert client.get(reverse("console:reviews")).status_code == expected
    assert client.get(reverse("console:review_item", args=[item.pk])).status_code == expected
    assert _decide(client, item, "revoke", "no").status_code == expected
    assert client.get(reverse("console:review_notifications")).status_code == expected
    item.refresh_from_db()
    assert item.status == ItemStatus.PENDING


def test_another_reviewers_item_is_not_found(world: World) -> None:
    [freds] = world.items_of("fred")
    client = world.client("rita")
    assert client.get(reverse("console:review_item", args=[freds.pk])).status_code == 404
    assert _decide(client, freds, "certify").status_code == 404
    assert (
        client.post(reverse("console:review_item_reassign", args=[freds.pk]), {"reviewer": world.rita.pk}).status_code
        == 404
    )
    freds.refresh_from_db()
    assert freds.status == ItemStatus.PENDING and freds.reviewer_id == world.fred.pk


def test_an_admin_may_read_but_not_decide_a_reviewers_item(world: World) -> None:
    item = world.items_of("rita")[0]
    assert _decide(world.client("admin"), item, "certify").status_code == 403
    item.refresh_from_db()
    assert item.status == ItemStatus.PENDING


def test_opening_an_item_records_the_first_opening_for_its_reviewer_only(world: World) -> None:
    item = world.items_of("rita")[0]
    world.client("auditor").get(reverse("console:review_item", args=[item.pk]))
    item.refresh_from_db()
    assert item.opened_at is None
    response = world.client("rita").get(reverse("console:review_item", args=[item.pk]))
    assert response.status_code == 200 and item.label.encode() in response.content
    item.refresh_from_db()
    assert item.opened_at is not None


# --- Deciding ------------------------------------------------------------------------------------


def test_a_revoke_in_the_console_ends_the_grant_and_the_agents_next_check_is_denied(world: World) -> None:
    agent, key = world.agents[0], world.keys[0]
    assert runtime.check(credential=key, action="read", resource=world.resource.name, context={}).outcome.allowed
    item = ReviewItem.objects.get(agent=agent)
    response = _decide(world.client("rita"), item, "revoke", "no longer needed", **HTMX)
    assert response.status_code == 200
    # The row leaves the queue and the next item opens.
    assert f'id="item-{item.pk}" hx-swap-oob="delete"'.encode() in response.content
    assert b"data-drawer-item=" in response.content
    item.refresh_from_db()
    assert item.status == ItemStatus.REVOKED and item.justification == "no longer needed"
    assert Grant.objects.get(pk=item.grant_id).status == GrantStatus.REVOKED
    outcome = runtime.check(credential=key, action="read", resource=world.resource.name, context={}).outcome
    assert not outcome.allowed


def test_a_certify_without_htmx_redirects_back_to_the_queue(world: World) -> None:
    item = world.items_of("rita")[0]
    response = _decide(world.client("rita"), item, "certify")
    assert response.status_code == 302 and response["Location"] == reverse("console:reviews")
    item.refresh_from_db()
    assert item.status == ItemStatus.CERTIFIED


def test_a_revoke_without_the_required_justification_is_refused_inline(world: World) -> None:
    item = world.items_of("rita")[0]
    response = _decide(world.client("rita"), item, "revoke", "", **HTMX)
    assert response.status_code == 422
    assert b"justification_required" in response.content
    item.refresh_from_db()
    assert item.status == ItemStatus.PENDING


def test_deciding_an_item_twice_says_who_decided_it(world: World) -> None:
    item = world.items_of("rita")[0]
    client = world.client("rita")
    assert _decide(client, item, "certify", **HTMX).status_code == 200
    response = _decide(client, item, "revoke", "changed my mind", **HTMX)
    assert response.status_code == 422 and b"item_decided" in response.content
    item.refresh_from_db()
    assert item.status == ItemStatus.CERTIFIED


def test_separation_of_duties_is_shown_inline(world: World) -> None:
    [freds] = world.items_of("fred")
    # Fred comes to sponsor the agent after the item was routed to him: the service re-checks.
    Agent.objects.filter(pk=freds.agent_id).update(sponsor=world.fred)
    response = _decide(world.client("fred"), freds, "certify", **HTMX)
    assert response.status_code == 422 and b"separation_of_duties" in response.content
    freds.refresh_from_db()
    assert freds.status == ItemStatus.PENDING


def test_a_reviewer_hands_an_item_to_another_reviewer(world: World) -> None:
    item = world.items_of("rita")[0]
    url = reverse("console:review_item_reassign", args=[item.pk])
    response = world.client("rita").post(url, {"reviewer": world.fred.pk, "reason": "on leave"}, **HTMX)
    assert response.status_code == 200
    item.refresh_from_db()
    assert item.reviewer_id == world.fred.pk and "on leave" in item.routing
    assert Notification.objects.filter(user=world.users["fred"], kind=NotificationKind.ASSIGNED).exists()


def test_reassigning_to_someone_conflicted_is_refused_inline(world: World) -> None:
    item = world.items_of("rita")[0]
    sponsor = item.agent.sponsor
    sponsor.user = factories.make_reviewer()
    sponsor.save()
    url = reverse("console:review_item_reassign", args=[item.pk])
    response = world.client("rita").post(url, {"reviewer": sponsor.pk}, **HTMX)
    assert response.status_code == 422 and b"separation_of_duties" in response.content
    item.refresh_from_db()
    assert item.reviewer_id == world.rita.pk


# --- Bulk certify ------------------------------------------------------------------------------


def test_bulk_certify_certifies_what_the_campaign_allows_and_says_what_it_skipped() -> None:
    world = build_world(bulk_risks=[])
    items = world.items_of("rita")
    Campaign.objects.filter(pk=world.campaign.pk).update(bulk_risks=[items[0].risk])
    ReviewItem.objects.filter(pk__in=[i.pk for i in items[1:]]).update(
        risk="critical" if items[0].risk != "critical" else "low"
    )
    [freds] = world.items_of("fred")
    ids = [str(i.pk) for i in items] + [str(freds.pk)]
    response = world.client("rita").post(reverse("console:reviews_certify_bulk"), {"items": ids}, **HTMX)
    assert response.status_code == 200
    assert b"Certified 1 item." in response.content
    assert response.content.count(b"decided one by one") == 2
    statuses = dict(ReviewItem.objects.values_list("pk", "status"))
    assert statuses[items[0].pk] == ItemStatus.CERTIFIED
    assert all(statuses[i.pk] == ItemStatus.PENDING for i in items[1:])
    # Fred's item is not visible to Rita: it was never even handed to the service.
    assert statuses[freds.pk] == ItemStatus.PENDING


def test_the_queue_disables_the_checkbox_of_items_not_certifiable_in_bulk() -> None:
    world = build_world(bulk_risks=[])
    response = world.client("rita").get(reverse("console:reviews"))
    assert b'name="items"' not in response.content
    assert b"this campaign wants it decided on its own" in response.content


# --- Paging and query counts --------------------------------------------------------------------


def _count_queue_queries(client: Client) -> int:
    client.get(reverse("console:reviews"))  # warm the session
    with CaptureQueriesContext(connection) as captured:
        response = client.get(reverse("console:reviews"))
    assert response.status_code == 200
    return len(captured.captured_queries)


def _delegator(world: World) -> Human:
    human = factories.make_human()
    factories.make_grant(human, world.resource, "read")
    return human


def _more_items(world: World, n: int) -> None:
    """A second campaign naming Rita over ``n`` more grants (and the earlier ones again)."""
    for _ in range(n):
        agent = factories.make_agent(sponsor=factories.make_human())
        factories.make_grant(agent, world.resource, "read")
        factories.make_delegation(agent, [world.resource.scope("read")], root_human=_delegator(world))
    campaign = review_services.campaign_create(
        actor=factories.SYSTEM,
        name="More grants",
        subjects=["grant"],
        reviewer_rule="named",
        named_reviewer=world.rita,
        fallback_reviewer=world.fred,
    )
    review_services.campaign_launch(actor=factories.SYSTEM, campaign=campaign)
    review_services.campaign_generate(campaign_id=campaign.pk)


def test_the_queue_runs_the_same_queries_for_3_items_as_for_40(django_assert_num_queries: Any) -> None:
    world = build_world(3)
    client = world.client("rita")
    small = _count_queue_queries(client)
    _more_items(world, 37)
    assert len(world.items_of("rita")) >= 40
    with django_assert_num_queries(small):
        response = client.get(reverse("console:reviews"))
    assert response.content.count(b'class="q-row') >= 40
    # Auditors read everyone's: the same count again.
    auditor = world.client("auditor")
    before = _count_queue_queries(auditor)
    _more_items(world, 5)
    with django_assert_num_queries(before):
        auditor.get(reverse("console:reviews"))


def test_the_drawer_runs_a_bounded_number_of_queries_whatever_the_agent_holds(
    django_assert_num_queries: Any,
) -> None:
    world = build_world(1)
    client = world.client("rita")
    [item] = world.items_of("rita")
    client.get(reverse("console:review_item", args=[item.pk]), **HTMX)  # the first opening writes
    with CaptureQueriesContext(connection) as captured:
        client.get(reverse("console:review_item", args=[item.pk]), **HTMX)
    for _ in range(6):
        factories.make_delegation(item.agent, [world.resource.scope("read")], root_human=_delegator(world))
    with django_assert_num_queries(len(captured.captured_queries)):
        response = client.get(reverse("console:review_item", args=[item.pk]), **HTMX)
    assert response.content.count(b'<li><a class="mono small" href="/delegations/') == 6


def test_pages_follow_the_marker_in_queue_order(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(selectors, "PAGE_SIZE", 2)
    world = build_world(5)
    mine = [i.pk for i in world.items_of("rita")]
    # Ties on the first keys: the order must still be total and the pages must not overlap.
    for item in ReviewItem.objects.filter(pk__in=mine):
        ReviewItem.objects.filter(pk=item.pk).update(
            risk_score=7, blast_radius=3, queue_key=queue_key(7, 3, item.due_at, item.pk)
        )
    expected = list(ReviewItem.objects.pending().assigned_to(world.users["rita"]).values_list("pk", flat=True))
    client = world.client("rita")
    seen: list[int] = []
    url = reverse("console:reviews")
    for _ in range(5):
        response = client.get(url, **HTMX)
        assert response.status_code == 200
        seen += [int(pk) for pk in re.findall(r'<tr id="item-(\d+)"', response.text)]
        following = re.search(r'href="([^"]*after=[^"]*)"[^>]*>Next page', response.text)
        if following is None:
            break
        url = html.unescape(following.group(1))
    assert seen == expected and len(seen) == 5


@pytest.mark.parametrize(
    "marker",
    [
        "not-base64!!",
        base64.urlsafe_b64encode(b'["x",1,"2026-01-01T00:00:00+00:00",1]').decode(),
        base64.urlsafe_b64encode(b'[1,1,"yesterday",1]').decode(),
        base64.urlsafe_b64encode(b'[1,1,"2026-01-01T00:00:00",1]').decode(),
        base64.urlsafe_b64encode(json.dumps([1, 1, "2026-01-01T00:00:00+00:00", 0]).encode()).decode(),
        base64.urlsafe_b64encode(json.dumps([1, 1, "2026-01-01T00:00:00+00:00", 2**70]).encode()).decode(),
        "A" * 500,
    ],
)
def test_a_hand_edited_marker_is_a_400(world: World, marker: str) -> None:
    response = world.client("rita").get(reverse("console:reviews"), {"after": marker})
    assert response.status_code == 400


def test_filters_narrow_the_rows(world: World) -> None:
    client = world.client("rita")
    target = world.items_of("rita")[1]
    response = client.get(reverse("console:reviews"), {"q": target.agent.name}, **HTMX)
    assert f'id="item-{target.pk}"'.encode() in response.content
    assert response.content.count(b'class="q-row') == 1
    response = client.get(reverse("console:reviews"), {"overdue": "on"}, **HTMX)
    assert b"q-row" not in response.content
    ReviewItem.objects.filter(pk=target.pk).update(due_at=timezone.now() - timezone.timedelta(days=1))
    response = client.get(reverse("console:reviews"), {"overdue": "on"}, **HTMX)
    assert response.content.count(b'class="q-row') == 1 and b"is-overdue" in response.content


def test_an_admin_can_list_the_unassigned_items_and_a_reviewer_cannot(world: World) -> None:
    item = world.items_of("rita")[0]
    ReviewItem.objects.filter(pk=item.pk).update(reviewer=None)
    admin = world.client("admin").get(reverse("console:reviews"), {"show": "unassigned"}, **HTMX)
    assert f'id="item-{item.pk}"'.encode() in admin.content
    assert b'name="items"' in admin.content  # an admin may decide an unassigned item
    reviewer = world.client("rita").get(reverse("console:reviews"), {"show": "unassigned"}, **HTMX)
    assert f'id="item-{item.pk}"'.encode() not in reviewer.content


# --- Notifications and the badge ----------------------------------------------------------------


def test_notifications_are_listed_newest_first_and_marked_read_on_request(world: World) -> None:
    user = world.users["rita"]
    Notification.objects.filter(user=user).delete()
    old = Notification.objects.create(user=user, kind="reminder", campaign=world.campaign, subject="old one", body="b")
    new = Notification.objects.create(user=user, kind="assigned", campaign=world.campaign, subject="new one", body="b")
    Notification.objects.create(
        user=world.users["fred"], kind="assigned", campaign=world.campaign, subject="freds", body="b"
    )
    client = world.client("rita")
    badge = client.get(reverse("console:review_notifications_badge"))
    assert badge.status_code == 200 and b">5<" in badge.content.replace(b'<span class="visually-hidden"> pending', b"<")
    response = client.get(reverse("console:review_notifications"))
    assert response.status_code == 200
    text = response.text
    assert text.index("new one") < text.index("old one") and "freds" not in text
    # Reading the page changes nothing; marking them read is a POST, and marks only the user's own.
    assert Notification.objects.filter(pk__in=[old.pk, new.pk], read_at__isnull=True).count() == 2
    freds_unread = Notification.objects.filter(user=world.users["fred"], read_at__isnull=True).count()
    assert client.post(reverse("console:review_notifications_read")).status_code == 302
    assert not Notification.objects.filter(pk__in=[old.pk, new.pk], read_at__isnull=True).exists()
    assert Notification.objects.filter(user=world.users["fred"], read_at__isnull=True).count() == freds_unread > 0
    badge = client.get(reverse("console:review_notifications_badge"))
    assert b"3 pending items" in badge.content


def test_the_navigation_links_reviews_and_campaigns(world: World) -> None:
    response = world.client("auditor").get(reverse("console:reviews"))
    assert reverse("console:campaigns").encode() in response.content
    assert b'aria-current="page">Reviews' in response.content
    home = world.client("rita").get(reverse("console:agents"))
    assert b'id="reviews-badge"' in home.content


def test_advice_to_revoke_for_lack_of_use_is_flagged_when_the_access_was_used_since(world: World) -> None:
    item = world.items_of("rita")[0]
    # Unused when the campaign opened (the world's agents never called): the advice is to revoke.
    assert item.recommendation == "revoke"
    url = reverse("console:review_item", args=[item.pk])
    assert b"has been used since" not in world.client("rita").get(url, **HTMX).content
    key = world.keys[world.agents.index(item.agent)]
    runtime.check(credential=key, action="read", resource=world.resource.name, context={})
    assert b"has been used since" in world.client("rita").get(url, **HTMX).content
