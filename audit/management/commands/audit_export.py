"""``manage.py audit_export --out FILE [--since … --until … --agent ID --human ID --decision ID]``:
write an evidence bundle that ``python -m audit.verify FILE`` verifies offline."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils import timezone

from audit import bundles


def _moment(text: str) -> datetime:
    moment = datetime.fromisoformat(text)
    return moment if timezone.is_aware(moment) else moment.replace(tzinfo=UTC)


class Command(BaseCommand):
    help = "Export an evidence bundle (events, seals, a signed checkpoint) for offline verification."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--out", required=True, help="Where to write the bundle (JSON).")
        parser.add_argument("--since", type=_moment, help="ISO 8601; UTC unless it says otherwise.")
        parser.add_argument("--until", type=_moment)
        parser.add_argument("--agent", type=int, help="Events of this agent: as actor, target or acted for.")
        parser.add_argument("--human", type=int, help="Events of this human: as target or acted for.")
        parser.add_argument("--decision", help="One decision, by its decision_id.")

    def handle(self, *args: Any, **options: Any) -> None:
        selection = bundles.Selection(
            since=options["since"],
            until=options["until"],
            agent=options["agent"],
            human=options["human"],
            decision=options["decision"],
        )
        try:
            bundle = bundles.export_bundle(selection)
        except (bundles.NothingSelected, bundles.SelectionTooLarge, TimeoutError, RuntimeError) as exc:
            raise CommandError(str(exc)) from None
        with open(options["out"], "w", encoding="utf-8") as handle:
            json.dump(bundle, handle, ensure_ascii=False, indent=1)
        manifest = bundle["manifest"]
        self.stdout.write(
            f"wrote {manifest['event_count']} events (#{manifest['first_seq']} to checkpoint "
            f"#{manifest['checkpoint_seq']}) to {options['out']}; verify with: python -m audit.verify "
            f"{options['out']} --trust {manifest['key']}"
        )
