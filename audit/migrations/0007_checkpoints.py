"""Signed checkpoints of the chain head, as append-only as the chain they sign."""

from __future__ import annotations

from typing import Any

from django.db import migrations, models

PG_FORWARD = """
CREATE TRIGGER audit_checkpoint_no_update_delete BEFORE UPDATE OR DELETE ON audit_checkpoint
    FOR EACH ROW EXECUTE FUNCTION audit_refuse_change();
CREATE TRIGGER audit_checkpoint_no_truncate BEFORE TRUNCATE ON audit_checkpoint
    FOR EACH STATEMENT EXECUTE FUNCTION audit_refuse_change();
"""


def append_only(apps: Any, schema_editor: Any) -> None:
    vendor = schema_editor.connection.vendor
    if vendor == "postgresql":
        schema_editor.execute(PG_FORWARD)
    elif vendor == "sqlite":
        for op in ("UPDATE", "DELETE"):
            schema_editor.execute(
                f"CREATE TRIGGER IF NOT EXISTS audit_checkpoint_no_{op.lower()} BEFORE {op} ON audit_checkpoint "
                f"BEGIN SELECT RAISE(ABORT, 'audit_checkpoint is append-only: {op} refused'); END;"
            )


class Migration(migrations.Migration):

    dependencies = [("audit", "0006_seals_append_only")]

    operations = [
        migrations.CreateModel(
            name="Checkpoint",
            fields=[
                ("seq", models.BigIntegerField(primary_key=True, serialize=False)),
                ("hash", models.CharField(editable=False, max_length=64)),
                ("signed_at", models.DateTimeField(editable=False)),
                ("key_fingerprint", models.CharField(editable=False, max_length=64)),
                (
                    "public_key",
                    models.CharField(editable=False, help_text="Raw Ed25519 public key, base64url.", max_length=64),
                ),
                (
                    "signature",
                    models.CharField(editable=False, help_text="Ed25519 over the canonical payload.", max_length=100),
                ),
            ],
            options={"ordering": ["-seq"]},
        ),
        migrations.RunPython(append_only, migrations.RunPython.noop),
    ]
