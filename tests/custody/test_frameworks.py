"""The framework mapping: every OWASP NHI item, the four OWASP Agentic items and NIST CSF PR.AA-01…05, each
with the control text and live evidence whose figures match the database (computed here independently,
row by row), in a fixed number of queries; admins and auditors read it and download it as JSON,
reviewers are refused."""

from __future__ import annotations

import json
import statistics
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
import time_machine
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from audit.models import AuditEvent
from audit.services import Actor
from custody import frameworks as fw
from custody.overview import humanise_ms
from governance import runtime, services
from governance.models import (
    AccessRequest,
    Agent,
    AgentKey,
    Delegation,
    DelegationToken,
    DriftEvent,
    Offboarding,
    Resource,
)
from reviews.models import Campaign, ReviewItem
from tests import factories
from tests.reviews.support import Org, launch, make_org

pytestmark = pytest.mark.django_db

NHI_IDS = [f"NHI{n}" for n in range(1, 11)]
ASI_IDS = ["ASI03", "ASI07", "ASI08", "ASI10"]
CSF_IDS = [f"PR.AA-0{n}" for n in range(1, 6)]
OFFICIAL_NHI_TITLES = {
    "NHI1": "Improper Offboarding",
    "NHI2": "Secret Leakage",
    "NHI3": "Vulnerable Third-Party NHI",
    "NHI4": "Insecure Authentication",
    "NHI5": "Overprivileged NHI",
    "NHI6": "Insecure Cloud Deployment Configurations",
    "NHI7": "Long-Lived Secrets",
    "NHI8": "Environment Isolation",
    "NHI9": "NHI Reuse",
    "NHI10": "Human Use of NHI",
}


def _client(user: Any) -> Client:
    client = Client()
    client.force_login(user)
    return client


@pytest.fixture
def org(settings: Any, django_capture_on_commit_callbacks: Any) -> Org:
    """An organisation with something behind every figure: a campaign whose items are overdue, a chain
    of three agents with tokens, a leaked key, a cascade revocation, an offboarding, checks allowed and
    denied, a key past the maximum age."""
    settings.CUSTOS_KEY_MAX_AGE = timedelta(days=10)
    with time_machine.travel(timezone.now() - timedelta(days=21)):
        org = make_org()
        launch(org)
    factories.make_grant(org.agent, org.resource, "read")
    chain = factories.make_chain(depth=3)
    factories.make_chain_tokens(chain)
    admin = Actor.user(org.admin)
    services.agentkey_revoke(actor=admin, key=AgentKey.objects.get(agent=chain["agents"][0]), leaked=True)
    services.delegation_revoke(actor=admin, delegation=chain["links"][0], reason="ended")
    for action in ("read", "read", "write"):
        runtime.check(credential=org.key_secret, action=action, resource=org.resource.name, context={})
    runtime.check(credential="ck_nosuchkey0_secret", action="read", resource=org.resource.name, context={})
    doomed = factories.make_agent()
    factories.make_agent(parent=doomed)
    with django_capture_on_commit_callbacks(execute=True):
        services.agent_offboard(actor=admin, agent=doomed, reason="retired")
    return org


# --- The expected figures, read row by row (not by the page's aggregates) ----------------------------


def _now() -> Any:
    return timezone.now()


def _in_force(key: AgentKey) -> bool:
    return key.revoked_at is None and key.expires_at > _now()


def _decisions(action: str = "") -> list[AuditEvent]:
    since = _now() - timedelta(days=fw.WINDOW_DAYS)
    return [
        e
        for e in AuditEvent.objects.filter(action__in=("check.allow", "check.deny"), occurred_at__gte=since)
        if e.action.startswith(action)
    ]


def _denied_for(reasons: tuple[str, ...]) -> int:
    return sum(1 for e in _decisions("check.deny") if e.context.get("reason") in reasons)


def _share(part: int, whole: int) -> str:
    return f"{round(100 * part / whole)}%" if whole else "—"


def _median() -> str:
    times = [o.time_to_revoke_ms for o in Offboarding.objects.all() if o.time_to_revoke_ms is not None]
    return humanise_ms(round(statistics.median(times))) if times else humanise_ms(None)


def _tokens() -> list[DelegationToken]:
    return list(DelegationToken.objects.select_related("agent_key"))


def _delegations_in_force() -> int:
    return sum(1 for d in Delegation.objects.all() if d.status == "active" and d.expires_at > _now())


def _agents(status: str) -> int:
    return Agent.objects.filter(status=status).count()


def _cascades() -> int:
    events = AuditEvent.objects.filter(action__in=fw.CASCADE_ACTIONS)
    return sum(1 for e in events if e.context.get("cascade_from") is not None)


def _longest(pairs: list[tuple[Any, Any]]) -> str:
    return fw._days(max((end - start for start, end in pairs), default=None))


