"""MCP tool-call overhead: the Custos middleware against a bare FastMCP server and against cerbos-fastmcp.

One run, one machine, one load driver. Sets up a scratch PostgreSQL database beside DATABASE_URL's
(``bench/scratch.py``), registers an MCP server as a resource with its RFC 8707 URI, gives an agent a
key and a delegation for the server's one tool, and gets the agent's token from the real exchange
with ``audience=<URI>``. Custos runs under gunicorn with the audit sealer, as ``bench/check_http.py``
runs it; the Cerbos PDP from ``../shared/peers/cerbos`` runs with its decision log on and a policy
allowing the tool. Four FastMCP servers, each its own uvicorn process, serve the same tool (``ping``,
returns a constant):

- ``bare``: no authorisation (fastmcp of the main venv);
- ``custos``: ``CustosMiddleware`` (offline token verification, then ``POST /api/v1/check`` per call);
- ``peer-bare``: no authorisation, in the peer venv (cerbos-fastmcp 0.1.1 needs fastmcp 2.x, so its
  baseline is the same fastmcp it runs on);
- ``cerbos``: ``cerbos-fastmcp``'s ``CerbosAuthorizationMiddleware`` (gRPC ``CheckResources`` per call)
  behind an offline verifier of the same Custos token, so both arms verify a token and ask a PDP.

cerbos-fastmcp is not a dependency of Custos: it is installed into a scratch venv under /tmp from
``bench/requirements-mcp-peer.txt`` (exact pins, written on first use) and only that venv's python
imports it. The load driver is the official ``mcp`` client: N concurrent sessions (1 and 16), each
doing a warm-up and then M sequential ``tools/call``, timed one by one; arms alternate within each
round so the noise of a shared machine falls on all alike. Reports p50/p95 and throughput per arm,
the added latency (arm - its bare baseline) of Custos and of Cerbos, and their ratio.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres .venv/bin/python bench/mcp_overhead.py --split
    .venv/bin/python bench/mcp_overhead.py --calls 40 --warmup 5 --rounds 1     # a quick look

``--split`` adds two arms that verify the token without deciding (``custos-auth``, ``cerbos-auth``), to
see where the added time goes. About 5 minutes with ``--split`` on a 2-core box.

Needs PostgreSQL (DATABASE_URL's server), Redis (REDIS_URL), npm for the Cerbos binary (the peer's start
script installs it once) and the package index the main venv's pip uses, for the peer venv.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager, suppress
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import scratch as scratch_db  # bench/scratch.py, beside this script
from check_http import free_port, free_port_pair, sealer
from load import web_server

ROOT = Path(__file__).resolve().parent.parent
PEERS = ROOT.parent / "shared" / "peers"
HOST = "127.0.0.1"  # the only target this benchmark ever sends traffic to
RESOURCE = "bench.mcp"
TOOL = "ping"
PEER_REQUIREMENTS = ROOT / "bench" / "requirements-mcp-peer.txt"
PEER_VENV = Path(tempfile.gettempdir()) / "custos-bench-mcp-peer-venv"
# What the peer venv needs; on first use these are installed and the whole resolved set is frozen into
# PEER_REQUIREMENTS, which later runs install as is (every package pinned, no index named).
PEER_TOP_LEVEL = ("cerbos-fastmcp==0.1.1", "cerbos==0.16.1", "fastmcp==2.14.7", "uvicorn==0.54.0", "PyJWT==2.15.1")
ARMS = ("bare", "custos", "peer-bare", "cerbos")
SPLIT_ARMS = ("custos-auth", "cerbos-auth")  # with --split: token verification alone, no decision
PEER_ARMS = ("peer-bare", "cerbos", "cerbos-auth")  # run by the peer venv's python (fastmcp 2.x)

# The policy the Cerbos arm is judged by: the same state Custos reads from its database (the agent's
# delegated scope, its chain active, the root human's grant), sent by the caller as attributes since
# Cerbos is stateless (see ../shared/peers/cerbos/README.md).
CERBOS_POLICY = f"""\
apiVersion: api.cerbos.dev/v1
resourcePolicy:
  version: default
  resource: mcp_server
  rules:
    - actions: ["tools/call::{TOOL}"]
      effect: EFFECT_ALLOW
      roles: ["agent"]
      condition:
        match:
          all:
            of:
              - expr: '"{RESOURCE}:{TOOL}" in request.principal.attr.scopes'
              - expr: 'request.principal.attr.chain_active == true'
              - expr: '"{RESOURCE}:{TOOL}" in request.principal.attr.root_grants'
