"""A scratch PostgreSQL database beside DATABASE_URL's, for the benchmarks: created at the start, dropped
at the end, so no real data is touched (``django_in_scratch`` sets Django up against it)."""

from __future__ import annotations

import os
import secrets
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

REPO = Path(__file__).resolve().parents[1]


def server_url() -> str:
    """DATABASE_URL, which must name a PostgreSQL server (exits otherwise)."""
    url = os.environ.get("DATABASE_URL", "")
    if not url.startswith(("postgres://", "postgresql://")):
        sys.exit("set DATABASE_URL to a PostgreSQL server (postgres://USER@HOST:PORT/DB)")
    return url


def with_database(url: str, name: str) -> str:
    return urlunsplit(urlsplit(url)._replace(path=f"/{name}"))


def _admin_connection(url: str) -> Any:
    """A connection for CREATE/DROP DATABASE: to DATABASE_URL's database, else the maintenance one."""
    import psycopg

    try:
        return psycopg.connect(url, autocommit=True)
    except psycopg.OperationalError:
        return psycopg.connect(with_database(url, "postgres"), autocommit=True)


def create(url: str) -> tuple[str, str]:
    """Create ``custos_bench_<pid>`` on ``url``'s server; its name and URL."""
    name = f"custos_bench_{os.getpid()}"
    with _admin_connection(url) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    return name, with_database(url, name)


def drop(url: str, name: str) -> None:
    with _admin_connection(url) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@contextmanager
def django_in_scratch(*apps: str, **env: str) -> Iterator[None]:
    """Django set up against a fresh scratch database beside DATABASE_URL's, migrated (``apps``, or all),
    with ``env`` added to the environment first (production-like settings: DEBUG off unless said); the
    database is dropped on the way out, whatever happened."""
    url = server_url()
    name, scratch_url = create(url)
    try:
        os.environ["DATABASE_URL"] = scratch_url
        os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
        os.environ.setdefault("SECRET_KEY", secrets.token_urlsafe(64))
        os.environ.update(env)
        sys.path.insert(0, str(REPO))
        import django

        django.setup()
        from django.core.management import call_command

        call_command("migrate", *apps, verbosity=0)
        yield
    finally:
        if "django.db" in sys.modules:
            from django.db import connections

            connections.close_all()
        drop(url, name)
