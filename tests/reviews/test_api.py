"""API v1 of access reviews: campaigns through their life with the role matrix, and the wiring of
decide, reassign and bulk certify to the services, with their error codes."""

from __future__ import annotations

from typing import Any

import pytest
from rest_framework.test import APIClient

from audit.models import AuditEvent
from reviews import services
from reviews.models import Campaign, CampaignStatus, ItemStatus, ReviewItem
from tests import factories
from tests.reviews.support import Org, item, launch, make_org

pytestmark = pytest.mark.django_db


@pytest.fixture
def org() -> Org:
    return make_org()


def api(user: Any) -> APIClient:
    client = APIClient()
    client.force_login(user)
    return client


def create_payload(org: Org, **changes: Any) -> dict[str, Any]:
    return {
        "name": "Quarterly agent access",
        "subjects": ["grant", "delegation", "key"],
        "reviewer_rule": "sponsor_manager",
        "fallback_reviewer": org.fallback.pk,
        "reminder_days": [7, 1],
        "bulk_risks": ["low", "medium", "high"],
        **changes,
    }


# --- Campaigns ----------------------------------------------------------------------------------


def test_an_admin_creates_edits_previews_launches_and_closes_a_campaign(org: Org) -> None:
    client = api(org.admin)

    created = client.post("/api/v1/campaigns/", create_payload(org), format="json")
    assert created.status_code == 201, created.content
    body = created.json()
    assert body["status"] == "draft" and body["subjects"] == ["grant", "delegation", "key"]
    pk = body["id"]

    edited = client.patch(f"/api/v1/campaigns/{pk}/", {"name": "Q3 access", "duration_days": 7}, format="json")
    assert edited.status_code == 200, edited.content
    assert (edited.json()["name"], edited.json()["duration_days"]) == ("Q3 access", 7)

    preview = client.get(f"/api/v1/campaigns/{pk}/preview/").json()
    assert preview["total"] == 3 and preview["unassigned"] == 0
    assert [(r["reviewer"], r["items"]) for r in preview["rows"]] == [(org.manager.pk, 3)]

    launched = client.post(f"/api/v1/campaigns/{pk}/launch/", format="json")
    assert launched.status_code == 200 and launched.json()["status"] == "active"
    assert launched.json()["generating"] is True
    assert client.patch(f"/api/v1/campaigns/{pk}/", {"name": "x"}, format="json").json()["code"] == (
        "campaign_not_draft"
    )
    services.campaign_generate(campaign_id=pk)

    items = client.get(f"/api/v1/campaigns/{pk}/items/").json()["results"]
    assert len(items) == 3 and {i["reviewer"] for i in items} == {org.manager.pk}

    closed = client.post(f"/api/v1/campaigns/{pk}/close/", format="json")
    assert closed.status_code == 200 and closed.json()["status"] == "closed"
    assert set(ReviewItem.objects.filter(campaign_id=pk).values_list("status", flat=True)) == {ItemStatus.FLAGGED}
    again = client.post(f"/api/v1/campaigns/{pk}/close/", format="json")
    assert (again.status_code, again.json()["code"]) == (409, "campaign_not_active")
    actions = set(AuditEvent.objects.filter(target_id=str(pk), target_type="campaign").values_list("action", flat=True))
    assert {"campaign.create", "campaign.update", "campaign.launch", "campaign.close"} <= actions


def test_an_auditor_reads_every_campaign_and_changes_none(org: Org) -> None:
    campaign = launch(org)
    auditor = api(factories.make_auditor())
    events = AuditEvent.objects.count()

    assert [c["id"] for c in auditor.get("/api/v1/campaigns/").json()["results"]] == [campaign.pk]
    assert auditor.get(f"/api/v1/campaigns/{campaign.pk}/items/").status_code == 200
    refused = [
        auditor.post("/api/v1/campaigns/", create_payload(org), format="json"),
        auditor.patch(f"/api/v1/campaigns/{campaign.pk}/", {"name": "x"}, format="json"),
        auditor.post(f"/api/v1/campaigns/{campaign.pk}/close/", format="json"),
        auditor.post(
            f"/api/v1/review-items/{campaign.items.first().pk}/decide/", {"decision": "certify"}, format="json"
        ),  # type: ignore[union-attr]
    ]
    assert [(r.status_code, r.json()["code"]) for r in refused] == [(403, "forbidden")] * 4
    assert AuditEvent.objects.count() == events
    assert Campaign.objects.get(pk=campaign.pk).status == CampaignStatus.ACTIVE


