"""API v1 for access reviews: campaigns (list, create, edit a draft, preview, launch, close, their items)
and review items (a reviewer's queue, deciding, reassigning, certifying in bulk). One view per operation,
each calling the same service as the console's pages.

Admins and auditors read every campaign and item; a reviewer the campaigns with an item for them and those
items. Admins change campaigns; reviewers (and admins, for what they may decide) decide items. Auditors
change nothing; agents are refused (their credentials hold no console role).
"""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet
from django.shortcuts import get_object_or_404
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import status
from rest_framework.request import Request
from rest_framework.response import Response

from audit.services import Actor
from console import roles
from console.api.errors import ACTION_ERRORS, CREATE_ERRORS, DETAIL_ERRORS, READ_ERRORS, ErrorOutput
from console.api.pagination import PARAMETERS as PAGE_PARAMETERS
from console.api.views import ApiView
from console.errors import Conflict
from reviews import serializers as s
from reviews import services
from reviews.models import Campaign, ReviewItem, ReviewItemQuerySet

TAGS = ["reviews"]
_CONFLICT = {409: OpenApiResponse(ErrorOutput, description="Conflicts with the campaign's state.")}


def _campaigns(request: Request) -> QuerySet[Campaign]:
    return Campaign.objects.visible_to(request.user)


def _items(request: Request) -> ReviewItemQuerySet:
    return ReviewItem.objects.visible_to(request.user).select_related("agent", "reviewer", "campaign")


# --- Campaigns ----------------------------------------------------------------------------------


class CampaignListApi(ApiView):
    @extend_schema(
        operation_id="campaigns_list",
        tags=TAGS,
        parameters=[s.CampaignFilter, *PAGE_PARAMETERS],
        responses={200: s.CampaignPage, **READ_ERRORS},
        description="Newest first. Admins and auditors see every campaign; a reviewer those with an item for them.",
    )
    def get(self, request: Request) -> Response:
        filters = self.validated(s.CampaignFilter, request.query_params)
        return self.page(_campaigns(request).filter(**filters), s.CampaignOutput)


class CampaignCreateApi(ApiView):
    @extend_schema(
        operation_id="campaigns_create",
        tags=TAGS,
        request=s.CampaignInput,
        responses={201: s.CampaignOutput, **CREATE_ERRORS},
        description=(
            "Admins. A draft: nothing is opened until it is launched. Field errors name the setting "
            "(`invalid_subjects`, `invalid_cron`, `invalid_days`, `required`)."
        ),
    )
    def post(self, request: Request) -> Response:
        data = self.validated(s.CampaignInput, request.data)
        campaign = services.campaign_create(actor=Actor.of(request.user), **data)
        return Response(self.output(s.CampaignOutput, campaign), status=status.HTTP_201_CREATED)


class CampaignsApi(CampaignListApi, CampaignCreateApi):
    pass


class CampaignDetailApi(ApiView):
    @extend_schema(
        operation_id="campaigns_retrieve",
        tags=TAGS,
        responses={200: s.CampaignOutput, **DETAIL_ERRORS},
    )
    def get(self, request: Request, pk: int) -> Response:
        return Response(self.output(s.CampaignOutput, get_object_or_404(_campaigns(request), pk=pk)))

    @extend_schema(
        operation_id="campaigns_partial_update",
        tags=TAGS,
        request=s.CampaignUpdateInput,
        responses={200: s.CampaignOutput, **ACTION_ERRORS},
        description=(
            "Admins. Only a draft changes (409 `campaign_not_draft`); a standing campaign only who reviews it, "
            "reminders, escalation, the justification rule and the bulk policy (409 `campaign_standing`)."
        ),
    )
    def patch(self, request: Request, pk: int) -> Response:
        campaign = get_object_or_404(_campaigns(request), pk=pk)
        serializer = s.CampaignUpdateInput(data=request.data, partial=True, context={"request": request})
        serializer.is_valid(raise_exception=True)
        campaign = services.campaign_update(
            actor=Actor.of(request.user), campaign=campaign, **serializer.validated_data
        )
        return Response(self.output(s.CampaignOutput, campaign))


class CampaignPreviewApi(ApiView):
    # A preview reads what a draft would open, across the organisation: admins and auditors.
    read_roles = (roles.ADMIN, roles.AUDITOR)

    @extend_schema(
        operation_id="campaigns_preview",
        tags=TAGS,
        responses={200: s.PreviewOutput, **DETAIL_ERRORS, **_CONFLICT},
        description=(
            "What launching the campaign now would open, per reviewer: items, high-risk items, recommended "
            "revocations, and how many separation of duties moved to the fallback. Writes nothing."
        ),
    )
    def get(self, request: Request, pk: int) -> Response:
        campaign = get_object_or_404(_campaigns(request), pk=pk)
        if campaign.is_standing:
            raise Conflict(
                "A standing campaign opens items as events happen: nothing to preview.", code="campaign_standing"
            )
        return Response(s.preview_data(services.campaign_preview(campaign)))


class CampaignLaunchApi(ApiView):
    @extend_schema(
        operation_id="campaigns_launch",
        tags=TAGS,
        request=None,
        responses={200: s.CampaignOutput, **ACTION_ERRORS},
        description=(
            "Admins. Activates a draft (409 `campaign_not_draft` otherwise); its items are generated in the "
            "background: poll the campaign's `generating` and `generation_percent`."
        ),
    )
    def post(self, request: Request, pk: int) -> Response:
        campaign = get_object_or_404(_campaigns(request), pk=pk)
        campaign = services.campaign_launch(actor=Actor.of(request.user), campaign=campaign)
        return Response(self.output(s.CampaignOutput, campaign))


