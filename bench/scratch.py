"""A scratch PostgreSQL database beside DATABASE_URL's, for the audit benchmarks: created at the start,
dropped at the end, so no real audit log is touched."""

from __future__ import annotations

import os
import sys
from typing import Any
from urllib.parse import urlsplit, urlunsplit


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
