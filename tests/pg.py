"""Throwaway PostgreSQL databases for tests, on the real server at 127.0.0.1:5432.

Each test gets a database of its own, ``tidings_test_<random hex>``, created from the admin
database ``test`` and dropped afterwards (``WITH (FORCE)``, so a connection a test left open
does not keep it alive). PostgreSQL being down is a test failure with a message saying so,
never a skip: a suite that silently skips its PostgreSQL half proves nothing.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from urllib.parse import urlsplit, urlunsplit

import psycopg
from psycopg import sql

ADMIN_URL = os.environ.get("TIDINGS_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test")
"""Where test databases are created; override with TIDINGS_TEST_POSTGRES."""
PREFIX = "tidings_test_"


class PostgresUnreachable(RuntimeError):
    """The test PostgreSQL server could not be reached: the tests that need it fail with this."""


def admin_connect(url: str = ADMIN_URL) -> psycopg.Connection[tuple[object, ...]]:
    """An autocommit connection to the admin database (CREATE/DROP DATABASE cannot run in a transaction)."""
    try:
        return psycopg.connect(url, autocommit=True, connect_timeout=5)
    except psycopg.OperationalError as exc:
        raise PostgresUnreachable(
            f"the tests need PostgreSQL at {url} (user postgres, trust auth, database 'test'); "
            f"start it (see .ci/run) or set TIDINGS_TEST_POSTGRES: {exc}"
        ) from exc


def url_for(database: str, base: str = ADMIN_URL) -> str:
    """``base`` with its database replaced by ``database`` (query and credentials kept)."""
    parts = urlsplit(base)
    return urlunsplit(parts._replace(path="/" + database))


def create_database(base: str = ADMIN_URL) -> str:
    """Create an empty, randomly named database and return its name."""
    name = PREFIX + secrets.token_hex(6)
    with admin_connect(base) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    return name


def drop_database(name: str, base: str = ADMIN_URL) -> None:
    """Drop a database, ending any session still connected to it; a missing one is fine."""
    with admin_connect(base) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


@contextmanager
def temporary_database(base: str = ADMIN_URL) -> Iterator[str]:
    """A fresh database for the block; yields its URL and drops it afterwards."""
    name = create_database(base)
    try:
        yield url_for(name, base)
    finally:
        drop_database(name, base)