def test_a_reviewer_sees_only_campaigns_with_their_items_and_an_outsider_nothing(org: Org) -> None:
    mine = launch(org)
    other_agent = factories.make_agent(sponsor=org.other)
    factories.make_grant(other_agent, org.resource)
    theirs = launch(org, name="Fay's", subjects=["grant"], reviewer_rule="named", named_reviewer=org.fallback)
    draft = services.campaign_create(
        actor=factories.SYSTEM, name="draft", subjects=["grant"], fallback_reviewer=org.fallback
    )
    manager = api(org.manager_user)

    assert [c["id"] for c in manager.get("/api/v1/campaigns/").json()["results"]] == [mine.pk]
    assert manager.get(f"/api/v1/campaigns/{theirs.pk}/").status_code == 404
    assert manager.get(f"/api/v1/campaigns/{draft.pk}/").status_code == 404
    # A preview reads across the organisation: not for reviewers.
    assert manager.get(f"/api/v1/campaigns/{mine.pk}/preview/").status_code == 403
    assert manager.post("/api/v1/campaigns/", create_payload(org), format="json").status_code == 403
    outsider = api(factories.make_outsider())
    assert outsider.get("/api/v1/campaigns/").status_code == 403
    assert outsider.get("/api/v1/review-items/").status_code == 403
    assert APIClient().get("/api/v1/campaigns/").status_code == 401


@pytest.mark.parametrize(
    ("changes", "field", "code"),
    [
        ({"subjects": "grant"}, "subjects", "invalid"),
        ({"subjects": []}, "subjects", "invalid"),
        ({"subjects": ["people"]}, "subjects.0", "invalid"),
        ({"recurrence": "cron", "cron": "every day"}, "cron", "invalid_cron"),
        ({"reviewer_rule": "named"}, "named_reviewer", "required"),
        ({"fallback_reviewer": 999_999}, "fallback_reviewer", "invalid"),
        ({"fallback_reviewer": "1"}, "fallback_reviewer", "invalid"),
        ({"reminder_days": ["7"]}, "reminder_days.0", "invalid"),
        ({"duration_days": 0}, "duration_days", "invalid"),
        ({"bulk_risks": ["extreme"]}, "bulk_risks.0", "invalid"),
        ({"name": ""}, "name", "invalid"),
    ],
)
def test_bad_campaign_input_is_a_400_naming_the_field(org: Org, changes: dict[str, Any], field: str, code: str) -> None:
    response = api(org.admin).post("/api/v1/campaigns/", create_payload(org, **changes), format="json")

    assert response.status_code == 400, response.content
    assert response.json()["code"] == code
    assert field in response.json()["fields"]
    assert not Campaign.objects.exists()


def test_a_standing_campaign_changes_only_who_reviews_it_and_how(org: Org) -> None:
    standing = services.standing_campaign("recertification")
    client = api(org.admin)

    ok = client.patch(
        f"/api/v1/campaigns/{standing.pk}/", {"reminder_days": [3], "fallback_reviewer": org.fallback.pk}, format="json"
    )
    refused = client.patch(f"/api/v1/campaigns/{standing.pk}/", {"subjects": ["agent"]}, format="json")

    assert ok.status_code == 200, ok.content
    assert ok.json()["reminder_days"] == [3] and ok.json()["fallback_reviewer"] == org.fallback.pk
    assert (refused.status_code, refused.json()["code"]) == (409, "campaign_standing")
    assert client.get(f"/api/v1/campaigns/{standing.pk}/preview/").json()["code"] == "campaign_standing"


# --- Review items -------------------------------------------------------------------------------


def test_a_reviewer_decides_their_item_once_and_a_second_decision_is_a_409(org: Org) -> None:
    campaign = launch(org)
    grant_item = item(campaign, f"grant:{org.grant.pk}")
    manager = api(org.manager_user)

    queue = manager.get("/api/v1/review-items/").json()["results"]
    assert {i["id"] for i in queue} == set(campaign.items.values_list("id", flat=True))
    decided = manager.post(f"/api/v1/review-items/{grant_item.pk}/decide/", {"decision": "certify"}, format="json")
    assert decided.status_code == 200, decided.content
    assert decided.json()["status"] == "certified" and decided.json()["decided_at"]

    again = manager.post(f"/api/v1/review-items/{grant_item.pk}/decide/", {"decision": "revoke"}, format="json")
    assert (again.status_code, again.json()["code"]) == (409, "item_decided")
    pending = manager.get(f"/api/v1/review-items/?status=pending&campaign={campaign.pk}").json()["results"]
    assert grant_item.pk not in {i["id"] for i in pending} and len(pending) == 2


