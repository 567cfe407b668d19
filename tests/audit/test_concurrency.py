"""Concurrent writers and sealers in separate processes, each with its own database connection, as
production's web, worker and sealer processes are: every event is sealed exactly once into one linear
chain, a sealer killed mid-batch or started twice changes nothing, and a revocation racing new child
delegations leaves no active link under a revoked one."""

from __future__ import annotations

import itertools
import os
import signal
import subprocess
import sys
import time
from datetime import timedelta
from typing import Any

import pytest
from django.db import connection

from audit import sealer
from audit.models import AuditEvent, Seal
from audit.services import Actor, PendingEvent, audit_append_many
from audit.verification import verify_chain
from governance.models import Delegation, DelegationStatus
from tests.audit.support import REPO, Writers, run_writers, subprocess_env
from tests.factories import make_agent, make_delegation, make_grant, make_human, make_resource

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]


def assert_one_linear_chain(expected_events: int) -> list[Seal]:
    seals = list(Seal.objects.select_related("event").order_by("seq"))
    assert [s.seq for s in seals] == list(range(1, len(seals) + 1)), "gaps or duplicates in seq"
    for before, after in itertools.pairwise(seals):
        assert after.prev_hash == before.hash, f"fork at #{after.seq}"
    assert len(seals) == expected_events == AuditEvent.objects.count(), "an event sealed twice or not at all"
    assert not sealer.anything_queued()
    result = verify_chain()
    assert result.ok, result
    assert result.checked == expected_events
    return seals


def sealer_process() -> subprocess.Popen[str]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.audit.writers", "seal", "--idle-ms", "10"],
        cwd=REPO,
        env=subprocess_env(),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
    assert proc.stdin is not None
    proc.stdin.write("go\n")
    proc.stdin.flush()
    return proc


def stop(proc: subprocess.Popen[str]) -> None:
    if proc.poll() is None:
        assert proc.stdin is not None
        proc.stdin.close()  # the sealer finishes its batch and exits
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def wait_until(condition: Any, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def test_appends_from_several_processes_are_sealed_exactly_once_in_visibility_order() -> None:
    writers, per_writer = 4, 40
    running = sealer_process()
    try:
        summaries = run_writers(
            *(
                ["append", "--events", str(per_writer), "--label", f"w{n}"]
                # Half the writers hold every fifth transaction open for a moment after appending.
                + (["--hold-every", "5", "--hold-ms", "20"] if n % 2 else [])
                for n in range(writers)
            )
        )
        wait_until(lambda: not sealer.anything_queued())
    finally:
        stop(running)

    seals = assert_one_linear_chain(writers * per_writer)
    position = {seal.event.digest: seal.seq for seal in seals}
    for summary in summaries:
        # Each writer committed its events one after another: they were sealed in that order.
        mine = [position[digest] for digest in summary["digests"]]
        assert mine == sorted(mine)
        assert [seal.event.context["i"] for seal in seals if seal.event.context["writer"] == summary["label"]] == list(
            range(per_writer)
        )
    # The writers really did interleave (otherwise this test proves nothing about concurrency).
    spans = sorted((min(position[d] for d in s["digests"]), max(position[d] for d in s["digests"])) for s in summaries)
    assert any(later[0] < earlier[1] for earlier, later in itertools.pairwise(spans)), spans


def test_verify_while_processes_append_and_seal_never_reports_a_false_break() -> None:
    running = sealer_process()
    try:
        with Writers(*(["append", "--events", "150", "--label", f"w{n}"] for n in range(2))) as writers:
            writers.go()
            verifications = 0
            while writers.running():
                result = verify_chain()
                assert result.ok, result
                verifications += 1
            writers.collect()
        wait_until(lambda: not sealer.anything_queued())
    finally:
        stop(running)
    assert verifications >= 3
    assert_one_linear_chain(300)


def _backend_busy(pid: int) -> bool:
    """Is the sealer process ``pid`` inside a sealing transaction right now?"""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT 1 FROM pg_stat_activity WHERE state IN ('active', 'idle in transaction') "
            "AND backend_xid IS NOT NULL AND application_name = %s",
            [f"custos-sealer-{pid}"],
        )
        return cursor.fetchone() is not None


def _backend_alive(pid: int) -> bool:
    """Has the sealer process ``pid`` still a backend (killed clients' backends linger briefly)?"""
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1 FROM pg_stat_activity WHERE application_name = %s", [f"custos-sealer-{pid}"])
        return cursor.fetchone() is not None


