"""``manage.py audit_verify``: recompute the audit chain, hold it to every signed checkpoint, and name
the first bad event (exit 1). ``--incremental`` starts from the latest checkpoint instead."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from audit.verification import verify_chain


class Command(BaseCommand):
    help = "Recompute the audit hash chain; name the first bad event and exit 1 on any break."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--incremental", action="store_true", help="Verify from the latest checkpoint the chain agrees with."
        )

    def handle(self, *args: Any, **options: Any) -> None:
        result = verify_chain(full=not options["incremental"])
        if not result.ok:
            where = f"event #{result.first_bad_seq}" if result.first_bad_seq else f"event {result.first_bad_event}"
            raise CommandError(
                f"audit chain BROKEN at {where}: {result.problem} ({result.checked} events verified before it)",
                returncode=1,
            )
        since = f" since checkpoint #{result.verified_from}" if result.verified_from else ""
        self.stdout.write(
            self.style.SUCCESS(
                f"audit chain OK: {result.checked} events{since}, head #{result.head_seq}, "
                f"{result.checkpoints} checkpoint{'s' if result.checkpoints != 1 else ''}, {result.pending} pending"
            )
        )
