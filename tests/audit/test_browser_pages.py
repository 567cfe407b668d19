"""The audit browser: filters by subject (through the registered subject filters, never by name), the
digest and seal of each event in view, CSV, JSON and evidence-bundle downloads of exactly what the
filters show (the bundle verifying with the standalone verifier), and the verification badge with
"Verify now". Admins and auditors only; bad filter input is a form error or a 400, never a 500."""

from __future__ import annotations

import csv
import io
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.db.models import Q
from django.test import Client
from django.urls import reverse

from audit import bundles, checkpoints, exports, links, sealer
from audit.models import AuditEvent
from audit.services import VERIFY_ACTION, Actor, Target, audit_append
from audit.tasks import verify_chain_task
from audit.verify import verify_bundle
from tests import factories
from tests.audit.support import REPO, bypassing_triggers

pytestmark = pytest.mark.django_db

HTMX = {"HX-Request": "true"}
AUDIT = reverse("console:audit")
CSV = reverse("console:audit_export_csv")
JSON = reverse("console:audit_export_json")
BUNDLE = reverse("console:audit_bundle")
VERIFY = reverse("console:audit_verify")


@pytest.fixture(autouse=True)
def _checkpoint_key(settings: Any, tmp_path: Path) -> None:
    settings.CUSTOS_AUDIT_CHECKPOINT_SECRET = "checkpoint-secret-for-tests-only"
    settings.CUSTOS_AUDIT_CHECKPOINT_DIR = str(tmp_path / "checkpoints")


@pytest.fixture(autouse=True)
def subject_filters() -> Iterator[None]:
    """Subject filters as governance registers them, but simple and our own: an event is about agent N
    or human N when its context says so. The baseline (naming the subject as target or actor) would
    match none of the story's events, so a filtered result proves the registry was asked."""
    saved = dict(links._subjects)
    links.register_subject("agent", lambda ident: Q(context__agent=ident))
    links.register_subject("human", lambda ident: Q(context__human=ident))
    links.register_subject("resource", lambda ident: Q(context__resource=ident))
    yield
    links._subjects.clear()
    links._subjects.update(saved)


def _event(action: str, label: str, **context: Any) -> AuditEvent:
    return audit_append(
        actor=Actor(kind="agent", label=label, id="0"),
        action=action,
        target=Target(type="scope", id="crm.contacts", label="crm.contacts:read"),
        context=context,
    )


@pytest.fixture
def story() -> dict[str, AuditEvent]:
    """Agent 7 acts for human 3 and for human 4; agent 8 for human 3; agent 70 (a similar id, a similar
    name) for nobody in particular."""
    return {
        "a": _event("check.allow", "agent-7", agent=7, human=3, resource=5),
        "b": _event("check.deny", "agent-8", agent=8, human=3),
        "c": _event("key.issue", "agent-7", agent=7, human=4),
        "d": _event("check.allow", "agent-70", agent=70, note='=HYPERLINK("http://evil")'),
        "e": _event("system.tick", "agent-7"),
    }


def _client(user: User) -> Client:
    client = Client()
    client.force_login(user)
    return client


@pytest.fixture
def auditor() -> Client:
    return _client(factories.make_auditor())


def _shown(response: Any) -> set[str]:
    assert response.status_code == 200, response.content.decode()[:500]
    return {row.event.digest for row in response.context["events"]}


def _digests(story: dict[str, AuditEvent], *names: str) -> set[str]:
    return {story[name].digest for name in names}


# --- Filters -------------------------------------------------------------------------------------------


