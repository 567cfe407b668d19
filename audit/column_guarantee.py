"""Whether the catalog still vouches that every event's columns match its recorded content.

Verification (``audit.verification``) skips comparing each event's columns with its content while this
says the constraint doing that comparison in PostgreSQL stands intact, and compares every row, reporting
the missing guarantee as a problem, when it does not.
"""

from __future__ import annotations

from django.db import connection

# PostgreSQL refuses any event whose columns differ from its recorded content (audit migrations 0011, 0012 and 0013):
# a CHECK constraint calling a function that makes the walk's comparison. Triggers can be switched off
# (``session_replication_role``), CHECK constraints cannot: changing a column behind the application's
# back takes dropping or altering the constraint or the function first, which the catalog shows. So the
# walk compares no column while the catalog shows this constraint, validated (every row, old ones
# included, was checked), with exactly this definition, calling exactly this function; otherwise it
# compares every row as before, and the missing guarantee is itself a problem.
COLUMNS_CONSTRAINT = "audit_event_columns_match_content"
COLUMNS_CONSTRAINT_DEF = (
    "CHECK (audit_columns_match_content((canonical)::jsonb, (action)::text, (actor_kind)::text, (actor_id)::text, "
    "(actor_label)::text, (target_type)::text, (target_id)::text, (target_label)::text, on_behalf_of, context, "
    "occurred_at, (nonce)::text)) NO INHERIT"
)
# As pg_get_functiondef renders it; {schema}: the function's schema, quoted as an identifier.
COLUMNS_FUNCTION_DEF = """\
CREATE OR REPLACE FUNCTION {schema}.audit_columns_match_content(d jsonb, action text, actor_kind text, \
actor_id text, actor_label text, target_type text, target_id text, target_label text, on_behalf_of jsonb, \
context jsonb, occurred_at timestamp with time zone, nonce text)
 RETURNS boolean
 LANGUAGE plpgsql
 IMMUTABLE PARALLEL SAFE
AS $function$
BEGIN
    RETURN d->>'action' = action AND d->'actor'->>'kind' = actor_kind AND d->'actor'->>'id' = actor_id
        AND d->'actor'->>'label' = actor_label AND d->'target'->>'type' = target_type
        AND d->'target'->>'id' = target_id AND d->'target'->>'label' = target_label
        AND d->'on_behalf_of' = on_behalf_of AND d->'context' = context
        AND (d->>'occurred_at')::timestamptz = occurred_at AND coalesce(d->>'nonce', '') = nonce;
END
$function$
"""
COLUMNS_PROBLEM = f"the constraint tying events' columns to their content ({COLUMNS_CONSTRAINT}) is missing or altered"
_GUARANTEE_SQL = """
SELECT c.oid, c.convalidated, pg_get_constraintdef(c.oid), quote_ident(n.nspname), pg_get_functiondef(p.oid),
    age(p.xmin) >= age(d.xmin)
FROM pg_constraint c
LEFT JOIN pg_depend d ON d.classid = 'pg_constraint'::regclass AND d.objid = c.oid
    AND d.refclassid = 'pg_proc'::regclass
LEFT JOIN pg_proc p ON p.oid = d.refobjid
LEFT JOIN pg_namespace n ON n.oid = p.pronamespace
WHERE c.conrelid = 'audit_auditevent'::regclass AND c.conname = %s AND c.contype = 'c'
"""


def columns_guarantee() -> int | None:
    """The oid of the constraint tying events' columns to their content when the catalog shows it intact
    (validated, exactly as migrations 0011, 0012 and 0013 made it, calling exactly its function), else
    None. Asked before the walk and after it: the same oid both times means it stood throughout (a
    constraint dropped and added again has a new oid), so no column was changed meanwhile either.

    The function's catalog row must also be no newer than the constraint's dependency on it (written
    when the constraint was added, never updated: compared by ``age`` of the rows' xmin). Rows are
    checked against the function when written and when the constraint is validated, not when the
    function changes: replaced by a weaker one for a moment, a column changed meanwhile, then put back,
    it has the same text but a newer row (renaming the constraint, which rewrites its own row, does not
    touch the dependency). Any later ALTER or GRANT on the function counts as a change too."""
    if connection.vendor != "postgresql":
        return None
    with connection.cursor() as cursor:
        cursor.execute(_GUARANTEE_SQL, [COLUMNS_CONSTRAINT])
        rows = cursor.fetchall()
    if len(rows) != 1:
        return None
    oid, validated, definition, schema, function, function_first = rows[0]
    intact = (
        validated is True
        and definition == COLUMNS_CONSTRAINT_DEF
        and schema is not None
        and function == COLUMNS_FUNCTION_DEF.format(schema=schema)
        and function_first is True
    )
    return int(oid) if intact else None
