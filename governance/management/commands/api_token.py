"""``manage.py api_token USERNAME``: create a personal API token and print it.

Only the token goes to stdout, so a script can capture it (``TOKEN=$(manage.py api_token alice)``);
anything for people goes to stderr. The token is stored as a keyed hash and cannot be shown again.
"""

from __future__ import annotations

from typing import Any

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError, CommandParser

from audit.services import Actor
from console import roles
from governance import services


class Command(BaseCommand):
    help = "Create a personal API token for USERNAME and print it (shown once)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("username", help="The console user the token acts as.")

    def handle(self, *args: Any, **options: Any) -> None:
        username: str = options["username"]
        user_model = get_user_model()
        user = user_model._default_manager.filter(**{user_model.USERNAME_FIELD: username}).first()
        if user is None:
            raise CommandError(f"No console user named {username!r}; create it first (manage.py createsuperuser).")
        if not user.is_active:
            raise CommandError(f"User {username!r} is inactive; a token for it would be refused.")
        _token, secret = services.api_token_create(actor=Actor.system("manage.py api_token"), user=user)
        if not roles.has_any_role(user):
            self.stderr.write(
                f"Note: {username} holds no role ({', '.join(roles.ROLES)}), so the API will refuse this token "
                "everything until one is given."
            )
        self.stdout.write(secret)