def test_the_page_filters_by_agent_and_human_through_the_registered_subject_filters(
    auditor: Client, story: dict[str, AuditEvent]
) -> None:
    assert _shown(auditor.get(AUDIT, {"agent": 7})) == _digests(story, "a", "c")
    assert _shown(auditor.get(AUDIT, {"human": 3})) == _digests(story, "a", "b")
    assert _shown(auditor.get(AUDIT, {"agent": 7, "human": 3})) == _digests(story, "a")
    assert _shown(auditor.get(AUDIT, {"resource": 5})) == _digests(story, "a")
    # Not by name: "agent-7" is a substring of agent 70's label, and event e's actor is labelled agent-7.
    assert story["d"].digest not in _shown(auditor.get(AUDIT, {"agent": 7}))
    assert _shown(auditor.get(AUDIT, {"agent": "7", "action": "check."})) == _digests(story, "a")
    page = auditor.get(AUDIT, {"agent": 7}).content.decode()
    assert "Every event about agent #7" in page


def test_the_subject_named_is_the_name_the_log_recorded_not_one_passed_in_the_link(auditor: Client) -> None:
    audit_append(actor=Actor.system(), action="agent.create", target=Target(type="agent", id="7", label="tone-checker"))
    page = auditor.get(AUDIT, {"agent": "7", "agent_label": "Somebody Else"}).content.decode()
    assert "tone-checker" in page and "Somebody Else" not in page


def test_without_a_registered_filter_a_subject_is_matched_by_id_where_it_is_named(
    auditor: Client, story: dict[str, AuditEvent]
) -> None:
    links._subjects.clear()
    named = audit_append(
        actor=Actor(kind="agent", label="agent-7", id="7"),
        action="check.allow",
        on_behalf_of=[{"type": "human", "id": 3}],
    )
    targeted = audit_append(actor=Actor.system(), action="agent.suspend", target=Target(type="agent", id="7"))
    assert _shown(auditor.get(AUDIT, {"agent": 7})) == {named.digest, targeted.digest}
    assert _shown(auditor.get(AUDIT, {"human": 3})) == {named.digest}


def test_the_baseline_filter_needs_no_json_containment_where_the_database_has_none(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # SQLite (make run) has no JSON "contains": the baseline must not use it there.
    links._subjects.clear()
    from django.db import connection

    monkeypatch.setattr(connection.features, "supports_json_field_contains", False)
    assert "on_behalf_of" not in str(bundles.about("human", 3))
    monkeypatch.setattr(connection.features, "supports_json_field_contains", True)
    assert "on_behalf_of" in str(bundles.about("human", 3))


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ({"agent": "seven"}, "The agent id must be a whole number"),
        ({"human": "0"}, "greater than or equal to 1"),
        ({"resource": "99999999999999999999"}, "less than or equal to"),
        ({"since": "2024-13-45"}, "Enter a valid date"),
        ({"since": "2024-05-02", "until": "2024-05-01"}, "The end date is before the start date"),
        ({"actor": "a\x00b"}, "Null characters are not allowed"),
    ],
)
def test_bad_filter_input_is_shown_as_the_forms_error_never_a_500(
    auditor: Client, story: dict[str, AuditEvent], query: dict[str, str], message: str
) -> None:
    page = auditor.get(AUDIT, query)
    assert page.status_code == 400
    assert message in page.content.decode()
    assert page.context["events"] == []  # a filter that cannot be read selects nothing, not everything
    fragment = auditor.get(AUDIT, query, headers=HTMX)
    assert fragment.status_code == 422 and message in fragment.content.decode()
    for url in (CSV, JSON, BUNDLE):
        assert auditor.get(url, query).status_code == 400, url


def test_bad_digests_for_a_bundle_are_refused(auditor: Client) -> None:
    assert auditor.get(BUNDLE, {"digest": "not-a-digest"}).status_code == 400
    assert auditor.get(BUNDLE, {"decision": "A" * 64}).status_code == 400
    too_many = [f"{i:064x}" for i in range(bundles.MAX_DIGESTS + 1)]
    assert auditor.get(BUNDLE, {"digest": too_many}).status_code == 400


