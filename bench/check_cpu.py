"""CPU per runtime check, in instructions: the WSGI hot path in-process, against the bare health endpoint.

Seconds on a shared two-core machine move with whatever else runs; instruction counts under callgrind
do not. This seeds the depth-2 chain of ``bench/check_http.py`` (human → planner → researcher →
fetcher, the fetcher's token from three exchanges) into the database DATABASE_URL names — dropped and
created again, so name one that is yours — and then calls ``config.wsgi.application`` in-process with
built WSGI environs: ``POST /api/v1/check`` (``CheckFastPath``, the audited check, its event written
to PostgreSQL) and ``GET /api/v1/health`` (Django's full handler, DRF, no database). No socket and no
gunicorn: what is counted is the Python of one request in the worker, not the server's.

    export DATABASE_URL=postgres://postgres@127.0.0.1:5432/custos_md REDIS_URL=redis://127.0.0.1:6379/14
    .venv/bin/python bench/check_cpu.py seed                      # once: migrate, seed, write the token
    .venv/bin/python bench/check_cpu.py profile -n 3000           # cProfile and wall time, no valgrind
    .venv/bin/python bench/check_cpu.py callgrind                 # instructions per request (~2 min)

``callgrind`` runs ``valgrind --tool=callgrind`` on ``run`` per endpoint and counts only the instructions
executed inside the timed loop (``run`` calls it through ``operator.call``, a C function nothing else
on these paths calls, and callgrind collects only while inside it: ``--toggle-collect``), so start-up,
Django's set-up and the warm-up are not counted; ``--linear`` also runs 2 x ``-n`` requests to show the
count is per request. The PostgreSQL backend's own work is another process and not counted, nor is the
kernel's (a check made four system calls: send, poll, receive, and the random bytes of its nonce).
"""

from __future__ import annotations

import argparse
import io
import json
import operator
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
STATE = Path(tempfile.gettempdir()) / "custos_check_cpu_token.json"
HOST = "127.0.0.1"


def _django(**env: str) -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    os.environ.update(
        DEBUG="false",
        ALLOWED_HOSTS=HOST,
        CUSTOS_SECURE="false",
        CUSTOS_MANIFEST_STATIC="false",
        CUSTOS_LOG_LEVEL="WARNING",
        CUSTOS_TOKEN_LIFETIME="60m",
        CUSTOS_TOKEN_MAX_LIFETIME="60m",
        **env,
    )
    sys.path.insert(0, str(ROOT))


