"""The standalone bundle verifier (audit/verify.py) at each of its edges: every refusal is ``ok is False``
with the first bad sequence number (or none, for the bundle as a whole) and the exact problem text.

The bundles are the golden one (tests/audit/golden/bundle.json) and variants re-signed with its fixed key:
with the key in hand a test reaches the checks behind the signatures, as a dishonest or buggy exporter
would."""

from __future__ import annotations

import base64
import copy
import hashlib
import json
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from audit import verify
from audit.verify import Result, verify_bundle
from tests.audit.test_golden_vectors import BUNDLE_FILE, CHECKPOINT, EVENTS, KEY, golden_bundle

PRIVATE = Ed25519PrivateKey.from_private_bytes(bytes.fromhex(CHECKPOINT["private_key_seed_hex"]))
OTHER = Ed25519PrivateKey.from_private_bytes(bytes(32))


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def raw(key: Ed25519PrivateKey) -> bytes:
    return key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def sign(document: dict[str, Any], key: Ed25519PrivateKey = PRIVATE) -> str:
    return b64(key.sign(verify._signed_bytes(document)))


def resigned(bundle: dict[str, Any], **manifest: Any) -> dict[str, Any]:
    """``bundle`` with its manifest changed as given and signed again with the bundle's key."""
    bundle["manifest"].update(manifest)
    bundle["manifest_signature"] = sign(bundle["manifest"])
    return bundle


def with_checkpoint(bundle: dict[str, Any], **payload: Any) -> dict[str, Any]:
    """``bundle`` under another checkpoint, signed with the bundle's key: a genuine one of another state."""
    changed = {**bundle["checkpoint"]["payload"], **payload}
    bundle["checkpoint"] = {"payload": changed, "signature": sign(changed)}
    return bundle


