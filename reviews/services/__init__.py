"""Every state change of access reviews. Each service is atomic and writes its audit event in the same
transaction; views, the API, tasks and commands call them: ``services.review_decide(actor=…, …)``."""

from __future__ import annotations

from reviews.services.campaigns import (
    Preview,
    campaign_close,
    campaign_create,
    campaign_export_logged,
    campaign_generate,
    campaign_launch,
    campaign_launch_due,
    campaign_preview,
    campaign_update,
    next_occurrence,
)
from reviews.services.items import (
    BulkResult,
    may_decide,
    may_reassign,
    review_certify_bulk,
    review_decide,
    review_mark_opened,
    review_reassign,
)
from reviews.services.key_reminders import key_rotation_remind_due
from reviews.services.notify import notifications_mark_read, notifications_send
from reviews.services.schedule import reviews_escalate_due, reviews_remind_due
from reviews.services.standing import micro_reviews_open, recertification_open_due, standing_campaign

__all__ = [
    "BulkResult",
    "Preview",
    "campaign_close",
    "campaign_create",
    "campaign_export_logged",
    "campaign_generate",
    "campaign_launch",
    "campaign_launch_due",
    "campaign_preview",
    "campaign_update",
    "key_rotation_remind_due",
    "may_decide",
    "may_reassign",
    "micro_reviews_open",
    "next_occurrence",
    "notifications_mark_read",
    "notifications_send",
    "recertification_open_due",
    "review_certify_bulk",
    "review_decide",
    "review_mark_opened",
    "review_reassign",
    "reviews_escalate_due",
    "reviews_remind_due",
    "standing_campaign",
]
