from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from console.errors import DomainError
from demo import mcp_rollout, seeder
from demo.people import COMPANY, DEMO_PASSWORD, DOMAIN


class Command(BaseCommand):
    help = (
        f"Create the {COMPANY} demo organisation with six weeks of audited history, its agents' runtime "
        "decisions included, and one console user per role. Deterministic; running it again changes nothing."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--mcp-url",
            help="Also register the demo MCP server (demo_mcp_server) at this URL, or move it there "
            "(make run passes http://127.0.0.1:<port + 1>/mcp).",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            result = seeder.seed()
        except (seeder.NotEmpty, seeder.MissingDependency) as exc:
            raise CommandError(f"seed_demo: {exc}") from None
        if result.created:
            self.stdout.write(self.style.SUCCESS(f"Seeded the {COMPANY} demo organisation in {result.seconds:.1f} s:"))
        else:
            self.stdout.write(f"The {COMPANY} demo organisation is already here (humans @{DOMAIN}); nothing changed.")
        for label, value in result.counts.items():
            self.stdout.write(f"  {label:<13} {value}")
        for note in result.notes:
            self.stdout.write(self.style.WARNING(f"  note: {note}"))
        if options["mcp_url"]:
            try:
                self.stdout.write(mcp_rollout.ensure(options["mcp_url"]))
            except DomainError as exc:
                raise CommandError(f"seed_demo --mcp-url: {exc}") from None
        self.stdout.write(f"Console logins, one per role (username = role, password {DEMO_PASSWORD}):")
        for username, who in result.logins:
            self.stdout.write(f"  {username:<9} {who}")