"""

# The MCP server each arm runs, written to a temp file and run by the main venv's python (bare, custos)
# or the peer venv's (peer-bare, cerbos): kept as text so that neither this script nor the main venv
# ever imports cerbos-fastmcp, and mypy/ruff of the main venv never see its imports.
SERVER_PROGRAM = """
import json, logging, os, urllib.request
import uvicorn
from fastmcp import FastMCP

# mcp 1.x's server (the peer venv's) warns on every call of a tool no client listed: logging, not work.
logging.getLogger("mcp.server.lowlevel.server").setLevel(logging.ERROR)

ARM = os.environ["BENCH_ARM"]
PORT = int(os.environ["BENCH_PORT"])
CUSTOS = os.environ["BENCH_CUSTOS_URL"]
RESOURCE = os.environ["BENCH_RESOURCE"]
URI = os.environ["BENCH_RESOURCE_URI"]


def build():
    if ARM in ("bare", "peer-bare"):
        return FastMCP("bench")
    if ARM.startswith("custos"):
        from custos_mcp import CustosMiddleware

        custos = CustosMiddleware(custos_url=CUSTOS, issuer=CUSTOS, resource=RESOURCE, resource_uri=URI)
        # custos-auth: the token's verification only, no check (--split: where the added time goes)
        return FastMCP("bench", auth=custos.auth, middleware=[] if ARM == "custos-auth" else [custos])
    import jwt
    from cerbos.sdk.model import Principal
    from cerbos_fastmcp import CerbosAuthorizationMiddleware
    from fastmcp.server.auth import AccessToken, TokenVerifier

    # The same offline verification of the Custos token as the Custos arm does (keys fetched once).
    with urllib.request.urlopen(CUSTOS + "/.well-known/jwks.json", timeout=10) as answer:
        keys = {k["kid"]: jwt.PyJWK(k, algorithm="EdDSA") for k in json.load(answer)["keys"]}

    class Verifier(TokenVerifier):
        async def verify_token(self, token):
            try:
                key = keys[jwt.get_unverified_header(token)["kid"]]
                claims = jwt.decode(token, key, algorithms=["EdDSA"], audience=URI, issuer=CUSTOS)
            except (jwt.PyJWTError, KeyError):
                return None
            return AccessToken(
                token=token,
                client_id=str(claims["act"]["sub"]),
                scopes=claims["scope"].split(),
                expires_at=int(claims["exp"]),
                claims=claims,
            )

    def principal(token):
        # What Cerbos needs to decide as Custos does, given by the caller: Cerbos holds no state.
        return Principal(
            id=token.client_id,
            roles=["agent"],
            attr={"scopes": token.scopes, "chain_active": True, "root_grants": [RESOURCE + ":ping"]},
        )

    server = FastMCP("bench", auth=Verifier())
    if ARM == "cerbos-auth":  # the token's verification only, no PDP (--split)
        return server
    server.add_middleware(
        CerbosAuthorizationMiddleware(
            os.environ["BENCH_CERBOS_GRPC"], principal_builder=principal, resource_kind="mcp_server"
        )
    )
    return server


mcp = build()


@mcp.tool
def ping() -> str:
    return "pong"