class CampaignCloseApi(ApiView):
    @extend_schema(
        operation_id="campaigns_close",
        tags=TAGS,
        request=None,
        responses={200: s.CampaignOutput, **ACTION_ERRORS},
        description=(
            "Admins. Every undecided item gets the campaign's no-response outcome (revoke, keep, flag). 409 "
            "`campaign_not_active`, or `campaign_generating` while its items are still being generated."
        ),
    )
    def post(self, request: Request, pk: int) -> Response:
        campaign = get_object_or_404(_campaigns(request), pk=pk)
        campaign = services.campaign_close(actor=Actor.of(request.user), campaign=campaign)
        return Response(self.output(s.CampaignOutput, campaign))


class CampaignItemsApi(ApiView):
    @extend_schema(
        operation_id="campaigns_items",
        tags=TAGS,
        parameters=PAGE_PARAMETERS,
        responses={200: s.ReviewItemPage, **READ_ERRORS, **DETAIL_ERRORS},
        description="The campaign's items you may see (a reviewer: theirs), newest first.",
    )
    def get(self, request: Request, pk: int) -> Response:
        campaign = get_object_or_404(_campaigns(request), pk=pk)
        return self.page(_items(request).filter(campaign=campaign), s.ReviewItemOutput)


# --- Review items -------------------------------------------------------------------------------


class ReviewItemListApi(ApiView):
    @extend_schema(
        operation_id="review_items_list",
        tags=TAGS,
        parameters=[s.ReviewItemFilter, *PAGE_PARAMETERS],
        responses={200: s.ReviewItemPage, **READ_ERRORS},
        description=(
            "Newest first. `mine=true` (the default for reviewers): the items assigned to you; `mine=false`: "
            "every item you may see (for a reviewer, also those escalated away from you)."
        ),
    )
    def get(self, request: Request) -> Response:
        filters = self.validated(s.ReviewItemFilter, request.query_params)
        mine = filters.get("mine")
        if mine is None:
            mine = not roles.reads_everything(request.user)
        items = _items(request)
        if mine:
            items = items.assigned_to(request.user)
        if "status" in filters:
            items = items.filter(status=filters["status"])
        if "campaign" in filters:
            items = items.filter(campaign_id=filters["campaign"])
        return self.page(items, s.ReviewItemOutput)


class ReviewItemDetailApi(ApiView):
    @extend_schema(
        operation_id="review_items_retrieve", tags=TAGS, responses={200: s.ReviewItemOutput, **DETAIL_ERRORS}
    )
    def get(self, request: Request, pk: int) -> Response:
        return Response(self.output(s.ReviewItemOutput, get_object_or_404(_items(request), pk=pk)))


class _ReviewApi(ApiView):
    # Reviewers decide what is assigned to them; the service checks the assignment and separation of duties.
    write_roles = (roles.ADMIN, roles.REVIEWER)


class ReviewItemDecideApi(_ReviewApi):
    @extend_schema(
        operation_id="review_items_decide",
        tags=TAGS,
        request=s.DecideInput,
        responses={200: s.ReviewItemOutput, **ACTION_ERRORS},
        description=(
            "Certify or revoke an item in your queue (a revoke takes effect at once). 403 `not_your_item` or "
            "`separation_of_duties`; 409 `item_decided` or `campaign_not_active`; 400 `justification_required`."
        ),
    )
    def post(self, request: Request, pk: int) -> Response:
        item = get_object_or_404(_items(request), pk=pk)
        data = self.validated(s.DecideInput, request.data)
        item = services.review_decide(
            actor=Actor.of(request.user),
            user=request.user,
            item=item,
            decision=data["decision"],
            justification=data["justification"],
        )
        return Response(self.output(s.ReviewItemOutput, item))


class ReviewItemReassignApi(_ReviewApi):
    @extend_schema(
        operation_id="review_items_reassign",
        tags=TAGS,
        request=s.ReassignInput,
        responses={200: s.ReviewItemOutput, **ACTION_ERRORS},
        description=(
            "Hand an item to another reviewer (its reviewer or an admin). 400 `reviewer_unavailable`, "
            "`same_reviewer` or `separation_of_duties` on `reviewer`; 409 `item_decided`."
        ),
    )
    def post(self, request: Request, pk: int) -> Response:
        item = get_object_or_404(_items(request), pk=pk)
        data = self.validated(s.ReassignInput, request.data)
        item = services.review_reassign(
            actor=Actor.of(request.user), user=request.user, item=item, to=data["reviewer"], reason=data["reason"]
        )
        return Response(self.output(s.ReviewItemOutput, item))


class ReviewItemCertifyBulkApi(_ReviewApi):
    @extend_schema(
        operation_id="review_items_certify_bulk",
        tags=TAGS,
        request=s.BulkCertifyInput,
        responses={200: s.BulkCertifyOutput, **CREATE_ERRORS},
        description=(
            "Certify many items at once. Only those the campaign's bulk policy allows (by risk) and you may decide "
            "are certified; the rest come back in `skipped` with the reason, for one-by-one review."
        ),
    )
    def post(self, request: Request) -> Response:
        data = self.validated(s.BulkCertifyInput, request.data)
        wanted: list[int] = list(dict.fromkeys(data["items"]))
        found = _items(request).in_bulk(wanted)
        skipped: dict[int, str] = {pk: "No such item in your view." for pk in wanted if pk not in found}
        result = services.review_certify_bulk(
            actor=Actor.of(request.user),
            user=request.user,
            items=list(found.values()),
            justification=data["justification"],
        )
        skipped.update(result.skipped)
        body: dict[str, Any] = {
            "decided": [item.pk for item in result.decided],
            "skipped": {str(pk): why for pk, why in sorted(skipped.items())},
        }
        return Response(body)
