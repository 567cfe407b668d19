"""What the HTTP benchmarks share: wrk's output read into figures, and the CPU each process spends.

CPU time per answered request, read from ``/proc`` for the server's workers, the PostgreSQL backends
serving them and the audit sealer, moves far less than latency on a shared machine.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

HOST = "127.0.0.1"  # the only target these benchmarks ever send traffic to
ROOT = Path(__file__).resolve().parent.parent
# The README's production command: granian with a worker per core and 8 threads each; gunicorn's sync
# workers (for comparison) 2 per core.
README_THREADS = 8


def readme_workers(server: str) -> int:
    return (os.cpu_count() or 1) * (1 if server == "granian" else 2)


@dataclass(slots=True)
class WrkResult:
    endpoint: str
    connections: int
    round: int
    requests: int
    seconds: float
    rps: float
    p50_us: float
    p75_us: float
    p90_us: float
    p99_us: float
    non_2xx: int
    socket_errors: int
    # CPU time spent per answered request by the gunicorn workers and by the PostgreSQL backends
    # serving them: unlike latency, hardly moved by what else the shared machine is running.
    app_cpu_us: float = 0.0
    db_cpu_us: float = 0.0
    sealer_cpu_us: float = 0.0
    # The whole machine's busy CPU per answered request (wrk, the kernel's network work and PostgreSQL's
    # background processes included): what the endpoints compete for on a saturated box.
    machine_cpu_us: float = 0.0
    # The check's decisions per commit during the run, read from its events while they wait in the intake.
    per_commit: float = 0.0


# --- The server under test -----------------------------------------------------------------


def server_command(server: str, port: int, workers: int, extra: list[str]) -> list[str]:
    """``config.wsgi`` served by gunicorn (the README's default: sync workers) or granian (a Rust HTTP
    server with keep-alive whose WSGI workers call the application from a few blocking threads)."""
    venv = ROOT / ".venv" / "bin"
    if server == "gunicorn":
        return [
            *(str(venv / "gunicorn"), "config.wsgi", "-w", str(workers), "-b", f"{HOST}:{port}"),
            *("--log-level", "warning", *extra),
        ]
    if server == "granian":
        if not any(option.startswith("--blocking-threads") for option in extra):
            extra = ["--blocking-threads", str(README_THREADS), *extra]
        return [
            *(str(venv / "granian"), "--interface", "wsgi", "--workers", str(workers)),
            *(
                "--host",
                HOST,
                "--port",
                str(port),
                "--no-ws",
                "--log-level",
                "warning",
                *extra,
                "config.wsgi:application",
            ),
        ]
    raise ValueError(f"unknown server {server!r}")


@contextmanager
def web_server(
    server: str, env: dict[str, str], port: int, workers: int, log: Path, extra: list[str]
) -> Iterator[subprocess.Popen[bytes]]:
    """The server running until the block ends, its workers stopped with it whatever happens."""
    cmd = server_command(server, port, workers, extra)
    with log.open("wb") as out:
        # Its own session, so the master and its workers can be stopped together by the master's id.
        proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        wait_until_up(proc, f"http://{HOST}:{port}/api/v1/health", log)
        yield proc
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=5)


def wait_until_up(proc: subprocess.Popen[bytes], url: str, log: Path, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"the server exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.2)
    raise SystemExit(f"the server did not answer within {timeout:.0f} s:\n{log.read_text()[-3000:]}")


# --- CPU accounting -------------------------------------------------------------------------

_TICK_US = 1_000_000 / os.sysconf("SC_CLK_TCK")


def cpu_us(pid: int) -> float:
    """User + system CPU time of a process so far (0 if it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) * _TICK_US  # utime, stime (fields 14 and 15 of stat)


def machine_busy_us() -> float:
    """CPU time every core has spent busy so far (all but idle and I/O wait), from ``/proc/stat``."""
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    user, nice, system, _idle, _iowait, irq, softirq, steal = fields[:8]
    return (user + nice + system + irq + softirq + steal) * _TICK_US


def worker_pids(master: int) -> list[int]:
    children = Path(f"/proc/{master}/task/{master}/children")
    return [int(pid) for pid in children.read_text().split()] if children.exists() else []


def backend_pids(database: str) -> list[int]:
    import psycopg

    with psycopg.connect(f"postgresql://postgres@{HOST}:5432/postgres", autocommit=True) as conn:
        rows = conn.execute("SELECT pid FROM pg_stat_activity WHERE datname = %s", [database]).fetchall()
    return [int(row[0]) for row in rows]


@dataclass(slots=True)
class CpuMeter:
    """Custos's CPU: the gunicorn workers (app), the PostgreSQL backends (db, the sealer's included) and
    the sealer process."""

    master: int
    database: str
    sealer: int

    def sample(self) -> tuple[float, float, float]:
        return (
            sum(cpu_us(pid) for pid in worker_pids(self.master)),
            sum(cpu_us(pid) for pid in backend_pids(self.database)),
            cpu_us(self.sealer),
        )


# --- wrk ------------------------------------------------------------------------------------

_UNIT_US = {"us": 1.0, "ms": 1000.0, "s": 1_000_000.0, "m": 60_000_000.0}


def _duration_us(text: str) -> float:
    match = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text)
    if match is None:
        raise ValueError(f"not a wrk duration: {text!r}")
    return float(match[1]) * _UNIT_US[match[2]]


def parse_wrk(output: str, *, endpoint: str, connections: int, round_no: int) -> WrkResult:
    percentiles = {int(p): _duration_us(v) for p, v in re.findall(r"^\s+(50|75|90|99)%\s+(\S+)\s*$", output, re.M)}
    totals = re.search(r"(\d+) requests in ([\d.]+)(us|ms|s|m)", output)
    rps = re.search(r"Requests/sec:\s+([\d.]+)", output)
    if totals is None or rps is None or len(percentiles) != 4:
        raise ValueError(f"cannot read wrk's output:\n{output}")
    non_2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", output)
    errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", output)
    return WrkResult(
        endpoint=endpoint,
        connections=connections,
        round=round_no,
        requests=int(totals[1]),
        seconds=_duration_us(totals[2] + totals[3]) / 1_000_000,
        rps=float(rps[1]),
        p50_us=percentiles[50],
        p75_us=percentiles[75],
        p90_us=percentiles[90],
        p99_us=percentiles[99],
        non_2xx=int(non_2xx[1]) if non_2xx else 0,
        socket_errors=sum(int(n) for n in errors.groups()) if errors else 0,
    )
