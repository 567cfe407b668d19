"""The demo is an add-on: nothing in the product imports it, and it imports without its own requirements
(time-machine is needed only while ``seed_demo`` replays the history)."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PRODUCT = ("config", "console", "governance", "reviews", "scim", "custody", "audit", "custos_client", "custos_mcp")
# Each app may import those after it, never those before it (README "Layout"); console imports none.
LAYERS = ("custody", "reviews", "scim", "governance", "audit")


def _imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module)
    return names


def test_nothing_in_the_product_imports_the_demo() -> None:
    files = [path for package in PRODUCT for path in (ROOT / package).rglob("*.py")]
    assert len(files) > 50
    offenders = {
        str(path.relative_to(ROOT)): sorted(
            name for name in _imports(path) if name == "demo" or name.startswith("demo.")
        )
        for path in files
    }
    assert not {path: names for path, names in offenders.items() if names}


def test_the_apps_import_one_way() -> None:
    offenders: dict[str, list[str]] = {}
    for at, app in enumerate(LAYERS):
        above = LAYERS[:at]
        for path in (ROOT / app).rglob("*.py"):
            wrong = sorted(n for n in _imports(path) if n.split(".")[0] in above)
            if wrong:
                offenders[str(path.relative_to(ROOT))] = wrong
    for path in (ROOT / "console").rglob("*.py"):
        wrong = sorted(n for n in _imports(path) if n.split(".")[0] in LAYERS)
        if wrong:
            offenders[str(path.relative_to(ROOT))] = wrong
    assert not offenders


def test_the_mcp_middleware_ships_without_django() -> None:
    # custos_mcp runs inside someone else's MCP server: it talks to Custos over HTTP only.
    server_side = {"django", "rest_framework", *PRODUCT[:-2]}
    offenders = {
        str(path.relative_to(ROOT)): sorted(n for n in _imports(path) if n.split(".")[0] in server_side)
        for path in (ROOT / "custos_mcp").rglob("*.py")
    }
    assert offenders and not {path: names for path, names in offenders.items() if names}


def test_the_import_walk_sees_every_form_of_import(tmp_path: Path) -> None:
    # The check above would pass on imports it cannot see.
    source = tmp_path / "sample.py"
    source.write_text("import demo\nimport demo.seeder as s\nfrom demo.people import PEOPLE\nfrom . import demo_like\n")
    assert _imports(source) == {"demo", "demo.seeder", "demo.people"}


def test_the_demo_and_the_product_run_without_time_machine() -> None:
    """As on a production install: every demo module imports, and ``manage.py check`` passes, with
    ``import time_machine`` failing."""
    script = """
import importlib, os, pkgutil, sys
sys.modules["time_machine"] = None  # any import of it now raises ImportError
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
import django
django.setup()
import demo
names = [m.name for m in pkgutil.walk_packages(demo.__path__, "demo.")]
for name in names:
    importlib.import_module(name)
from django.core.management import call_command
call_command("check")
print("imported", len(names), "demo modules")
"""
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr
    imported = int(done.stdout.split("imported ")[1].split()[0])
    assert imported >= 12  # the catalogue, the replay, the simulator and both commands
