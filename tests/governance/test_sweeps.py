"""The expiry sweep: every due grant and delegation (and every link below an expired one) expired exactly
once with exactly one event, whether swept once, twice, by two sweepers at once, or by a worker killed
mid-batch and restarted; and the sweep task's follow-up is only sent once its transaction commits."""

from __future__ import annotations

import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import Any

import pytest
import redis
from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from audit.models import AuditEvent
from audit.services import Actor
from governance import services, tasks
from governance.models import Delegation, DelegationStatus, Grant, GrantStatus, StateVersion
from governance.services import sweeps
from tests.audit.support import REPO, subprocess_env
from tests.factories import make_agent, make_human, make_resource

SWEEPER = Actor.system("expiry sweep")


class Org:
    """Rows inserted in bulk (thousands through the services would take minutes), shaped as the
    services make them."""

    def __init__(self) -> None:
        self.human = make_human()
        self.resource = make_resource()
        self.agents = [make_agent(sponsor=self.human) for _ in range(3)]
        self.now = timezone.now()

    def grants(self, n: int, *, due: bool) -> list[int]:
        expires_at = self.now - timedelta(hours=1) if due else self.now + timedelta(days=1)
        rows = Grant.objects.bulk_create(
            Grant(
                holder_agent=self.agents[i % len(self.agents)],
                resource=self.resource,
                action="read",
                valid_from=self.now - timedelta(days=2),
                expires_at=expires_at,
                granted_by="tests",
            )
            for i in range(n)
        )
        return [g.pk for g in rows]

    def links(self, parents: list[Delegation | None], *, due: bool) -> list[Delegation]:
        expires_at = self.now - timedelta(hours=1) if due else self.now + timedelta(days=1)
        return Delegation.objects.bulk_create(
            Delegation(
                parent=parent,
                root_human=self.human,
                delegate=self.agents[i % len(self.agents)],
                purpose="sweep test",
                scopes=[self.resource.scope("read")],
                depth=0 if parent is None else parent.depth + 1,
                max_depth=2,
                expires_at=expires_at,
                created_at=self.now - timedelta(days=2),
                created_by="tests",
            )
            for i, parent in enumerate(parents)
        )


def expire_events(action: str) -> Counter[str]:
    return Counter(AuditEvent.objects.filter(action=action).values_list("target_id", flat=True))


def statuses(model: Any, ids: list[int]) -> Counter[str]:
    return Counter(model.objects.filter(pk__in=ids).values_list("status", flat=True))


@pytest.fixture
def backlog(db: None) -> dict[str, Any]:
    """3,000 due grants and 500 not due; 600 due roots, each with a child and a grandchild not due
    themselves (expired with their root, cascading), and 200 links in force under 100 roots in force."""
    org = Org()
    due_grants, later_grants = org.grants(3_000, due=True), org.grants(500, due=False)
    roots = org.links([None] * 600, due=True)
    children = org.links(list(roots), due=False)
    grandchildren = org.links(list(children), due=False)
    live_roots = org.links([None] * 100, due=False)
    live_children = org.links([*live_roots, *live_roots], due=False)
    return {
        "due_grants": due_grants,
        "later_grants": later_grants,
        "roots": [d.pk for d in roots],
        "children": {d.pk: d.parent_id for d in children},
        "grandchildren": {d.pk: d.parent_id for d in grandchildren},
        "live": [d.pk for d in (*live_roots, *live_children)],
    }


def test_it_expires_each_due_grant_and_link_once_with_one_event_each(backlog: dict[str, Any]) -> None:
    counts = services.expire_due(actor=SWEEPER, batch_size=250)

    due_grants, roots = backlog["due_grants"], backlog["roots"]
    children, grandchildren = backlog["children"], backlog["grandchildren"]
    assert counts == {"grants": 3_000, "delegations": 1_800}
    assert statuses(Grant, due_grants) == {GrantStatus.EXPIRED: 3_000}
    assert statuses(Grant, backlog["later_grants"]) == {GrantStatus.ACTIVE: 500}
    assert statuses(Delegation, [*roots, *children, *grandchildren]) == {DelegationStatus.EXPIRED: 1_800}
    assert statuses(Delegation, backlog["live"]) == {DelegationStatus.ACTIVE: 300}

    assert expire_events("grant.expire") == Counter(str(pk) for pk in due_grants)
    assert expire_events("delegation.expire") == Counter(str(pk) for pk in [*roots, *children, *grandchildren])
    # A link expired with its root names the root; the root itself names nothing.
    cascade = dict(
        AuditEvent.objects.filter(action="delegation.expire").values_list("target_id", "context__cascade_from")
    )
    assert {cascade[str(pk)] for pk in roots} == {None}
    assert all(cascade[str(pk)] == root for pk, root in children.items())
    assert all(cascade[str(pk)] == children[parent] for pk, parent in grandchildren.items())
    event = AuditEvent.objects.filter(action="grant.expire", target_id=str(due_grants[0])).get()
    assert event.target_type == "grant" and event.actor_label == "expiry sweep"
    expires_at = Grant.objects.get(pk=due_grants[0]).expires_at
    assert expires_at is not None and event.context["expires_at"] == expires_at.isoformat()


