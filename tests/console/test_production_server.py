"""The README's production web server (granian, WSGI workers calling the application from several
threads) serves Custos as the test client does: health, a console page and its fingerprinted static
file, and the runtime check from concurrent keep-alive connections — every decision recorded once, and
a revocation refusing the very next check on every connection, whichever thread kept the state."""

from __future__ import annotations

import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from audit.models import AuditEvent
from audit.services import Actor
from governance.services.delegations import delegation_revoke
from tests.audit.support import db_url
from tests.console.test_startup import collect_static
from tests.factories import make_chain, make_chain_tokens

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
HOST = "127.0.0.1"
CONNECTIONS = 8
# The README's command ("Running in production"), on a test port.
WORKERS, THREADS = 2, 8


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="module")
def collected(tmp_path_factory: pytest.TempPathFactory) -> Path:
    static_root = tmp_path_factory.mktemp("static")
    collect_static(static_root)
    return static_root


@dataclass
class Server:
    port: int
    main: subprocess.Popen[bytes]

    def workers(self) -> list[int]:
        pid = self.main.pid
        return [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]


@pytest.fixture
def server(collected: Path, tmp_path: Path) -> Iterator[Server]:
    port = _free_port()
    env = {
        **os.environ,
        "DEBUG": "false",
        "DATABASE_URL": db_url(),
        "ALLOWED_HOSTS": HOST,
        "CUSTOS_STATIC_ROOT": str(collected),
        "CUSTOS_MANIFEST_STATIC": "true",
        "CUSTOS_SSL_REDIRECT": "false",  # behind the proxy, which says so with X-Forwarded-Proto
    }
    granian = Path(sys.executable).parent / "granian"
    cmd = [
        *(str(granian), "--interface", "wsgi", "--workers", str(WORKERS), "--blocking-threads", str(THREADS)),
        *("--respawn-failed-workers", "--respawn-interval", "0.5"),
        *("--host", HOST, "--port", str(port), "--no-ws", "config.wsgi:application"),
    ]
    log = tmp_path / "granian.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + 60
        while True:
            assert proc.poll() is None, log.read_text()
            try:
                if _get(port, "/api/v1/health")[0] == 200:
                    break
            except OSError:
                assert time.monotonic() < deadline, log.read_text()
                time.sleep(0.2)
        yield Server(port, proc)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, 9)
            proc.wait()


def _get(port: int, path: str) -> tuple[int, dict[str, str], bytes]:
    conn = http.client.HTTPConnection(HOST, port, timeout=10)
    try:
        conn.request("GET", path, headers={"X-Forwarded-Proto": "https"})
        response = conn.getresponse()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
    finally:
        conn.close()


class Agent:
    """One keep-alive connection asking the check, as an agent's SDK does."""

    def __init__(self, port: int, token: str, resource: str) -> None:
        self.conn = http.client.HTTPConnection(HOST, port, timeout=10)
        self.headers = {
            "Authorization": f"Bearer {token}",
            "Content-Type": "application/json",
            "X-Forwarded-Proto": "https",
        }
        self.resource = resource

    def check(self, request_id: str) -> dict[str, Any]:
        context = {"intent": "serve in production", "tool": "granian", "session_id": "s", "request_id": request_id}
        body = json.dumps({"action": "read", "resource": self.resource, "context": context})
        self.conn.request("POST", "/api/v1/check", body=body, headers=self.headers)
        response = self.conn.getresponse()
        answer = json.loads(response.read())
        assert response.status == 200, answer
        assert response.getheader("Connection", "keep-alive").lower() != "close"
        return dict(answer)


def test_health_a_console_page_and_its_static_file(server: Server) -> None:
    status, _, body = _get(server.port, "/api/v1/health")
    assert status == 200 and json.loads(body)["status"] == "ok"
    status, headers, page = _get(server.port, "/login/")
    assert status == 200, page[:500]
    assert headers["content-type"].startswith("text/html")
    assert headers["strict-transport-security"].startswith("max-age=")
    stylesheet = next(
        part.split('"', 1)[0] for part in page.decode().split('href="')[1:] if part.split('"', 1)[0].endswith(".css")
    )
    assert stylesheet.startswith("/static/") and stylesheet.count(".") >= 2  # the manifest's fingerprinted name
    status, headers, css = _get(server.port, stylesheet)
    assert status == 200 and headers["content-type"].startswith("text/css") and len(css) > 100


def test_concurrent_checks_are_each_recorded_once_and_a_revocation_holds_on_every_connection(server: Server) -> None:
    chain = make_chain(depth=2)
    chain.update(make_chain_tokens(chain))
    agents = [Agent(server.port, chain["tokens"][1], chain["resource"].name) for _ in range(CONNECTIONS)]
    rounds = 5

    def every_agent_checks(pool: ThreadPoolExecutor, label: str) -> list[dict[str, Any]]:
        return list(pool.map(lambda n: agents[n].check(f"{label}-c{n}"), range(CONNECTIONS)))

    with ThreadPoolExecutor(CONNECTIONS) as pool:
        answers = [a for r in range(rounds) for a in every_agent_checks(pool, f"r{r}")]
        assert {a["decision"] for a in answers} == {"allow"}
        ids = [a["decision_id"] for a in answers]
        assert len(set(ids)) == CONNECTIONS * rounds
        recorded = AuditEvent.objects.filter(action="check.allow", context__tool="granian")
        assert sorted(recorded.values_list("context__request_id", flat=True)) == sorted(
            f"r{r}-c{c}" for r in range(rounds) for c in range(CONNECTIONS)
        )

        delegation_revoke(actor=Actor.system(), delegation=chain["links"][1])
        after = every_agent_checks(pool, "after")
    assert {a["decision"] for a in after} == {"deny"}, after
    assert AuditEvent.objects.filter(action="check.deny", context__tool="granian").count() == CONNECTIONS


def test_a_worker_killed_is_replaced_and_checks_go_on(server: Server) -> None:
    chain = make_chain(depth=2)
    chain.update(make_chain_tokens(chain))
    before = server.workers()
    assert len(before) == WORKERS
    os.kill(before[0], signal.SIGKILL)  # as the kernel's OOM killer would
    deadline = time.monotonic() + 30
    while not (len(server.workers()) == WORKERS and before[0] not in server.workers()):
        assert server.main.poll() is None, "granian stopped instead of replacing its worker"
        assert time.monotonic() < deadline, "the killed worker was not replaced"
        time.sleep(0.1)
    answers = [
        Agent(server.port, chain["tokens"][1], chain["resource"].name).check(f"after-kill-{n}") for n in range(8)
    ]
    assert {a["decision"] for a in answers} == {"allow"}
    assert AuditEvent.objects.filter(action="check.allow", context__tool="granian").count() == 8
