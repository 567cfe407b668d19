"""Helpers for audit tests that need to act outside the application: tamper with the log as a database
superuser, and run commands or writer processes against the test database."""

from __future__ import annotations

import importlib
import json
import os
import subprocess
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from types import SimpleNamespace
from typing import Any
from urllib.parse import quote

import psycopg
from django.db import DatabaseError, connection, transaction

REPO = Path(__file__).resolve().parents[2]


def db_url() -> str:
    """The URL of the database this test run uses (``test_…``), for other processes."""
    s = connection.settings_dict
    user = quote(s.get("USER") or "")
    password = f":{quote(s['PASSWORD'])}" if s.get("PASSWORD") else ""
    host = s.get("HOST") or "127.0.0.1"
    port = s.get("PORT") or 5432
    return f"postgres://{user}{password}@{host}:{port}/{s['NAME']}"


CHECKPOINT_SECRET = "checkpoint-secret-for-tests-only"


def use_checkpoint_directory(settings: Any, tmp_path: Path) -> Path:
    """Checkpoints for one test: a directory of its own under ``tmp_path``, the tests' secret, no other
    key trusted. Returns the directory (not made yet: the first checkpoint makes it)."""
    directory = tmp_path / "checkpoints"
    settings.CUSTOS_AUDIT_CHECKPOINT_DIR = str(directory)
    settings.CUSTOS_AUDIT_CHECKPOINT_SECRET = CHECKPOINT_SECRET
    settings.CUSTOS_AUDIT_CHECKPOINT_TRUSTED_KEYS = []
    return directory


