"""The decision core alone (no I/O) against Cedar (``cedarpy``) on an equivalent policy with 10k grants.

Both sides answer the same question for a depth-2 chain (human → agent → sub-agent → sub-sub-agent,
the sub-sub-agent acting with its delegation token): is the token unrevoked and the agent's own, is
every link active and unexpired, every agent and sponsor active, the root human active, the scope
delegated on the link in use and in the token, and does the root human still hold it among 10,000
grants? Custos evaluates ``governance.decision.decide_token`` over plain frozen dataclasses; Cedar
evaluates the request against pre-parsed policies and entities, in two models:

- **policies**: 10,000 ``permit`` policies, one per grant the human holds, plus one ``forbid … unless``
  guard that carries the chain rules (forbid overrides permit: the usual way to write guardrails);
- **entities**: one ``permit`` whose condition carries the chain rules and looks the scope up in the
  human's ``grants`` attribute, a set of 10,000 scopes.

Neither side's timing includes building its inputs: Custos's state objects and Cedar's ``PolicySet``
and ``Entities`` handles are made once, as a service would keep them. Cedar's figures include
cedarpy's own per-call work (the context to JSON, the answer from JSON), since a Python caller pays it.

    .venv/bin/python bench/decision_core.py          # about 45 s
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import cedarpy  # noqa: E402

from governance.decision import ChainState, Link, TokenClaims, TokenState, decide_token  # noqa: E402

GRANTS = 10_000
WANTED_RESOURCE = 4_321
NOW = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)


def scope(i: int) -> str:
    return f"r{i}:read"


# --- The situation, once, as plain data -----------------------------------------------------

HELD = [scope(i) for i in range(GRANTS)]
# Each link narrows the one above it (attenuation: 5,000 → 500 → 100 scopes); the wanted scope is
# in all of them and in the token, which carries the leaf link's scopes.
LINK_SCOPES = [HELD[:5000], HELD[4000:4500], HELD[WANTED_RESOURCE : WANTED_RESOURCE + 100]]
TOKEN_SCOPES = LINK_SCOPES[-1]
AGENTS = ["planner", "researcher", "fetcher"]
EXPIRES = [NOW + timedelta(days=2), NOW + timedelta(days=1), NOW + timedelta(hours=20)]


def custos_state(
    *, mid_status: str = "active", leaf_scopes: list[str] | None = None, held: list[str] = HELD
) -> TokenState:
    links = tuple(
        Link(
            delegation_id=n + 1,
            parent_id=n or None,
            status=mid_status if n == 1 else "active",
            expires_at=EXPIRES[n],
            scopes=frozenset(leaf_scopes if (leaf_scopes is not None and n == 2) else LINK_SCOPES[n]),
            agent_id=n + 1,
            agent_name=AGENTS[n],
            agent_status="active",
            sponsor_name="Ada",
            sponsor_status="active",
        )
        for n in range(3)
    )
    chain = ChainState(
        links=links, root_human_id=1, root_human_name="Ada", root_human_status="active", root_holds=frozenset(held)
    )
    return TokenState(
        revoked=False, agent_id=3, chain=chain, scopes=frozenset(TOKEN_SCOPES), audience="crm", delegation_id=3
    )


# What the token says of itself: exactly its record (a genuine token).
CLAIMS = TokenClaims(human_id=1, agent_ids=(3, 2, 1), scopes=frozenset(TOKEN_SCOPES), audience="crm", delegation_id=3)


# --- The same situation for Cedar -----------------------------------------------------------


def _ref(kind: str, ident: str) -> dict[str, Any]:
    return {"__entity": {"type": kind, "id": ident}}


def cedar_entities(
    *, with_grants: bool, mid_status: str = "active", leaf_scopes: list[str] | None = None
) -> list[dict[str, Any]]:
    human_attrs: dict[str, Any] = {"status": "active"}
    if with_grants:
        human_attrs["grants"] = HELD
    entities: list[dict[str, Any]] = [{"uid": {"type": "Human", "id": "h1"}, "attrs": human_attrs, "parents": []}]
    for n, name in enumerate(AGENTS):
        entities.append(
            {
                "uid": {"type": "Agent", "id": name},
                "attrs": {"status": "active", "sponsor": _ref("Human", "h1")},
                "parents": [],
            }
        )
        link: dict[str, Any] = {
            "status": mid_status if n == 1 else "active",
            "expires_at": int(EXPIRES[n].timestamp()),
            "scopes": leaf_scopes if (leaf_scopes is not None and n == 2) else LINK_SCOPES[n],
            "delegate": _ref("Agent", name),
            "root_human": _ref("Human", "h1"),
        }
        if n:
            link["parent"] = _ref("Delegation", f"d{n}")
        entities.append({"uid": {"type": "Delegation", "id": f"d{n + 1}"}, "attrs": link, "parents": []})
    entities.append(
        {
            "uid": {"type": "Token", "id": "t1"},
            "attrs": {"revoked": False, "agent": _ref("Agent", "fetcher"), "scopes": TOKEN_SCOPES},
            "parents": [],
        }
    )
    return entities


def _link_ok(path: str) -> str:
    return (
        f'{path}.status == "active" && {path}.expires_at > context.now && '
        f'{path}.delegate.status == "active" && {path}.delegate.sponsor.status == "active"'
    )


# The chain rules, written once: the token, the link in use, and up to two links above it (the
# configured maximum depth is 3; a deeper chain would need one more nesting level, as Cedar has no
# recursion).
CHAIN_RULES = f"""
    context.token.revoked == false && context.token.agent == principal &&
    context.token.scopes.contains(context.scope) &&
    context.link.delegate == principal && context.link.scopes.contains(context.scope) &&
    {_link_ok("context.link")} &&
    (!(context.link has parent) || ({_link_ok("context.link.parent")} &&
      (!(context.link.parent has parent) || ({_link_ok("context.link.parent.parent")} &&
        !(context.link.parent.parent has parent))))) &&
    context.link.root_human.status == "active"
