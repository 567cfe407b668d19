"""What the CHECK constraint tying each audit event's columns to its content costs an INSERT, by the
language of its function: none, ``LANGUAGE sql`` (migration 0011) and PL/pgSQL (0012, today's).

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres .venv/bin/python bench/column_constraint.py

Three copies of the log's table (its columns and indexes) in a scratch database beside DATABASE_URL's:
one without the constraint, one with it calling the SQL function of migration 0011, one with today's
(``LIKE audit_auditevent INCLUDING ALL``). Into each, alternately, the same recorded event (a decision's,
as the check writes it) with a fresh digest: one row per statement, as a check appends, on one
connection, ``synchronous_commit`` off so that the figure is the statement's work and not the disk's;
then 50,000 rows in one statement, as a bulk append writes them. Prints the median over rounds of the
time per row, and each constraint's cost over the table without one.
"""

from __future__ import annotations

import argparse
import statistics
import time
from importlib import import_module
from typing import Any

import scratch  # bench/scratch.py, beside this script

COLUMNS = (
    "occurred_at, actor_kind, actor_id, actor_label, on_behalf_of, action, target_type, target_id, target_label, "
    "context, canonical, nonce"
)
ROW = f"SELECT {COLUMNS}, md5(random()::text) || md5(random()::text) FROM template"
TABLES = ("without", "sql", "plpgsql")


def prepare(cursor: Any) -> None:
    from audit.services import Actor, Target, audit_append

    audit_append(
        actor=Actor.system(),
        action="check.allow",
        target=Target("scope", "bench.records", "bench.records:read"),
        context={"intent": "benchmark", "tool": "wrk", "session_id": "s", "request_id": "r", "decision": "allow"},
    )
    sql_function = import_module("audit.migrations.0011_columns_match_content").FUNCTION
    cursor.execute("CREATE TABLE template AS SELECT * FROM audit_auditevent LIMIT 1")
    cursor.execute(
        "CREATE TABLE t_without (LIKE audit_auditevent INCLUDING DEFAULTS INCLUDING IDENTITY INCLUDING INDEXES)"
    )
    cursor.execute("CREATE TABLE t_sql (LIKE t_without INCLUDING ALL)")
    cursor.execute(sql_function.replace("FUNCTION audit_columns_match_content(", "FUNCTION bench_match_sql("))
    cursor.execute(
        "ALTER TABLE t_sql ADD CHECK (bench_match_sql(canonical::jsonb, action, actor_kind, actor_id, actor_label, "
        "target_type, target_id, target_label, on_behalf_of, context, occurred_at, nonce))"
    )
    cursor.execute("CREATE TABLE t_plpgsql (LIKE audit_auditevent INCLUDING ALL)")


def one_row_each(conn: Any, table: str, rows: int) -> float:
    """Microseconds per one-row INSERT statement, prepared, on ``conn`` (autocommit)."""
    statement = f"INSERT INTO t_{table} ({COLUMNS}, digest) {ROW}"
    for _ in range(50):  # warm: plan cache, function compiled
        conn.execute(statement, prepare=True)
    start = time.perf_counter()
    for _ in range(rows):
        conn.execute(statement, prepare=True)
    return (time.perf_counter() - start) / rows * 1e6


def bulk(conn: Any, table: str, rows: int) -> float:
    statement = f"INSERT INTO t_{table} ({COLUMNS}, digest) {ROW}, generate_series(1, {rows})"
    start = time.perf_counter()
    conn.execute(statement)
    return (time.perf_counter() - start) / rows * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=3000, help="one-row statements per table and round")
    parser.add_argument("--bulk", type=int, default=50_000, help="rows of the one bulk statement")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    import psycopg
    from django.db import connection

    with scratch.django_in_scratch("audit"):
        with connection.cursor() as cursor:
            prepare(cursor)
        url = scratch.with_database(scratch.server_url(), connection.settings_dict["NAME"])
        one: dict[str, list[float]] = {t: [] for t in TABLES}
        many: dict[str, list[float]] = {t: [] for t in TABLES}
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("SET synchronous_commit = off")
            for _ in range(args.rounds):
                for table in TABLES:
                    one[table].append(one_row_each(conn, table, args.rows))
                for table in TABLES:
                    many[table].append(bulk(conn, table, args.bulk))
        for label, figures in (("one row per statement", one), (f"{args.bulk:,} rows in one statement", many)):
            base = statistics.median(figures["without"])
            print(f"{label}: µs per row, median of {args.rounds} rounds")
            for table in TABLES:
                value = statistics.median(figures[table])
                rounds = ", ".join(f"{v:.1f}" for v in figures[table])
                extra = "" if table == "without" else f"  constraint +{value - base:.1f} µs ({value / base:.2f}x)"
                print(f"  {table:<8} {value:8.1f}  (rounds {rounds}){extra}")


if __name__ == "__main__":
    main()
