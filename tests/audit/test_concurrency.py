"""Concurrent writers in separate processes, each with its own database connection, as production's
web and worker processes are: the audit chain stays one line, and a revocation racing new child
delegations leaves no active link under a revoked one."""

from __future__ import annotations

import itertools
from datetime import timedelta
from typing import Any

import pytest

from audit.models import AuditEvent
from audit.verify import verify_chain
from governance.models import Delegation, DelegationStatus
from tests.audit.support import Writers, run_writers
from tests.factories import make_agent, make_delegation, make_grant, make_human, make_resource

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]


def assert_one_linear_chain(events: list[AuditEvent]) -> None:
    assert [e.seq for e in events] == list(range(1, len(events) + 1)), "gaps or duplicates in seq"
    for before, after in itertools.pairwise(events):
        assert after.prev_hash == before.hash, f"fork at #{after.seq}"
    result = verify_chain()
    assert result.ok, result
    assert result.checked == len(events)


def test_appends_from_several_processes_form_one_linear_chain() -> None:
    writers, per_writer = 4, 25
    summaries = run_writers(
        *(
            ["append", "--events", str(per_writer), "--label", f"w{n}"]
            # Half the writers hold every fifth transaction open for a moment after appending.
            + (["--hold-every", "5", "--hold-ms", "20"] if n % 2 else [])
            for n in range(writers)
        )
    )

    events = list(AuditEvent.objects.order_by("seq"))
    assert len(events) == writers * per_writer
    assert_one_linear_chain(events)
    # Each writer saw its own appends in order, and together they hold every position exactly once.
    reported = [seq for summary in summaries for seq in summary["seqs"]]
    assert sorted(reported) == list(range(1, writers * per_writer + 1))
    for summary in summaries:
        assert summary["seqs"] == sorted(summary["seqs"])
        mine = [e.context["i"] for e in events if e.context["writer"] == summary["label"]]
        assert mine == list(range(per_writer))
    # The writers really did interleave (otherwise this test proves nothing about concurrency).
    spans = sorted((min(s["seqs"]), max(s["seqs"])) for s in summaries)
    assert any(later[0] < earlier[1] for earlier, later in itertools.pairwise(spans)), spans


def test_verify_while_processes_append_never_reports_a_false_break() -> None:
    with Writers(*(["append", "--events", "100", "--label", f"w{n}"] for n in range(2))) as writers:
        writers.go()
        verifications = 0
        while writers.running():
            result = verify_chain()
            assert result.ok, result
            verifications += 1
        writers.collect()
    assert verifications >= 3
    assert_one_linear_chain(list(AuditEvent.objects.order_by("seq")))


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
    assert verify_chain().ok