"""

POLICIES_MODEL = f"forbid(principal, action, resource) unless {{ {CHAIN_RULES} }};\n" + "".join(
    f'permit(principal, action == Action::"read", resource == Resource::"r{i}") '
    f'when {{ context.link.root_human == Human::"h1" }};\n'
    for i in range(GRANTS)
)
ENTITIES_MODEL = (
    f"permit(principal, action, resource) when {{ {CHAIN_RULES} && "
    "context.link.root_human.grants.contains(context.scope) };\n"
)
TRIVIAL = "permit(principal, action, resource);\n"

# Entity ids in cedarpy's structured form: cheaper for it than parsing ``Agent::"fetcher"`` each call.
REQUEST: dict[str, Any] = {
    "principal": {"type": "Agent", "id": "fetcher"},
    "action": {"type": "Action", "id": "read"},
    "resource": {"type": "Resource", "id": f"r{WANTED_RESOURCE}"},
    "context": {
        "scope": scope(WANTED_RESOURCE),
        "now": int(NOW.timestamp()),
        "link": _ref("Delegation", "d3"),
        "token": _ref("Token", "t1"),
    },
}


# --- Timing ---------------------------------------------------------------------------------


def ns_per_call(fn: Callable[[], object], *, budget_s: float, batch_us: float = 200.0) -> float:
    """Median time per call over many short timed batches (each about ``batch_us``) filling ``budget_s``.

    On a shared machine a process is often paused mid-loop; a long loop's average carries those pauses,
    while the median of short batches leaves them out, the same way for both engines."""
    fn()
    start = time.perf_counter_ns()
    fn()
    once = max(time.perf_counter_ns() - start, 1)
    size = max(1, int(batch_us * 1000 / once))
    samples: list[float] = []
    deadline = time.perf_counter() + budget_s
    while time.perf_counter() < deadline or len(samples) < 5:
        start = time.perf_counter_ns()
        for _ in range(size):
            fn()
        samples.append((time.perf_counter_ns() - start) / size)
    return statistics.median(samples)


def _fmt(ns: float) -> str:
    return f"{ns / 1000:,.2f} µs" if ns >= 1000 else f"{ns:,.0f} ns"


def check_equivalence(policies: Any) -> list[str]:
    """The allow case and a few denials: both engines must agree on each."""
    wanted = frozenset({scope(WANTED_RESOURCE)})
    cases: list[tuple[str, dict[str, Any], dict[str, Any], TokenState]] = [
        ("allowed", {}, REQUEST, custos_state()),
        ("middle link revoked", {"mid_status": "revoked"}, REQUEST, custos_state(mid_status="revoked")),
        (
            "scope not delegated",
            {"leaf_scopes": TOKEN_SCOPES[1:]},
            REQUEST,
            custos_state(leaf_scopes=TOKEN_SCOPES[1:]),
        ),
    ]
    lines = []
    for label, variant, request, state in cases:
        custos = decide_token(state, claims=CLAIMS, wanted=wanted, at=NOW)
        a = cedarpy.is_authorized(request, policies, cedar_entities(with_grants=False, **variant)).allowed
        b = cedarpy.is_authorized(request, ENTITIES_MODEL, cedar_entities(with_grants=True, **variant)).allowed
        if not (custos.allowed == a == b):
            raise SystemExit(f"engines disagree on {label}: custos {custos.reason}, cedar policies {a}, entities {b}")
        lines.append(f"{label}: custos {custos.reason}, cedar {'allow' if a else 'deny'} (both models)")
    # A grant the human no longer holds: Custos's root_holds, Cedar's grant policy or grants attribute.
    not_held = [s for s in HELD if s not in wanted]
    custos = decide_token(custos_state(held=not_held), claims=CLAIMS, wanted=wanted, at=NOW)
    without = "".join(line for line in POLICIES_MODEL.splitlines(keepends=True) if f'"r{WANTED_RESOURCE}")' not in line)
    entities_lacking = cedar_entities(with_grants=True)
    entities_lacking[0]["attrs"]["grants"] = not_held
    a = cedarpy.is_authorized(REQUEST, without, cedar_entities(with_grants=False)).allowed
    b = cedarpy.is_authorized(REQUEST, ENTITIES_MODEL, entities_lacking).allowed
    if custos.allowed or a or b:
        raise SystemExit("engines disagree on a grant no longer held")
    lines.append(f"grant no longer held: custos {custos.reason}, cedar deny (both models)")
    return lines


def engine_us(policies: Any, entities: Any, calls: int) -> float:
    """Cedar's own evaluation time, as it reports it (whole microseconds): the engine without cedarpy's
    marshalling of the request and the answer. The median over ``calls`` calls."""
    return statistics.median(
        cedarpy.is_authorized(REQUEST, policies, entities).metrics["authz_duration_micros"] for _ in range(calls)
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--budget", type=float, default=2.0, help="seconds of timed batches per figure")
    args = parser.parse_args()

    build = time.perf_counter()
    policies = cedarpy.PolicySet.from_str(POLICIES_MODEL)
    parse_policies_s = time.perf_counter() - build
    entities_model_policies = cedarpy.PolicySet.from_str(ENTITIES_MODEL)
    trivial = cedarpy.PolicySet.from_str(TRIVIAL)
    entities_a = cedarpy.Entities.from_json_str(json.dumps(cedar_entities(with_grants=False)))
    entities_b = cedarpy.Entities.from_json_str(json.dumps(cedar_entities(with_grants=True)))
    empty = cedarpy.Entities.from_json_str("[]")
    print(f"cedarpy {cedarpy_version()}: {len(policies)} policies parsed once, in {parse_policies_s:.2f} s")
    for line in check_equivalence(policies):
        print(f"  same answer: {line}")

    state = custos_state()
    wanted = frozenset({scope(WANTED_RESOURCE)})

    def custos() -> object:
        return decide_token(state, claims=CLAIMS, wanted=wanted, at=NOW)

    batch = [REQUEST] * 100
    timed: list[tuple[str, Callable[[], object], int]] = [
        ("Custos decide_token (depth-2 chain, 10k grants held)", custos, 1),
        ("Cedar policies model (10,001 policies)", lambda: cedarpy.is_authorized(REQUEST, policies, entities_a), 1),
        (
            "Cedar entities model (1 policy, 10k-grant set)",
            lambda: cedarpy.is_authorized(REQUEST, entities_model_policies, entities_b),
            1,
        ),
        (
            "Cedar entities model, batches of 100 (per request)",
            lambda: cedarpy.is_authorized_batch(batch, entities_model_policies, entities_b),
            100,
        ),
        ("Cedar floor: one `permit` for all, no entities", lambda: cedarpy.is_authorized(REQUEST, trivial, empty), 1),
        (
            "Cedar entities model, policy text re-parsed each call",
            lambda: cedarpy.is_authorized(REQUEST, ENTITIES_MODEL, entities_b),
            1,
        ),
        (
            "Cedar policies model, policy text re-parsed each call",
            lambda: cedarpy.is_authorized(REQUEST, POLICIES_MODEL, entities_a),
            1,
        ),
    ]
    figures = []
    for label, fn, per_call in timed:
        figures.append((label, ns_per_call(fn, budget_s=args.budget) / per_call))
    custos_ns = figures[0][1]
    engine = {
        "Cedar engine only, policies model": engine_us(policies, entities_a, 200) * 1000,
        "Cedar engine only, entities model": engine_us(entities_model_policies, entities_b, 2000) * 1000,
    }

    width = max(len(label) for label, _ in [*figures, *engine.items()])
    print()
    print(f"{'per check (median of short batches)':<{width}}  {'time':>14}  {'vs Custos':>10}")
    for label, ns in [*figures[:5], *engine.items(), *figures[5:]]:
        print(f"{label:<{width}}  {_fmt(ns):>14}  {ns / custos_ns:>9.1f}x")
    calls = dict(figures)
    fastest_call = min(
        calls["Cedar policies model (10,001 policies)"], calls["Cedar entities model (1 policy, 10k-grant set)"]
    )
    fastest_engine = min(engine.values())
    print()
    for what, ns in (("a pre-parsed cedarpy call", fastest_call), ("Cedar's engine alone", fastest_engine)):
        ratio = ns / custos_ns
        print(
            f"Custos vs {what} (the faster model): {ratio:,.1f}x faster (goal >= 10x: "
            f"{'met' if ratio >= 10 else 'NOT met'})"
        )
    print(f"Python {sys.version.split()[0]}, {os.cpu_count()} cores, load average {os.getloadavg()[0]:.2f}")
    return 0


def cedarpy_version() -> str:
    from importlib.metadata import version

    return version("cedarpy")


if __name__ == "__main__":
    sys.exit(main())
