"""Checks that stop a process from serving when it could only half work.

With ``DEBUG`` off, static files are served from ``collectstatic``'s hashed copies, looked up in its
manifest; without the manifest every HTML page, the 404 page included, fails with a 500. So a web
process refuses to start instead (``config/wsgi.py`` runs these checks), naming the command to run.
They are deployment checks, so ``migrate`` and ``collectstatic`` (which run the ordinary checks)
still work on a fresh release, and ``manage.py check --deploy`` reports them too.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.contrib.staticfiles.storage import ManifestFilesMixin
from django.core import checks
from django.core.exceptions import ImproperlyConfigured
from django.utils.module_loading import import_string

SERVE = "custos_serve"
COLLECT_COMMAND = "python manage.py collectstatic --no-input"


@checks.register(SERVE, deploy=True)
def static_files_collected(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    backend = settings.STORAGES.get("staticfiles", {}).get("BACKEND", "")
    storage_class = import_string(backend) if backend else None
    if storage_class is None or not issubclass(storage_class, ManifestFilesMixin):
        return []
    storage = storage_class()
    if storage.exists(storage.manifest_name):
        return []
    return [
        checks.Error(
            f"Static files have not been collected: {settings.STATIC_ROOT}/{storage.manifest_name} is missing, so "
            "with DEBUG off every page would fail.",
            hint=f"Run `{COLLECT_COMMAND}` (on every release, before starting the web processes).",
            id="console.E001",
        )
    ]


def refuse_to_serve_if_broken() -> None:
    """Raise ``ImproperlyConfigured`` with every start-up problem, or return when there is none."""
    errors = [m for m in checks.run_checks(tags=[SERVE], include_deployment_checks=True) if m.is_serious()]
    if errors:
        lines = [f"{m.msg} {m.hint or ''}".strip() for m in errors]
        raise ImproperlyConfigured("Custos will not serve:\n  " + "\n  ".join(lines))
