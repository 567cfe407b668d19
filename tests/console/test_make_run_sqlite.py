"""``make run`` serves the console from SQLite: every page a demo user opens must work there too, though
the rest of the suite runs on PostgreSQL. A PostgreSQL-only query (an array parameter, a LIMIT inside a
UNION) once turned every console page into a 500 under ``make run``."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.audit.support import REPO

pytestmark = pytest.mark.slow


def test_make_run_on_sqlite_serves_every_page_and_runs_the_jobs(tmp_path: Path) -> None:
    env = {
        "PATH": "/usr/bin:/bin",
        "DATABASE_URL": f"sqlite:///{tmp_path / 'custos.sqlite3'}",
        "DEBUG": "true",
        "CUSTOS_VAR_DIR": str(tmp_path),
        "SECRET_KEY": "sqlite-smoke-not-a-secret-0123456789-abcdefghijklmnopqrstuvwxyz",
    }
    done = subprocess.run(
        [sys.executable, "-m", "tests.console.sqlite_crawl"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-4000:]
    failures = json.loads(done.stdout.strip().splitlines()[-1])
    assert failures == []
