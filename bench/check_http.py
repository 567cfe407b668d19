"""The runtime check over HTTP against a bare endpoint and the Cerbos PDP, in one run.

Sets up a fresh PostgreSQL database, seeds a human → agent → sub-agent → sub-sub-agent chain through
the services, exchanges tokens down the chain (RFC 8693) to get the sub-sub-agent's token, starts the
README's web server (granian, a worker per core, 8 threads each; ``--server gunicorn`` for gunicorn's
sync workers) and the audit sealer as production runs them, and the Cerbos PDP
(``../shared/peers/cerbos``, decision log on), and drives ``GET /api/v1/health``, ``POST /api/v1/check``
and Cerbos's ``POST /api/check/resources`` with wrk, alternating them so that the noise of a shared
machine falls on all alike. Prints the figures, the ratios the goals are about (the
check against the bare endpoint and against Cerbos), the CPU each spends per request (from ``/proc``),
counts the audit events the run wrote and verifies the chain.

    .venv/bin/python bench/check_http.py            # about 3 minutes
    .venv/bin/python bench/check_http.py --duration 5 --rounds 1   # a quick look

Needs PostgreSQL on 127.0.0.1:5432 (user postgres, trust auth), Redis on 127.0.0.1:6379, wrk
(``apt-get install -y wrk``) and, for the peer, npm (its start script installs the pinned binary once).
The database named by ``--database`` is dropped and created again.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import secrets
import shlex
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext, suppress
from dataclasses import asdict, dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

from load import HOST, CpuMeter, WrkResult, cpu_us, machine_busy_us, parse_wrk, readme_workers, web_server

ROOT = Path(__file__).resolve().parent.parent
LUA_SCRIPT = ROOT / "bench" / "check_post.lua"
CERBOS_LUA_SCRIPT = ROOT / "bench" / "cerbos_post.lua"
PEERS = ROOT.parent / "shared" / "peers"
RESOURCE = "bench.records"
TOKEN_LIFETIME = "60m"


# --- Environment, database, seed ------------------------------------------------------------


def bench_env(database: str, redis_url: str, settings_module: str = "config.settings") -> dict[str, str]:
    """One environment for this process and for the server, so both read the same settings."""
    env = dict(os.environ)
    env.update(
        DJANGO_SETTINGS_MODULE=settings_module,
        DEBUG="false",
        SECRET_KEY=os.environ.get("SECRET_KEY") or secrets.token_urlsafe(64),
        ALLOWED_HOSTS=HOST,
        CUSTOS_SECURE="false",
        CUSTOS_MANIFEST_STATIC="false",
        CUSTOS_LOG_LEVEL="WARNING",
        DATABASE_URL=f"postgres://postgres@{HOST}:5432/{database}",
        REDIS_URL=redis_url,
        # Long enough for the whole run: an expired token would turn every check into a deny.
        CUSTOS_TOKEN_LIFETIME=TOKEN_LIFETIME,
        CUSTOS_TOKEN_MAX_LIFETIME=TOKEN_LIFETIME,
    )
    return env


def recreate_database(name: str) -> None:
    import psycopg
    from psycopg import sql

    if not re.fullmatch(r"custos_bench\w*", name):
        raise SystemExit(f"refusing to drop {name!r}: the benchmark only drops databases named custos_bench*")
    with psycopg.connect(f"postgresql://postgres@{HOST}:5432/postgres", autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))


def seed() -> dict[str, Any]:
    """The chain, built as the product builds it: services only, then three token exchanges."""
    import jwt
    from django.utils import timezone

    from audit.services import Actor
    from governance import oauth, services

    actor = Actor.system("bench")
    now = timezone.now()
    human = services.human_create(actor=actor, email="ada@bench.example", name="Ada Bench")
    owner = services.human_create(actor=actor, email="owner@bench.example", name="Resource Owner")
    resource = services.resource_create(actor=actor, name=RESOURCE, owner=owner, actions=["read", "write"])
    services.grant_create(actor=actor, holder=human, resource=resource, action="read")
    agent = services.agent_create(actor=actor, name="planner", sponsor=human)
    sub = services.agent_create(actor=actor, name="researcher", parent=agent)
    subsub = services.agent_create(actor=actor, name="fetcher", parent=sub)
    scopes = [f"{RESOURCE}:read"]
    root_link = services.delegation_create(
        actor=actor,
        delegate=agent,
        scopes=scopes,
        expires_at=now + timedelta(days=2),
        purpose="bench",
        root_human=human,
        max_depth=2,
    )
    middle_link = services.delegation_create(
        actor=actor,
        delegate=sub,
        scopes=scopes,
        expires_at=now + timedelta(days=1),
        purpose="bench",
        parent=root_link,
        max_depth=1,
    )
    services.delegation_create(
        actor=actor,
        delegate=subsub,
        scopes=scopes,
        expires_at=now + timedelta(days=1),
        purpose="bench",
        parent=middle_link,
        max_depth=0,
    )
    keys = [services.agentkey_create(actor=actor, agent=a)[1] for a in (agent, sub, subsub)]

    lifetime = timedelta(minutes=55)
    issued = oauth.token_exchange(
        actor_token=keys[0],
        actor_token_type=oauth.TOKEN_TYPE_AGENT_KEY,
        subject_token=str(root_link.pk),
        subject_token_type=oauth.TOKEN_TYPE_DELEGATION,
        requested_lifetime=lifetime,
    )
    for key in keys[1:]:  # each sub-agent exchanges its parent's token for its own
        issued = oauth.token_exchange(
            actor_token=key,
            actor_token_type=oauth.TOKEN_TYPE_AGENT_KEY,
            subject_token=issued.access_token,
            subject_token_type=oauth.TOKEN_TYPE_JWT,
            requested_lifetime=lifetime,
        )
    claims = jwt.decode(issued.access_token, options={"verify_signature": False})
    return {"token": issued.access_token, "claims": claims, "expires_in": issued.expires_in}


def audit_head() -> int:
    """The id of the latest event recorded so far (recorded, not necessarily sealed yet)."""
    from django.db.models import Max

    from audit.models import AuditEvent

    return int(AuditEvent.objects.aggregate(last=Max("id"))["last"] or 0)


class CommitSampler:
    """Decisions per commit while a load runs: every 0.1 s, the events waiting in the log's intake (audit
    migration 0013) counted against their inserting transactions (``xmin``), summed over the samples.
    Read before the sealer moves them: in the log proper their ``xmin`` is the sealer's batch."""

    def __init__(self) -> None:
        self.events = self.commits = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="commit-sampler", daemon=True)

    def _run(self) -> None:
        from django.db import connection

        try:
            while not self._stop.wait(0.1):
                with connection.cursor() as cursor:
                    cursor.execute("SELECT count(*), count(DISTINCT xmin::text) FROM audit_intake")
                    events, commits = cursor.fetchone()
                self.events += events
                self.commits += commits
        finally:
            connection.close()  # this thread's

    def __enter__(self) -> CommitSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    @property
    def per_commit(self) -> float:
        return self.events / self.commits if self.commits else 0.0