EXPECTED: dict[str, Callable[[], list[Any]]] = {
    "NHI1": lambda: [
        _agents("offboarded"),
        _median(),
        sum(
            1 for a in Agent.objects.select_related("sponsor") if a.status == "active" and a.sponsor.status != "active"
        ),
        Delegation.objects.filter(status="expired").count(),
    ],
    "NHI2": lambda: [
        AgentKey.objects.filter(leaked=True).count(),
        sum(1 for t in _tokens() if t.revoked_at and t.agent_key and t.agent_key.leaked),
        ReviewItem.objects.filter(kind="key_leaked").count(),
        0,
    ],
    "NHI3": lambda: [
        Resource.objects.count(),
        Resource.objects.filter(sensitivity__in=("high", "critical")).count(),
        len({t.audience for t in _tokens()}),
    ],
    "NHI4": lambda: [
        sum(1 for t in _tokens() if t.issued_at >= _now() - timedelta(days=fw.WINDOW_DAYS)),
        _longest([(t.issued_at, t.expires_at) for t in _tokens()]),
        _denied_for(fw.CREDENTIAL_REASONS),
        1,
    ],
    "NHI5": lambda: [
        ReviewItem.objects.filter(status="pending", recommendation="revoke").count(),
        _denied_for(fw.SCOPE_REASONS),
        f"{AccessRequest.objects.filter(status='approved').count()} / "
        f"{AccessRequest.objects.filter(status='denied').count()}",
    ],
    "NHI6": lambda: [sum(1 for t in _tokens() if not t.audience), "30 days"],
    "NHI7": lambda: [
        sum(1 for k in AgentKey.objects.all() if _in_force(k) and k.created_at < _now() - timedelta(days=10)),
        0,
        _longest([(k.created_at, k.expires_at) for k in AgentKey.objects.all() if _in_force(k)]),
        sum(
            1
            for k in AgentKey.objects.all()
            if _in_force(k) and (k.last_used_at or k.created_at) < _now() - timedelta(days=30)
        ),
    ],
    "NHI8": lambda: [len({t.audience for t in _tokens()}), _delegations_in_force()],
    "NHI9": lambda: [
        Agent.objects.count(),
        Agent.objects.filter(parent__isnull=False).exclude(status="offboarded").count(),
        len({k.agent_id for k in AgentKey.objects.all() if _in_force(k)}),
        _share(sum(1 for e in _decisions() if e.actor_kind == "agent"), len(_decisions())),
    ],
    "NHI10": lambda: [
        Agent.objects.filter(sponsor__isnull=True).count(),
        _share(
            sum(1 for e in _decisions() if (e.context.get("credential") or {}).get("kind") == "delegation_token"),
            len(_decisions()),
        ),
    ],
    "ASI03": lambda: [_denied_for(fw.SCOPE_REASONS), _delegations_in_force(), AccessRequest.objects.count()],
    "ASI07": lambda: [
        sum(1 for t in _tokens() if t.parent_token_id),
        sum(1 for d in Delegation.objects.all() if d.status == "active" and d.expires_at > _now() and d.depth >= 1),
        1,
    ],
    "ASI08": lambda: [
        _cascades(),
        sum(1 for t in _tokens() if t.parent_token_id and t.revoked_at),
        Delegation.objects.filter(status="revoked").count(),
    ],
    "ASI10": lambda: [
        DriftEvent.objects.count(),
        DriftEvent.objects.filter(acknowledged_at__isnull=True).count(),
        ReviewItem.objects.filter(kind="drift").count(),
        _agents("suspended"),
    ],
    "PR.AA-01": lambda: [
        _agents("active"),
        sum(1 for k in AgentKey.objects.all() if _in_force(k)),
        _agents("offboarded"),
    ],
    "PR.AA-02": lambda: [
        _delegations_in_force(),
        sum(1 for t in _tokens() if t.issued_at >= _now() - timedelta(days=fw.WINDOW_DAYS)),
    ],
    "PR.AA-03": lambda: [len(_decisions()), _denied_for(fw.CREDENTIAL_REASONS)],
    "PR.AA-04": lambda: [
        1,
        sum(1 for t in _tokens() if t.revoked_at),
        _longest([(t.issued_at, t.expires_at) for t in _tokens()]),
    ],
    "PR.AA-05": lambda: [
        ReviewItem.objects.filter(status__in=("certified", "revoked")).count(),
        sum(1 for i in ReviewItem.objects.all() if i.status == "pending" and i.due_at < _now()),
        ReviewItem.objects.filter(routing__startswith="fallback reviewer").count(),
        f"{Campaign.objects.filter(status='active').count()} / {Campaign.objects.filter(status='closed').count()}",
    ],
}


