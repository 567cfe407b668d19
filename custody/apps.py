from __future__ import annotations

from django.apps import AppConfig


class CustodyConfig(AppConfig):
    name = "custody"
    verbose_name = "Chain of custody"

    def ready(self) -> None:
        from custody import links

        links.register()
