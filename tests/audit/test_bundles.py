"""Evidence bundles verify offline with a standalone verifier (standard library and ``cryptography``
only), and every corruption of one — a flipped bit, an edited field, an event deleted, inserted or
moved, a tail cut off, a forged or replayed checkpoint, a swapped manifest — fails, naming the first bad
event where there is one."""

from __future__ import annotations

import copy
import json
import random
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import rfc8785
from django.test import Client
from django.utils import timezone
from hypothesis import given
from hypothesis import strategies as st

from audit import bundles, checkpoints, sealer
from audit.hashing import canonical, content_document, digest_of
from audit.services import Actor, PendingEvent, Target, _event, audit_append
from audit.verify import verify_bundle
from tests import factories
from tests.audit.support import REPO

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _checkpoint_key(settings: Any, tmp_path: Path) -> None:
    settings.CUSTOS_AUDIT_CHECKPOINT_SECRET = "checkpoint-secret-for-tests-only"
    settings.CUSTOS_AUDIT_CHECKPOINT_DIR = str(tmp_path / "checkpoints")


def story() -> None:
    """Twelve events: agent 7 acts and is acted on among others, and a human is acted for."""
    for i in range(12):
        agent = 7 if i % 3 == 0 else 8
        audit_append(
            actor=Actor(kind="agent", label=f"agent-{agent}", id=str(agent)),
            action="check.allow" if i % 2 else "check.deny",
            target=Target(type="scope", id="crm.contacts", label="crm.contacts:read"),
            on_behalf_of=[{"type": "human", "id": 3, "label": "Zoë"}],
            context={"i": i, "intent": "answer ticket ✓", "ratio": 0.1 * i, "big": 2**40},
        )


@pytest.fixture
def bundle() -> dict[str, Any]:
    story()
    return bundles.export_bundle(bundles.Selection(agent=7))


def trusted() -> set[str]:
    return {checkpoints.current_fingerprint()}


def broken_at(bundle: dict[str, Any]) -> tuple[int | None, str]:
    result = verify_bundle(bundle, trusted())
    assert not result.ok, result
    return result.first_bad_seq, result.message


def test_a_bundle_holds_what_was_selected_and_verifies(bundle: dict[str, Any]) -> None:
    assert [e["content"]["actor"]["id"] for e in bundle["events"]] == ["7"] * 4
    assert [json.loads(e["canonical"]) for e in bundle["events"]] == [e["content"] for e in bundle["events"]]
    assert [e["seq"] for e in bundle["events"]] == [1, 4, 7, 10]
    assert [s["seq"] for s in bundle["seals"]] == list(range(1, bundle["manifest"]["checkpoint_seq"] + 1))
    result = verify_bundle(bundle, trusted())
    assert result.ok and "4 events" in result.message, result


def test_without_trust_it_names_the_key_to_check(bundle: dict[str, Any]) -> None:
    result = verify_bundle(bundle)
    assert result.ok and f"check that you trust key {checkpoints.current_fingerprint()}" in result.message
    assert not verify_bundle(bundle, {"0" * 64}).ok


def test_the_standalone_verifier_needs_nothing_but_the_standard_library_and_cryptography(
    bundle: dict[str, Any], tmp_path: Path
) -> None:
    path = tmp_path / "bundle.json"
    path.write_text(json.dumps(bundle, ensure_ascii=False))
    # Django, rfc8785 and psycopg made unimportable: the verifier must not need them.
    script = (
        "import runpy, sys\n"
        "for name in ('django', 'rfc8785', 'psycopg', 'rest_framework', 'audit.hashing', 'audit.models'):\n"
        "    sys.modules[name] = None\n"
        f"sys.argv = ['audit.verify', {str(path)!r}, '--trust', {checkpoints.current_fingerprint()!r}]\n"
        "runpy.run_module('audit.verify', run_name='__main__', alter_sys=True)\n"
    )
    good = subprocess.run([sys.executable, "-c", script], cwd=REPO, capture_output=True, text=True, check=False)
    assert good.returncode == 0, good.stderr
    assert "bundle OK: 4 events" in good.stdout
    bundle["events"][1]["canonical"] = bundle["events"][1]["canonical"].replace("check.allow", "check.overridden")
    path.write_text(json.dumps(bundle, ensure_ascii=False))
    bad = subprocess.run([sys.executable, "-c", script], cwd=REPO, capture_output=True, text=True, check=False)
    assert bad.returncode == 1
    assert "BROKEN at event #4: content does not match its digest" in bad.stderr


