"""Writers stop waiting on the chain (3/3): seals are as append-only as the events they seal.

On SQLite, the table rebuilds of 0005 dropped the events' triggers with the old table: they are created
again here.
"""

from __future__ import annotations

from typing import Any

from django.db import migrations

PG_FORWARD = """
CREATE OR REPLACE FUNCTION audit_refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION '%% is append-only: %% refused', TG_TABLE_NAME, TG_OP
        USING ERRCODE = 'insufficient_privilege';
END;
$$;
CREATE TRIGGER audit_seal_no_update_delete
    BEFORE UPDATE OR DELETE ON audit_seal
    FOR EACH ROW EXECUTE FUNCTION audit_refuse_change();
CREATE TRIGGER audit_seal_no_truncate
    BEFORE TRUNCATE ON audit_seal
    FOR EACH STATEMENT EXECUTE FUNCTION audit_refuse_change();
"""

PG_BACKWARD = """
DROP TRIGGER IF EXISTS audit_seal_no_update_delete ON audit_seal;
DROP TRIGGER IF EXISTS audit_seal_no_truncate ON audit_seal;
"""

# Table, and the prefix of its triggers' names (0002 named the events' "audit_event_no_…").
SQLITE_TABLES = {"audit_auditevent": "audit_event", "audit_seal": "audit_seal"}


def _sqlite_forward() -> list[str]:
    statements = []
    for table, prefix in SQLITE_TABLES.items():
        for op in ("UPDATE", "DELETE"):
            statements.append(
                f"CREATE TRIGGER IF NOT EXISTS {prefix}_no_{op.lower()} BEFORE {op} ON {table} "
                f"BEGIN SELECT RAISE(ABORT, '{table} is append-only: {op} refused'); END;"
            )
    return statements


def forward(apps: Any, schema_editor: Any) -> None:
    vendor = schema_editor.connection.vendor
    if vendor == "postgresql":
        schema_editor.execute(PG_FORWARD)
    elif vendor == "sqlite":
        for statement in _sqlite_forward():
            schema_editor.execute(statement)


def backward(apps: Any, schema_editor: Any) -> None:
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(PG_BACKWARD)


class Migration(migrations.Migration):
    dependencies = [("audit", "0005_finish_sealing")]
    operations = [migrations.RunPython(forward, backward)]
