"""Reviews' part of API v1, mounted in the ``api`` namespace (config/urls.py)."""

from __future__ import annotations

from django.urls import URLPattern, path

from reviews import api

urlpatterns: list[URLPattern] = [
    path("campaigns/", api.CampaignsApi.as_view(), name="campaigns"),
    path("campaigns/<int:pk>/", api.CampaignDetailApi.as_view(), name="campaign"),
    path("campaigns/<int:pk>/preview/", api.CampaignPreviewApi.as_view(), name="campaign-preview"),
    path("campaigns/<int:pk>/launch/", api.CampaignLaunchApi.as_view(), name="campaign-launch"),
    path("campaigns/<int:pk>/close/", api.CampaignCloseApi.as_view(), name="campaign-close"),
    path("campaigns/<int:pk>/items/", api.CampaignItemsApi.as_view(), name="campaign-items"),
    path("review-items/", api.ReviewItemListApi.as_view(), name="review-items"),
    path("review-items/certify/", api.ReviewItemCertifyBulkApi.as_view(), name="review-items-certify"),
    path("review-items/<int:pk>/", api.ReviewItemDetailApi.as_view(), name="review-item"),
    path("review-items/<int:pk>/decide/", api.ReviewItemDecideApi.as_view(), name="review-item-decide"),
    path("review-items/<int:pk>/reassign/", api.ReviewItemReassignApi.as_view(), name="review-item-reassign"),
]