# --- Every corruption -------------------------------------------------------------------------------


def test_an_edited_field_is_named(bundle: dict[str, Any]) -> None:
    bundle["events"][2]["canonical"] = bundle["events"][2]["canonical"].replace("answer ticket", "close ticket")
    assert broken_at(bundle) == (7, "BROKEN at event #7: content does not match its digest")


def test_content_shown_otherwise_than_recorded_is_named(bundle: dict[str, Any]) -> None:
    bundle["events"][2]["content"]["context"]["intent"] = "something else"
    assert broken_at(bundle) == (7, "BROKEN at event #7: the content shown is not the content recorded")


def test_an_edited_digest_is_named(bundle: dict[str, Any]) -> None:
    bundle["seals"][5]["digest"] = bundle["seals"][5]["digest"][::-1]
    assert broken_at(bundle)[0] == 6


def test_a_deleted_event_is_named(bundle: dict[str, Any]) -> None:
    del bundle["seals"][4]
    assert broken_at(bundle) == (5, "BROKEN at event #5: expected event #5 here, found #6")


def test_a_selected_event_removed_with_its_content_kept_out_is_caught(bundle: dict[str, Any]) -> None:
    del bundle["events"][1]
    assert "3 selected events, the manifest 4" in broken_at(bundle)[1]


def test_an_inserted_event_is_named(bundle: dict[str, Any]) -> None:
    forged = copy.deepcopy(bundle["seals"][2])
    bundle["seals"].insert(3, forged)
    assert broken_at(bundle)[0] == 4


@pytest.mark.parametrize(("first", "second"), [(2, 5), (0, 1), (3, 4)])
def test_reordered_events_are_named(bundle: dict[str, Any], first: int, second: int) -> None:
    seals = bundle["seals"]
    seals[first], seals[second] = seals[second], seals[first]
    assert broken_at(bundle)[0] == first + 1


def test_a_tail_cut_off_is_caught(bundle: dict[str, Any]) -> None:
    del bundle["seals"][-2:]
    assert "before checkpoint" in broken_at(bundle)[1]


def test_a_checkpoint_forged_with_another_key_is_refused(bundle: dict[str, Any], settings: Any) -> None:
    ours = trusted()
    settings.CUSTOS_AUDIT_CHECKPOINT_SECRET = "an attacker's key"
    forged = checkpoints._sign(
        bundle["checkpoint"]["payload"]["seq"], bundle["checkpoint"]["payload"]["hash"], checkpoints.timezone.now()
    )
    bundle["checkpoint"] = {"payload": forged.payload(), "signature": forged.signature}
    result = verify_bundle(bundle, ours)
    assert not result.ok and "cannot be believed" in result.message


def test_a_replayed_older_checkpoint_for_a_shortened_chain_is_refused(settings: Any) -> None:
    story()
    sealer.seal_pending()
    early = checkpoints.checkpoint_now()
    assert early is not None
    story()
    bundle = bundles.export_bundle(bundles.Selection(agent=7))
    # Cut the chain back to the earlier checkpoint and present that (genuine) checkpoint instead.
    bundle["seals"] = [s for s in bundle["seals"] if s["seq"] <= early.seq]
    bundle["events"] = [e for e in bundle["events"] if e["seq"] <= early.seq]
    older = checkpoints.Signed.of(early)
    bundle["checkpoint"] = {"payload": older.payload(), "signature": older.signature}
    assert "not the one the manifest names" in broken_at(bundle)[1]
    # ... and a manifest rewritten to match no longer carries a valid signature.
    bundle["manifest"].update(checkpoint_seq=early.seq, checkpoint_hash=early.hash, event_count=len(bundle["events"]))
    assert "the manifest cannot be believed" in broken_at(bundle)[1]


def test_a_signed_but_swapped_selection_is_caught(bundle: dict[str, Any]) -> None:
    # Another selected event's content in place of one: digests and seals still fit, the manifest does not.
    other = bundles.export_bundle(bundles.Selection(agent=8))
    victim = next(e for e in other["events"] if e["seq"] == 5)
    bundle["events"][1] = victim
    assert "not those the manifest lists" in broken_at(bundle)[1]