def test_decide_error_codes(org: Org) -> None:
    campaign = launch(org)
    key_item = item(campaign, f"key:{org.key.pk}")
    manager = api(org.manager_user)
    url = f"/api/v1/review-items/{key_item.pk}/decide/"

    unjustified = manager.post(url, {"decision": "revoke"}, format="json")
    assert (unjustified.status_code, unjustified.json()["code"]) == (400, "justification_required")
    assert "justification" in unjustified.json()["fields"]
    bad = manager.post(url, {"decision": "maybe"}, format="json")
    assert (bad.status_code, "decision" in bad.json()["fields"]) == (400, True)
    # Someone else's item is not in their view at all.
    assert api(org.other_user).post(url, {"decision": "certify"}, format="json").status_code == 404
    # An admin is not its reviewer.
    assert api(org.admin).post(url, {"decision": "certify"}, format="json").json()["code"] == "not_your_item"
    # The manager comes to act through the agent (a delegation to it) after the item was routed to them.
    factories.make_grant(org.manager, org.resource, "read")
    factories.make_delegation(org.agent, ["crm.contacts:read"], root_human=org.manager)
    conflicted = manager.post(url, {"decision": "certify"}, format="json")
    assert (conflicted.status_code, conflicted.json()["code"]) == (403, "separation_of_duties")
    assert ReviewItem.objects.get(pk=key_item.pk).status == ItemStatus.PENDING


def test_reassign_hands_an_item_on_and_refuses_a_conflicted_reviewer(org: Org) -> None:
    campaign = launch(org)
    grant_item = item(campaign, f"grant:{org.grant.pk}")
    manager = api(org.manager_user)
    url = f"/api/v1/review-items/{grant_item.pk}/reassign/"

    sponsor = manager.post(url, {"reviewer": org.sponsor.pk}, format="json")
    assert (sponsor.status_code, sponsor.json()["code"]) == (400, "separation_of_duties")
    assert "reviewer" in sponsor.json()["fields"]
    nobody = manager.post(url, {"reviewer": 999_999}, format="json")
    assert nobody.status_code == 400 and "reviewer" in nobody.json()["fields"]

    handed = manager.post(url, {"reviewer": org.other.pk, "reason": "on leave"}, format="json")
    assert handed.status_code == 200, handed.content
    assert handed.json()["reviewer"] == org.other.pk or handed.json()["reviewer"] is None  # outside their view
    assert ReviewItem.objects.get(pk=grant_item.pk).reviewer == org.other
    # The manager no longer holds it: deciding is now refused.
    assert manager.post(f"/api/v1/review-items/{grant_item.pk}/decide/", {"decision": "certify"}, format="json").json()[
        "code"
    ] in ("not_your_item", "not_found")


def test_bulk_certify_decides_what_the_policy_allows_and_says_why_it_skipped_the_rest(org: Org) -> None:
    campaign = launch(org, bulk_risks=["low", "medium", "high", "critical"])
    ids = list(campaign.items.values_list("id", flat=True))
    manager = api(org.manager_user)
    first = ids[0]
    manager.post(f"/api/v1/review-items/{first}/decide/", {"decision": "certify"}, format="json")

    response = manager.post("/api/v1/review-items/certify/", {"items": [*ids, 999_999]}, format="json")

    assert response.status_code == 200, response.content
    body = response.json()
    assert sorted(body["decided"]) == sorted(ids[1:])
    assert set(body["skipped"]) == {str(first), "999999"}
    assert ReviewItem.objects.filter(pk__in=ids[1:], bulk=True, status=ItemStatus.CERTIFIED).count() == len(ids) - 1
    bad = manager.post("/api/v1/review-items/certify/", {"items": ["1"]}, format="json")
    assert bad.status_code == 400 and "items.0" in bad.json()["fields"]
    empty = manager.post("/api/v1/review-items/certify/", {"items": []}, format="json")
    assert empty.status_code == 400 and "items" in empty.json()["fields"]


def test_review_item_filters_and_cursors_refuse_bad_values(org: Org) -> None:
    launch(org)
    client = api(org.admin)

    for query in ("status=nope", "campaign=abc", "mine=perhaps", "cursor=%%%", "limit=0"):
        response = client.get(f"/api/v1/review-items/?{query}")
        assert response.status_code == 400, query
    assert client.get("/api/v1/campaigns/?status=open").status_code == 400
    # Admins see every item by default; mine=true narrows to their own (none).
    assert len(client.get("/api/v1/review-items/").json()["results"]) == 3
    assert client.get("/api/v1/review-items/?mine=true").json()["results"] == []
