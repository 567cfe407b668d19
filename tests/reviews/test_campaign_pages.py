"""Campaign pages: the role matrix, create and edit a draft, preview and launch, the generation's progress,
the running campaign's figures, closing it, the evidence reports, and the list's query count."""

from __future__ import annotations

import csv
import io
import json
from typing import Any

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from audit.models import AuditEvent
from audit.services import Actor
from reviews import services
from reviews.models import Campaign, CampaignStatus, ItemStatus, ReviewItem
from tests import factories
from tests.reviews.support import Org, launch, make_org

pytestmark = pytest.mark.django_db


@pytest.fixture
def org() -> Org:
    return make_org()


def browser(user: Any) -> Client:
    client = Client()
    client.force_login(user)
    return client


def form_data(org: Org, **changes: Any) -> dict[str, Any]:
    return {
        "name": "Quarterly agent access",
        "subjects": ["grant", "delegation", "key"],
        "reviewer_rule": "sponsor_manager",
        "fallback_reviewer": org.fallback.pk,
        "duration_days": "14",
        "recurrence": "none",
        "reminder_days": "7, 1",
        "no_response": "flag",
        "justification": "revoke",
        "bulk_risks": ["low"],
        **changes,
    }


def draft(org: Org, **values: Any) -> Campaign:
    values = {"name": "Draft", "subjects": ["grant", "delegation", "key"], "fallback_reviewer": org.fallback, **values}
    return services.campaign_create(actor=Actor.user(org.admin), **values)


# --- Role matrix --------------------------------------------------------------------------------


def test_who_may_open_and_change_campaign_pages(org: Org) -> None:
    campaign = launch(org)
    other = draft(org, name="Not yours")
    auditor, reviewer, outsider = (
        browser(factories.make_auditor()),
        browser(org.manager_user),
        browser(factories.make_outsider()),
    )

    assert auditor.get("/campaigns/").status_code == 200
    assert auditor.get(f"/campaigns/{campaign.pk}/").status_code == 200
    assert auditor.get("/campaigns/new/").status_code == 403
    assert auditor.post(f"/campaigns/{campaign.pk}/close/").status_code == 403
    listed = reviewer.get("/campaigns/").content.decode()
    assert campaign.name in listed and "Not yours" not in listed
    assert reviewer.get(f"/campaigns/{other.pk}/").status_code == 404
    assert reviewer.post(f"/campaigns/{other.pk}/launch/").status_code == 403
    assert outsider.get("/campaigns/").status_code == 403
    assert outsider.get(f"/campaigns/{campaign.pk}/report.csv").status_code == 403
    assert Client().get("/campaigns/").status_code == 302  # to the login page
    assert Campaign.objects.get(pk=other.pk).status == CampaignStatus.DRAFT


# --- Create, edit, preview, launch, close -------------------------------------------------------


def test_an_admin_creates_a_draft_with_every_setting_and_sees_its_preview(org: Org) -> None:
    admin = browser(org.admin)
    assert admin.get("/campaigns/new/").status_code == 200

    response = admin.post(
        "/campaigns/new/",
        form_data(
            org,
            filter_resource=org.resource.pk,
            filter_min_sensitivity="high",
            recurrence="cron",
            cron="0 9 1 */3 *",
            escalate_after_days="3",
        ),
    )

    assert response.status_code == 302, response.content.decode()[:2000]
    campaign = Campaign.objects.get()
    assert (campaign.status, campaign.reminder_days, campaign.cron) == ("draft", [7, 1], "0 9 1 */3 *")
    assert campaign.filter_resource == org.resource and campaign.escalate_after_days == 3
    page = admin.get(response["Location"]).content.decode()
    assert "Preview" in page and "Launch" in page
    assert org.manager.name in page


def test_the_form_shows_the_services_refusal_on_its_field(org: Org) -> None:
    admin = browser(org.admin)

    bad_cron = admin.post("/campaigns/new/", form_data(org, recurrence="cron", cron="whenever"), HTTP_HX_REQUEST="true")
    bad_days = admin.post("/campaigns/new/", form_data(org, reminder_days="7, soon"))
    no_named = admin.post("/campaigns/new/", form_data(org, reviewer_rule="named"))

    assert bad_cron.status_code == 422 and "Not a cron expression" in bad_cron.content.decode()
    assert 'id="id_cron_errors"' in bad_cron.content.decode()
    assert bad_days.status_code == 422 and "id_reminder_days_errors" in bad_days.content.decode()
    assert no_named.status_code == 422 and "id_named_reviewer_errors" in no_named.content.decode()
    assert not Campaign.objects.exists()


