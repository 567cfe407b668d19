"""Reviews' console pages, mounted in the ``console`` namespace (config/urls.py)."""

from __future__ import annotations

from django.urls import URLPattern, path

from reviews.views import campaigns, queue

urlpatterns: list[URLPattern] = [
    # The reviewer's queue and its items.
    path("reviews/", queue.queue, name="reviews"),
    path("reviews/items/<int:pk>/", queue.item_detail, name="review_item"),
    path("reviews/items/<int:pk>/decide/", queue.item_decide, name="review_item_decide"),
    path("reviews/items/<int:pk>/reassign/", queue.item_reassign, name="review_item_reassign"),
    path("reviews/certify/", queue.certify_bulk, name="reviews_certify_bulk"),
    path("reviews/notifications/", queue.notifications, name="review_notifications"),
    path("reviews/notifications/read/", queue.notifications_read, name="review_notifications_read"),
    path("reviews/notifications/badge/", queue.notifications_badge, name="review_notifications_badge"),
    # Campaigns.
    path("campaigns/", campaigns.campaigns, name="campaigns"),
    path("campaigns/new/", campaigns.campaign_create, name="campaign_create"),
    path("campaigns/<int:pk>/", campaigns.campaign_detail, name="campaign"),
    path("campaigns/<int:pk>/edit/", campaigns.campaign_edit, name="campaign_edit"),
    path("campaigns/<int:pk>/launch/", campaigns.campaign_launch, name="campaign_launch"),
    path("campaigns/<int:pk>/close/", campaigns.campaign_close, name="campaign_close"),
    path("campaigns/<int:pk>/progress/", campaigns.campaign_progress, name="campaign_progress"),
    path("campaigns/<int:pk>/report.csv", campaigns.campaign_report, {"fmt": "csv"}, name="campaign_report_csv"),
    path("campaigns/<int:pk>/report.json", campaigns.campaign_report, {"fmt": "json"}, name="campaign_report_json"),
]
