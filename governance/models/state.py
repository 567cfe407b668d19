"""How far the state the runtime check decides on has changed: one counter, moved by the database.

On PostgreSQL, triggers on every table the check reads (humans, agents, resources, grants, delegations,
agent keys, delegation tokens) add one to ``StateVersion.version`` in the transaction of any change to
them, whoever makes it: a service, the Django admin, a migration or a hand-written UPDATE. Only the
columns that record use (``last_used_at``, ``last_activity_at``) move nothing. ``governance.livestate``
keeps the state it loaded under the version it read and records a decision made on it only if the
version is still the same when the decision is written.
"""

from __future__ import annotations

from django.db import models
from django.db.models import Q


class StateVersion(models.Model):
    id = models.PositiveSmallIntegerField(primary_key=True, default=1)
    version = models.BigIntegerField(default=0)

    class Meta:
        constraints = [models.CheckConstraint(condition=Q(id=1), name="stateversion_one_row")]

    def __str__(self) -> str:
        return f"state version {self.version}"
