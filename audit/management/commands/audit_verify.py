from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError

from audit.verify import verify_chain


class Command(BaseCommand):
    help = "Recompute the audit hash chain; name the first bad event and exit 1 on any break."

    def handle(self, *args: Any, **options: Any) -> None:
        result = verify_chain()
        if not result.ok:
            raise CommandError(
                f"audit chain BROKEN at event #{result.first_bad_seq}: {result.problem} "
                f"({result.checked} events verified before it)",
                returncode=1,
            )
        self.stdout.write(self.style.SUCCESS(f"audit chain OK: {result.checked} events, head #{result.head_seq}"))
