"""A production start without collected static files refuses to serve, naming the command to run,
instead of answering every page (the 404 page included) with a 500."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from django.core.management import call_command
from django.core.management.base import SystemCheckError
from django.test import Client, override_settings

from console import checks

MANIFEST = {"staticfiles": {"BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"}}
ROOT = Path(__file__).resolve().parents[2]


def test_without_collected_static_files_the_deploy_check_names_the_command(tmp_path: Path) -> None:
    with override_settings(STATIC_ROOT=tmp_path, STORAGES=MANIFEST):
        errors = checks.static_files_collected()
        assert [e.id for e in errors] == ["console.E001"]
        assert checks.COLLECT_COMMAND in (errors[0].hint or "")
        with pytest.raises(SystemCheckError, match="collectstatic --no-input"):
            call_command("check", "--deploy", "--tag", checks.SERVE)


def test_with_collected_static_files_nothing_is_reported(tmp_path: Path) -> None:
    with override_settings(STATIC_ROOT=tmp_path, STORAGES=MANIFEST):
        call_command("collectstatic", "--no-input", verbosity=0)
        assert (tmp_path / "staticfiles.json").exists()
        assert checks.static_files_collected() == []
        checks.refuse_to_serve_if_broken()


def test_serving_files_without_a_manifest_needs_no_collectstatic() -> None:
    # The tests' own setting (and DEBUG's): plain storage, nothing to collect.
    assert checks.static_files_collected() == []


def _start_wsgi(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", "import config.wsgi"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_a_web_process_refuses_to_start_without_collected_static_files(tmp_path: Path) -> None:
    env = {
        **os.environ,
        "CUSTOS_STATIC_ROOT": str(tmp_path / "nothing-collected-here"),
        "CUSTOS_MANIFEST_STATIC": "true",
    }
    env.pop("DEBUG", None)
    started = _start_wsgi(env)
    assert started.returncode != 0
    assert "Custos will not serve" in started.stderr
    assert "python manage.py collectstatic --no-input" in started.stderr


def collect_static(static_root: Path) -> dict[str, str]:
    """Run the release step ``collectstatic`` into ``static_root`` as production would (DEBUG off, the
    manifest on); returns that environment, for a web process started on it."""
    env = {**os.environ, "CUSTOS_STATIC_ROOT": str(static_root), "CUSTOS_MANIFEST_STATIC": "true"}
    env.pop("DEBUG", None)
    collected = subprocess.run(
        [sys.executable, "manage.py", "collectstatic", "--no-input", "-v", "0"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert collected.returncode == 0, collected.stderr
    return env


def test_a_web_process_starts_once_static_files_are_collected(tmp_path: Path) -> None:
    env = collect_static(tmp_path)
    started = _start_wsgi(env)
    assert started.returncode == 0, started.stderr


@pytest.mark.django_db
def test_an_unknown_page_is_a_404_page_not_a_500(client: Client, settings: Any) -> None:
    response = client.get("/no/such/page/")
    assert response.status_code == 404
    assert "Nothing here" in response.content.decode()
