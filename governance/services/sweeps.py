"""Tidying what time has ended. Checks already refuse expired access from its timestamps.

The sweep is set-based: each batch is one transaction that claims its rows with one ``UPDATE … RETURNING``
and records them with one ``audit_append_many``, so a batch is either wholly applied and recorded or not
at all (a worker killed mid-batch leaves nothing half-done; the next sweep takes the rows again). On
PostgreSQL the claim selects its rows ``FOR UPDATE SKIP LOCKED``: two sweepers never wait for each other
and never take the same row. Elsewhere (SQLite, ``make run``, where writers are serialised anyway) each
row is claimed by a conditional update.
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

from audit.services import Actor, PendingEvent, Target, audit_append_many
from governance.models import Delegation, DelegationStatus, Grant, GrantStatus

# (id, expires_at, cascade_from): what a claim returns for each row it expired.
Claimed = tuple[int, datetime, int | None]

BATCH_SIZE = 5_000


def expire_due(
    *,
    actor: Actor,
    batch_size: int | None = None,
    time_budget: float | None = None,
    sweepers: int | None = None,
) -> dict[str, int]:
    """Mark grants and delegations whose time is up as expired, one ``<model>.expire`` event each, in
    batches of ``batch_size`` (default ``BATCH_SIZE``), until nothing is due or ``time_budget`` seconds
    are spent (checked between batches: each kind gets at least one, so every sweep makes progress).
    A link's descendants are expired with it, whatever their own expiry. Only tidies state: checks
    already refuse them from their timestamps.

    On PostgreSQL, outside a transaction, ``sweepers`` (default ``CUSTOS_SWEEPERS``) sweep at once, each in
    a thread with its own connection: SKIP LOCKED keeps them on different rows, and one's Python (building
    the events) runs while another waits on the database, which nearly doubles the rate on two cores.

    Agent keys have no status to tidy (they are expired by their timestamp alone), so no sweep for them.
    """
    sweepers = settings.CUSTOS_SWEEPERS if sweepers is None else sweepers
    if sweepers > 1 and connection.vendor == "postgresql" and not connection.in_atomic_block:
        return _in_threads(sweepers, actor=actor, batch_size=batch_size, time_budget=time_budget)
    return _sweep(actor=actor, batch_size=batch_size, time_budget=time_budget)


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


def _sweep(*, actor: Actor, batch_size: int | None, time_budget: float | None) -> dict[str, int]:
    now = timezone.now()
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
                claimed, more, after = _claim(Grant, Grant.objects.expiring_before(now), after, batch_size)
                _record(actor, "grant", claimed)
            counts["grants"] += len(claimed)
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
                claimed, more, after = _claim(
                    Delegation, candidates, after, batch_size, cascade_from_parent=below_expired
                )
                claimed += _cascade(claimed)
                _record(actor, "delegation", claimed)
            counts["delegations"] += len(claimed)
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


def _claim(
    model: type[Model],
    candidates: QuerySet[Any],
    after: int,
    limit: int,
    *,
    cascade_from_parent: bool = False,
) -> tuple[list[Claimed], bool, int]:
    """Expire up to ``limit`` of ``candidates`` with ids above ``after`` (in id order: each batch starts
    where the last one ended instead of rescanning the rows already expired). Returns the rows claimed,
    whether more candidates may remain, and the id the next batch starts after."""
    page = candidates.filter(id__gt=after).order_by("id")[:limit]
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
    # last one did not, and claim far more than the batch.
    select, params = rows.values("id").select_for_update(skip_locked=True, of=("self",)).query.sql_with_params()
    table = connection.ops.quote_name(model._meta.db_table)
    active, expired = _statuses(model)
    with connection.cursor() as cursor:
        cursor.execute(
            f"WITH claim AS MATERIALIZED ({select}) "  # noqa: S608 - names from the model
            f"UPDATE {table} AS t SET status = %s FROM claim WHERE t.id = claim.id AND t.status = %s "
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