def audit_actions_since(event_id: int) -> dict[str, int]:
    from django.db.models import Count

    from audit.models import AuditEvent

    rows = AuditEvent.objects.filter(id__gt=event_id).values("action").annotate(n=Count("id")).order_by("action")
    return {row["action"]: row["n"] for row in rows}


# --- The server -----------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def free_port_pair() -> int:
    """A port whose next one is free too (Cerbos listens on both: HTTP and gRPC)."""
    for _ in range(100):
        port = free_port()
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            try:
                sock.bind((HOST, port + 1))
            except OSError:
                continue
        return port
    raise SystemExit("no two free ports in a row for the Cerbos PDP")


def check_body() -> str:
    # The same body the Lua script sends (bench/check_post.lua).
    context = {
        "intent": "benchmark the runtime check",
        "tool": "wrk",
        "session_id": "bench-session",
        "request_id": "bench-request",
    }
    return json.dumps({"action": "read", "resource": RESOURCE, "context": context}, separators=(",", ":"))


def curl_json(args: list[str]) -> dict[str, Any]:
    out = subprocess.run(["curl", "-sS", "--max-time", "10", *args], capture_output=True, text=True, check=True)
    return dict(json.loads(out.stdout))


def smoke_test(base: str, token: str) -> dict[str, Any]:
    health = curl_json([f"{base}/api/v1/health"])
    if health != {"status": "ok"}:
        raise SystemExit(f"/api/v1/health answered {health!r}")
    answer = curl_json(
        [
            "-X",
            "POST",
            "-H",
            "Content-Type: application/json",
            "-H",
            f"Authorization: Bearer {token}",
            "--data",
            check_body(),
            f"{base}/api/v1/check",
        ]
    )
    if answer.get("decision") != "allow" or len(answer.get("delegation_chain", [])) != 3:
        raise SystemExit(f"the check did not allow the depth-2 chain: {answer!r}")
    return answer


# --- Load ----------------------------------------------------------------------------------


