"""Run the development processes together; Ctrl-C (or SIGTERM, SIGHUP) stops them all.

Started by `make run` (scripts/run) after migrations and demo data. Each process runs in its own
process group, so stopping it also stops what it spawned (runserver's reloader child, the Celery
worker's pool): nothing is left behind. Output goes to the terminal, prefixed with the process
name, and to var/log/<name>.log; a few kinds of line (``OFF_TERMINAL``) go to the log file only. If any
process exits, the others are stopped too.

To add a process, add one line to `processes()`.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import IO

ROOT = Path(__file__).resolve().parent.parent
# A Celery worker's warm shutdown takes several seconds even when idle (about 9 s on the filesystem broker).
GRACE_SECONDS = 30.0
# Lines kept in the process's log file but off the terminal: the web server's line for each successful
# API or OAuth call, several a second from the agent simulator, would scroll everything else away.
OFF_TERMINAL = {"web": re.compile(rb'"[A-Z]+ /(?:api/v1/|oauth/)\S* HTTP/[\d.]+" 2\d\d ')}


def processes(host: str, port: int) -> dict[str, list[str]]:
    py = sys.executable
    celery = [py, "-m", "celery", "-A", "config"]
    return {
        "web": [py, "manage.py", "runserver", f"{host}:{port}"],
        "worker": [*celery, "worker", "--loglevel=INFO", "--without-gossip", "--without-mingle"],
        "beat": [*celery, "beat", "--loglevel=INFO", "--schedule", "var/celerybeat-schedule"],
        # Seals new audit events into the hash chain within a fraction of a second (one per deployment).
        "sealer": [py, "manage.py", "audit_seal"],
        # The demo MCP server (support tools behind custos_mcp), registered by seed_demo --mcp-url.
        "mcp": [py, "manage.py", "demo_mcp_server", f"--custos-url=http://{host}:{port}"],
        # The simulator logs each request to its log file itself; its output here is a start line and a
        # summary every few minutes, so the terminal stays readable.
        "agents": [py, "manage.py", "simulate_agents", f"--url=http://{host}:{port}", "--log-file=var/log/agents.log"],
    }


@dataclass
class Child:
    name: str
    argv: list[str]
    proc: subprocess.Popen[bytes] | None = None
    threads: list[threading.Thread] = field(default_factory=list)


class Supervisor:
    def __init__(self, children: list[Child], log_dir: Path) -> None:
        self.children = children
        self.log_dir = log_dir
        self.stopping = threading.Event()
        self.force = threading.Event()  # a second Ctrl-C: kill without waiting
        self.width = max(len(c.name) for c in children)
        # Re-entrant: the signal handler says something in the main thread, which may be saying something.
        self.out_lock = threading.RLock()

    def start(self) -> None:
        self.log_dir.mkdir(parents=True, exist_ok=True)
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        for child in self.children:
            child.proc = subprocess.Popen(  # noqa: S603 - our own fixed command lines
                child.argv,
                cwd=ROOT,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own process group: signals reach all it spawns
            )
            log = open(self.log_dir / f"{child.name}.log", "ab")  # noqa: SIM115 - closed by the pump thread
            pump = threading.Thread(target=self._pump, args=(child, child.proc.stdout, log), daemon=True)
            pump.start()
            child.threads.append(pump)
            self.say(f"started {child.name} (pid {child.proc.pid}): {' '.join(child.argv[1:])}")

    def _pump(self, child: Child, stream: IO[bytes] | None, log: IO[bytes]) -> None:
        assert stream is not None
        prefix = f"{child.name:<{self.width}} | ".encode()
        off_terminal = OFF_TERMINAL.get(child.name)
        to_terminal = True
        with log:
            # Read to the end even when the terminal is gone, so a child never blocks on a full pipe.
            for line in iter(stream.readline, b""):
                log.write(line)
                log.flush()
                if to_terminal and not (off_terminal and off_terminal.search(line)):
                    try:
                        with self.out_lock:
                            sys.stdout.buffer.write(prefix + line)
                            sys.stdout.buffer.flush()
                    except OSError:
                        to_terminal = False

    def say(self, message: str) -> None:
        with self.out_lock, contextlib.suppress(OSError):
            sys.stdout.write(f"{'make run':<{self.width}} | {message}\n")
            sys.stdout.flush()

    def wait(self) -> int:
        """Block until a signal asks us to stop or a child exits; return the exit status to use."""
        while not self.stopping.is_set():
            for child in self.children:
                assert child.proc is not None
                code = child.proc.poll()
                if code is not None:
                    self.say(f"{child.name} exited with status {code}; stopping the others")
                    return code if code > 0 else 1
            self.stopping.wait(0.5)
        return 0

    def stop(self) -> None:
        live = [c for c in self.children if c.proc is not None and c.proc.poll() is None]
        for child in live:
            assert child.proc is not None
            # The leader first: celery's warm shutdown and runserver's reloader stop their own children.
            _signal_pid(child.proc.pid, signal.SIGTERM)
        if live:
            self.say(f"waiting for {', '.join(c.name for c in live)} to finish (Ctrl-C again kills at once)")
        deadline = time.monotonic() + GRACE_SECONDS
        while time.monotonic() < deadline and not self.force.is_set():
            if all(c.proc is not None and c.proc.poll() is not None for c in live):
                break
            self.force.wait(0.2)
        for child in live:
            assert child.proc is not None
            if child.proc.poll() is None:
                self.say(f"killing {child.name}")
        # Whatever is left in any group (a pool process, a reloader child, a leader that hung) goes now.
        for child in self.children:
            if child.proc is not None:
                _signal_group(child.proc.pid, signal.SIGKILL)
                child.proc.wait()
        for child in self.children:
            for thread in child.threads:
                thread.join(timeout=2)

    def request_stop(self, signum: int, _frame: FrameType | None) -> None:
        if self.stopping.is_set():
            self.force.set()
            return
        self.say(f"{signal.Signals(signum).name} received; stopping everything")
        self.stopping.set()


def _signal_pid(pid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, sig)


def _signal_group(pgid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


def _announce_when_listening(supervisor: Supervisor, host: str, port: int, banner: str) -> None:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and not supervisor.stopping.is_set():
        try:
            with socket.create_connection((host, port), timeout=1):
                supervisor.say(banner)
                return
        except OSError:
            time.sleep(0.5)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--banner", default="", help="printed once the web server accepts connections")
    args = parser.parse_args()

    supervisor = Supervisor(
        [Child(name, argv) for name, argv in processes(args.host, args.port).items()],
        log_dir=ROOT / "var" / "log",
    )
    # Installed before any child starts, so children begin with default signal handling even when
    # this process was started with SIGINT ignored (a background job of a non-interactive shell).
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, supervisor.request_stop)

    status = 0
    try:
        supervisor.start()
        if args.banner:
            threading.Thread(
                target=_announce_when_listening, args=(supervisor, args.host, args.port, args.banner), daemon=True
            ).start()
        status = supervisor.wait()
    finally:
        supervisor.stopping.set()
        supervisor.stop()
        supervisor.say("all stopped")
    return status


if __name__ == "__main__":
    sys.exit(main())
