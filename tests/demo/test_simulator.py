"""The agent simulator (``simulate_agents``) keeps the console lively at a pace people can follow: checks
flow, but access requests and drift bursts come a few times an hour, with a bounded number waiting; what
goes wrong is one line in its log. Driven here with a fake Custos and a fake clock: no server, no sleeping."""

from __future__ import annotations

import importlib.util
import io
import itertools
import logging
import random
import sys
import threading
from collections import Counter
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from custos_client import AccessRequest, CustosError, Decision, RotatedKey, Token
from demo.management.commands.simulate_agents import Command
from demo.simulator import Pace, Ration, SimAgent, Simulator, log, may_ask, summary_line

ROOT = Path(__file__).resolve().parents[2]


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class FakeCustos:
    """Answers as Custos would with nobody at the console: checks are allowed, requests stay unanswered."""

    base_url = "http://custos.invalid"

    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        self.asked: list[tuple[float, str]] = []
        self.intents: Counter[str] = Counter()
        self.rotations = 0

    def exchange_delegation(self, delegation_id: int, **_: Any) -> Token:
        return Token(access_token="token", expires_at=4e9, scope=("crm.contacts:read",))

    def check(self, action: str, resource: str, *, intent: str = "", **_: Any) -> Decision:
        self.intents[intent] += 1
        return Decision(decision="allow", reason="allowed", decision_id="d")

    def request_access(self, scope: str, **_: Any) -> AccessRequest:
        self.asked.append((self.clock.now, scope))
        return AccessRequest(id=len(self.asked), status="pending", scope=scope)

    def access_request(self, request_id: int, **_: Any) -> AccessRequest:
        return AccessRequest(id=request_id, status="pending", scope="crm.contacts:write")

    def spawn_sub_agent(self, name: str, **_: Any) -> dict[str, Any]:
        raise CustosError(403, "forbidden", "no sub-agents in this test")

    def rotate_key(self, key_id: int, **_: Any) -> RotatedKey:
        self.rotations += 1
        return RotatedKey(id=key_id + 1, secret="ck_x_y", expires_at="", previous_id=key_id, previous_expires_at="")


def _simulator(pace: Pace, agents: int = 6) -> tuple[Simulator, Clock, list[FakeCustos]]:
    clock = Clock()
    simulator = Simulator("http://custos.invalid", pace, clock=clock)
    clients = [FakeCustos(clock) for _ in range(agents)]
    for n, client in enumerate(clients):
        simulator.sims.append(
            SimAgent(
                agent_id=n,
                name=f"agent-{n}",
                key_id=n,
                delegation_id=n,
                scopes=["crm.contacts:read"],
                out_of_scope=["crm.contacts:delete", "payments.refunds:approve"],
                askable=["crm.contacts:write"],
                client=client,  # type: ignore[arg-type]
            )
        )
    return simulator, clock, clients


def _run(simulator: Simulator, clock: Clock, hours: float, seed: int = 1) -> int:
    """Every agent steps in turn, ``pace.interval`` apart; returns the most requests ever waiting."""
    rng = random.Random(seed)
    stopped = threading.Event()
    stopped.set()  # nothing here waits: a back-off returns at once
    most_waiting = 0
    steps = int(hours * 3600 / simulator.pace.interval)
    for _ in range(steps):
        for sim in simulator.sims:
            simulator.step_safely(sim, rng, stopped)
            most_waiting = max(most_waiting, simulator.pending())
        clock.now += simulator.pace.interval
    return most_waiting


def test_may_ask_rations_by_the_hour_and_by_what_is_waiting() -> None:
    assert may_ask(per_hour=4, now=0, last=None)  # the first at once
    assert not may_ask(per_hour=4, now=899, last=0)
    assert may_ask(per_hour=4, now=900, last=0)
    assert not may_ask(per_hour=4, now=10_000, last=0, pending=8, max_pending=8)
    assert may_ask(per_hour=4, now=10_000, last=0, pending=7, max_pending=8)


def test_a_ration_says_yes_per_hour_times_an_hour() -> None:
    clock = Clock()
    ration = Ration(per_hour=4, clock=clock)
    yes = 0
    for _ in range(3600):
        yes += ration.take()
        clock.now += 1
    assert yes == 4


def test_access_requests_come_a_few_times_an_hour(settings: Any) -> None:
    pace = Pace()
    simulator, clock, clients = _simulator(pace)
    most_waiting = _run(simulator, clock, hours=3)
    asked = sorted(at for client in clients for at, _ in client.asked)
    assert 3 <= len(asked) <= pace.requests_per_hour * 3 + 1
    assert all(b - a >= 3600 / pace.requests_per_hour for a, b in itertools.pairwise(asked))
    # Nobody answers: each lapses after its TTL, so only one or two wait at any time.
    ttl = settings.CUSTOS_JIT_REQUEST_TTL.total_seconds()
    assert most_waiting <= ttl // (3600 / pace.requests_per_hour) + 1
    bursts = sum(client.intents["explore other systems"] for client in clients)
    assert 3 * 3 <= bursts <= 6 * (pace.drift_per_hour * 3 + 1)  # 3 to 6 stray calls per burst
    checks = sum(client.intents.total() for client in clients)
    assert checks >= 3 * 3600 / pace.interval  # still lively: more than one check a step on average
    rotations = sum(client.rotations for client in clients)
    assert 1 <= rotations <= 2 * 3 * len(clients)  # a key or two per agent and hour at most