def test_a_draft_is_edited_and_a_launched_campaign_is_not(org: Org) -> None:
    campaign = draft(org)
    admin = browser(org.admin)

    assert admin.get(f"/campaigns/{campaign.pk}/edit/").status_code == 200
    saved = admin.post(f"/campaigns/{campaign.pk}/edit/", form_data(org, name="Renamed", duration_days="30"))
    assert saved.status_code == 302
    campaign.refresh_from_db()
    assert (campaign.name, campaign.duration_days) == ("Renamed", 30)

    services.campaign_launch(actor=Actor.user(org.admin), campaign=campaign)
    refused = admin.post(f"/campaigns/{campaign.pk}/edit/", form_data(org, name="Again"))
    assert refused.status_code == 302
    assert Campaign.objects.get(pk=campaign.pk).name == "Renamed"


def test_a_standing_campaigns_form_offers_only_what_may_change(org: Org) -> None:
    standing = services.standing_campaign("micro")
    admin = browser(org.admin)

    page = admin.get(f"/campaigns/{standing.pk}/edit/").content.decode()
    assert 'name="fallback_reviewer"' in page and 'name="subjects"' not in page and 'name="duration_days"' not in page
    saved = admin.post(
        f"/campaigns/{standing.pk}/edit/",
        {
            "reviewer_rule": "sponsor",
            "fallback_reviewer": org.fallback.pk,
            "reminder_days": "2",
            "justification": "always",
        },
    )
    assert saved.status_code == 302
    standing.refresh_from_db()
    assert (standing.reviewer_rule, standing.reminder_days, standing.justification) == ("sponsor", [2], "always")


def test_launch_shows_the_progress_bar_until_the_items_are_generated_then_the_figures(org: Org) -> None:
    campaign = draft(org)
    admin = browser(org.admin)

    assert admin.post(f"/campaigns/{campaign.pk}/launch/").status_code == 302
    campaign.refresh_from_db()
    assert campaign.status == CampaignStatus.ACTIVE and campaign.generating
    page = admin.get(f"/campaigns/{campaign.pk}/").content.decode()
    assert f'hx-get="/campaigns/{campaign.pk}/progress/"' in page and 'hx-trigger="every 2s"' in page
    polling = admin.get(f"/campaigns/{campaign.pk}/progress/", HTTP_HX_REQUEST="true")
    assert 'hx-trigger="every 2s"' in polling.content.decode() and "HX-Refresh" not in polling

    services.campaign_generate(campaign_id=campaign.pk)
    done = admin.get(f"/campaigns/{campaign.pk}/progress/", HTTP_HX_REQUEST="true")
    assert "hx-trigger" not in done.content.decode() and done["HX-Refresh"] == "true"
    page = admin.get(f"/campaigns/{campaign.pk}/").content.decode()
    assert "Progress per reviewer" in page and "Recommendation vs decision" in page and "Close campaign" in page


def test_rubber_stamp_signals_are_for_admins_only_and_count_fast_and_bulk_decisions(org: Org) -> None:
    campaign = launch(org, bulk_risks=["low", "medium", "high", "critical"])
    items = list(campaign.items.order_by("id"))
    services.review_certify_bulk(actor=Actor.user(org.manager_user), user=org.manager_user, items=items)

    admin_page = browser(org.admin).get(f"/campaigns/{campaign.pk}/").content.decode()
    auditor_page = browser(factories.make_auditor()).get(f"/campaigns/{campaign.pk}/").content.decode()
    reviewer_page = browser(org.manager_user).get(f"/campaigns/{campaign.pk}/").content.decode()

    assert "Rubber-stamp signals" in admin_page
    assert "Rubber-stamp signals" not in auditor_page and "Rubber-stamp signals" not in reviewer_page
    from reviews import stats

    (row,) = stats.reviewer_rows(campaign, ReviewItem.objects.all())
    assert (row.decided, row.bulk, row.streak, row.pending) == (3, 3, 3, 0)