def refit(bundle: dict[str, Any], seq: int, context: dict[str, Any]) -> dict[str, Any]:
    """Event ``seq`` replaced by one with ``context``, its seal made to fit: digest and hash recomputed."""
    event = next(e for e in EVENTS["events"] if e["seq"] == seq)
    content = {**json.loads(event["canonical"]), "context": context}
    canonical = json.dumps(content, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    digest = verify.digest_of(canonical)
    for entry in bundle["events"]:
        if entry["seq"] == seq:
            entry.update(canonical=canonical, content=content, digest=digest)
    for seal in bundle["seals"]:
        if seal["seq"] == seq:
            seal.update(digest=digest, hash=verify.chain_hash(seq, seal["prev_hash"], digest))
    return bundle


def seal(bundle: dict[str, Any], seq: int) -> dict[str, Any]:
    return next(s for s in bundle["seals"] if s["seq"] == seq)


def broken(bundle: Any, message: str, seq: int | None, trusted: set[str] | None = None) -> None:
    where = f"event #{seq}" if seq is not None else "the bundle"
    assert verify_bundle(bundle, {KEY} if trusted is None else trusted) == Result(
        False, f"BROKEN at {where}: {message}", seq, ""
    )


# --- What is not a bundle, and whom it is signed by -----------------------------------------------------


@pytest.mark.parametrize("bundle", [None, [], "custos-audit-bundle/1", {}, {"format": "custos-audit-bundle/2"}])
def test_what_is_not_a_bundle_of_this_format_is_refused(bundle: Any) -> None:
    broken(bundle, "not a custos-audit-bundle/1 file", None)


@pytest.mark.parametrize(
    ("damage", "error"),
    [
        (lambda b: b.pop("seals"), "KeyError: 'seals'"),
        (lambda b: b["manifest"].pop("key"), "KeyError: 'key'"),
        (lambda b: b["events"].append("an event"), "TypeError: string indices must be integers, not 'str'"),
        (lambda b: b["events"][0].update(seq="two"), "ValueError: invalid literal for int() with base 10: 'two'"),
        (lambda b: b.update(checkpoint=None), "TypeError: 'NoneType' object is not subscriptable"),
    ],
)
def test_a_malformed_bundle_is_refused_saying_what_is_wrong(damage: Any, error: str) -> None:
    bundle = golden_bundle()
    damage(bundle)
    broken(bundle, f"it is not a well-formed bundle ({error})", None)


@pytest.mark.parametrize("trusted", [set(), {"0" * 64}, {KEY[:-1]}])
def test_a_key_not_trusted_is_refused_even_when_nothing_is_trusted(trusted: set[str]) -> None:
    broken(golden_bundle(), f"it is signed by key {KEY}, which you did not trust", None, trusted)


def test_any_one_trusted_key_is_enough() -> None:
    assert verify_bundle(golden_bundle(), {"0" * 64, KEY}).ok is True


@pytest.mark.parametrize(
    ("public_key", "problem"),
    [
        (b64(b"\x01" * 31), "its public key is malformed"),
        ("!", "its public key is malformed"),
        (b64(raw(OTHER)), "its public key does not match the fingerprint it names"),
    ],
)
def test_a_manifest_under_a_bad_public_key_is_refused(public_key: str, problem: str) -> None:
    bundle = golden_bundle()
    bundle["public_key"] = public_key
    broken(bundle, f"the manifest cannot be believed: {problem}", None)


def test_a_manifest_signed_by_another_key_is_refused() -> None:
    bundle = golden_bundle()
    bundle["manifest_signature"] = sign(bundle["manifest"], OTHER)
    broken(bundle, "the manifest cannot be believed: its signature does not verify", None)


def test_a_checkpoint_naming_another_key_is_refused() -> None:
    bundle = golden_bundle()
    bundle["checkpoint"]["payload"]["key"] = hashlib.sha256(raw(OTHER)).hexdigest()
    problem = "its public key does not match the fingerprint it names"
    broken(bundle, f"checkpoint #5 cannot be believed: {problem}", None)


def test_a_checkpoint_forged_with_another_key_is_refused() -> None:
    bundle = golden_bundle()
    bundle["checkpoint"]["signature"] = sign(bundle["checkpoint"]["payload"], OTHER)
    broken(bundle, "checkpoint #5 cannot be believed: its signature does not verify", None)


@pytest.mark.parametrize(
    ("payload", "seq"),
    [
        ({"seq": 4, "hash": EVENTS["events"][3]["hash"]}, 4),
        ({"log": "https://another.example.org"}, 5),
        ({"hash": EVENTS["events"][3]["hash"]}, 5),
    ],
    ids=["an older checkpoint", "another installation's", "another hash"],
)
def test_a_genuine_checkpoint_other_than_the_manifests_is_refused_as_replayed(
    payload: dict[str, Any], seq: int
) -> None:
    bundle = with_checkpoint(golden_bundle(), **payload)
    broken(bundle, f"checkpoint #{seq} is not the one the manifest names (replayed?)", None)


# --- The chain ------------------------------------------------------------------------------------------


def test_a_missing_chain_head_is_named() -> None:
    bundle = golden_bundle()
    del bundle["seals"][0]
    broken(bundle, "expected event #2 here, found #3", 2)


def test_no_chain_at_all_is_cut_short_at_the_first_event() -> None:
    bundle = golden_bundle()
    bundle["seals"] = []
    broken(bundle, "the chain stops at #1, before checkpoint #5 (cut short?)", 2)


def test_a_head_that_does_not_follow_the_event_before_it_is_named() -> None:
    bundle = golden_bundle()
    seal(bundle, 2)["prev_hash"] = EVENTS["events"][1]["hash"]
    broken(bundle, "previous-hash link does not match the event before it", 2)


def test_a_manifest_starting_elsewhere_is_named_at_its_start() -> None:
    broken(resigned(golden_bundle(), first_seq=0), "expected event #0 here, found #2", 0)


def test_an_event_replaced_with_a_refitted_hash_breaks_the_next_link() -> None:
    bundle = refit(golden_bundle(), 4, {"decision": "allow"})
    broken(bundle, "previous-hash link does not match the event before it", 5)


def test_an_unselected_event_replaced_with_a_refitted_hash_breaks_the_next_link() -> None:
    bundle = golden_bundle()
    third = seal(bundle, 3)
    third.update(digest="ab" * 32, hash=verify.chain_hash(3, third["prev_hash"], "ab" * 32))
    broken(bundle, "previous-hash link does not match the event before it", 4)


def test_the_last_event_replaced_with_a_refitted_hash_misses_the_checkpoint() -> None:
    bundle = refit(golden_bundle(), 5, {"count": 3})
    broken(bundle, "the chain does not lead to the hash checkpoint #5 signed", 5)


def test_a_replaced_tail_consistent_with_itself_misses_the_checkpoint() -> None:
    bundle = refit(golden_bundle(), 4, {"decision": "allow"})
    seal(bundle, 5)["prev_hash"] = seal(bundle, 4)["hash"]
    bundle = refit(bundle, 5, {"count": 3})
    broken(bundle, "the chain does not lead to the hash checkpoint #5 signed", 5)


def test_a_tail_cut_off_is_named_at_the_first_missing_event() -> None:
    bundle = golden_bundle()
    del bundle["seals"][-1]
    broken(bundle, "the chain stops at #4, before checkpoint #5 (cut short?)", 5)


def test_a_chain_running_on_past_its_checkpoint_is_named_at_the_first_event_beyond() -> None:
    bundle = golden_bundle()
    last = bundle["seals"][-1]
    bundle["seals"].append({"seq": 6, "prev_hash": last["hash"], "digest": "cd" * 32})
    bundle["seals"][-1]["hash"] = verify.chain_hash(6, last["hash"], "cd" * 32)
    broken(bundle, "the chain runs on past checkpoint #5, to #6", 6)


def test_every_check_holds_at_the_checkpoints_own_event() -> None:
    bundle = golden_bundle()
    assert seal(bundle, 5)["hash"] == bundle["checkpoint"]["payload"]["hash"] == bundle["manifest"]["checkpoint_hash"]
    assert verify_bundle(bundle, {KEY}).ok is True
    seal(bundle, 5)["digest"] = seal(bundle, 4)["digest"]
    broken(bundle, "content does not match its digest", 5)


# --- The events and the manifest --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "value"),
    [(("context", "count"), 2.0), (("context", "count"), True), (("on_behalf_of", 0, "id"), 3.0)],
    ids=["2 shown as 2.0", "2 shown as true", "an id shown as a float"],
)
def test_content_shown_as_an_equal_python_value_of_another_json_type_is_refused(
    path: tuple[Any, ...], value: Any
) -> None:
    bundle = golden_bundle()
    target = bundle["events"][2]["content"]
    for step in path[:-1]:
        target = target[step]
    target[path[-1]] = value
    broken(bundle, "the content shown is not the content recorded", 5)