def seed(args: argparse.Namespace) -> None:
    import psycopg
    from psycopg import sql

    url = os.environ["DATABASE_URL"]
    name = url.rsplit("/", 1)[1]
    if not re.fullmatch(r"custos_\w+", name) or name in {"custos", "custos_bench"}:
        raise SystemExit(f"refusing to drop {name!r}")
    with psycopg.connect(url.rsplit("/", 1)[0] + "/postgres", autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    _django()
    import django
    from django.core.management import call_command

    django.setup()
    call_command("migrate", verbosity=0)
    sys.path.insert(0, str(ROOT / "bench"))
    from check_http import RESOURCE
    from check_http import seed as seed_chain

    seeded = seed_chain()
    STATE.write_text(json.dumps({"token": seeded["token"], "resource": RESOURCE}))
    print(f"seeded {name}; token in {STATE}")


def _environs() -> tuple[dict[str, Any], dict[str, Any], bytes]:
    state = json.loads(STATE.read_text())
    context = {
        "intent": "benchmark the runtime check",
        "tool": "wrk",
        "session_id": "bench-session",
        "request_id": "bench-request",
    }
    body = json.dumps({"action": "read", "resource": state["resource"], "context": context}, separators=(",", ":"))
    common = {
        "SERVER_NAME": HOST,
        "SERVER_PORT": "8050",
        "HTTP_HOST": f"{HOST}:8050",
        "REMOTE_ADDR": HOST,
        "SERVER_PROTOCOL": "HTTP/1.1",
        "SCRIPT_NAME": "",
        "QUERY_STRING": "",
        "wsgi.url_scheme": "http",
        "wsgi.version": (1, 0),
        "wsgi.errors": sys.stderr,
        "wsgi.multithread": False,
        "wsgi.multiprocess": True,
        "wsgi.run_once": False,
    }
    check = {
        **common,
        "REQUEST_METHOD": "POST",
        "PATH_INFO": "/api/v1/check",
        "CONTENT_TYPE": "application/json",
        "CONTENT_LENGTH": str(len(body)),
        "HTTP_AUTHORIZATION": f"Bearer {state['token']}",
    }
    health = {**common, "REQUEST_METHOD": "GET", "PATH_INFO": "/api/v1/health"}
    return check, health, body.encode()


def _requests(endpoint: str) -> Any:
    """A function making one request to ``endpoint`` through the WSGI application, asserting its answer."""
    from config.wsgi import application

    check, health, body = _environs()
    seen: list[str] = []

    def start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> None:
        seen.append(status)

    def one_check() -> bytes:
        environ = dict(check)
        environ["wsgi.input"] = io.BytesIO(body)
        out = b"".join(application(environ, start_response))
        if seen.pop() != "200 OK" or b'"decision":"allow"' not in out:
            raise SystemExit(f"the check did not allow: {out!r}")
        return out

    def one_health() -> bytes:
        environ = dict(health)
        environ["wsgi.input"] = io.BytesIO(b"")
        result = application(environ, start_response)
        out = b"".join(result)
        close = getattr(result, "close", None)
        if close is not None:
            close()
        if seen.pop() != "200 OK":
            raise SystemExit(f"health did not answer 200: {out!r}")
        return out

    return one_check if endpoint == "check" else one_health


def _general_path_only() -> None:
    """Every decision recorded by ``audit.services`` (``--general``): the figures without ``hot_append``."""
    from governance import hot_append

    hot_append.usable = lambda: None  # what it answers inside a transaction


def run(args: argparse.Namespace) -> None:
    _django()
    one = _requests(args.endpoint)
    if args.general:
        _general_path_only()
    for _ in range(args.warmup):
        one()

    def loop() -> None:
        for _ in range(args.n):
            one()

    operator.call(loop)  # callgrind collects inside this call only (see the module's docstring)


def profile(args: argparse.Namespace) -> None:
    import cProfile
    import pstats

    _django()
    for endpoint in ("health", "check"):
        one = _requests(endpoint)
        if args.general:
            _general_path_only()
        for _ in range(args.warmup):
            one()
        started, cpu = time.perf_counter(), time.process_time()
        for _ in range(args.n):
            one()
        wall, cpu = time.perf_counter() - started, time.process_time() - cpu
        print(f"{endpoint}: {wall / args.n * 1e6:.0f} µs wall, {cpu / args.n * 1e6:.0f} µs CPU per request")
    profiler = cProfile.Profile()
    one = _requests("check")
    profiler.enable()
    for _ in range(args.n):
        one()
    profiler.disable()
    stats = pstats.Stats(profiler)
    stats.sort_stats(args.sort).print_stats(args.top)


def _instructions(endpoint: str, n: int, warmup: int, general: bool) -> int:
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "callgrind.out"
        cmd = [
            "valgrind",
            "--tool=callgrind",
            "--collect-atstart=no",
            "--toggle-collect=_operator_call",
            f"--callgrind-out-file={out}",
            sys.executable,
            __file__,
            "run",
            endpoint,
            "-n",
            str(n),
            "--warmup",
            str(warmup),
            *(["--general"] if general else []),
        ]
        done = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "PYTHONHASHSEED": "0"})
        if done.returncode != 0:
            raise SystemExit(f"{' '.join(cmd)} failed:\n{done.stderr[-3000:]}")
        match = re.search(r"^summary: (\d+)", out.read_text(), re.MULTILINE)
        if match is None:
            raise SystemExit(f"no summary in {out}")
        return int(match.group(1))


def callgrind(args: argparse.Namespace) -> None:
    figures = {}
    for endpoint in args.endpoints:
        total = _instructions(endpoint, args.n, args.warmup, args.general)
        figures[endpoint] = per = total / args.n
        line = f"{endpoint}: {per:,.0f} instructions per request ({total:,} for {args.n})"
        if args.linear:
            double = _instructions(endpoint, 2 * args.n, args.warmup, args.general)
            line += f"; {double / (2 * args.n):,.0f} per request over {2 * args.n}"
        print(line)
    if "check" in figures and "health" in figures:
        print(f"check / health: {figures['check'] / figures['health']:.2f}x")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("seed", help="drop and recreate DATABASE_URL's database, migrate, seed the chain")
    p_run = sub.add_parser("run", help="make requests (what callgrind runs)")
    p_run.add_argument("endpoint", choices=["check", "health"])
    p_run.add_argument("-n", type=int, default=200)
    p_run.add_argument("--warmup", type=int, default=50)
    p_run.add_argument("--general", action="store_true", help="record every decision by audit.services")
    p_prof = sub.add_parser("profile", help="wall and CPU time per request, and cProfile of the check")
    p_prof.add_argument("-n", type=int, default=3000)
    p_prof.add_argument("--warmup", type=int, default=200)
    p_prof.add_argument("--sort", default="tottime")
    p_prof.add_argument("--top", type=int, default=40)
    p_prof.add_argument("--general", action="store_true", help="record every decision by audit.services")
    p_cg = sub.add_parser("callgrind", help="instructions per request under valgrind")
    p_cg.add_argument("endpoints", nargs="*", default=["health", "check"])
    p_cg.add_argument("-n", type=int, default=200)
    p_cg.add_argument("--warmup", type=int, default=50)
    p_cg.add_argument("--linear", action="store_true", help="also run 2 x n, to show the count is per request")
    p_cg.add_argument("--general", action="store_true", help="record every decision by audit.services")
    args = parser.parse_args()
    {"seed": seed, "run": run, "profile": profile, "callgrind": callgrind}[args.command](args)


if __name__ == "__main__":
    main()