def test_the_api_filters_by_subject_and_answers_bad_input_with_a_stable_code(
    auditor: Client, story: dict[str, AuditEvent]
) -> None:
    found = auditor.get("/api/v1/audit/events/", {"agent": 7}).json()["results"]
    assert {e["digest"] for e in found} == _digests(story, "a", "c")
    found = auditor.get("/api/v1/audit/events/", {"human": "3", "action": "check.deny"}).json()["results"]
    assert {e["digest"] for e in found} == _digests(story, "b")
    found = auditor.get("/api/v1/audit/events/", {"resource": 5}).json()["results"]
    assert {e["digest"] for e in found} == _digests(story, "a")
    for query in ({"agent": "seven"}, {"human": "-3"}, {"resource": str(2**64)}):
        response = auditor.get("/api/v1/audit/events/", query)
        assert response.status_code == 400
        body = response.json()
        assert body["code"] == "invalid" and set(body["fields"]) == set(query)


# --- Digest, seal and links ----------------------------------------------------------------------------


def test_each_row_shows_its_digest_and_seal_and_the_events_links(auditor: Client, story: dict[str, AuditEvent]) -> None:
    sealer.seal_pending()
    saved = list(links._event_links)
    links.register_event_link(lambda event: ("Custody", f"/custody/{event.digest}/"))
    try:
        html = auditor.get(AUDIT, {"agent": 7}).content.decode()
    finally:
        links._event_links[:] = saved
    event = AuditEvent.objects.select_related("seal").get(pk=story["a"].pk)
    for text in (event.digest, event.seal.hash, event.seal.prev_hash, f"#{event.seal.seq}"):
        assert text in html
    assert f'href="/custody/{event.digest}/">Custody</a>' in html


# --- Exports -------------------------------------------------------------------------------------------


def _streamed(response: Any) -> str:
    assert response.status_code == 200
    assert response.streaming
    return b"".join(response.streaming_content).decode()


def test_the_csv_export_holds_exactly_the_filtered_events(auditor: Client, story: dict[str, AuditEvent]) -> None:
    sealer.seal_pending()
    response = auditor.get(CSV, {"agent": "7", "before": "1"})  # the page marker is not a filter: ignored
    assert response["Content-Type"].startswith("text/csv")
    assert response["Content-Disposition"].startswith('attachment; filename="custos-audit-')
    table = list(csv.DictReader(io.StringIO(_streamed(response).removeprefix("\ufeff"))))
    assert tuple(table[0]) == exports.COLUMNS
    assert {row["digest"] for row in table} == _digests(story, "a", "c")
    first = AuditEvent.objects.select_related("seal").get(digest=table[0]["digest"])
    assert table[0]["seq"] == str(first.seal.seq) and table[0]["hash"] == first.seal.hash
    assert table[0]["prev_hash"] == first.seal.prev_hash
    assert json.loads(table[0]["context"]) == first.context
    # A context a spreadsheet would run as a formula is defused.
    rows = list(csv.DictReader(io.StringIO(_streamed(auditor.get(CSV, {"agent": 70})).removeprefix("\ufeff"))))
    assert [r["digest"] for r in rows] == [story["d"].digest]


def test_the_json_export_holds_exactly_the_filtered_events(auditor: Client, story: dict[str, AuditEvent]) -> None:
    response = auditor.get(JSON, {"human": 3})
    assert response["Content-Type"] == "application/json"
    document = json.loads(_streamed(response))
    assert {e["digest"] for e in document["events"]} == _digests(story, "a", "b")
    assert document["selection"]["human"] == 3
    assert set(document["events"][0]) == set(exports.COLUMNS)
    everything = json.loads(_streamed(auditor.get(JSON)))
    assert {e["digest"] for e in everything["events"]} == {e.digest for e in story.values()}


# --- Evidence bundles ----------------------------------------------------------------------------------


def _verifier(path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "audit.verify", str(path), "--trust", checkpoints.current_fingerprint()],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=False,
    )