def subprocess_env(**extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env["DATABASE_URL"] = db_url()
    env.update(extra)
    return env


def manage(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(REPO / "manage.py"), *args],
        cwd=REPO,
        env=subprocess_env(),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


class Writers:
    """``tests.audit.writers`` processes, one per command: started (each sets Django up), released
    together once all are ready, then collected (their JSON summaries, in order). Any failing writer
    fails the test; none outlives it."""

    def __init__(self, *commands: Sequence[str]) -> None:
        self.procs = [
            subprocess.Popen(
                [sys.executable, "-m", "tests.audit.writers", *command],
                cwd=REPO,
                env=subprocess_env(),
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            for command in commands
        ]

    def __enter__(self) -> Writers:
        return self

    def __exit__(self, *exc: object) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.kill()
            proc.wait()

    def go(self, timeout: float = 60) -> None:
        for proc in self.procs:
            assert proc.stdout is not None
            line = proc.stdout.readline()
            if line.strip() != "ready":
                _, err = proc.communicate(timeout=timeout)
                raise AssertionError(f"writer did not start: {line!r} {err}")
        for proc in self.procs:
            assert proc.stdin is not None
            proc.stdin.write("go\n")
            proc.stdin.flush()

    def running(self) -> bool:
        return any(proc.poll() is None for proc in self.procs)

    def collect(self, timeout: float = 120) -> list[dict[str, Any]]:
        summaries = []
        for proc in self.procs:
            out, err = proc.communicate(timeout=timeout)
            assert proc.returncode == 0, f"writer failed ({proc.returncode}): {err}"
            summaries.append(json.loads(out.strip().splitlines()[-1]))
        return summaries


def run_writers(*commands: Sequence[str]) -> list[dict[str, Any]]:
    with Writers(*commands) as writers:
        writers.go()
        return writers.collect()


def is_superuser(cursor: Any) -> bool:
    cursor.execute("SELECT rolsuper FROM pg_roles WHERE rolname = current_user")
    row = cursor.fetchone()
    return bool(row and row[0])


# The constraint and its function as the latest migration to make them left them.
# The constraint tying events' columns to their content as the migrations leave it: 0012's function,
# added to the log proper only (NO INHERIT, 0013): FORWARD is the function, then the constraint dropped,
# added NOT VALID and validated.
_PLPGSQL = importlib.import_module("audit.migrations.0012_columns_match_content_plpgsql")
_INTAKE = importlib.import_module("audit.migrations.0013_intake")
COLUMNS = SimpleNamespace(
    CONSTRAINT=_INTAKE.CONSTRAINT, FUNCTION=_PLPGSQL.FUNCTION, FORWARD=[_PLPGSQL.FUNCTION, *_INTAKE.FORWARD[:3]]
)

# Set when committed tampering left the constraint tying events' columns to their content not valid;
# the next audit test puts it back (tests/audit/conftest.py), once the flush has emptied the log.
column_guarantee_left_broken = False


def restore_column_guarantee(execute: Callable[[str], Any], savepoint: Callable[[], Any]) -> bool:
    """Add the constraint tying events' columns to their content back as the migrations made it and try to
    validate it (in ``savepoint()``): what a superuser who tampered would do to hide it. Return whether it
    validated; if not (a column no longer matches its content), it stays NOT VALID, for verification to see."""
    execute(f"ALTER TABLE audit_auditevent DROP CONSTRAINT IF EXISTS {COLUMNS.CONSTRAINT}")
    execute(COLUMNS.FORWARD[2])
    try:
        with savepoint():
            execute(COLUMNS.FORWARD[3])
    except (DatabaseError, psycopg.Error):
        return False
    return True


@contextmanager
def bypassing_triggers() -> Iterator[Any]:
    """A cursor on the test's own connection (inside its transaction) that skips ordinary triggers and,
    for as long as it is open, the CHECK constraint tying events' columns to their content (dropped: that
    is what a database superuser must do to change a column; the application by design cannot). On
    leaving, the constraint is added back and validated if the rows allow it, else left NOT VALID."""
    with connection.cursor() as cursor:
        assert is_superuser(cursor), "tampering tests need the test database role to be a PostgreSQL superuser"
        cursor.execute("SET LOCAL session_replication_role = replica")
        cursor.execute(f"ALTER TABLE audit_auditevent DROP CONSTRAINT IF EXISTS {COLUMNS.CONSTRAINT}")
        try:
            yield cursor
        finally:
            cursor.execute("SET LOCAL session_replication_role = origin")
        restore_column_guarantee(cursor.execute, transaction.atomic)


@contextmanager
def superuser_connection() -> Iterator[psycopg.Connection[Any]]:
    """A separate connection to the test database that skips ordinary triggers and, while open, the
    columns' CHECK constraint (as ``bypassing_triggers``), for committed tampering."""
    global column_guarantee_left_broken
    s = connection.settings_dict
    with psycopg.connect(
        dbname=s["NAME"],
        user=s.get("USER") or None,
        password=s.get("PASSWORD") or None,
        host=s.get("HOST") or "127.0.0.1",
        port=s.get("PORT") or 5432,
        autocommit=True,
    ) as conn:
        with conn.cursor() as cursor:
            assert is_superuser(cursor), "tampering tests need a PostgreSQL superuser"
            cursor.execute("SET session_replication_role = replica")
            cursor.execute(f"ALTER TABLE audit_auditevent DROP CONSTRAINT IF EXISTS {COLUMNS.CONSTRAINT}")
        yield conn
        if not restore_column_guarantee(conn.execute, conn.transaction):
            column_guarantee_left_broken = True


def run_sql(statements: Sequence[tuple[str, Sequence[Any]]], cursor: Any) -> None:
    for sql, params in statements:
        cursor.execute(sql, params)


# --- What waits for its seal ------------------------------------------------------------------------------
# On PostgreSQL an event waits in the intake (audit migration 0013), on SQLite as an entry in the queue;
# events written before 0013 (or by hand) wait in the queue on PostgreSQL too.


def queued_ids() -> list[int]:
    """The ids of the events waiting for their seal, wherever they wait."""
    from audit.models import PendingSeal

    ids = list(PendingSeal.objects.values_list("event_id", flat=True))
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT id FROM audit_intake")
            ids += [row[0] for row in cursor.fetchall()]
    return sorted(ids)


@contextmanager
def held_back(event: Any) -> Iterator[None]:
    """``event`` invisible to the sealer for a while, as if its transaction had not committed yet: taken
    out of the intake (or the queue) and put back as it was."""
    from audit.models import PendingSeal

    if connection.vendor != "postgresql":
        PendingSeal.objects.filter(event_id=event.pk).delete()
        yield
        PendingSeal.objects.create(event_id=event.pk, digest=event.digest, occurred_at=event.occurred_at)
        return
    with connection.cursor() as cursor:
        cursor.execute("CREATE TEMPORARY TABLE held_back AS SELECT * FROM audit_intake WHERE id = %s", [event.pk])
        cursor.execute("DELETE FROM audit_intake WHERE id = %s", [event.pk])
    yield
    with connection.cursor() as cursor:
        cursor.execute("INSERT INTO audit_intake SELECT * FROM held_back")
        cursor.execute("DROP TABLE held_back")


# An event left neither sealed nor waiting, as a database superuser could leave it: its queue entry
# removed, or (PostgreSQL) moved from the intake into the log without being sealed. Parameters: the
# event's id, twice.
UNQUEUE_SQL = """
WITH unqueued AS (DELETE FROM audit_pendingseal WHERE event_id = %s),
     taken AS (DELETE FROM audit_intake WHERE id = %s RETURNING *)
INSERT INTO audit_auditevent SELECT * FROM taken
"""


def make_stray(event: Any) -> None:
    with bypassing_triggers() as cursor:
        cursor.execute(UNQUEUE_SQL, [event.pk, event.pk])