def test_closing_applies_the_no_response_outcome(org: Org) -> None:
    campaign = launch(org, no_response="keep")
    admin = browser(org.admin)

    page = admin.get(f"/campaigns/{campaign.pk}/").content.decode()
    assert "hx-confirm" in page and "keep" in page.lower()
    assert admin.post(f"/campaigns/{campaign.pk}/close/").status_code == 302

    assert Campaign.objects.get(pk=campaign.pk).status == CampaignStatus.CLOSED
    assert set(campaign.items.values_list("status", flat=True)) == {ItemStatus.KEPT}


# --- Reports ------------------------------------------------------------------------------------


def _csv_rows(response: Any) -> list[dict[str, str]]:
    raw = b"".join(response.streaming_content)
    assert raw.startswith(b"\xef\xbb\xbf")
    return list(csv.DictReader(io.StringIO(raw.decode("utf-8-sig"))))


def test_the_csv_report_opens_cleanly_and_neutralises_formulas(org: Org) -> None:
    campaign = launch(org)
    first = campaign.items.order_by("id").first()
    assert first is not None
    ReviewItem.objects.filter(pk=first.pk).update(label='=HYPERLINK("http://evil.test","x")', justification="+1")
    events = AuditEvent.objects.filter(action="campaign.export").count()

    response = browser(org.admin).get(f"/campaigns/{campaign.pk}/report.csv")

    assert response.status_code == 200 and response["Content-Type"].startswith("text/csv")
    assert (
        response["Content-Disposition"] == f'attachment; filename="campaign-{campaign.pk}-quarterly-agent-access.csv"'
    )
    rows = _csv_rows(response)
    assert [int(r["item_id"]) for r in rows] == list(campaign.items.order_by("id").values_list("id", flat=True))
    assert rows[0]["label"] == '\'=HYPERLINK("http://evil.test","x")' and rows[0]["justification"] == "'+1"
    assert {r["reviewer"] for r in rows} == {org.manager.name}
    assert {r["campaign"] for r in rows} == {campaign.name} and rows[0]["status"] == "pending"
    assert rows[0]["decided_at"] == ""
    export = AuditEvent.objects.filter(action="campaign.export").order_by("-id").first()
    assert export is not None and export.context == {"format": "csv", "items": 3}
    assert AuditEvent.objects.filter(action="campaign.export").count() == events + 1


def test_the_json_report_and_times_in_utc(org: Org) -> None:
    campaign = launch(org)
    grant_item = campaign.items.get(grant=org.grant)
    services.review_decide(
        actor=Actor.user(org.manager_user), user=org.manager_user, item=grant_item, decision="certify"
    )

    response = browser(factories.make_auditor()).get(f"/campaigns/{campaign.pk}/report.json")

    body = json.loads(b"".join(response.streaming_content))
    assert body["campaign"]["id"] == campaign.pk and len(body["items"]) == 3
    decided = next(i for i in body["items"] if i["item_id"] == grant_item.pk)
    assert decided["status"] == "certified" and decided["decided_at"].endswith("Z")
    assert decided["scopes"] == ["crm.contacts:read"]
    assert browser(org.admin).get(f"/campaigns/{campaign.pk}/report.xlsx").status_code == 404


def test_a_reviewer_exports_only_their_own_items(org: Org) -> None:
    campaign = launch(org)
    grant_item = campaign.items.get(grant=org.grant)
    services.review_reassign(
        actor=Actor.user(org.admin), user=org.admin, item=grant_item, to=org.other, reason="spread the load"
    )

    rows = _csv_rows(browser(org.other_user).get(f"/campaigns/{campaign.pk}/report.csv"))

    assert [int(r["item_id"]) for r in rows] == [grant_item.pk]


# --- Queries ------------------------------------------------------------------------------------


def _list_queries(user: Any) -> int:
    client = browser(user)
    client.get("/campaigns/")  # warm the session and role caches alike for both runs
    with CaptureQueriesContext(connection) as queries:
        assert client.get("/campaigns/").status_code == 200
    return len(queries)


@pytest.mark.parametrize("who", ["admin", "reviewer"])
def test_the_campaign_list_costs_the_same_queries_for_few_and_many_campaigns(org: Org, who: str) -> None:
    user = org.admin if who == "admin" else org.manager_user
    launch(org)
    few = _list_queries(user)
    for n in range(6):
        launch(org, name=f"Campaign {n}")
        draft(org, name=f"Draft {n}")
    services.standing_campaign("recertification")

    assert _list_queries(user) == few
