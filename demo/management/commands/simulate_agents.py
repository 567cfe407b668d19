"""``manage.py simulate_agents``: live agent traffic against a running Custos (``demo.simulator``).

``make run`` starts it beside the server with ``--log-file var/log/agents.log``: every request the agents
make is a line in that file, and the terminal gets a start line and a summary every few minutes.
"""

from __future__ import annotations

import logging
import random
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from demo.simulator import Pace, Simulator, log, summary_line

DEFAULT = Pace()


class Command(BaseCommand):
    help = "Simulate agents exchanging tokens, checking tool calls, spawning sub-agents and drifting."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--url", default="http://127.0.0.1:8000", help="Where Custos is served.")
        parser.add_argument("--agents", type=int, default=6, help="How many agents to drive.")
        parser.add_argument(
            "--mcp-agents",
            type=int,
            default=2,
            help="How many more call the demo MCP server's tools (when seed_demo --mcp-url registered it).",
        )
        parser.add_argument(
            "--interval", type=float, default=DEFAULT.interval, help="Mean seconds between two steps of an agent."
        )
        parser.add_argument(
            "--requests-per-hour", type=float, default=DEFAULT.requests_per_hour, help="Access requests, all agents."
        )
        parser.add_argument(
            "--max-pending", type=int, default=DEFAULT.max_pending, help="Access requests waiting at once."
        )
        parser.add_argument("--duration", type=float, default=0, help="Stop after this many seconds (0: run on).")
        parser.add_argument(
            "--log-file", type=Path, help="Write the per-request log there instead of to standard error."
        )
        parser.add_argument("--summary-every", type=float, default=300, help="Seconds between two summary lines.")
        parser.add_argument("--seed", type=int, default=7)

    def handle(self, *args: Any, **options: Any) -> None:
        if options["log_file"] is not None:
            self._log_to(options["log_file"])
        rng = random.Random(options["seed"])  # noqa: S311 - a simulation, not cryptography
        url = options["url"]
        self._wait_for(url)
        pace = Pace(
            interval=options["interval"],
            requests_per_hour=options["requests_per_hour"],
            max_pending=options["max_pending"],
        )
        simulator = Simulator(url, pace)
        sims = simulator.prepare(options["agents"], rng)
        simulator.prepare_mcp(options["mcp_agents"])
        if not sims:
            self.stderr.write("No agent with a usable delegation to simulate (run manage.py seed_demo first).")
            return
        where = f"; each request is logged to {options['log_file']}" if options["log_file"] else ""
        self.stdout.write(f"simulating {len(sims)} agents against {url}: {', '.join(s.name for s in sims)}{where}")
        stop = threading.Event()
        threads = [
            threading.Thread(
                target=simulator.run,
                args=(sim, random.Random(rng.random()), stop),  # noqa: S311
                name=f"agent {sim.name}",
                daemon=True,
            )
            for sim in sims
        ]
        for thread in threads:
            thread.start()
        deadline = time.monotonic() + options["duration"] if options["duration"] else None
        every = options["summary_every"]
        last_summary = time.monotonic()
        try:
            while deadline is None or time.monotonic() < deadline:
                time.sleep(0.5)
                if time.monotonic() - last_summary >= every:
                    seconds, last_summary = time.monotonic() - last_summary, time.monotonic()
                    counts = simulator.tally.take()
                    self.stdout.write(summary_line(counts, seconds=seconds, pending=simulator.pending()))
        except KeyboardInterrupt:
            pass
        finally:
            stop.set()
            for thread in threads:
                thread.join(timeout=5)

    def _log_to(self, path: Path) -> None:
        """The per-request lines go to ``path`` only: the terminal keeps the start line and summaries."""
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            handler = logging.FileHandler(path, encoding="utf-8")
        except OSError as exc:
            raise CommandError(f"cannot write the log file {path}: {exc}") from None
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
        log.addHandler(handler)
        log.setLevel(logging.INFO)
        log.propagate = False

    def _wait_for(self, url: str) -> None:
        for _ in range(120):
            try:
                with urllib.request.urlopen(url + "/api/v1/health", timeout=2):  # noqa: S310 - local URL
                    return
            except OSError:
                time.sleep(1)
        raise CommandError(f"Custos did not answer at {url}")