def test_a_second_sweep_changes_nothing_and_writes_nothing(backlog: dict[str, Any]) -> None:
    services.expire_due(actor=SWEEPER, batch_size=1_000)
    events, version = AuditEvent.objects.count(), StateVersion.objects.get().version

    assert services.expire_due(actor=SWEEPER, batch_size=1_000) == {"grants": 0, "delegations": 0}
    assert AuditEvent.objects.count() == events
    # Nothing was updated, not even zero rows: the runtime check keeps its cached state.
    assert StateVersion.objects.get().version == version
    assert not services.expiry_backlog(timezone.now())


def test_it_expires_links_left_active_under_an_expired_one(db: None) -> None:
    org = Org()
    (root,) = org.links([None], due=False)
    (child,) = org.links([root], due=False)
    (grandchild,) = org.links([child], due=False)
    # As an older sweep left it (it did not cascade), or a cascade that skipped a link another
    # transaction held.
    Delegation.objects.filter(pk=root.pk).update(status=DelegationStatus.EXPIRED)
    assert services.expiry_backlog(timezone.now())

    assert services.expire_due(actor=SWEEPER) == {"grants": 0, "delegations": 2}
    assert statuses(Delegation, [child.pk, grandchild.pk]) == {DelegationStatus.EXPIRED: 2}
    cascade = dict(
        AuditEvent.objects.filter(action="delegation.expire").values_list("target_id", "context__cascade_from")
    )
    assert cascade == {str(child.pk): root.pk, str(grandchild.pk): root.pk}


def test_a_sweep_out_of_time_stops_between_batches_and_the_next_one_finishes(backlog: dict[str, Any]) -> None:
    first = services.expire_due(actor=SWEEPER, batch_size=100, time_budget=0)
    # One batch of each kind (100 roots with their children and grandchildren), then out of time.
    assert first == {"grants": 100, "delegations": 300}
    assert services.expiry_backlog(timezone.now())
    services.expire_due(actor=SWEEPER, batch_size=700)
    assert expire_events("grant.expire") == Counter(str(pk) for pk in backlog["due_grants"])
    assert not services.expiry_backlog(timezone.now())


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_two_sweepers_racing_expire_each_row_once_with_one_event_each() -> None:
    org = Org()
    due_grants = org.grants(4_000, due=True)
    roots = org.links([None] * 400, due=True)
    children = org.links(list(roots), due=False)
    links = [d.pk for d in (*roots, *children)]
    start = threading.Barrier(2)
    results: list[dict[str, int]] = []
    errors: list[BaseException] = []

    def sweeper() -> None:
        # Each thread has its own database connection (Django's are per thread).
        try:
            start.wait()
            results.append(services.expire_due(actor=SWEEPER, batch_size=50))
        except BaseException as exc:  # reported by the test below
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=sweeper) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not errors, errors

    assert sum(r["grants"] for r in results) == 4_000
    assert sum(r["delegations"] for r in results) == 800
    # They really raced: both found work.
    assert all(r["grants"] > 0 for r in results), results
    assert expire_events("grant.expire") == Counter(str(pk) for pk in due_grants)
    assert expire_events("delegation.expire") == Counter(str(pk) for pk in links)
    assert statuses(Grant, due_grants) == {GrantStatus.EXPIRED: 4_000}
    assert statuses(Delegation, links) == {DelegationStatus.EXPIRED: 800}


# --- A real Celery worker on Redis and PostgreSQL -----------------------------------------------------


def broker() -> redis.Redis:
    return redis.Redis.from_url(settings.CELERY_BROKER_URL)


def queued() -> int:
    return int(broker().llen("celery"))


@pytest.fixture
def worker() -> Iterator[Callable[[], subprocess.Popen[str]]]:
    """Starts ``celery -A config worker --pool=solo`` on the test database; none outlives the test."""
    if not settings.CELERY_BROKER_URL.startswith("redis"):
        pytest.skip("needs REDIS_URL: the worker tests run on the real broker")
    started: list[subprocess.Popen[str]] = []

    def start() -> subprocess.Popen[str]:
        proc = subprocess.Popen(
            [
                *(sys.executable, "-m", "celery", "-A", "config", "worker", "--pool=solo", "--loglevel=INFO"),
                *("--without-gossip", "--without-mingle", "--without-heartbeat"),
            ],
            cwd=REPO,
            # The broker this test process sends to (tests/conftest.py gives each xdist worker its own).
            env=subprocess_env(CUSTOS_BROKER_URL=settings.CELERY_BROKER_URL),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        started.append(proc)
        return proc

    broker().flushdb()
    try:
        yield start
    finally:
        for proc in started:
            if proc.poll() is None:
                proc.kill()
            proc.wait()
        broker().flushdb()  # the killed worker's unacknowledged task, so no later worker runs it


def wait_until(condition: Callable[[], bool], timeout: float = 120, every: float = 0.005) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(every)


def writing_elsewhere() -> bool:
    """Is another connection to this database inside a writing transaction (a sweep's batch)?"""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT 1 FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid() "
            "AND backend_xid IS NOT NULL"
        )
        return cursor.fetchone() is not None


