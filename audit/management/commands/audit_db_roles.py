"""``manage.py audit_db_roles --app ROLE --sealer ROLE [--apply]``: the grants that give the application's
and the sealer's PostgreSQL roles exactly what they need (``audit.privileges``). Prints them; with
``--apply``, runs them (as the tables' owner, after every ``migrate``: new tables need their grants)."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import connection, transaction

from audit import privileges


class Command(BaseCommand):
    help = "Print or apply the least-privilege grants for the application's and the sealer's database roles."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--app", required=True, help="The role web and worker processes connect as.")
        parser.add_argument("--sealer", required=True, help="The role the sealer (audit_seal) connects as.")
        parser.add_argument("--schema", default="public")
        parser.add_argument("--apply", action="store_true", help="Run the statements instead of printing them.")

    def handle(self, *args: Any, **options: Any) -> None:
        if connection.vendor != "postgresql":
            raise CommandError("database roles are a PostgreSQL matter; SQLite has none")
        statements = privileges.statements(app=options["app"], sealer=options["sealer"], schema=options["schema"])
        with connection.cursor() as cursor:
            raw = cursor.connection
            if not options["apply"]:
                for statement in statements:
                    self.stdout.write(statement.as_string(raw) + ";")
                return
            with transaction.atomic():
                for statement in statements:
                    cursor.execute(statement)
        self.stdout.write(f"granted: {options['app']} (application), {options['sealer']} (sealer)")