def test_any_one_flipped_bit_in_the_file_fails_verification(bundle: dict[str, Any]) -> None:
    raw = bytearray(json.dumps(bundle, ensure_ascii=False, indent=1).encode())
    rng = random.Random(1234)
    for position in rng.sample(range(len(raw)), 400):
        corrupted = bytearray(raw)
        corrupted[position] ^= 1 << rng.randrange(8)
        try:
            document = json.loads(corrupted.decode("utf-8"))
        except (UnicodeDecodeError, ValueError):
            continue  # refused before anything is believed (the command says "cannot be read")
        if document == bundle:
            continue  # the flip changed only formatting, e.g. whitespace between tokens
        assert not verify_bundle(document, trusted()).ok, f"a flip at byte {position} went unnoticed"


# --- Exporting -----------------------------------------------------------------------------------------


def test_a_decision_bundle_holds_that_one_decision() -> None:
    story()
    decision = audit_append(actor=Actor.system(), action="check.allow", context={"scope": "x:y"})
    bundle = bundles.export_bundle(bundles.Selection(decision=decision.digest))
    assert [e["digest"] for e in bundle["events"]] == [decision.digest]
    assert verify_bundle(bundle, trusted()).ok


def test_a_selection_of_nothing_or_too_much_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    story()
    with pytest.raises(bundles.NothingSelected):
        bundles.export_bundle(bundles.Selection(agent=999))
    monkeypatch.setattr(bundles, "MAX_EVENTS", 3)
    with pytest.raises(bundles.SelectionTooLarge):
        bundles.export_bundle(bundles.Selection(agent=7))


def test_the_api_exports_a_bundle_to_admins_and_auditors_only() -> None:
    story()
    client = Client()
    client.force_login(factories.make_auditor())
    # By agent: what "events about human 3" means is governance's (its delegations, by id), and the
    # story's human exists only as a label in the events.
    response = client.get("/api/v1/audit/export/?agent=7")
    assert response.status_code == 200
    assert response["Content-Disposition"].startswith('attachment; filename="custos-evidence-')
    assert verify_bundle(response.json(), trusted()).ok
    assert client.get("/api/v1/audit/export/").status_code == 400
    assert client.get("/api/v1/audit/export/?agent=999").status_code == 404
    reviewer = Client()
    reviewer.force_login(factories.make_reviewer())
    assert reviewer.get("/api/v1/audit/export/?agent=7").status_code == 403


# --- The writer's canonical JSON is RFC 8785's -------------------------------------------------------

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**53) + 1, max_value=2**53 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(st.characters(exclude_categories=("Cs",))),
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(st.text(st.characters(exclude_categories=("Cs",)), max_size=6), children, max_size=4)
    ),
    max_leaves=15,
)


@given(json_values)
def test_the_fast_canonical_form_is_the_librarys(value: Any) -> None:
    # Python's C encoder where it gives the same bytes, the rfc8785 library elsewhere: always RFC 8785.
    assert canonical(value) == rfc8785.dumps(value)


texts = st.text(st.characters(exclude_categories=("Cs",)), max_size=12)
DOCUMENT_FIELDS = (
    "occurred_at", "actor_kind", "actor_id", "actor_label", "on_behalf_of", "action", "target_type", "target_id",
    "target_label", "context", "nonce",
)  # fmt: skip


@given(
    context=st.dictionaries(texts, json_values, max_size=5),
    on_behalf_of=st.lists(json_values, max_size=3),
    labels=st.tuples(texts, texts, texts, texts),
)
def test_an_events_content_assembled_from_its_column_texts_is_rfc_8785(
    context: dict[str, Any], on_behalf_of: list[Any], labels: tuple[str, str, str, str]
) -> None:
    # The writer assembles the canonical document from the JSON it already made for the context and
    # on-behalf-of columns (audit.services._canonical_without_floats): the same bytes as encoding the
    # whole document, whatever the text (control characters, quotes, astral characters in keys) and
    # whether or not floats send it down the library's path.
    actor_label, target_type, target_id, target_label = labels
    pending = PendingEvent(
        actor=Actor(kind="agent", label=actor_label, id="7"),
        action="edge.case",
        target=Target(type=target_type, id=target_id, label=target_label),
        context=context,
        on_behalf_of=on_behalf_of,
    )
    built = _event(pending, timezone.now())
    document = content_document(**{name: built.fields[name] for name in DOCUMENT_FIELDS})
    assert built.fields["canonical"].encode() == rfc8785.dumps(document)
    assert built.fields["digest"] == digest_of(rfc8785.dumps(document))
    assert json.loads(built.json["context"]) == document["context"]