def expired_grants() -> int:
    return Grant.objects.filter(status=GrantStatus.EXPIRED).count()


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_a_worker_killed_mid_sweep_leaves_every_batch_whole_and_the_next_sweep_finishes(
    worker: Callable[[], subprocess.Popen[str]],
) -> None:
    total = 24_000
    due = Org().grants(total, due=True)
    first = worker()
    tasks.expire_due.delay()
    # Killed once at least one batch has committed and while the next is being written.
    wait_until(lambda: first.poll() is not None or (expired_grants() > 0 and writing_elsewhere()))
    assert first.poll() is None, f"the worker exited: {first.stderr.read() if first.stderr else ''}"
    first.send_signal(signal.SIGKILL)
    first.wait()
    wait_until(lambda: not writing_elsewhere(), timeout=30)  # PostgreSQL rolled the batch back

    done = expired_grants()
    assert 0 < done < total, "the kill did not land mid-sweep"
    # Every committed batch is whole: each row it expired has its event, and no event is without its row.
    assert expire_events("grant.expire") == Counter(
        str(pk) for pk in Grant.objects.filter(status=GrantStatus.EXPIRED).values_list("id", flat=True)
    )

    second = worker()
    tasks.expire_due.delay()  # the beat's next round
    wait_until(lambda: second.poll() is not None or expired_grants() == total, every=0.05)
    wait_until(lambda: second.poll() is not None or (queued() == 0 and not writing_elsewhere()), every=0.05)
    assert second.poll() is None, f"the worker exited: {second.stderr.read() if second.stderr else ''}"
    assert expire_events("grant.expire") == Counter(str(pk) for pk in due)
    assert not Grant.objects.filter(status=GrantStatus.ACTIVE, expires_at__lte=timezone.now()).exists()


@pytest.mark.django_db(transaction=True)
def test_a_sweep_enqueued_in_a_rolled_back_transaction_is_never_sent(worker: Any) -> None:
    class RolledBack(Exception):
        pass

    with pytest.raises(RolledBack), transaction.atomic():
        tasks.expire_due.delay_on_commit()
        raise RolledBack
    assert queued() == 0

    with transaction.atomic():
        tasks.expire_due.delay_on_commit()
        assert queued() == 0  # not before the commit either
    assert queued() == 1


@pytest.mark.django_db(transaction=True)
def test_a_sweep_out_of_time_hands_on_to_a_fresh_task_after_it_commits(
    worker: Any, monkeypatch: pytest.MonkeyPatch, settings: Any
) -> None:
    settings.CUSTOS_SWEEPERS = 1  # one batch per task, below
    due = Org().grants(300, due=True)
    monkeypatch.setattr(tasks, "SWEEP_BUDGET_SECONDS", 0)  # one batch per task
    monkeypatch.setattr(sweeps, "BATCH_SIZE", 100)

    assert tasks.expire_due()["grants"] == 100
    assert queued() == 1  # the follow-up
    assert tasks.expire_due()["grants"] == 100
    assert queued() == 2
    assert tasks.expire_due()["grants"] == 100
    assert queued() == 2  # nothing left: no follow-up
    assert expire_events("grant.expire") == Counter(str(pk) for pk in due)


@pytest.mark.django_db(transaction=True)
def test_one_job_sweeps_with_two_threads_each_row_once(monkeypatch: pytest.MonkeyPatch) -> None:
    due = Org().grants(3_000, due=True)
    worked: Counter[str] = Counter()
    sweep = sweeps._sweep

    def counted(**kwargs: Any) -> dict[str, int]:
        result = sweep(**kwargs)
        worked[threading.current_thread().name] += result["grants"]
        return result

    monkeypatch.setattr(sweeps, "_sweep", counted)
    counts = services.expire_due(actor=SWEEPER, batch_size=100, sweepers=2)
    assert counts == {"grants": 3_000, "delegations": 0}
    assert set(worked) == {"sweeper-0", "sweeper-1"} and all(worked.values()), worked
    assert expire_events("grant.expire") == Counter(str(pk) for pk in due)
