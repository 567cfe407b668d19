"""The append-only, hash-chained audit log.

Writing and sealing are separate, so writers never wait on the chain:

- a writer inserts its event (with the content digest that is also the event's public id) in its own
  transaction: the event is durable when the change it records commits, and vanishes with it otherwise.
  On PostgreSQL it goes into ``audit_intake`` (migration 0013), a table that inherits this model's, so
  every query of ``AuditEvent`` sees it at once, but has none of its indexes or checks; on SQLite into
  the log itself with a ``PendingSeal`` row naming it;
- one sealer at a time (``audit.sealer``) takes the waiting events in batches, in the order they became
  visible, moves each from the intake into the log proper (where the constraint tying its columns to its
  content checks it; what the log refuses is set aside in ``audit_rejected``), gives each a ``Seal`` (its
  sequence number, the previous seal's hash and its own hash over ``seq|prev_hash|digest``) and moves
  the ``ChainHead`` on, all in one transaction;
- signed ``Checkpoint``s of the head, kept in the database and outside it, make a truncated or rewritten
  tail detectable even by someone who owns the database.

Events and seals are never updated or deleted (database triggers refuse it). ``audit`` imports nothing
from the other apps: actors and targets are labels plus plain ids.
"""

from __future__ import annotations

from django.db import models
from django.db.models.fields.json import KeyTextTransform

# Decisions (``check.allow``/``check.deny``) carry the agent session they were made in; a session's
# timeline reads them by it. Partial, so no other append pays for the index.
CHECK_ACTIONS = models.Q(action__startswith="check.")

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
    # Insertion order: close to time order, but a late commit may be sealed after a later id.
    id = models.BigAutoField(primary_key=True)
    # SHA-256 of the event's content (audit.hashing): its public id (a decision's id), known before sealing.
    # Unique by a constraint, not unique=True: that would add a second (LIKE-pattern) index on PostgreSQL,
    # one more random-key index to update per append, for queries nobody makes on a hash.
    digest = models.CharField(max_length=64, editable=False)
    # Random, part of the content: two otherwise identical events (the same check twice in one
    # microsecond) still have distinct digests. Empty for events written before sealing existed.
    nonce = models.CharField(max_length=32, blank=True, default="", editable=False)
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
    # The exact bytes the digest is taken over (audit.hashing.canonical of the fields above): digests verify
    # by hashing bytes, and the fields are checked against them.
    canonical = models.TextField(editable=False)

    objects = AuditEventQuerySet.as_manager()

    class Meta:
        ordering = ["-id"]
        indexes = [
            models.Index(fields=["target_type", "target_id", "-id"], name="audit_target_idx"),
            models.Index(fields=["actor_kind", "actor_id", "-id"], name="audit_actor_idx"),
            models.Index(
                KeyTextTransform("session_id", "context"), "id", condition=CHECK_ACTIONS, name="audit_session_idx"
            ),
        ]
        constraints = [models.UniqueConstraint(fields=["digest"], name="audit_event_digest_unique")]

    def __str__(self) -> str:
        return f"{self.action} by {self.actor_label} ({self.digest[:12]})"

    @property
    def seq(self) -> int | None:
        """The event's place in the chain, once sealed (select_related("seal") to read it in bulk)."""
        seal = getattr(self, "seal", None)
        return seal.seq if seal is not None else None


class Seal(models.Model):
    """An event's place in the chain. Written by the sealer only, never changed."""

    seq = models.BigIntegerField(primary_key=True)
    # No foreign key in the database (db_constraint=False), here and in the queue: its check locks the
    # event's row (FOR KEY SHARE), writing to it again, for every seal. Events are never deleted (the
    # triggers refuse it), and verification joins every seal to its event.
    event = models.OneToOneField(
        AuditEvent, on_delete=models.PROTECT, related_name="seal", editable=False, db_constraint=False
    )
    prev_hash = models.CharField(max_length=64, editable=False)
    hash = models.CharField(max_length=64, editable=False)
    sealed_at = models.DateTimeField(editable=False)

    class Meta:
        ordering = ["seq"]
        constraints = [
            models.CheckConstraint(condition=models.Q(seq__gte=1), name="audit_seal_seq_positive"),
            models.UniqueConstraint(fields=["hash"], name="audit_seal_hash_unique"),
        ]

    def __str__(self) -> str:
        return f"#{self.seq}"


class PendingSeal(models.Model):
    """The sealer's queue where there is no intake (SQLite), and for events written before it on
    PostgreSQL: one row per committed event not sealed yet. Written with the event, in the same
    transaction; removed by the sealer in the transaction that seals it."""

    event = models.OneToOneField(
        AuditEvent, on_delete=models.DO_NOTHING, primary_key=True, related_name="+", db_constraint=False
    )
    digest = models.CharField(max_length=64)
    occurred_at = models.DateTimeField()

    def __str__(self) -> str:
        return f"pending {self.event_id}"


class ChainHead(models.Model):
    """The last seal: where the next batch continues. Only the sealer moves it."""

    id = models.PositiveSmallIntegerField(primary_key=True, default=1)
    seq = models.BigIntegerField(default=0)
    hash = models.CharField(max_length=64, default=GENESIS_HASH)
    sealed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [models.CheckConstraint(condition=models.Q(id=1), name="audit_chainhead_singleton")]

    def __str__(self) -> str:
        return f"chain head #{self.seq}"


class Checkpoint(models.Model):
    """A signed statement that the chain had reached ``seq`` with ``hash`` at ``signed_at``.

    Also written outside the database (``CUSTOS_AUDIT_CHECKPOINT_DIR``, and a witness if configured):
    someone who owns the database can rewrite the chain and this table consistently, but not the
    copies, so a truncated or rewritten tail no longer verifies against them."""

    seq = models.BigIntegerField(primary_key=True)
    hash = models.CharField(max_length=64, editable=False)
    signed_at = models.DateTimeField(editable=False)
    # SHA-256 of the raw Ed25519 public key, hex.
    key_fingerprint = models.CharField(max_length=64, editable=False)
    public_key = models.CharField(max_length=64, editable=False, help_text="Raw Ed25519 public key, base64url.")
    signature = models.CharField(max_length=100, editable=False, help_text="Ed25519 over the canonical payload.")

    class Meta:
        ordering = ["-seq"]

    def __str__(self) -> str:
        return f"checkpoint #{self.seq}"