uvicorn.run(mcp.http_app(path="/mcp"), host="127.0.0.1", port=PORT, log_level="warning")
"""


# --- The peer venv --------------------------------------------------------------------------


def peer_python() -> Path:
    """The scratch venv's python with cerbos-fastmcp installed from the pinned file (made on first use)."""
    python = PEER_VENV / "bin" / "python"
    stamp = PEER_VENV / ".requirements"
    pinned = PEER_REQUIREMENTS.read_text() if PEER_REQUIREMENTS.exists() else None
    if python.exists() and stamp.exists() and stamp.read_text() == pinned:
        return python
    shutil.rmtree(PEER_VENV, ignore_errors=True)
    # The main venv's base interpreter, so both sides run the same Python.
    subprocess.run([getattr(sys, "_base_executable", sys.executable), "-m", "venv", str(PEER_VENV)], check=True)
    pip = [str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check"]
    if PEER_REQUIREMENTS.exists():
        subprocess.run([*pip, "-r", str(PEER_REQUIREMENTS)], check=True)
    else:
        subprocess.run([*pip, *PEER_TOP_LEVEL], check=True)
        frozen = subprocess.run(
            [str(python), "-m", "pip", "freeze", "--disable-pip-version-check"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        PEER_REQUIREMENTS.write_text(
            "# The peer venv of bench/mcp_overhead.py (cerbos-fastmcp and what it needs), every package\n"
            "# pinned; written by the script on first use from its PEER_TOP_LEVEL. Not a Custos dependency.\n" + frozen
        )
    stamp.write_text(PEER_REQUIREMENTS.read_text())
    return python


# --- Seed -----------------------------------------------------------------------------------


def seed(resource_uri: str) -> str:
    """Human → agent, through the services: a resource with the MCP server's URI, the human's grant, a
    delegation of the one tool, the agent's key, and the token from the exchange bound to the URI."""
    from django.utils import timezone

    from audit.services import Actor
    from governance import oauth, services

    actor = Actor.system("bench")
    human = services.human_create(actor=actor, email="ada@bench.example", name="Ada Bench")
    owner = services.human_create(actor=actor, email="owner@bench.example", name="Resource Owner")
    resource = services.resource_create(
        actor=actor, name=RESOURCE, owner=owner, actions=[TOOL], kind="mcp", uri=resource_uri
    )
    services.grant_create(actor=actor, holder=human, resource=resource, action=TOOL)
    agent = services.agent_create(actor=actor, name="mcp-caller", sponsor=human)
    delegation = services.delegation_create(
        actor=actor,
        delegate=agent,
        scopes=[f"{RESOURCE}:{TOOL}"],
        expires_at=timezone.now() + timedelta(days=1),
        purpose="bench",
        root_human=human,
    )
    key = services.agentkey_create(actor=actor, agent=agent)[1]
    issued = oauth.token_exchange(
        actor_token=key,
        actor_token_type=oauth.TOKEN_TYPE_AGENT_KEY,
        subject_token=str(delegation.pk),
        subject_token_type=oauth.TOKEN_TYPE_DELEGATION,
        requested_lifetime=timedelta(minutes=55),
        audience=resource_uri,
    )
    return issued.access_token


def check_events() -> dict[str, int]:
    from django.db.models import Count

    from audit.models import AuditEvent

    rows = AuditEvent.objects.filter(action__startswith="check.").values("action").annotate(n=Count("id"))
    return {row["action"]: row["n"] for row in rows}


# --- Processes ------------------------------------------------------------------------------


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)


def _wait_port(proc: subprocess.Popen[bytes], port: int, log: Path, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"an MCP server exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
        with socket.socket() as probe:
            if probe.connect_ex((HOST, port)) == 0:
                return
        time.sleep(0.1)
    raise SystemExit(f"an MCP server did not listen on {port} within {timeout:.0f} s:\n{log.read_text()[-3000:]}")


@contextmanager
def cerbos_pdp(workdir: Path, log: Path) -> Iterator[int]:
    """The peer's own start script beside a policy for the benchmark's tool; yields the gRPC port."""
    peer = workdir / "cerbos"
    (peer / "policies").mkdir(parents=True)
    shutil.copy2(PEERS / "cerbos" / "start", peer / "start")
    shutil.copy2(PEERS / "cerbos" / "request.json", peer / "request.json")  # its readiness probe
    (peer / "policies" / "mcp_server.yaml").write_text(CERBOS_POLICY)
    port = free_port_pair()
    # No telemetry: the benchmark sends traffic to 127.0.0.1 only.
    env = {**os.environ, "CERBOS_NO_TELEMETRY": "1"}
    out = subprocess.run(
        [str(peer / "start"), str(port), str(log)], capture_output=True, text=True, timeout=300, env=env
    )
    if out.returncode != 0:
        raise SystemExit(f"the Cerbos PDP did not start:\n{out.stderr[-3000:]}")
    pid = int(out.stdout.split()[-1])
    try:
        yield port + 1
    finally:
        with suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)


@contextmanager
def mcp_server(arm: str, python: Path, port: int, program: Path, env: dict[str, str], log: Path) -> Iterator[str]:
    # FastMCP's own logging at WARNING in every arm: cerbos-fastmcp logs each call at INFO, which would
    # measure the terminal rather than the authorisation.
    env = {**env, "BENCH_ARM": arm, "BENCH_PORT": str(port), "FASTMCP_LOG_LEVEL": "WARNING"}
    if arm not in PEER_ARMS:
        env["PYTHONPATH"] = str(ROOT)  # custos_mcp, from this checkout
    with log.open("wb") as out:
        proc = subprocess.Popen([str(python), str(program)], cwd="/tmp", env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        _wait_port(proc, port, log)
        yield f"http://{HOST}:{port}/mcp"
    finally:
        _stop(proc)


# --- The load driver ------------------------------------------------------------------------


@dataclass(slots=True)
class Run:
    arm: str
    clients: int
    round: int
    latencies: list[float]  # seconds, every measured call of every client
    wall: float  # seconds from the first measured call to the last answer

    @property
    def p50_ms(self) -> float:
        return statistics.median(self.latencies) * 1000

    @property
    def p95_ms(self) -> float:
        return statistics.quantiles(self.latencies, n=20)[18] * 1000

    @property
    def rps(self) -> float:
        return len(self.latencies) / self.wall


async def _client(url: str, token: str, warmup: int, calls: int, start: asyncio.Barrier) -> list[float]:
    import httpx2
    from mcp import ClientSession
    from mcp.client.streamable_http import streamable_http_client

    async with (
        httpx2.AsyncClient(headers={"Authorization": f"Bearer {token}"}, timeout=60) as http,
        streamable_http_client(url, http_client=http) as (read, write),
        ClientSession(read, write) as session,
    ):
        await session.initialize()
        for _ in range(warmup):
            await _call(session)
        await start.wait()  # every session connected and warm before anyone is timed
        latencies = []
        for _ in range(calls):
            began = time.perf_counter()
            await _call(session)
            latencies.append(time.perf_counter() - began)
        return latencies


async def _call(session: Any) -> None:
    result = await session.call_tool(TOOL, {})
    text = " ".join(getattr(part, "text", "") for part in result.content)
    if result.is_error or text != "pong":
        raise SystemExit(f"the tool call was not allowed: {text!r}")


async def drive(url: str, token: str, clients: int, warmup: int, calls: int) -> tuple[list[float], float]:
    start = asyncio.Barrier(clients + 1)
    tasks = [asyncio.create_task(_client(url, token, warmup, calls, start)) for _ in range(clients)]
    await start.wait()
    began = time.perf_counter()
    per_client = await asyncio.gather(*tasks)
    return [latency for latencies in per_client for latency in latencies], time.perf_counter() - began


# --- Report ---------------------------------------------------------------------------------


def report(runs: list[Run], rounds: int, clients_list: list[int]) -> None:
    print(f"\n{'arm':<11} {'clients':>7} {'round':>5} {'calls/s':>8} {'p50 ms':>7} {'p95 ms':>7} {'calls':>6}")
    for r in runs:
        print(
            f"{r.arm:<11} {r.clients:>7} {r.round:>5} {r.rps:>8.1f} {r.p50_ms:>7.2f} {r.p95_ms:>7.2f} "
            f"{len(r.latencies):>6}"
        )
    by = {(r.arm, r.clients, r.round): r for r in runs}
    print("\nAdded latency per call (arm - its bare baseline), p50 and p95, ms; ratio Custos/Cerbos:")
    print(
        f"{'clients':>7} {'round':>5} {'custos p50':>10} {'cerbos p50':>10} {'ratio':>6} "
        f"{'custos p95':>10} {'cerbos p95':>10} {'ratio':>6}"
    )
    for clients in clients_list:
        ratios: list[float] = []
        for n in range(1, rounds + 1):
            c50 = by["custos", clients, n].p50_ms - by["bare", clients, n].p50_ms
            k50 = by["cerbos", clients, n].p50_ms - by["peer-bare", clients, n].p50_ms
            c95 = by["custos", clients, n].p95_ms - by["bare", clients, n].p95_ms
            k95 = by["cerbos", clients, n].p95_ms - by["peer-bare", clients, n].p95_ms
            ratios.append(c50 / k50 if k50 > 0 else float("inf"))
            print(
                f"{clients:>7} {n:>5} {c50:>10.2f} {k50:>10.2f} {_ratio(c50, k50):>6} "
                f"{c95:>10.2f} {k95:>10.2f} {_ratio(c95, k95):>6}"
            )
        median = statistics.median(ratios)
        verdict = "met" if median <= 1.0 else "NOT met"
        print(f"{clients:>7} median p50 ratio {median:.2f}: goal (Custos added <= 1.0 x Cerbos added) {verdict}")


def _ratio(ours: float, theirs: float) -> str:
    return f"{ours / theirs:.2f}" if theirs > 0 else "n/a"


# --- Main -----------------------------------------------------------------------------------


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--calls", type=int, default=200, help="measured calls per client (default 200)")
    parser.add_argument("--warmup", type=int, default=20, help="warm-up calls per client (default 20)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--clients", default="1,16", help="concurrent sessions, comma-separated")
    parser.add_argument("--workers", type=int, default=2 * (os.cpu_count() or 1), help="gunicorn workers")
    parser.add_argument(
        "--split", action="store_true", help="also time token verification alone (custos-auth, cerbos-auth)"
    )
    args = parser.parse_args()
    clients_list = [int(n) for n in args.clients.split(",")]
    # The client SDK warns on every call to a tool it has not listed (it cannot validate structured
    # output); listing would cost a PDP round trip per tool in the Cerbos arm, so quiet it instead.
    logging.getLogger("client").setLevel(logging.ERROR)

    python_peer = peer_python()
    arms = ARMS + SPLIT_ARMS if args.split else ARMS
    custos_port, mcp_ports = free_port(), {arm: free_port() for arm in arms}
    base = f"http://{HOST}:{custos_port}"
    uri = f"http://{HOST}:{mcp_ports['custos']}/mcp"
    settings = {
        "DEBUG": "false",
        "ALLOWED_HOSTS": HOST,
        "CUSTOS_SECURE": "false",
        "CUSTOS_MANIFEST_STATIC": "false",
        "CUSTOS_LOG_LEVEL": "WARNING",
        "CUSTOS_ISSUER": base,  # tokens name this Custos, as a deployed one names itself
        "CUSTOS_TOKEN_LIFETIME": "60m",
        "CUSTOS_TOKEN_MAX_LIFETIME": "60m",
    }
    runs: list[Run] = []
    with scratch_db.django_in_scratch(**settings), tempfile.TemporaryDirectory(prefix="custos-mcp-bench-") as tmp:
        work = Path(tmp)
        token = seed(uri)
        env = dict(os.environ)
        program = work / "server.py"
        program.write_text(SERVER_PROGRAM)
        logs = ROOT / "var"
        logs.mkdir(exist_ok=True)
        with (
            web_server("gunicorn", env, custos_port, args.workers, logs / "bench-mcp-gunicorn.log", []),
            sealer(env, logs / "bench-mcp-sealer.log"),
            cerbos_pdp(work, logs / "bench-mcp-cerbos-decisions.log") as grpc_port,
        ):
            env.update(
                BENCH_CUSTOS_URL=base,
                BENCH_RESOURCE=RESOURCE,
                BENCH_RESOURCE_URI=uri,
                BENCH_CERBOS_GRPC=f"{HOST}:{grpc_port}",
            )
            with ExitStack() as servers:
                urls = {
                    arm: servers.enter_context(
                        mcp_server(
                            arm,
                            python_peer if arm in PEER_ARMS else Path(sys.executable),
                            mcp_ports[arm],
                            program,
                            env,
                            logs / f"bench-mcp-{arm}.log",
                        )
                    )
                    for arm in arms
                }
                print(f"Custos {base} ({args.workers} gunicorn workers + sealer), Cerbos PDP gRPC {grpc_port}")
                for round_no in range(1, args.rounds + 1):
                    for clients in clients_list:
                        for arm in arms:
                            latencies, wall = asyncio.run(drive(urls[arm], token, clients, args.warmup, args.calls))
                            run = Run(arm, clients, round_no, latencies, wall)
                            runs.append(run)
                            print(
                                f"round {round_no} {arm:<11} x{clients:<2} {run.rps:7.1f} calls/s "
                                f"p50 {run.p50_ms:6.2f} ms p95 {run.p95_ms:6.2f} ms",
                                flush=True,
                            )
        report(runs, args.rounds, clients_list)
        events = check_events()
        print(f"\nCustos recorded check events: {events}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
