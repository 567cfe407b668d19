"""``manage.py audit_seal``: the audit log's sealer.

Runs until stopped, sealing new events in batches within ``CUSTOS_AUDIT_SEAL_INTERVAL`` of their
commit. Run one per deployment (any more stand by and take over if it dies: only one seals at a time).
``--once`` seals what is pending now and exits.
"""

from __future__ import annotations

import signal
import threading
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from audit import sealer


class Command(BaseCommand):
    help = "Seal the audit log's new events continuously (or --once)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--once", action="store_true", help="Seal what is pending now, then exit.")

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            if options["once"]:
                count = sealer.seal_pending()
                self.stdout.write(f"sealed {count} event{'s' if count != 1 else ''}")
                return
            stop = threading.Event()
            for signum in (signal.SIGTERM, signal.SIGINT):
                signal.signal(signum, lambda *_: stop.set())
            sealer.run(stop=stop)
        except sealer.HeadMissing as exc:
            raise CommandError(str(exc)) from None
