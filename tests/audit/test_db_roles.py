"""Least privilege, enforced by PostgreSQL itself: the application's role can add to the log and never
change it, the sealer's role can seal and do nothing else, and neither can switch the triggers off."""

from __future__ import annotations

import io
import secrets
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from django.core.management import call_command
from django.db import connection

from audit import sealer
from audit.models import Seal
from audit.services import Actor, audit_append
from tests.audit.support import REPO, queued_ids, subprocess_env

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]


@pytest.fixture
def roles() -> Iterator[tuple[str, str]]:
    suffix = secrets.token_hex(4)
    app, sealer_role = f"custos_test_app_{suffix}", f"custos_test_sealer_{suffix}"
    with connection.cursor() as cursor:
        for role in (app, sealer_role):
            cursor.execute(f'CREATE ROLE "{role}" LOGIN')
    call_command("audit_db_roles", "--app", app, "--sealer", sealer_role, "--apply", stdout=io.StringIO())
    try:
        yield app, sealer_role
    finally:
        with connection.cursor() as cursor:
            for role in (app, sealer_role):
                cursor.execute(f'DROP OWNED BY "{role}"')
                cursor.execute(f'DROP ROLE "{role}"')


def connect_as(role: str) -> psycopg.Connection[Any]:
    s = connection.settings_dict
    return psycopg.connect(
        dbname=s["NAME"], user=role, host=s.get("HOST") or "127.0.0.1", port=s.get("PORT") or 5432, autocommit=True
    )


def refused(conn: psycopg.Connection[Any], sql: str, params: Any = None) -> str:
    with pytest.raises(psycopg.Error) as caught:
        conn.execute(sql, params)
    return str(caught.value)


def test_the_application_may_add_to_the_log_and_never_change_it(roles: tuple[str, str]) -> None:
    app, _ = roles
    event = audit_append(actor=Actor.system(), action="before")
    sealer.seal_pending()
    with connect_as(app) as conn:
        # What the application does: append (into the intake), read (the intake's events with the log's).
        conn.execute(
            "INSERT INTO audit_intake (digest, canonical, nonce, occurred_at, actor_kind, actor_id, "
            "actor_label, on_behalf_of, action, target_type, target_id, target_label, context) VALUES "
            "(%s, '{}', '', now(), 'system', '', 'x', '[]', 'app.write', '', '', '', '{}')",
            ["f" * 64],
        )
        assert conn.execute("SELECT count(*) FROM audit_auditevent").fetchone() == (2,)
        assert conn.execute("SELECT count(*) FROM governance_agent").fetchone() == (0,)
        for sql in (
            "UPDATE audit_auditevent SET action = 'rewritten'",
            "DELETE FROM audit_auditevent",
            "TRUNCATE audit_auditevent",
            "ALTER TABLE audit_auditevent DISABLE TRIGGER ALL",
            # The log proper is the sealer's to write (it moves events there): not even an insert.
            "INSERT INTO audit_auditevent (digest, canonical, nonce, occurred_at, actor_kind, actor_id, actor_label, "
            "on_behalf_of, action, target_type, target_id, target_label, context) VALUES "
            "('d', '{}', '', now(), 'system', '', 'x', '[]', 'forged', '', '', '', '{}')",
            "UPDATE audit_intake SET action = 'rewritten'",
            "DELETE FROM audit_intake",
            "TRUNCATE audit_intake",
            "INSERT INTO audit_rejected (event_id, digest, reason, event, rejected_at) VALUES (1, 'd', 'r', '{}', now())",
            "SELECT * FROM audit_move_intake(10, now(), true)",
            "SELECT audit_reject_unparsable(10, now())",
            "INSERT INTO audit_seal (seq, event_id, prev_hash, hash, sealed_at) VALUES (99, 1, 'x', 'y', now())",
            "DELETE FROM audit_seal",
            "UPDATE audit_chainhead SET seq = 0",
            "DELETE FROM audit_pendingseal",
            # The sealer's function runs with its caller's privileges: the application cannot seal with it.
            f"SELECT * FROM audit_seal_batch({sealer.LOCK_KEY}, 10)",
        ):
            message = refused(conn, sql)
            assert "permission denied" in message or "must be owner" in message, (sql, message)
    assert Seal.objects.get(seq=1).event.digest == event.digest
    assert len(queued_ids()) == 1, "the application's event still waits for the sealer"


def test_the_sealer_may_seal_and_do_nothing_else(roles: tuple[str, str]) -> None:
    _, sealer_role = roles
    for i in range(5):
        audit_append(actor=Actor.system(), action="to.seal", context={"i": i})
    s = connection.settings_dict
    url = f"postgres://{sealer_role}@{s.get('HOST') or '127.0.0.1'}:{s.get('PORT') or 5432}/{s['NAME']}"
    run = subprocess.run(
        [sys.executable, "manage.py", "audit_seal", "--once"],
        cwd=REPO,
        env=subprocess_env(DATABASE_URL=url),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert run.returncode == 0 and "sealed 5 events" in run.stdout, run.stderr
    assert Seal.objects.count() == 5 and not queued_ids()
    with connect_as(sealer_role) as conn:
        for sql in (
            "SELECT count(*) FROM governance_agent",
            "SELECT count(*) FROM auth_user",
            "INSERT INTO audit_auditevent (digest, canonical, nonce, occurred_at, actor_kind, actor_id, actor_label, "
            "on_behalf_of, action, target_type, target_id, target_label, context) VALUES "
            "('e', '{}', '', now(), 'system', '', 'x', '[]', 'forged', '', '', '', '{}')",
            "UPDATE audit_auditevent SET action = 'rewritten'",
            "INSERT INTO audit_intake (digest, canonical, nonce, occurred_at, actor_kind, actor_id, actor_label, "
            "on_behalf_of, action, target_type, target_id, target_label, context) VALUES "
            "('e', '{}', '', now(), 'system', '', 'x', '[]', 'forged', '', '', '', '{}')",
            "DELETE FROM audit_intake",
            "INSERT INTO audit_rejected (event_id, digest, reason, event, rejected_at) VALUES (1, 'e', 'r', '{}', now())",
            "DELETE FROM audit_seal",
            "UPDATE audit_seal SET hash = 'x'",
            "TRUNCATE audit_seal",
            "ALTER TABLE audit_seal DISABLE TRIGGER ALL",
        ):
            message = refused(conn, sql)
            assert "permission denied" in message or "must be owner" in message or "append-only" in message, (
                sql,
                message,
            )
