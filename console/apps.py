from __future__ import annotations

from django.apps import AppConfig


class ConsoleConfig(AppConfig):
    name = "console"
    verbose_name = "Console toolkit"

    def ready(self) -> None:
        # Registers the start-up checks (a production start without collected static files).
        from console import checks  # noqa: F401
