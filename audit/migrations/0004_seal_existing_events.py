"""Writers stop waiting on the chain (2/3): every event already in the log keeps its place.

Each existing event gets its canonical content and digest (computed exactly as the chain always did) and a seal
carrying the sequence number and hashes it was appended with, so the chain verifies as before. The
append-only trigger on events is lifted for this one update, by the tables' owner, and put back.
"""

from __future__ import annotations

from typing import Any

from django.db import migrations

from audit.hashing import canonical, digest_of, event_document

BATCH = 2000


def _triggers(schema_editor: Any, enable: bool) -> None:
    vendor = schema_editor.connection.vendor
    if vendor == "postgresql":
        verb = "ENABLE" if enable else "DISABLE"
        schema_editor.execute(f"ALTER TABLE audit_auditevent {verb} TRIGGER audit_event_no_update_delete")
    elif vendor == "sqlite":
        if enable:
            schema_editor.execute(
                "CREATE TRIGGER audit_event_no_update BEFORE UPDATE ON audit_auditevent "
                "BEGIN SELECT RAISE(ABORT, 'audit_auditevent is append-only: UPDATE refused'); END;"
            )
        else:
            schema_editor.execute("DROP TRIGGER IF EXISTS audit_event_no_update")


def forward(apps: Any, schema_editor: Any) -> None:
    AuditEvent = apps.get_model("audit", "AuditEvent")
    Seal = apps.get_model("audit", "Seal")
    ChainHead = apps.get_model("audit", "ChainHead")
    _triggers(schema_editor, enable=False)
    last = 0
    while True:
        batch = list(AuditEvent.objects.filter(seq__gt=last).order_by("seq")[:BATCH])
        if not batch:
            break
        seals = []
        for event in batch:
            content = canonical(event_document(event))
            AuditEvent.objects.filter(pk=event.pk).update(canonical=content.decode(), digest=digest_of(content))
            seals.append(
                Seal(seq=event.seq, event_id=event.pk, prev_hash=event.prev_hash, hash=event.hash, sealed_at=event.occurred_at)
            )
        Seal.objects.bulk_create(seals)
        last = batch[-1].seq
    _triggers(schema_editor, enable=True)
    head = ChainHead.objects.filter(pk=1).first()
    if head is not None and head.seq:
        ChainHead.objects.filter(pk=1).update(sealed_at=AuditEvent.objects.get(seq=head.seq).occurred_at)


class Migration(migrations.Migration):
    dependencies = [("audit", "0003_sealing_tables")]
    operations = [migrations.RunPython(forward, migrations.RunPython.noop)]
