"""The ``postgresql`` storage backend: several tidings-servers share one PostgreSQL database.

Store URLs are libpq URIs, ``postgresql://user:password@host:port/database`` (``postgres://``
is accepted too), with libpq's own query parameters (``sslmode``, ``connect_timeout``, …) and
one of tidings':

* ``pool_size`` (default 8): connections in the pool, and as many worker threads may run
  store operations at once. Each server also holds one more connection for LISTEN.

Opening checks the database (reachable, credentials, exists, holds no other application's
tables, schema not newer than this code) and migrates it; each failure is one clear
ValueError, with the URL's password hidden, and leaves the database as it was.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from functools import partial
from typing import Any, Final
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import psycopg
import psycopg_pool
import trio

from tidings_postgresql.migrate import migrate
from tidings_postgresql.store import PostgresStore
from tidings_server.plugins.spec import StorageBackend, hookimpl

DEFAULT_POOL_SIZE: Final = 8
CONNECT_TIMEOUT: Final = 5
"""Seconds a connection attempt waits, unless the URL says otherwise (``connect_timeout``)."""
_URL_FORMS: Final = "postgresql://user:password@host:port/database[?pool_size=N]"


@dataclass(frozen=True, slots=True)
class PostgresSettings:
    conninfo: str
    pool_size: int
    where: str  # the URL without its password, for messages


def redacted(url: str) -> str:
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":•••@", 1)
    return urlunsplit(parts._replace(netloc=netloc))


def parse_url(url: str) -> PostgresSettings:
    """Parse a store URL; raise ValueError saying what is wrong and what is expected."""
    where = redacted(url)

    def bad(why: str) -> ValueError:
        return ValueError(f"invalid PostgreSQL store URL {where!r}: {why}; expected {_URL_FORMS}")

    parts = urlsplit(url)
    if parts.scheme.lower() not in ("postgresql", "postgres"):
        raise bad("the scheme is not 'postgresql' or 'postgres'")
    if not parts.path.strip("/"):
        raise bad("no database is named")
    try:
        query = parse_qsl(parts.query, keep_blank_values=True, strict_parsing=True) if parts.query else []
    except ValueError:
        raise bad(f"the query {parts.query!r} is malformed") from None
    pool_size = DEFAULT_POOL_SIZE
    passed: list[tuple[str, str]] = []
    for key, value in query:
        if key == "pool_size":
            if not value.isdigit() or not 1 <= int(value) <= 1000:
                raise bad(f"pool_size must be a whole number from 1 to 1000, not {value!r}")
            pool_size = int(value)
        else:
            passed.append((key, value))
    if not any(key == "connect_timeout" for key, _ in passed):
        passed.append(("connect_timeout", str(CONNECT_TIMEOUT)))
    conninfo = urlunsplit(parts._replace(scheme="postgresql", query=urlencode(passed)))
    try:
        psycopg.conninfo.conninfo_to_dict(conninfo)
    except psycopg.ProgrammingError as exc:
        raise bad(str(exc)) from None
    return PostgresSettings(conninfo, pool_size, where)


def prepare(settings: PostgresSettings) -> None:
    """Connect once and migrate; blocking, so run in a worker thread. Raises ValueError."""
    try:
        with psycopg.connect(settings.conninfo) as conn:
            migrate(conn)
    except psycopg.OperationalError as exc:
        reason = " ".join(str(exc).split()) or type(exc).__name__
        raise ValueError(f"cannot open the PostgreSQL store at {settings.where}: {redacted(reason)}") from None
    except ValueError as exc:
        raise type(exc)(f"{settings.where}: {exc}") from None


def _configure(conn: psycopg.Connection[Any]) -> None:
    conn.execute("SET TIME ZONE 'UTC'")
    conn.commit()


class PostgresBackend:
    """Opens a PostgresStore for a ``postgresql:`` (or ``postgres:``) URL, migrating first."""

    description = (
        "a PostgreSQL database shared by every server of a cluster"
        " (postgresql://user:password@host:port/database?pool_size=8)"
    )

    def __init__(self, scheme: str = "postgresql") -> None:
        self.scheme = scheme

    @asynccontextmanager
    async def open(self, url: str) -> AsyncIterator[PostgresStore]:
        settings = parse_url(url)
        await trio.to_thread.run_sync(partial(prepare, settings))
        pool: psycopg_pool.ConnectionPool[Any] = psycopg_pool.ConnectionPool(
            settings.conninfo,
            min_size=settings.pool_size,
            max_size=settings.pool_size,
            open=False,
            configure=_configure,
            reconnect_timeout=0,  # keep trying for ever: the database may come back
            name="tidings",
        )
        await trio.to_thread.run_sync(partial(pool.open, wait=True, timeout=30))
        try:
            yield PostgresStore(pool, trio.CapacityLimiter(settings.pool_size), settings.where)
        finally:
            with trio.CancelScope(shield=True):
                await trio.to_thread.run_sync(pool.close)


@hookimpl
def tidings_storage_backends() -> list[StorageBackend]:
    return [PostgresBackend("postgresql"), PostgresBackend("postgres")]
