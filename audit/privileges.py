"""Least privilege on PostgreSQL: what the application's and the sealer's database roles may do.

- the **owner** (who runs ``migrate``) owns every table; only it, or a superuser, could alter the log's
  tables or switch their triggers off;
- the **application** (web and workers) reads and writes the domain's tables, and may only add to the
  log: INSERT into the intake (on PostgreSQL events are written there, migration 0013) and the sealer's
  queue, and read events, seals, the head, checkpoints and rejected events (it may add a checkpoint
  too: one it did not sign with the configured key proves nothing). It cannot write the log proper;
- the **sealer** reads events, the intake and the queue, moves what it seals from the intake into the
  log through ``audit_move_intake`` (a function running with its owner's rights that only this role may
  call: it moves events, or sets aside those it cannot seal, and cannot write one of its own), removes
  what it seals from the queue, adds seals and checkpoints and moves the head. Nothing else: not even a
  look at the domain's tables.

Neither may UPDATE, DELETE or TRUNCATE events or seals, nor ALTER their tables. ``manage.py
audit_db_roles`` prints (or applies) these statements.
"""

from __future__ import annotations

from psycopg import sql

LOG_TABLES = (
    "audit_auditevent",
    "audit_intake",
    "audit_rejected",
    "audit_pendingseal",
    "audit_seal",
    "audit_chainhead",
    "audit_checkpoint",
)

APP_ON_LOG = {
    "audit_auditevent": ("SELECT",),
    "audit_intake": ("SELECT", "INSERT"),
    "audit_rejected": ("SELECT",),
    "audit_pendingseal": ("SELECT", "INSERT"),
    "audit_seal": ("SELECT",),
    "audit_chainhead": ("SELECT",),
    "audit_checkpoint": ("SELECT", "INSERT"),
}
SEALER_ON_LOG = {
    "audit_auditevent": ("SELECT",),
    "audit_intake": ("SELECT",),
    "audit_rejected": ("SELECT",),
    "audit_pendingseal": ("SELECT", "DELETE"),
    "audit_seal": ("SELECT", "INSERT"),
    "audit_chainhead": ("SELECT", "UPDATE"),
    "audit_checkpoint": ("SELECT", "INSERT"),
}


def statements(*, app: str, sealer: str, schema: str = "public") -> list[sql.Composed]:
    app_role, sealer_role, where = sql.Identifier(app), sql.Identifier(sealer), sql.Identifier(schema)
    log_tables = sql.SQL(", ").join(sql.Identifier(schema, table) for table in LOG_TABLES)
    result = [
        sql.SQL("GRANT USAGE ON SCHEMA {} TO {}, {}").format(where, app_role, sealer_role),
        sql.SQL("GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA {} TO {}").format(where, app_role),
        sql.SQL("GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA {} TO {}").format(where, app_role),
        sql.SQL("REVOKE ALL ON {} FROM {}, {}").format(log_tables, app_role, sealer_role),
    ]
    for role, grants in ((app_role, APP_ON_LOG), (sealer_role, SEALER_ON_LOG)):
        for table, privileges in grants.items():
            result.append(
                sql.SQL("GRANT {} ON {} TO {}").format(
                    sql.SQL(", ").join(sql.SQL(p) for p in privileges), sql.Identifier(schema, table), role
                )
            )
    for function, arguments in (
        ("audit_move_intake", "integer, timestamptz, boolean"),
        ("audit_reject_unparsable", "integer, timestamptz"),
    ):
        result.append(
            sql.SQL("GRANT EXECUTE ON FUNCTION {}({}) TO {}").format(
                sql.Identifier(schema, function), sql.SQL(arguments), sealer_role
            )
        )
    return result
