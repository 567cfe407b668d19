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
    "summarise-repeated-denials": {
        "task": "governance.tasks.flush_repeats",
        "schedule": 60.0,
    },
    "verify-audit-chain-nightly": {
        "task": "audit.tasks.verify_chain_task",
        "schedule": crontab(minute=17, hour=3),
    },
}
