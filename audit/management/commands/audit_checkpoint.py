"""``manage.py audit_checkpoint``: sign the audit chain's head now (the sealer also does it every
``CUSTOS_AUDIT_CHECKPOINT_INTERVAL``), after verifying what is new since the last checkpoint."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError

from audit import checkpoints, sealer
from audit.verification import verify_chain


class Command(BaseCommand):
    help = "Seal what is pending, verify since the last checkpoint and sign the chain head."

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            sealer.seal_pending()
        except sealer.HeadMissing as exc:
            raise CommandError(str(exc)) from None
        result = verify_chain(full=False)
        if not result.ok:
            raise CommandError(f"not signed: the chain is broken at #{result.first_bad_seq}: {result.problem}")
        signed = checkpoints.checkpoint_now()
        if signed is None:
            self.stdout.write("nothing new to sign since the last checkpoint")
            return
        where = checkpoints.checkpoint_dir()
        copy = f", copy in {where}" if where else " (no CUSTOS_AUDIT_CHECKPOINT_DIR: kept in the database only)"
        self.stdout.write(f"checkpoint #{signed.seq} signed by key {signed.key_fingerprint[:16]}…{copy}")