def test_an_event_held_twice_is_refused_whichever_copy_comes_first() -> None:
    bundle = golden_bundle()
    forged = copy.deepcopy(bundle["events"][1])
    forged["content"]["context"]["controls"] = "forged"
    bundle["events"].insert(1, forged)
    broken(bundle, "the bundle holds this event twice", 4)


def test_events_in_any_order_in_the_file_verify() -> None:
    bundle = golden_bundle()
    bundle["events"].reverse()
    assert verify_bundle(bundle, {KEY}).ok is True


@pytest.mark.parametrize(
    ("count", "message"),
    [
        (4, "the bundle holds 3 selected events, the manifest 4 (1 removed?)"),
        (5, "the bundle holds 3 selected events, the manifest 5 (2 removed?)"),
        (2, "the bundle holds 3 selected events, the manifest 2 (added?)"),
    ],
)
def test_a_count_other_than_the_manifests_is_refused(count: int, message: str) -> None:
    broken(resigned(golden_bundle(), event_count=count), message, None)


@pytest.mark.parametrize("seq", [1, 6], ids=["before the first", "after the checkpoint"])
def test_an_event_outside_the_range_is_refused_even_when_the_count_fits(seq: int) -> None:
    bundle = golden_bundle()
    bundle["events"].append({**copy.deepcopy(bundle["events"][0]), "seq": seq})
    bundle = resigned(bundle, event_count=4)
    broken(bundle, "the bundle holds 4 selected events, the manifest 4 (added?)", None)


def test_an_event_at_each_end_of_the_range_is_held() -> None:
    bundle = golden_bundle()
    first = {"seq": 2, **{k: v for k, v in bundle["events"][0].items() if k != "seq"}}
    assert bundle["events"][0] == first and bundle["events"][-1]["seq"] == 5
    assert verify_bundle(bundle, {KEY}).ok is True


@pytest.mark.parametrize(
    "digests",
    [
        lambda d: d[::-1],
        lambda d: d[:2],
        lambda d: [d[0], d[1], d[1]],
    ],
    ids=["reordered", "one left out", "one twice"],
)
def test_a_selection_other_than_the_manifests_list_is_refused(digests: Any) -> None:
    bundle = golden_bundle()
    listed = digests([e["digest"] for e in bundle["events"]])
    bundle = resigned(bundle, events_digest=hashlib.sha256("\n".join(listed).encode("ascii")).hexdigest())
    broken(bundle, "the selected events are not those the manifest lists (swapped?)", None)


# --- What a signature covers ------------------------------------------------------------------------


def test_signed_documents_are_canonical_json_of_strings_integers_objects_and_nulls() -> None:
    document = {"b": 1, "a": "é", "c": {"z": [1], "y": None}, "d": None}
    assert verify._signed_bytes(document) == '{"a":"é","b":1,"c":{"y":null,"z":[1]},"d":null}'.encode()


