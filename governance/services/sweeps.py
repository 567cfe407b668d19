"""Tidying what time has ended. Checks already refuse expired access from its timestamps.

The sweep is set-based: each batch is one transaction that claims its rows and records their events, so
a batch is either wholly applied and recorded or not at all (a worker killed mid-batch leaves nothing
half-done; the next sweep takes the rows again).

On PostgreSQL a batch is one statement (one per level of a delegation cascade): it claims its rows
``FOR UPDATE SKIP LOCKED`` (two sweepers never wait for each other and never take the same row) and, in
data-modifying CTEs, inserts their events into the log's intake, each event's canonical content,
digest and nonce computed by the database (``_PG_CLAIM_AND_RECORD``). The events all have one fixed shape,
so ``audit.hashing.SqlCanonical`` encodes the document once per batch in Python, by the same code as every
other event, and the database only fills in the id, the expiry and the nonce (ASCII the encoder would
write as it is). Elsewhere (SQLite, ``make run``, where writers are serialised anyway), and on PostgreSQL
with ``database_events=False`` (the reference, and what the events were built by before), each row is
claimed by a conditional update (``UPDATE … RETURNING`` on PostgreSQL) and the events are built in Python
by one ``audit_append_many``.
"""

from __future__ import annotations

import threading
import time
from datetime import datetime
from typing import Any

from django.conf import settings
from django.db import connection, transaction
from django.db.models import Model, QuerySet
from django.utils import timezone

from audit.hashing import SqlCanonical, content_document
from audit.services import Actor, PendingEvent, Target, audit_append_many
from governance.models import Delegation, DelegationStatus, Grant, GrantStatus

# (id, expires_at, cascade_from): what a claim returns for each row it expired.
Claimed = tuple[int, datetime, int | None]

BATCH_SIZE = 5_000

# The largest integer RFC 8785 writes as a number (audit.services writes larger ones as text).
_MAX_EXACT_INT = 2**53 - 1


def expire_due(
    *,
    actor: Actor,
    batch_size: int | None = None,
    time_budget: float | None = None,
    sweepers: int | None = None,
    database_events: bool = True,
) -> dict[str, int]:
    """Mark grants and delegations whose time is up as expired, one ``<model>.expire`` event each, in
    batches of ``batch_size`` (default ``BATCH_SIZE``), until nothing is due or ``time_budget`` seconds
    are spent (checked between batches: each kind gets at least one, so every sweep makes progress).
    A link's descendants are expired with it, whatever their own expiry. Only tidies state: checks
    already refuse them from their timestamps.

    On PostgreSQL, outside a transaction, ``sweepers`` (default ``CUSTOS_SWEEPERS``) sweep at once, each in
    a thread with its own connection: SKIP LOCKED keeps them on different rows, and the database works on
    two batches at once (on two cores, 0.35x a raw UPDATE's rate with one sweeper, 0.4-0.5x with two).

    On PostgreSQL the database builds the events (one statement a batch) unless ``database_events`` is
    false: then Python does, as on SQLite (the reference; the benchmark compares the two).

    Agent keys have no status to tidy (they are expired by their timestamp alone), so no sweep for them.
    """
    sweepers = settings.CUSTOS_SWEEPERS if sweepers is None else sweepers
    kwargs: dict[str, Any] = {
        "actor": actor,
        "batch_size": batch_size,
        "time_budget": time_budget,
        "database_events": database_events,
    }
    if sweepers > 1 and connection.vendor == "postgresql" and not connection.in_atomic_block:
        return _in_threads(sweepers, **kwargs)
    return _sweep(**kwargs)