def test_the_bundle_of_the_filter_verifies_standalone_and_fails_with_one_byte_changed(
    auditor: Client, story: dict[str, AuditEvent], tmp_path: Path
) -> None:
    response = auditor.get(BUNDLE, {"agent": "7", "since": "2000-01-01"})
    assert response.status_code == 200
    assert response["Content-Disposition"].startswith('attachment; filename="custos-evidence-')
    bundle = json.loads(response.content)
    assert {e["digest"] for e in bundle["events"]} == _digests(story, "a", "c")
    assert bundle["manifest"]["selection"]["agent"] == 7
    assert bundle["manifest"]["selection"]["since"].startswith("2000-01-01T00:00:00")
    path = tmp_path / "bundle.json"
    path.write_bytes(response.content)
    good = _verifier(path)
    assert good.returncode == 0, good.stderr
    assert "bundle OK: 2 events" in good.stdout
    raw = bytearray(response.content)
    at = raw.index(b"key.issue")
    raw[at] = ord("K")  # one byte, inside event c's recorded content
    path.write_bytes(bytes(raw))
    bad = _verifier(path)
    assert bad.returncode == 1
    assert "content does not match its digest" in bad.stderr


def test_a_bundle_of_given_digests_or_of_one_decision(auditor: Client, story: dict[str, AuditEvent]) -> None:
    chosen = auditor.get(BUNDLE, {"digest": [story["b"].digest, story["d"].digest]})
    bundle = json.loads(chosen.content)
    assert {e["digest"] for e in bundle["events"]} == _digests(story, "b", "d")
    assert bundle["manifest"]["selection"]["digests"] == [story["b"].digest, story["d"].digest]
    assert verify_bundle(bundle, {checkpoints.current_fingerprint()}).ok
    one = json.loads(auditor.get(BUNDLE, {"decision": story["a"].digest}).content)
    assert [e["digest"] for e in one["events"]] == [story["a"].digest]
    assert verify_bundle(one, {checkpoints.current_fingerprint()}).ok