def test_the_mapping_lists_every_nhi_item_the_four_agentic_items_and_pr_aa_01_to_05() -> None:
    ids = [item.id for item in fw.ITEMS]
    assert ids == NHI_IDS + ASI_IDS + CSF_IDS
    assert {i.id: i.title for i in fw.ITEMS if i.framework is fw.NHI} == OFFICIAL_NHI_TITLES
    assert {i.id: i.title for i in fw.ITEMS if i.framework is fw.ASI} == {
        "ASI03": "Identity and Privilege Abuse",
        "ASI07": "Insecure Inter-Agent Communication",
        "ASI08": "Cascading Failures",
        "ASI10": "Rogue Agents",
    }
    wording = {i.id: i.wording for i in fw.ITEMS if i.framework is fw.CSF}
    assert wording["PR.AA-03"] == "Users, services, and hardware are authenticated"
    assert wording["PR.AA-04"] == "Identity assertions are protected, conveyed, and verified"
    assert all(item.control and len(item.control) > 80 for item in fw.ITEMS)
    assert set(EXPECTED) == set(ids)


@pytest.mark.parametrize("item", fw.ITEMS, ids=lambda item: item.id)
def test_each_items_evidence_matches_the_database(org: Org, item: fw.Item) -> None:
    evidence = item.evidence(fw.figures(timezone.now()))
    assert [e.value for e in evidence] == EXPECTED[item.id](), [e.label for e in evidence]
    assert all(e.label for e in evidence)


def test_the_organisation_gives_the_key_figures_something_to_count(org: Org) -> None:
    """The fixture is not vacuous: the figures the issue names are not zero here."""
    f = fw.figures(timezone.now())
    assert f.agents["offboarded"] == 2 and f.revoke.measured == 1
    assert f.keys["leaked"] == 1 and f.tokens["revoked_leaked"] == 1  # the one the key obtained
    assert f.keys["past_max_age"] >= 1 and f.keys["without_expiry"] == 0
    assert f.audit["cascades"] == 2 + 1  # two links below the revoked one, one sub-agent offboarded
    assert f.tokens["derived"] == 2 and f.tokens["derived_revoked"] == 2
    assert f.reviews["overdue"] > 0 and f.audit["scope_denials"] == 1 and f.audit["credential_denials"] == 1


FRAMEWORKS_PAGE = 3 + 12  # session, user, roles; twelve aggregates (custody.frameworks.figures)


def test_the_page_lists_every_item_with_its_evidence_in_a_fixed_number_of_queries(
    org: Org, django_assert_num_queries: Any
) -> None:
    auditor = _client(factories.make_auditor())
    with django_assert_num_queries(FRAMEWORKS_PAGE):
        response = auditor.get(reverse("console:frameworks"))
    html = response.content.decode()
    for item in fw.ITEMS:
        assert f'<tr id="{item.id}">' in html and item.title in html
    assert f'href="{reverse("console:agents")}?status=offboarded"' in html
    for _ in range(3):
        chain = factories.make_chain(depth=2)
        factories.make_chain_tokens(chain)
        launch(org, name="Again")
    with django_assert_num_queries(FRAMEWORKS_PAGE):
        auditor.get(reverse("console:frameworks"))


def test_admins_and_auditors_read_it_reviewers_and_outsiders_are_refused(org: Org) -> None:
    for user in (org.admin, factories.make_auditor()):
        assert _client(user).get(reverse("console:frameworks")).status_code == 200
        assert _client(user).get(reverse("console:frameworks_json")).status_code == 200
    for user in (org.manager_user, factories.make_outsider()):
        assert _client(user).get(reverse("console:frameworks")).status_code == 403
        assert _client(user).get(reverse("console:frameworks_json")).status_code == 403
    # The nav link sits beside "Audit", for those who read everything only.
    link = f'href="{reverse("console:frameworks")}"'
    assert link in _client(factories.make_auditor()).get(reverse("console:home")).content.decode()
    assert link not in _client(org.manager_user).get(reverse("console:home")).content.decode()


def test_the_json_download_carries_the_mapping_and_the_same_evidence(org: Org) -> None:
    response = _client(factories.make_auditor()).get(reverse("console:frameworks_json"))
    assert response["Content-Type"].startswith("application/json")
    assert response["Content-Disposition"].startswith('attachment; filename="custos-framework-mapping-')
    body = json.loads(response.content)
    assert [f["id"] for f in body["frameworks"]] == [f.id for f in fw.FRAMEWORKS]
    items = {i["id"]: i for f in body["frameworks"] for i in f["items"]}
    assert list(items) == NHI_IDS + ASI_IDS + CSF_IDS
    for item_id, expected in EXPECTED.items():
        assert [e["value"] for e in items[item_id]["evidence"]] == expected(), item_id
    offboarded = items["NHI1"]["evidence"][0]
    assert offboarded["url"] == f"http://testserver{reverse('console:agents')}?status=offboarded"
    assert items["NHI7"]["evidence"][1]["note"].startswith("none possible")
