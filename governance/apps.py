from __future__ import annotations

from django.apps import AppConfig


class GovernanceConfig(AppConfig):
    name = "governance"
    verbose_name = "Identity governance"

    def ready(self) -> None:
        # The console pages of the objects audit events name (the audit app imports no other app).
        from governance import audit_links

        audit_links.register()