@dataclass(slots=True)
class Target:
    """One endpoint under load: its URL, the wrk script that builds its request, and whose CPU it costs."""

    name: str
    url: str
    script: Path | None
    cpu: Callable[[], tuple[float, float, float]]


def run_wrk(target: Target, *, connections: int, duration: int, env: dict[str, str], round_no: int) -> WrkResult:
    threads = 1 if connections == 1 else 2
    cmd = ["wrk", f"-t{threads}", f"-c{connections}", f"-d{duration}s", "--latency", "--timeout", "5s"]
    if target.script is not None:
        cmd += ["-s", str(target.script)]
    cmd.append(target.url)
    before, busy = target.cpu(), machine_busy_us()
    with CommitSampler() if target.name == "check" else nullcontext() as sampler:
        out = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=duration + 30, check=True)
    after, busy = target.cpu(), machine_busy_us() - busy
    result = parse_wrk(out.stdout, endpoint=target.name, connections=connections, round_no=round_no)
    if result.requests:
        result.app_cpu_us = (after[0] - before[0]) / result.requests
        result.db_cpu_us = (after[1] - before[1]) / result.requests
        result.sealer_cpu_us = (after[2] - before[2]) / result.requests
        result.machine_cpu_us = busy / result.requests
    if sampler is not None:
        result.per_commit = sampler.per_commit
    return result


# --- Report ---------------------------------------------------------------------------------


def _ms(us: float) -> str:
    return f"{us / 1000:.2f}"


def print_runs(results: list[WrkResult]) -> None:
    print(
        f"{'endpoint':<8} {'conns':>5} {'round':>5} {'req/s':>8} {'p50 ms':>7} {'p90 ms':>7} {'p99 ms':>8} "
        f"{'requests':>8} {'non-2xx':>7} {'app CPU ms/req':>14} {'db CPU ms/req':>13} {'sealer':>6}"
    )
    for r in results:
        print(
            f"{r.endpoint:<8} {r.connections:>5} {r.round:>5} {r.rps:>8.1f} {_ms(r.p50_us):>7} {_ms(r.p90_us):>7} "
            f"{_ms(r.p99_us):>8} {r.requests:>8} {r.non_2xx:>7} {_ms(r.app_cpu_us):>14} {_ms(r.db_cpu_us):>13} "
            f"{_ms(r.sealer_cpu_us):>6}"
        )


def summarise(results: list[WrkResult]) -> dict[tuple[str, int], dict[str, float]]:
    """Median over the rounds of each endpoint and connection count."""
    summary: dict[tuple[str, int], dict[str, float]] = {}
    for key in sorted({(r.endpoint, r.connections) for r in results}):
        runs = [r for r in results if (r.endpoint, r.connections) == key]
        summary[key] = {
            metric: statistics.median(getattr(r, metric) for r in runs)
            for metric in ("rps", "p50_us", "p99_us", "app_cpu_us", "db_cpu_us", "sealer_cpu_us", "machine_cpu_us")
        }
    return summary


def paired_ratios(results: list[WrkResult], connections: int, metric: str, against: str = "health") -> list[float]:
    """check ÷ the other endpoint for each round, each against the run beside it in that round."""
    by_round = {(r.endpoint, r.round): r for r in results if r.connections == connections}
    rounds = sorted({r.round for r in results if r.connections == connections})
    return [getattr(by_round["check", n], metric) / getattr(by_round[against, n], metric) for n in rounds]


def _verdict(met: bool) -> str:
    return "met" if met else "NOT met"


@contextmanager
def sealer(env: dict[str, str], log: Path) -> Iterator[subprocess.Popen[bytes]]:
    """The audit sealer, as production runs it beside the web processes."""
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "manage.py", "audit_seal"], cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT
        )
    try:
        yield proc
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)


@contextmanager
def cerbos(start: Path, log: Path) -> Iterator[tuple[int, int]]:
    """The peer: a Cerbos PDP with its decision log on, started by its own script. Yields (port, pid)."""
    port = free_port_pair()
    out = subprocess.run([str(start), str(port), str(log)], capture_output=True, text=True, timeout=300)
    if out.returncode != 0:
        raise SystemExit(f"the Cerbos PDP did not start:\n{out.stderr[-3000:]}")
    pid = int(out.stdout.split()[-1])
    try:
        yield port, pid
    finally:
        with suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)


def cerbos_smoke_test(port: int, body: Path) -> None:
    answer = curl_json(
        ["-X", "POST", "-H", "Content-Type: application/json", "--data-binary", f"@{body}", cerbos_url(port)]
    )
    effect = answer["results"][0]["actions"]["read"]
    if effect != "EFFECT_ALLOW":
        raise SystemExit(f"Cerbos did not allow the benchmark request: {answer!r}")


