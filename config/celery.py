"""The Celery application and the one place that defines the beat schedule.

django-celery-beat does not support Django 6.1, so the schedule lives here in code; recurring work
that needs state keeps it in Custos's own tables.
"""

from __future__ import annotations

import os

from celery import Celery
from celery.schedules import crontab

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

app = Celery("custos")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()

app.conf.beat_schedule = {
    "expire-due-access": {
        "task": "governance.tasks.expire_due",
        "schedule": 60.0,
    },
    "agent-key-hygiene": {"task": "governance.tasks.key_hygiene", "schedule": crontab(minute=40, hour=2)},
    "summarise-repeated-denials": {
        "task": "governance.tasks.flush_repeats",
        "schedule": 60.0,
    },
    "reviews-generate-pending": {"task": "reviews.tasks.generate_pending", "schedule": 60.0},
    "reviews-launch-recurring": {"task": "reviews.tasks.launch_recurring", "schedule": 60.0},
    "reviews-remind-and-escalate": {"task": "reviews.tasks.remind_and_escalate", "schedule": crontab(minute=5)},
    "reviews-open-recertifications": {"task": "reviews.tasks.open_recertifications", "schedule": crontab(minute=10)},
    "reviews-open-micro-reviews": {"task": "reviews.tasks.open_micro_reviews", "schedule": 60.0},
    "reviews-send-notifications": {"task": "reviews.tasks.send_notifications", "schedule": 60.0},
    # After the key-hygiene run (02:40), so keys it revoked as stale are not reminded about.
    "reviews-key-rotation-reminders": {
        "task": "reviews.tasks.remind_key_rotation",
        "schedule": crontab(minute=50, hour=2),
    },
    "verify-audit-chain-nightly": {
        "task": "audit.tasks.verify_chain_task",
        "schedule": crontab(minute=17, hour=3),
    },
}