def test_no_more_requests_wait_at_once_than_the_bound(settings: Any) -> None:
    settings.CUSTOS_JIT_REQUEST_TTL = timedelta(hours=10)  # nobody answers, and nothing lapses
    pace = Pace(requests_per_hour=60, drift_per_hour=120, max_pending=3)
    simulator, clock, clients = _simulator(pace)
    most_waiting = _run(simulator, clock, hours=2)
    assert most_waiting == 3
    assert sum(len(client.asked) for client in clients) == 3


def test_a_refusal_is_one_line_in_the_log_without_a_traceback(caplog: pytest.LogCaptureFixture) -> None:
    simulator, _, clients = _simulator(Pace(), agents=1)

    def refuse(*_: Any, **__: Any) -> Token:
        raise CustosError(409, "conflict", "a reviewer refused the suspension")

    clients[0].exchange_delegation = refuse  # type: ignore[method-assign]
    stopped = threading.Event()
    stopped.set()
    with caplog.at_level(logging.INFO, logger=log.name):
        simulator.step_safely(simulator.sims[0], random.Random(1), stopped)
    assert [(r.levelno, r.exc_info) for r in caplog.records] == [(logging.INFO, None)]
    assert "409 conflict: a reviewer refused the suspension" in caplog.records[0].getMessage()
    assert simulator.tally.take()["refused"] == 1


def test_a_bug_is_logged_with_its_traceback_and_the_agent_carries_on(caplog: pytest.LogCaptureFixture) -> None:
    simulator, _, clients = _simulator(Pace(), agents=1)

    def broken(*_: Any, **__: Any) -> Token:
        raise KeyError("access_token")

    clients[0].exchange_delegation = broken  # type: ignore[method-assign]
    stopped = threading.Event()
    stopped.set()
    with caplog.at_level(logging.INFO, logger=log.name):
        simulator.step_safely(simulator.sims[0], random.Random(1), stopped)  # does not raise
    assert len(caplog.records) == 1
    assert caplog.records[0].exc_info is not None
    assert simulator.tally.take()["failed"] == 1


def test_the_summary_is_one_line_with_what_matters() -> None:
    counts = Counter({"allow": 950, "deny": 50, "requested": 1, "spawned": 2, "refused": 3})
    line = summary_line(counts, seconds=300, pending=1)
    assert line == (
        "last 5 min: 1000 checks (950 allowed, 50 denied), 1 access requests (1 waiting), "
        "2 sub-agents spawned, 3 errors"
    )
    assert "\n" not in line
    assert summary_line(Counter(), seconds=20, pending=0) == "last 20 s: 0 checks (0 allowed, 0 denied)"


def test_with_a_log_file_request_lines_go_there_and_not_to_the_terminal(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "log" / "agents.log"
    handlers, propagate, level = list(log.handlers), log.propagate, log.level
    try:
        Command()._log_to(path)
        log.info("agent-1: allow crm.contacts:read: allowed")
        for handler in log.handlers:
            handler.flush()
        assert "agent-1: allow crm.contacts:read: allowed" in path.read_text()
        assert not log.propagate  # the root logger (standard error, the terminal) never sees it
        captured = capsys.readouterr()
        assert "agent-1" not in captured.out + captured.err
    finally:
        for handler in log.handlers:
            if handler not in handlers:
                handler.close()
        log.handlers[:] = handlers
        log.propagate, log.level = propagate, level


def test_under_make_run_the_simulators_calls_stay_off_the_terminal(
    tmp_path: Path, capsysbinary: pytest.CaptureFixture[bytes], monkeypatch: pytest.MonkeyPatch
) -> None:
    """scripts/devserver.py keeps the web server's line for each successful API call in web.log only."""
    spec = importlib.util.spec_from_file_location("devserver", ROOT / "scripts" / "devserver.py")
    assert spec is not None and spec.loader is not None
    devserver = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, "devserver", devserver)  # its dataclasses look their module up
    spec.loader.exec_module(devserver)
    lines = [
        b'[30/Nov/2026 20:55:15] "POST /api/v1/check HTTP/1.1" 200 443\n',
        b'[30/Nov/2026 20:55:15] "POST /oauth/token HTTP/1.1" 200 812\n',
        b'[30/Nov/2026 20:55:16] "POST /api/v1/keys/7/rotate/ HTTP/1.1" 409 96\n',
        b'[30/Nov/2026 20:55:17] "GET / HTTP/1.1" 200 18311\n',
        b"Watching for file changes with StatReloader\n",
    ]
    supervisor = devserver.Supervisor([devserver.Child("web", [])], log_dir=tmp_path)
    log_file = tmp_path / "web.log"
    supervisor._pump(devserver.Child("web", []), io.BytesIO(b"".join(lines)), log_file.open("ab"))
    assert log_file.read_bytes() == b"".join(lines)  # the log keeps everything
    shown = capsysbinary.readouterr().out.splitlines()
    assert [line.split(b" | ", 1)[1] for line in shown] == [line.rstrip(b"\n") for line in lines[2:]]
