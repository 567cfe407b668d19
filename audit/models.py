"""The append-only, hash-chained audit log.

Each event's ``hash`` binds its sequence number, the previous event's hash and a digest of its content
(RFC 8785 canonical JSON), so any change, deletion, insertion or reordering breaks the chain from that
event on. ``audit`` imports nothing from the other apps: actors and targets are labels plus plain ids.
"""

from __future__ import annotations

from django.db import models

GENESIS_HASH = "0" * 64


class ActorKind(models.TextChoices):
    USER = "user", "Console user"
    AGENT = "agent", "Agent"
    SYSTEM = "system", "System"


class AuditEventQuerySet(models.QuerySet["AuditEvent"]):
    def for_target(self, target_type: str, target_id: object) -> AuditEventQuerySet:
        return self.filter(target_type=target_type, target_id=str(target_id))

    def for_actor(self, kind: str, actor_id: object) -> AuditEventQuerySet:
        return self.filter(actor_kind=kind, actor_id=str(actor_id))


class AuditEvent(models.Model):
    seq = models.BigIntegerField(unique=True, editable=False)
    occurred_at = models.DateTimeField(db_index=True, editable=False)
    actor_kind = models.CharField(max_length=10, choices=ActorKind.choices, editable=False)
    # A plain reference, never a foreign key: deleting a user or an agent must not touch the log.
    actor_id = models.CharField(max_length=64, blank=True, default="", editable=False)
    actor_label = models.CharField(max_length=200, editable=False)
    on_behalf_of = models.JSONField(default=list, blank=True, editable=False)
    action = models.CharField(max_length=80, db_index=True, editable=False)
    target_type = models.CharField(max_length=40, blank=True, default="", editable=False)
    target_id = models.CharField(max_length=64, blank=True, default="", editable=False)
    target_label = models.CharField(max_length=200, blank=True, default="", editable=False)
    context = models.JSONField(default=dict, blank=True, editable=False)
    prev_hash = models.CharField(max_length=64, editable=False)
    hash = models.CharField(max_length=64, unique=True, editable=False)

    objects = AuditEventQuerySet.as_manager()

    class Meta:
        ordering = ["-seq"]
        indexes = [
            models.Index(fields=["target_type", "target_id", "-seq"], name="audit_target_idx"),
            models.Index(fields=["actor_kind", "actor_id", "-seq"], name="audit_actor_idx"),
        ]
        constraints = [
            models.CheckConstraint(condition=models.Q(seq__gte=1), name="audit_seq_positive"),
        ]

    def __str__(self) -> str:
        return f"#{self.seq} {self.action} by {self.actor_label}"


class ChainHead(models.Model):
    """The single row that serialises appends: its row lock orders writers, its values seed the next
    event. Kept beside the log so an append is one statement on PostgreSQL."""

    id = models.PositiveSmallIntegerField(primary_key=True, default=1)
    seq = models.BigIntegerField(default=0)
    prev_hash = models.CharField(max_length=64, default=GENESIS_HASH)
    hash = models.CharField(max_length=64, default=GENESIS_HASH)

    class Meta:
        constraints = [models.CheckConstraint(condition=models.Q(id=1), name="audit_chainhead_singleton")]

    def __str__(self) -> str:
        return f"chain head #{self.seq}"