def _in_threads(n: int, **kwargs: Any) -> dict[str, int]:
    results: list[dict[str, int]] = []
    errors: list[BaseException] = []

    def run() -> None:
        try:
            results.append(_sweep(**kwargs))
        except BaseException as error:  # re-raised below, in the caller's thread
            errors.append(error)
        finally:
            connection.close()  # this thread's own connection

    threads = [threading.Thread(target=run, name=f"sweeper-{i}") for i in range(n)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors:
        raise errors[0]
    return {key: sum(r[key] for r in results) for key in ("grants", "delegations")}


def _sweep(
    *, actor: Actor, batch_size: int | None, time_budget: float | None, database_events: bool = True
) -> dict[str, int]:
    now = timezone.now()
    in_sql = database_events and connection.vendor == "postgresql"
    batch_size = batch_size or BATCH_SIZE
    deadline = None if time_budget is None else time.monotonic() + time_budget
    counts = {"grants": 0, "delegations": 0}

    def in_time() -> bool:
        return deadline is None or time.monotonic() < deadline

    # A sweep with nothing to do writes nothing: every UPDATE of these tables, even of no rows, moves the
    # runtime check's state version (governance 0005), which would empty its cache once a minute.
    if Grant.objects.expiring_before(now).exists():
        after, more = 0, True
        while more:
            with transaction.atomic():
                _commit_without_waiting_for_the_disk()
                page = _page(Grant.objects.expiring_before(now), after, batch_size)
                if in_sql:
                    recorded = _claim_and_record(actor, "grant", page, timezone.now())
                    claimed, more, after = len(recorded), len(recorded) == batch_size, _last(recorded, after)
                else:
                    rows, more, after = _claim(Grant, page, after, batch_size)
                    _record(actor, "grant", rows)
                    claimed = len(rows)
            counts["grants"] += claimed
            more = more and in_time()

    due = Delegation.objects.expiring_before(now)
    # Active links under an expired one: left by a cascade that skipped a link another transaction held,
    # or by sweeps from before cascading. The next sweep expires them (and their own descendants).
    orphans = Delegation.objects.filter(status=DelegationStatus.ACTIVE, parent__status=DelegationStatus.EXPIRED)
    for candidates, below_expired in ((due, False), (orphans, True)):
        if not candidates.exists():
            continue
        after, more = 0, True
        while more:
            with transaction.atomic():
                _commit_without_waiting_for_the_disk()
                page = _page(candidates, after, batch_size)
                if in_sql:
                    occurred_at = timezone.now()
                    recorded = _claim_and_record(actor, "delegation", page, occurred_at, from_parent=below_expired)
                    more, after = len(recorded) == batch_size, _last(recorded, after)
                    claimed = len(recorded) + _cascade_and_record(actor, recorded, occurred_at)
                else:
                    rows, more, after = _claim(Delegation, page, after, batch_size, cascade_from_parent=below_expired)
                    rows += _cascade(rows)
                    _record(actor, "delegation", rows)
                    claimed = len(rows)
            counts["delegations"] += claimed
            more = more and in_time()
    return counts


def expiry_backlog(before: datetime) -> bool:
    """Whether anything that was due at ``before`` is still active (a sweep ran out of time, or a
    concurrent one still holds it)."""
    return (
        Grant.objects.expiring_before(before).exists()
        or Delegation.objects.expiring_before(before).exists()
        or Delegation.objects.filter(status=DelegationStatus.ACTIVE, parent__status=DelegationStatus.EXPIRED).exists()
    )


def _commit_without_waiting_for_the_disk() -> None:
    """Let this batch's commit return before its WAL reaches the disk (PostgreSQL only, this transaction
    only). Safe here: claiming and recording commit together, so a crash that loses the batch loses both
    (the rows are active again, without events, and the next sweep takes them); and any later
    transaction that acts on the batch (the sealer sealing its events, a change to the same rows) flushes
    the WAL up to its own commit, this batch's included, before it is durable itself."""
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SET LOCAL synchronous_commit TO OFF")


def _page(candidates: QuerySet[Any], after: int, limit: int) -> QuerySet[Any]:
    """Up to ``limit`` of ``candidates`` with ids above ``after``, in id order: each batch starts where the
    last one ended instead of rescanning the rows already expired."""
    return candidates.filter(id__gt=after).order_by("id")[:limit]


def _last(recorded: list[tuple[int, int | None]], after: int) -> int:
    return max(pk for pk, _ in recorded) if recorded else after


def _claim(
    model: type[Model],
    page: QuerySet[Any],
    after: int,
    limit: int,
    *,
    cascade_from_parent: bool = False,
) -> tuple[list[Claimed], bool, int]:
    """Expire the rows of ``page`` (a ``_page``). Returns the rows claimed, whether more candidates may
    remain, and the id the next batch starts after."""
    if connection.vendor != "postgresql":
        rows = list(page.values_list("id", "expires_at", "parent_id" if cascade_from_parent else "id"))
        claimed = [
            (pk, expires_at, parent if cascade_from_parent else None)
            for pk, expires_at, parent in rows
            if _claim_one(model, pk)
        ]
        return claimed, len(rows) == limit, rows[-1][0] if rows else after
    rows = _claim_postgresql(model, page, "t.parent_id" if cascade_from_parent else "NULL")
    rows.sort()
    return rows, len(rows) == limit, rows[-1][0] if rows else after


def _claim_one(model: type[Model], pk: int) -> bool:
    # The conditional update claims the row: of two sweepers only one sees it change.
    active, expired = _statuses(model)
    return bool(model._default_manager.filter(pk=pk, status=active).update(status=expired))


def _claim_postgresql(model: type[Model], rows: QuerySet[Any], cascade_column: str) -> list[Claimed]:
    # Rows another transaction holds (a concurrent sweeper, a revocation) are skipped, not waited for:
    # a sweeper never waits on a lock, so it can deadlock with nobody. What it skips the holder expires,
    # or the next sweep does. The candidates are a MATERIALIZED CTE, read once: as an ``IN (subquery)``
    # the planner may rescan a LIMIT … SKIP LOCKED subquery per outer row, each rescan finding rows the
    # last one did not, and claim far more than the batch. The rows are then updated by id from an array
    # (an index scan): joined to the CTE, the planner hashed the whole table for every batch (a
    # sequential scan of every row, a batch's cost growing with the table).
    select, params = rows.values("id").select_for_update(skip_locked=True, of=("self",)).query.sql_with_params()
    table = connection.ops.quote_name(model._meta.db_table)
    active, expired = _statuses(model)
    with connection.cursor() as cursor:
        cursor.execute(
            f"WITH claim AS MATERIALIZED ({select}) "  # noqa: S608 - names from the model
            f"UPDATE {table} AS t SET status = %s WHERE t.id = ANY(ARRAY(SELECT id FROM claim)) AND t.status = %s "
            f"RETURNING t.id, t.expires_at, {cascade_column}",
            [*params, expired, active],
        )
        return cursor.fetchall()


def _cascade(claimed: list[Claimed]) -> list[Claimed]:
    """Expire the active links below the ``claimed`` ones, level by level (each read once the level above
    is expired, as ``delegation_revoke`` does), whatever their own expiry: a link never outlives its
    parent. Each names in ``cascade_from`` the link whose expiry started the cascade."""
    origin = {pk: cascade_from or pk for pk, _, cascade_from in claimed}
    below: list[Claimed] = []
    level = sorted(origin)
    while level:
        children = Delegation.objects.filter(parent_id__in=level, status=DelegationStatus.ACTIVE)
        if connection.vendor == "postgresql":
            rows = _claim_postgresql(Delegation, children, "t.parent_id")
        else:
            rows = [
                (pk, expires_at, parent)
                for pk, expires_at, parent in children.order_by("id").values_list("id", "expires_at", "parent_id")
                if _claim_one(Delegation, pk)
            ]
        rows = [(pk, expires_at, origin[parent]) for pk, expires_at, parent in sorted(rows) if parent is not None]
        origin.update((pk, cascade_from) for pk, _, cascade_from in rows if cascade_from is not None)
        below.extend(rows)
        level = [pk for pk, _, _ in rows]
    return below


# One batch on PostgreSQL, in one statement: claim the rows (as ``_claim_postgresql``), then, from what the
# claim returns, the events, into the log's intake (as ``audit_append_many`` writes them). Every part
# commits or rolls back with the claim. The nonce's subquery (``r``) is evaluated once per row, not
# inlined (it calls a volatile function), so the nonce column and the canonical text share one value;
# ``e`` is materialised so the canonical text is built once per row.
_PG_CLAIM_AND_RECORD = """
WITH claim AS MATERIALIZED ({select}),
expired AS (
    UPDATE {table} AS t SET status = %s WHERE t.id = ANY(ARRAY(SELECT id FROM claim)) AND t.status = %s
    RETURNING t.id, t.expires_at, {via} AS via
),
e AS MATERIALIZED (
    SELECT r.*, {canonical} AS canonical FROM (
        SELECT x.id, {cascade_from} AS cascade_from, replace(gen_random_uuid()::text, '-', '') AS nonce,
               -- datetime.isoformat() of the UTC expiry, as the Python path writes it in the context:
               -- microseconds only when there are some.
               to_char(x.expires_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS')
               || CASE WHEN date_trunc('second', x.expires_at) = x.expires_at THEN ''
                       ELSE to_char(x.expires_at AT TIME ZONE 'UTC', '.US') END
               || '+00:00' AS expires_text
          FROM expired AS x {join}
    ) AS r
),
events AS (
    INSERT INTO audit_intake (digest, canonical, nonce, occurred_at, actor_kind, actor_id, actor_label,
                              on_behalf_of, action, target_type, target_id, target_label, context)
    SELECT encode(sha256(convert_to(canonical, 'UTF8')), 'hex'), canonical, nonce, %s::timestamptz, %s, %s, %s,
           '[]'::jsonb, %s, %s, id::text, '', {context}
      FROM e ORDER BY e.id
)
SELECT id, cascade_from FROM e
"""
# A cascade level: each row names the link its cascade started from, looked up by its parent.
_PG_ORIGINS = "LEFT JOIN unnest(%s::bigint[], %s::bigint[]) AS o(parent, origin) ON o.parent = x.via"


def _claim_and_record(
    actor: Actor,
    kind: str,
    rows: QuerySet[Any],
    occurred_at: datetime,
    *,
    from_parent: bool = False,
    origins: dict[int, int] | None = None,
) -> list[tuple[int, int | None]]:
    """Expire ``rows`` and record one ``<kind>.expire`` event each, in one statement (PostgreSQL).
    Returns ``(id, cascade_from)`` of each row claimed. A delegation names in ``cascade_from`` nothing
    (a due link), its parent (``from_parent``: a link left under an expired one) or, in a cascade, the
    link its parent's expiry started from (``origins``: parent id → that link)."""
    model = Grant if kind == "grant" else Delegation
    select, claim_params = rows.values("id").select_for_update(skip_locked=True, of=("self",)).query.sql_with_params()
    active, expired = _statuses(model)
    via = "t.parent_id" if from_parent or origins is not None else "NULL::bigint"
    join, join_params = ("", []) if origins is None else (_PG_ORIGINS, [list(origins), list(origins.values())])
    cascade_from = "x.via" if origins is None else "coalesce(o.origin, x.via)"

    # The document is this module's and audit.hashing's (key order, escaping); the database fills in the
    # per-row values, all ASCII that JSON writes as it is: digits, a timestamp, hexadecimal.
    sql = SqlCanonical()
    expires = sql.value("""'"' || r.expires_text || '"'""")
    context: dict[str, Any] = {"expires_at": expires}
    context_sql = "jsonb_build_object('expires_at', expires_text)"
    if kind == "delegation":
        # An id beyond 2^53 - 1 is written as text, as audit.services does with any such integer.
        exact = f"abs(r.cascade_from) <= {_MAX_EXACT_INT}"
        context = {
            "cascade_from": sql.value(
                f"""CASE WHEN r.cascade_from IS NULL THEN 'null' WHEN {exact} THEN r.cascade_from::text
                         ELSE '"' || r.cascade_from || '"' END"""
            ),
            **context,
        }
        context_sql = (
            f"jsonb_build_object('cascade_from', CASE WHEN {exact.replace('r.', '')} THEN to_jsonb(cascade_from) "
            "ELSE to_jsonb(cascade_from::text) END, 'expires_at', expires_text)"
        )
    label = actor.label[:200]
    document = content_document(
        occurred_at=occurred_at,
        actor_kind=actor.kind,
        actor_id=actor.id,
        actor_label=label,
        on_behalf_of=[],
        action=f"{kind}.expire",
        target_type=kind,
        target_id=sql.value("""'"' || r.id || '"'"""),
        target_label="",
        context=context,
        nonce=sql.value("""'"' || r.nonce || '"'"""),
    )
    canonical, canonical_params = sql.sql(document)
    statement = _PG_CLAIM_AND_RECORD.format(
        select=select,
        table=connection.ops.quote_name(model._meta.db_table),
        via=via,
        canonical=canonical,
        cascade_from=cascade_from,
        join=join,
        context=context_sql,
    )
    params = [
        *claim_params,
        expired,
        active,
        *canonical_params,
        *join_params,
        *(occurred_at, actor.kind, actor.id, label, f"{kind}.expire", kind),
    ]
    with connection.cursor() as cursor:
        cursor.execute(statement, params)
        return cursor.fetchall()


def _cascade_and_record(actor: Actor, claimed: list[tuple[int, int | None]], occurred_at: datetime) -> int:
    """``_cascade`` with the events built by the database: the active links below the ``claimed`` ones
    expired level by level, one statement each. Returns how many."""
    count = 0
    level = claimed
    while level:
        # Each link of this level, to the link its cascade started from: itself for a due link.
        origins = {pk: cascade_from or pk for pk, cascade_from in level}
        children = Delegation.objects.filter(parent_id__in=sorted(origins), status=DelegationStatus.ACTIVE)
        level = _claim_and_record(actor, "delegation", children, occurred_at, origins=origins)
        count += len(level)
    return count


def _record(actor: Actor, kind: str, claimed: list[Claimed]) -> None:
    events = []
    for pk, expires_at, cascade_from in claimed:
        context: dict[str, Any] = {"expires_at": expires_at.isoformat()}
        if kind == "delegation":
            context["cascade_from"] = cascade_from
        events.append(
            PendingEvent(actor=actor, action=f"{kind}.expire", target=Target(type=kind, id=str(pk)), context=context)
        )
    audit_append_many(events, returning=False)


def _statuses(model: type[Model]) -> tuple[str, str]:
    if model is Grant:
        return GrantStatus.ACTIVE, GrantStatus.EXPIRED
    return DelegationStatus.ACTIVE, DelegationStatus.EXPIRED