@pytest.mark.parametrize(("value", "kind"), [(True, "bool"), (1.0, "float"), ([1], "list"), ((1,), "tuple")])
def test_a_signed_document_with_another_type_is_refused(value: Any, kind: str) -> None:
    with pytest.raises(ValueError, match=f"^a signed document holds a {kind}$"):
        verify._signed_bytes({"a": 1, "b": value})


def test_a_manifest_holding_a_float_cannot_be_believed_even_when_signed() -> None:
    bundle = golden_bundle()
    bundle["manifest"]["event_count"] = 3.0
    unchecked = json.dumps(bundle["manifest"], sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    bundle["manifest_signature"] = b64(PRIVATE.sign(unchecked.encode()))
    broken(bundle, "the manifest cannot be believed: its signature does not verify", None)


# --- The command ----------------------------------------------------------------------------------------


def test_the_command_trusts_every_key_it_is_given(capsys: pytest.CaptureFixture[str]) -> None:
    assert verify.main([str(BUNDLE_FILE), "--trust", "0" * 64, "--trust", KEY]) == 0
    out, err = capsys.readouterr()
    assert out.startswith("bundle OK: 3 events between #2 and #5") and "check that you trust" not in out
    assert err == ""
    assert verify.main([str(BUNDLE_FILE), "--trust", "0" * 64]) == 1
    out, err = capsys.readouterr()
    assert (out, err) == ("", f"BROKEN at the bundle: it is signed by key {KEY}, which you did not trust\n")


def test_the_command_without_trust_says_which_key_to_check(capsys: pytest.CaptureFixture[str]) -> None:
    assert verify.main([str(BUNDLE_FILE)]) == 0
    assert capsys.readouterr().out.endswith(f"; check that you trust key {KEY}\n")


@pytest.mark.parametrize(
    ("content", "error"),
    [
        (None, "[Errno 2] No such file or directory"),
        (b"\xff\xfe", "'utf-8' codec can't decode byte 0xff in position 0: invalid start byte"),
        (b"{", "Expecting property name enclosed in double quotes: line 1 column 2 (char 1)"),
    ],
    ids=["missing", "not UTF-8", "not JSON"],
)
def test_the_command_refuses_a_file_it_cannot_read(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], content: bytes | None, error: str
) -> None:
    path = tmp_path / "bundle.json"
    if content is not None:
        path.write_bytes(content)
    assert verify.main([str(path), "--trust", KEY]) == 1
    out, err = capsys.readouterr()
    assert out == "" and err.startswith(f"BROKEN at the bundle: it cannot be read as JSON ({error}")


def test_the_command_explains_itself(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "100")
    with pytest.raises(SystemExit) as exited:
        verify.main(["--help"])
    assert exited.value.code == 0
    assert capsys.readouterr().out == (
        "usage: python -m audit.verify [-h] [--trust FINGERPRINT] bundle\n"
        "\n"
        "Verify an audit evidence bundle offline: ``python -m audit.verify BUNDLE [--trust FINGERPRINT]``.\n"
        "\n"
        "positional arguments:\n"
        "  bundle               the bundle file (JSON)\n"
        "\n"
        "options:\n"
        "  -h, --help           show this help message and exit\n"
        "  --trust FINGERPRINT  a checkpoint key you trust (SHA-256 of its raw public key, hex); repeatable\n"
    )


# --- Small parts ---------------------------------------------------------------------------------------


def test_content_shown_with_its_members_in_another_order_is_the_content_recorded() -> None:
    bundle = golden_bundle()
    for event in bundle["events"]:
        event["content"] = dict(reversed(event["content"].items()))
        event["content"]["context"] = dict(reversed(event["content"]["context"].items()))
    assert list(bundle["events"][2]["content"]) != list(json.loads(bundle["events"][2]["canonical"]))
    assert verify_bundle(bundle, {KEY}).ok is True


@pytest.mark.parametrize(
    ("text", "data"),
    [("", b""), ("YQ", b"a"), ("YWI", b"ab"), ("YWJj", b"abc"), ("YWJjZGVmZw", b"abcdefg"), ("-_8", b"\xfb\xff")],
)
def test_unpadded_base64url_of_any_length_is_read(text: str, data: bytes) -> None:
    assert verify._unb64url(text) == data


def test_a_break_carries_its_message_and_event() -> None:
    broken = verify.Broken("content does not match its digest", 4)
    assert (str(broken), broken.message, broken.seq) == (
        "content does not match its digest",
        "content does not match its digest",
        4,
    )
    assert verify.Broken("not a bundle").seq is None
