"""The function behind the columns-match-content constraint (migration 0011) in PL/pgSQL: the same
comparison and answers, at about a quarter of the constraint's cost on a one-row INSERT.

A constraint's expression is prepared for each statement that writes the table, and a ``LANGUAGE sql``
function that PostgreSQL cannot inline there is parsed and planned again inside every one of them: on
the one-row INSERT a recorded decision makes, that was most of the constraint's cost, which doubled the
INSERT's (one client, the same event row each time: 0.33 ms without the constraint, 0.57 ms with the SQL
function, 0.38 ms with this one; ``bench/column_constraint.py``, ``docs/benchmarks.md``). A PL/pgSQL
function is compiled once per session and keeps its expression's plan, so each row pays only for parsing
its content and comparing.

The comparison is character for character the one before, in a ``RETURN`` (NULL, as for a missing key,
still passes). Replacing the function alone would leave its catalog row newer than the constraint's
dependency on it, which verification rightly reads as "the function was changed under the constraint"
(``audit.verification._columns_guarantee``): so the constraint is dropped and added again after the
function, NOT VALID, committed, then validated, as migration 0011 does, in the same order.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

from django.db import migrations

CONSTRAINT = "audit_event_columns_match_content"

SIGNATURE = (
    "audit_columns_match_content(\n"
    "    d jsonb, action text, actor_kind text, actor_id text, actor_label text, target_type text, target_id text,\n"
    "    target_label text, on_behalf_of jsonb, context jsonb, occurred_at timestamptz, nonce text\n"
    ")"
)

COMPARISON = """d->>'action' = action AND d->'actor'->>'kind' = actor_kind AND d->'actor'->>'id' = actor_id
        AND d->'actor'->>'label' = actor_label AND d->'target'->>'type' = target_type
        AND d->'target'->>'id' = target_id AND d->'target'->>'label' = target_label
        AND d->'on_behalf_of' = on_behalf_of AND d->'context' = context
        AND (d->>'occurred_at')::timestamptz = occurred_at AND coalesce(d->>'nonce', '') = nonce"""

FUNCTION = f"""
CREATE OR REPLACE FUNCTION {SIGNATURE} RETURNS boolean LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE AS $$
BEGIN
    RETURN {COMPARISON};
END
$$
"""

# Back to migration 0011's function, byte for byte (verification compares its text).
SQL = import_module("audit.migrations.0011_columns_match_content").FUNCTION


def _constraint_again(function: str) -> list[str]:
    """``function``, then the constraint dropped, added NOT VALID and validated (0011's steps, in order)."""
    return [
        function,
        f"ALTER TABLE audit_auditevent DROP CONSTRAINT IF EXISTS {CONSTRAINT}",
        f"""ALTER TABLE audit_auditevent ADD CONSTRAINT {CONSTRAINT} CHECK (audit_columns_match_content(
            canonical::jsonb, action, actor_kind, actor_id, actor_label, target_type, target_id, target_label,
            on_behalf_of, context, occurred_at, nonce)) NOT VALID""",
        f"ALTER TABLE audit_auditevent VALIDATE CONSTRAINT {CONSTRAINT}",
    ]


FORWARD = _constraint_again(FUNCTION)


def forward(apps: Any, schema_editor: Any) -> None:
    if schema_editor.connection.vendor == "postgresql":
        for statement in FORWARD:
            schema_editor.execute(statement)


def backward(apps: Any, schema_editor: Any) -> None:
    if schema_editor.connection.vendor == "postgresql":
        for statement in _constraint_again(SQL):
            schema_editor.execute(statement)


class Migration(migrations.Migration):
    atomic = False  # as 0011: the constraint's table lock only for an instant, validated beside writers
    dependencies = [("audit", "0011_columns_match_content")]
    operations = [migrations.RunPython(forward, backward)]
