"""The CHECK constraint tying each event's columns to its recorded content (audit migrations 0011 and 0012), and
verification's use of it: the per-row column comparison is skipped only while the catalog shows the
constraint intact; dropped, weakened, not validated or its function replaced, every row is compared
again and the missing guarantee is itself a problem."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from django.db import IntegrityError, connection, transaction

from audit import sealer, verification
from audit.models import AuditEvent
from audit.verification import COLUMNS_CONSTRAINT, COLUMNS_PROBLEM, verify_chain
from tests.audit.support import COLUMNS, bypassing_triggers, is_superuser
from tests.audit.test_chain import N, append_events

pytestmark = pytest.mark.django_db


@pytest.fixture
def chain() -> list[AuditEvent]:
    appended = append_events()
    assert sealer.seal_pending() == N
    return appended


@pytest.fixture
def superuser() -> Iterator[Any]:
    with connection.cursor() as cursor:
        assert is_superuser(cursor), "these tests alter the log's table as a PostgreSQL superuser"
        yield cursor


def catalog() -> tuple[bool, str, str]:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT c.convalidated, pg_get_constraintdef(c.oid), pg_get_functiondef(p.oid) FROM pg_constraint c "
            "JOIN pg_proc p ON p.proname = 'audit_columns_match_content' "
            "WHERE c.conrelid = 'audit_auditevent'::regclass AND c.conname = %s",
            [COLUMNS_CONSTRAINT],
        )
        row = cursor.fetchone()
    assert row is not None, "the migrations made no such constraint"
    return row[0], row[1], row[2]


def assert_guarantee_missing() -> None:
    result = verify_chain()
    assert (result.ok, result.first_bad_seq, result.problem) == (False, None, COLUMNS_PROBLEM), result
    assert (result.checked, result.head_seq, result.columns) == (N, N, "compared")
    assert not verify_chain(full=False).ok


def test_the_constraint_verification_expects_is_the_one_the_migration_makes() -> None:
    validated, definition, function = catalog()
    assert validated is True
    assert definition == verification.COLUMNS_CONSTRAINT_DEF
    assert function == verification.COLUMNS_FUNCTION_DEF.format(schema="public")
    assert COLUMNS.CONSTRAINT == COLUMNS_CONSTRAINT


def test_a_sound_log_verifies_without_comparing_any_column(chain: list[AuditEvent]) -> None:
    result = verify_chain()
    assert (result.ok, result.checked, result.columns) == (True, N, "constraint"), result
    incremental = verify_chain(full=False)
    assert (incremental.ok, incremental.columns) == (True, "constraint"), incremental


@pytest.mark.parametrize(
    "assignment",
    [
        "action = 'nothing.happened'",
        "actor_label = 'mallory'",
        "context = jsonb_set(context, '{i}', '99')",
        "occurred_at = occurred_at + interval '1 microsecond'",
        "nonce = ''",
        "canonical = replace(canonical, 'alice3', 'mallory')",
        "canonical = '{not json'",
    ],
)
def test_with_the_constraint_in_place_even_triggers_off_cannot_change_a_column(
    chain: list[AuditEvent], superuser: Any, assignment: str
) -> None:
    superuser.execute("SET LOCAL session_replication_role = replica")
    with pytest.raises(Exception) as refused, transaction.atomic():
        superuser.execute(f"UPDATE audit_auditevent SET {assignment} WHERE id = %s", [chain[3].pk])
    assert (
        isinstance(refused.value, IntegrityError)
        or "not json" in str(refused.value)
        or "invalid input" in str(refused.value)
    ), refused.value
    superuser.execute("SET LOCAL session_replication_role = origin")
    assert verify_chain().ok


def test_the_constraint_dropped_fails_verification_though_no_row_differs(
    chain: list[AuditEvent], superuser: Any
) -> None:
    superuser.execute(f"ALTER TABLE audit_auditevent DROP CONSTRAINT {COLUMNS_CONSTRAINT}")
    assert_guarantee_missing()


def test_the_constraint_weakened_under_its_name_fails_verification(chain: list[AuditEvent], superuser: Any) -> None:
    superuser.execute(f"ALTER TABLE audit_auditevent DROP CONSTRAINT {COLUMNS_CONSTRAINT}")
    superuser.execute(f"ALTER TABLE audit_auditevent ADD CONSTRAINT {COLUMNS_CONSTRAINT} CHECK (true)")
    assert_guarantee_missing()


def test_the_constraint_added_back_not_valid_fails_verification(chain: list[AuditEvent], superuser: Any) -> None:
    superuser.execute(f"ALTER TABLE audit_auditevent DROP CONSTRAINT {COLUMNS_CONSTRAINT}")
    superuser.execute(COLUMNS.FORWARD[2])
    assert catalog()[:2] == (False, f"{verification.COLUMNS_CONSTRAINT_DEF} NOT VALID")
    assert_guarantee_missing()


def test_its_function_replaced_fails_verification(chain: list[AuditEvent], superuser: Any) -> None:
    superuser.execute(COLUMNS.FUNCTION.replace("RETURN d->>'action' = action AND", "RETURN true OR"))
    assert catalog()[0] is True
    assert_guarantee_missing()


def test_a_column_changed_while_its_function_was_weakened_then_put_back_fails_verification(
    chain: list[AuditEvent], superuser: Any
) -> None:
    """The text in the catalog is as expected again, the constraint validated all along: only the
    function's catalog row, newer than the constraint's, tells that the rows were not held meanwhile."""
    superuser.execute(COLUMNS.FUNCTION.replace("RETURN d->>'action' = action AND", "RETURN true OR"))
    superuser.execute("SET LOCAL session_replication_role = replica")
    superuser.execute("UPDATE audit_auditevent SET actor_label = 'mallory' WHERE id = %s", [chain[2].pk])
    superuser.execute("SET LOCAL session_replication_role = origin")
    superuser.execute(COLUMNS.FUNCTION)
    # Renaming the constraint there and back rewrites its own catalog row (newer than the function's):
    # no help, as the dependency on the function is what is compared.
    superuser.execute(f"ALTER TABLE audit_auditevent RENAME CONSTRAINT {COLUMNS_CONSTRAINT} TO renamed")
    superuser.execute(f"ALTER TABLE audit_auditevent RENAME CONSTRAINT renamed TO {COLUMNS_CONSTRAINT}")
    validated, definition, function = catalog()
    assert (validated, definition) == (True, verification.COLUMNS_CONSTRAINT_DEF)
    assert function == verification.COLUMNS_FUNCTION_DEF.format(schema="public")
    result = verify_chain()
    assert (result.ok, result.first_bad_seq, result.columns) == (False, 3, "compared"), result
    assert result.problem == f"{verification._PROBLEMS['fields']}; and {COLUMNS_PROBLEM}"


def test_the_constraint_changed_while_verifying_fails_verification(
    chain: list[AuditEvent], superuser: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Dropped and added back, validated, during the walk: a column could have been changed meanwhile
    and put back, so the walk that compared none cannot vouch for it."""
    walk = verification._walk

    def walk_then_alter(*args: Any, **kwargs: Any) -> str:
        last = walk(*args, **kwargs)
        superuser.execute(f"ALTER TABLE audit_auditevent DROP CONSTRAINT {COLUMNS_CONSTRAINT}")
        for statement in COLUMNS.FORWARD[2:]:
            superuser.execute(statement)
        return last

    monkeypatch.setattr(verification, "_walk", walk_then_alter)
    result = verify_chain()
    assert (result.ok, result.first_bad_seq, result.problem, result.columns) == (
        False,
        None,
        COLUMNS_PROBLEM,
        "constraint",
    )
    monkeypatch.undo()
    assert verify_chain().ok


def test_a_changed_column_behind_a_dropped_constraint_is_named_and_so_is_the_guarantee(
    chain: list[AuditEvent],
) -> None:
    with bypassing_triggers() as cursor:
        cursor.execute("UPDATE audit_auditevent SET target_label = 'elsewhere' WHERE id = %s", [chain[5].pk])
    validated, definition, _ = catalog()
    assert (validated, definition) == (False, f"{verification.COLUMNS_CONSTRAINT_DEF} NOT VALID")
    result = verify_chain()
    assert (result.ok, result.first_bad_seq, result.columns) == (False, 6, "compared"), result
    assert result.problem == f"{verification._PROBLEMS['fields']}; and {COLUMNS_PROBLEM}"


def test_tampering_that_leaves_every_column_matching_puts_the_constraint_back(chain: list[AuditEvent]) -> None:
    with bypassing_triggers() as cursor:
        cursor.execute("DELETE FROM audit_pendingseal")
    assert catalog()[0] is True
    assert verify_chain().columns == "constraint"