def cerbos_url(port: int) -> str:
    return f"http://{HOST}:{port}/api/check/resources"


def measure(args: argparse.Namespace, env: dict[str, str], token: str) -> tuple[list[WrkResult], list[WrkResult]]:
    port = free_port()
    base = f"http://{HOST}:{port}"
    logs = ROOT / "var"
    logs.mkdir(exist_ok=True)
    results: list[WrkResult] = []
    peer_dir = args.peers / "cerbos"
    env["CUSTOS_BENCH_CERBOS_BODY"] = str(peer_dir / "request.json")
    with (
        web_server(
            args.server,
            env,
            port,
            args.workers or readme_workers(args.server),
            logs / f"bench-{args.server}.log",
            shlex.split(args.server_options),
        ) as proc,
        sealer(env, logs / "bench-sealer.log") as sealing,
        cerbos(peer_dir / "start", logs / "bench-cerbos-decisions.log") as (peer_port, peer_pid),
    ):
        answer = smoke_test(base, token)
        print(
            f"curl check: {answer['decision']} ({answer['reason']}), actors "
            f"{[a['label'] for a in answer['actors']]}, chain {[link['id'] for link in answer['delegation_chain']]}"
        )
        cerbos_smoke_test(peer_port, peer_dir / "request.json")
        print(f"Cerbos PDP {peer_port} (pid {peer_pid}) allows the same request; decision log on")
        meter = CpuMeter(master=proc.pid, database=args.database, sealer=sealing.pid)
        targets = [
            Target("health", f"{base}/api/v1/health", None, meter.sample),
            Target("check", f"{base}/api/v1/check", LUA_SCRIPT, meter.sample),
            Target("cerbos", cerbos_url(peer_port), CERBOS_LUA_SCRIPT, lambda: (cpu_us(peer_pid), 0.0, 0.0)),
        ]
        # Warm every worker (connections, prepared statements, the signature cache) before measuring.
        warm = [run_wrk(t, connections=16, duration=2, env=env, round_no=0) for t in targets]
        for connections in (1, 16):
            for round_no in range(1, args.rounds + 1):
                for target in targets:
                    results.append(
                        run_wrk(target, connections=connections, duration=args.duration, env=env, round_no=round_no)
                    )
    return warm, results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--database", default="custos_bench", help="dropped and created again (custos_bench*)")
    parser.add_argument("--redis", default=f"redis://{HOST}:6379/5")
    parser.add_argument("--duration", type=int, default=8, help="seconds per wrk run")
    parser.add_argument("--rounds", type=int, default=3, help="alternations of health and check per connection count")
    parser.add_argument(
        "--workers", type=int, help="server worker processes (default the README's: granian 1, gunicorn 2 per core)"
    )
    parser.add_argument("--server", choices=("granian", "gunicorn"), default="granian", help="the WSGI server")
    parser.add_argument(
        "--server-options",
        "--gunicorn",
        default="",
        help='more server options, e.g. "--worker-class gthread --threads 4" (gunicorn), "--blocking-threads 2"',
    )
    parser.add_argument("--peers", type=Path, default=PEERS, help="where the peers' start scripts are")
    parser.add_argument("--settings", default="config.settings", help="Django settings module, to compare variants")
    parser.add_argument("--json", type=Path, help="also write the figures to this file")
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is missing: apt-get install -y wrk")

    env = bench_env(args.database, args.redis, args.settings)
    os.environ.update(env)
    sys.path.insert(0, str(ROOT))
    recreate_database(args.database)
    import django
    from django.core.management import call_command
    from django.db import connections

    django.setup()
    call_command("migrate", verbosity=0)
    seeded = seed()
    claims = seeded["claims"]
    print(
        f"token: sub={claims['sub']} act={json.dumps(claims['act'])} delegation={claims['delegation_id']} "
        f"expires_in={seeded['expires_in']} s"
    )
    env["CUSTOS_BENCH_TOKEN"] = seeded["token"]
    env["CUSTOS_BENCH_RESOURCE"] = RESOURCE
    head_before = audit_head()
    connections.close_all()

    load_before = os.getloadavg()
    warm, results = measure(args, env, seeded["token"])
    load_after = os.getloadavg()

    from audit.sealer import seal_pending
    from audit.verification import verify_chain

    seal_pending()  # what the sealer had not reached when it was stopped
    actions = audit_actions_since(head_before)
    verified = verify_chain()
    print()
    print_runs(results)
    summary = summarise(results)
    print()
    print(f"median of {args.rounds} rounds:")
    print(
        f"{'endpoint':<8} {'conns':>5} {'req/s':>8} {'p50 ms':>7} {'p99 ms':>8} {'app CPU ms/req':>14} "
        f"{'db CPU ms/req':>13} {'sealer':>6}"
    )
    for (endpoint, conns), s in summary.items():
        print(
            f"{endpoint:<8} {conns:>5} {s['rps']:>8.1f} {_ms(s['p50_us']):>7} {_ms(s['p99_us']):>8} "
            f"{_ms(s['app_cpu_us']):>14} {_ms(s['db_cpu_us']):>13} {_ms(s['sealer_cpu_us']):>6}"
        )
    latency = paired_ratios(results, 1, "p50_us")
    throughput = paired_ratios(results, 16, "rps")
    latency_peer = paired_ratios(results, 1, "p50_us", against="cerbos")
    throughput_peer = paired_ratios(results, 16, "rps", against="cerbos")
    cpu = {
        endpoint: sum(summary[endpoint, 16][m] for m in ("app_cpu_us", "db_cpu_us", "sealer_cpu_us"))
        for endpoint in ("health", "check", "cerbos")
    }

    def ratio_line(label: str, ratios: list[float], goal: str, met: bool) -> None:
        rounds = ", ".join(f"{x:.2f}" for x in ratios)
        print(f"{label:<42} {statistics.median(ratios):.2f}  per round {rounds}  (goal {goal}: {_verdict(met)})")

    print()
    ratio_line("p50(check)/p50(bare) at 1 connection:", latency, "<= 2.0", statistics.median(latency) <= 2.0)
    ratio_line("rps(check)/rps(bare) at 16 connections:", throughput, ">= 0.5", statistics.median(throughput) >= 0.5)
    ratio_line(
        "p50(check)/p50(Cerbos) at 1 connection:", latency_peer, "<= 1.5", statistics.median(latency_peer) <= 1.5
    )
    ratio_line(
        "rps(check)/rps(Cerbos) at 16 connections:",
        throughput_peer,
        ">= 1.0",
        statistics.median(throughput_peer) >= 1.0,
    )
    print(
        f"CPU per request at 16 connections: health {_ms(cpu['health'])} ms, check {_ms(cpu['check'])} ms "
        f"(web workers {_ms(summary['check', 16]['app_cpu_us'])}, PostgreSQL {_ms(summary['check', 16]['db_cpu_us'])}"
        f", sealer {_ms(summary['check', 16]['sealer_cpu_us'])})"
        f", Cerbos {_ms(cpu['cerbos'])} ms"
    )
    machine = {endpoint: _ms(summary[endpoint, 16]["machine_cpu_us"]) for endpoint in ("health", "check", "cerbos")}
    print(
        f"whole machine's busy CPU per request at 16 connections (wrk, kernel and background work included): "
        f"health {machine['health']} ms, check {machine['check']} ms, Cerbos {machine['cerbos']} ms"
    )
    batched = [r.per_commit for r in results if r.endpoint == "check" and r.connections == 16]
    print(f"check decisions per commit at 16 connections: {', '.join(f'{x:.2f}' for x in batched)} (per round)")
    counted = sum(r.requests for r in [*warm, *results] if r.endpoint == "check") + 1  # + the curl check
    print(
        f"audit events written during the run: {sum(actions.values())} {actions}; check responses counted by "
        f"wrk + curl: {counted} (requests in flight when a wrk run stops are answered, not counted)"
    )
    print(
        f"audit chain: {'intact' if verified.ok else 'BROKEN'} ({verified.checked} events checked"
        f"{'' if verified.ok else ', ' + verified.problem})"
    )
    failures = sum(r.non_2xx for r in [*warm, *results])
    print(
        f"non-2xx responses: {failures}; load average before {load_before[0]:.2f}, after {load_after[0]:.2f} "
        f"on {os.cpu_count()} cores"
    )
    if args.json:
        report = {
            "runs": [asdict(r) for r in results],
            "latency_ratio_c1": statistics.median(latency),
            "throughput_ratio_c16": statistics.median(throughput),
            "latency_ratio_cerbos_c1": statistics.median(latency_peer),
            "throughput_ratio_cerbos_c16": statistics.median(throughput_peer),
            "audit_events": actions,
            "chain_intact": verified.ok,
            "load_average": [load_before[0], load_after[0]],
        }
        args.json.write_text(json.dumps(report, indent=2))
    return 0 if verified.ok and failures == 0 and set(actions) == {"check.allow"} else 1


if __name__ == "__main__":
    sys.exit(main())
