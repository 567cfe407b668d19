"""On PostgreSQL, tie every event's columns to its recorded content with a CHECK constraint.

Verification used to compare each event's columns with its canonical content (parsed as jsonb) row by
row: more than half of the walk's cost. With this constraint PostgreSQL refuses any row whose columns
differ from its content when it is written — UPDATEs included, even with triggers disabled
(``session_replication_role = replica`` skips triggers, not CHECK constraints) — so verification can
skip the comparison as long as the catalog shows this exact constraint, validated
(``audit.verification.COLUMNS_CONSTRAINT``). Dropping or altering it is what tampering with a column now
takes, and verification then compares every row again and reports the guarantee as missing.

The comparison is the one verification makes, with the same semantics (NULL, as for a missing key,
passes both): a function, so each row's content is parsed once (the same expression inline parses it
once per column: about four times the cost per insert). Added NOT VALID, committed, then validated: the
validation scans the table under a lock that lets writers go on. Nothing is done on SQLite.
"""

from __future__ import annotations

from typing import Any

from django.db import migrations

CONSTRAINT = "audit_event_columns_match_content"

FUNCTION = """
CREATE OR REPLACE FUNCTION audit_columns_match_content(
    d jsonb, action text, actor_kind text, actor_id text, actor_label text, target_type text, target_id text,
    target_label text, on_behalf_of jsonb, context jsonb, occurred_at timestamptz, nonce text
) RETURNS boolean LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT d->>'action' = action AND d->'actor'->>'kind' = actor_kind AND d->'actor'->>'id' = actor_id
        AND d->'actor'->>'label' = actor_label AND d->'target'->>'type' = target_type
        AND d->'target'->>'id' = target_id AND d->'target'->>'label' = target_label
        AND d->'on_behalf_of' = on_behalf_of AND d->'context' = context
        AND (d->>'occurred_at')::timestamptz = occurred_at AND coalesce(d->>'nonce', '') = nonce
$$
"""

FORWARD = [
    FUNCTION,
    f"ALTER TABLE audit_auditevent DROP CONSTRAINT IF EXISTS {CONSTRAINT}",
    f"""ALTER TABLE audit_auditevent ADD CONSTRAINT {CONSTRAINT} CHECK (audit_columns_match_content(
        canonical::jsonb, action, actor_kind, actor_id, actor_label, target_type, target_id, target_label,
        on_behalf_of, context, occurred_at, nonce)) NOT VALID""",
    f"ALTER TABLE audit_auditevent VALIDATE CONSTRAINT {CONSTRAINT}",
]

BACKWARD = [
    f"ALTER TABLE audit_auditevent DROP CONSTRAINT IF EXISTS {CONSTRAINT}",
    "DROP FUNCTION IF EXISTS audit_columns_match_content(jsonb, text, text, text, text, text, text, text, jsonb, "
    "jsonb, timestamptz, text)",
]


def forward(apps: Any, schema_editor: Any) -> None:
    if schema_editor.connection.vendor == "postgresql":
        for statement in FORWARD:
            schema_editor.execute(statement)


def backward(apps: Any, schema_editor: Any) -> None:
    if schema_editor.connection.vendor == "postgresql":
        for statement in BACKWARD:
            schema_editor.execute(statement)


class Migration(migrations.Migration):
    # Each statement commits on its own: adding the constraint NOT VALID holds its table lock only for an
    # instant, and the validating scan then runs under a lock that does not block writers.
    atomic = False
    dependencies = [("audit", "0010_decision_session_index")]
    operations = [migrations.RunPython(forward, backward)]