def test_a_sealer_killed_mid_batch_leaves_no_gap_duplicate_or_fork() -> None:
    total = 20_000
    for start in range(0, total, 5_000):
        audit_append_many(
            [
                PendingEvent(actor=Actor.system(), action="backlog", context={"i": i})
                for i in range(start, start + 5_000)
            ]
        )
    killed_mid_batch = 0
    for _ in range(3):
        running = sealer_process()
        wait_until(lambda pid=running.pid: _backend_busy(pid) or not sealer.anything_queued())
        if sealer.anything_queued():
            os.kill(running.pid, signal.SIGKILL)
            killed_mid_batch += 1
        running.wait()
        # The killed client's backend lives on until it notices the closed socket, holding the sealer's
        # lock (and its batch's transaction) meanwhile: the next sealer would rightly stand by.
        wait_until(lambda pid=running.pid: not _backend_alive(pid))
        partial = verify_chain()  # what was committed before the kill is whole
        assert partial.ok, partial
    assert killed_mid_batch >= 1
    sealer.seal_pending()
    assert_one_linear_chain(total)


def test_a_second_sealer_stands_by_and_seals_nothing() -> None:
    first = sealer_process()
    wait_until(lambda: _holds_sealer_lock(first.pid))
    second = sealer_process()
    try:
        time.sleep(0.5)
        assert _holds_sealer_lock(first.pid) and not _holds_sealer_lock(second.pid)
        audit_append_many([PendingEvent(actor=Actor.system(), action="while two run") for _ in range(50)])
        wait_until(lambda: not sealer.anything_queued())
        # The standby takes over once the first is gone.
        stop(first)
        wait_until(lambda: _holds_sealer_lock(second.pid), timeout=30)
        audit_append_many([PendingEvent(actor=Actor.system(), action="after the failover") for _ in range(50)])
        wait_until(lambda: not sealer.anything_queued())
    finally:
        stop(first)
        stop(second)
    assert_one_linear_chain(100)


def _holds_sealer_lock(pid: int) -> bool:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT 1 FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid WHERE l.locktype = 'advisory' "
            "AND l.granted AND a.application_name = %s",
            [f"custos-sealer-{pid}"],
        )
        return cursor.fetchone() is not None


@pytest.fixture
def chain_under_fire() -> dict[str, Any]:
    human = make_human()
    resource = make_resource()
    make_grant(human, resource, "read")
    scope = [resource.scope("read")]
    top = make_agent(sponsor=human)
    subs = [make_agent(parent=top) for _ in range(31)]
    subsubs = [make_agent(parent=subs[0]) for _ in range(15)]
    root = make_delegation(top, scope, root_human=human, max_depth=2, expires_in=timedelta(days=2))
    child = make_delegation(subs[0], scope, parent=root, max_depth=1, expires_in=timedelta(days=1))
    return {"root": root, "child": child, "subs": subs[1:], "subsubs": subsubs}


def test_a_revocation_racing_new_children_leaves_no_active_link_under_a_revoked_one(
    chain_under_fire: dict[str, Any],
) -> None:
    root, child = chain_under_fire["root"], chain_under_fire["child"]
    subs, subsubs = chain_under_fire["subs"], chain_under_fire["subsubs"]

    def ids(agents: list[Any]) -> str:
        return ",".join(str(a.pk) for a in agents)

    creators = [
        ["delegate", "--parent", str(root.pk), "--agents", ids(subs[:15]), "--hold-ms", "15"],
        ["delegate", "--parent", str(root.pk), "--agents", ids(subs[15:]), "--hold-ms", "15"],
        # Grandchildren under an existing child: the revocation must reach them too.
        ["delegate", "--parent", str(child.pk), "--agents", ids(subsubs), "--hold-ms", "15"],
    ]
    *created_by, revoker = run_writers(*creators, ["revoke", "--delegation", str(root.pk), "--after-ms", "120"])

    created = [pk for summary in created_by for pk in summary["created"]]
    refused = [code for summary in created_by for code in summary["refused"]]
    # The race really happened: some children were made before the revocation, some refused after.
    assert created, "no child was created before the revocation"
    assert refused, "no child was refused after the revocation"
    assert set(refused) <= {"delegation_revoked", "chain_broken"}, refused

    links = {link.pk: link for link in Delegation.objects.all()}
    for link in links.values():
        if link.status != DelegationStatus.ACTIVE:
            continue
        ancestor = links.get(link.parent_id) if link.parent_id else None
        while ancestor is not None:
            assert ancestor.status != DelegationStatus.REVOKED, f"active link {link.pk} under revoked {ancestor.pk}"
            ancestor = links.get(ancestor.parent_id) if ancestor.parent_id else None
    assert set(revoker["revoked"]) == {pk for pk, link in links.items() if link.status == DelegationStatus.REVOKED}
    assert links[root.pk].status == DelegationStatus.REVOKED
    sealer.seal_pending()
    assert verify_chain().ok