def test_a_selection_too_large_or_empty_is_a_message_not_a_500(
    auditor: Client, story: dict[str, AuditEvent], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(bundles, "MAX_EVENTS", 1)
    response = auditor.get(BUNDLE, {"human": 3})
    assert response.status_code == 302 and response["Location"] == f"{AUDIT}?human=3"
    assert "more than 1 events match: narrow the selection" in auditor.get(response["Location"]).content.decode()
    response = auditor.get(BUNDLE, {"agent": 999}, follow=True)
    assert "No bundle: no event matches this selection" in response.content.decode()


def test_the_api_bundle_selects_by_subject_through_the_registry(auditor: Client, story: dict[str, AuditEvent]) -> None:
    bundle = auditor.get("/api/v1/audit/export/", {"resource": 5}).json()
    assert [e["digest"] for e in bundle["events"]] == [story["a"].digest]
    assert verify_bundle(bundle, {checkpoints.current_fingerprint()}).ok


# --- Verification badge --------------------------------------------------------------------------------


def test_verify_now_records_a_verification_and_the_badge_shows_it(story: dict[str, AuditEvent]) -> None:
    user = factories.make_auditor()
    auditor = _client(user)
    assert "Not verified yet" in auditor.get(AUDIT).content.decode()
    sealer.seal_pending()
    response = auditor.post(VERIFY)
    assert response.status_code == 302
    recorded = AuditEvent.objects.get(action=VERIFY_ACTION)
    assert recorded.actor_kind == "user" and recorded.actor_id == str(user.pk)
    assert recorded.context == {
        "ok": True,
        "checked": 5,
        "head_seq": 5,
        "first_bad_seq": None,
        "first_bad_event": None,
        "problem": "",
        "full": False,
    }
    page = auditor.get(AUDIT).content.decode()
    assert (
        "Chain verified" in page
        and "5 events checked" in page
        and f'by <span class="kind kind-user">user</span> {user.username}' in page
    )
    # With htmx, the badge alone comes back to be swapped in place.
    badge = auditor.post(VERIFY, headers=HTMX)
    assert badge.status_code == 200
    html = badge.content.decode()
    assert html.lstrip().startswith('<div id="audit-badge"') and "Chain verified" in html
    assert AuditEvent.objects.filter(action=VERIFY_ACTION).count() == 2


def test_a_broken_chain_shows_a_red_badge_naming_the_first_bad_event(
    auditor: Client, story: dict[str, AuditEvent]
) -> None:
    sealer.seal_pending()
    victim = AuditEvent.objects.select_related("seal").get(pk=story["c"].pk)
    with bypassing_triggers() as cursor:
        cursor.execute("UPDATE audit_auditevent SET actor_label = 'someone else' WHERE id = %s", [victim.pk])
    auditor.post(VERIFY)
    recorded = AuditEvent.objects.get(action=VERIFY_ACTION)
    assert recorded.context["ok"] is False and recorded.context["first_bad_seq"] == victim.seal.seq
    page = auditor.get(AUDIT).content.decode()
    assert "verify-broken" in page and "Chain broken" in page
    assert f'?before={victim.pk + 1}">event #{victim.seal.seq}</a>' in page


def test_the_nightly_verification_is_recorded_too(story: dict[str, AuditEvent], auditor: Client) -> None:
    sealer.seal_pending()
    assert verify_chain_task()["ok"] is True
    recorded = AuditEvent.objects.get(action=VERIFY_ACTION)
    assert recorded.actor_kind == "system" and recorded.context["full"] is True
    assert "nightly verification" in auditor.get(AUDIT).content.decode()


# --- Who may --------------------------------------------------------------------------------------------


def test_reviewers_may_neither_read_export_nor_verify(story: dict[str, AuditEvent]) -> None:
    reviewer = _client(factories.make_reviewer())
    for url in (AUDIT, CSV, JSON, BUNDLE, f"{BUNDLE}?decision={story['a'].digest}"):
        assert reviewer.get(url).status_code == 403, url
    assert reviewer.post(VERIFY).status_code == 403
    assert not AuditEvent.objects.filter(action=VERIFY_ACTION).exists()
    anonymous = Client()
    assert anonymous.post(VERIFY).status_code == 302  # to the login page
    assert not AuditEvent.objects.filter(action=VERIFY_ACTION).exists()


def test_admins_and_auditors_export_and_verify(story: dict[str, AuditEvent]) -> None:
    for user in (factories.make_admin(), factories.make_auditor()):
        client = _client(user)
        assert client.get(CSV).status_code == 200
        assert client.get(JSON).status_code == 200
        assert client.get(BUNDLE, {"agent": 7}).status_code == 200
        assert client.post(VERIFY).status_code == 302
        assert client.get(VERIFY).status_code == 405
    assert AuditEvent.objects.filter(action=VERIFY_ACTION).count() == 2


# --- Cost ----------------------------------------------------------------------------------------------

# Session, user, roles; then the page's events and the badge's latest verification.
AUDIT_PAGE = 3 + 2
# The rows alone (htmx): no badge.
AUDIT_ROWS = 3 + 1
# A subject filter adds the name the log last recorded for the subject.
PER_SUBJECT = 1


def test_the_audit_page_costs_the_same_whatever_the_log_holds(auditor: Client, django_assert_num_queries: Any) -> None:
    for i in range(3):
        _event("check.allow", f"agent-{i}", agent=7, human=3)
    auditor.post(VERIFY, headers=HTMX)  # no flash message to read (and clear) on the next page
    with django_assert_num_queries(AUDIT_PAGE):
        auditor.get(AUDIT)
    for i in range(60):
        _event("check.allow", f"agent-{i}", agent=7, human=3)
    sealer.seal_pending()
    with django_assert_num_queries(AUDIT_PAGE):
        auditor.get(AUDIT)
    with django_assert_num_queries(AUDIT_ROWS):
        auditor.get(AUDIT, {"action": "check.", "since": "2000-01-01"}, headers=HTMX)
    with django_assert_num_queries(AUDIT_PAGE + 2 * PER_SUBJECT):
        auditor.get(AUDIT, {"agent": 7, "human": 3})
