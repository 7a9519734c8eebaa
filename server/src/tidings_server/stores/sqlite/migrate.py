"""SQLite schema migrations: numbered, forward-only SQL files applied in order, one transaction each.

The schema version lives in ``PRAGMA user_version`` (0 for a new file), which SQLite changes
inside the same transaction as the DDL, so a failed step leaves the previous version intact.
Files are ``migrations/NNNN_what.sql`` inside this package, loaded as ``stores.migrating``
loads every store's. Never edit a released file: add the next.
"""

from __future__ import annotations

import functools
import sqlite3
from collections.abc import Iterator

from tidings_server.stores import migrating
from tidings_server.stores.migrating import Migration as Migration  # the step type, as callers knew it

_PACKAGE = "tidings_server.stores.sqlite"


class SchemaTooNewError(RuntimeError):
    """The database was written by a newer tidings-server whose schema this one does not know."""


@functools.cache
def migrations() -> tuple[Migration, ...]:
    """Every migration shipped with the package, by version."""
    return migrating.load(_PACKAGE, "SQLite")


def latest_version() -> int:
    """The schema version this code writes and reads."""
    return len(migrations())


def schema_version(conn: sqlite3.Connection) -> int:
    version: int = conn.execute("PRAGMA user_version").fetchone()[0]
    return version


def check_not_newer(conn: sqlite3.Connection) -> int:
    """Return the schema version, or raise SchemaTooNewError if this code does not know it."""
    current, latest = schema_version(conn), latest_version()
    if current > latest:
        raise SchemaTooNewError(migrating.too_new(current, latest))
    return current


def _statements(script: str) -> Iterator[str]:
    """Split a script at the semicolons that end statements (not those in strings or comments).

    ``executescript`` would do this too, but it commits any open transaction first, and each
    migration must run inside the transaction that also checks and sets the version.
    """
    pending = ""
    for piece in script.split(";"):
        pending += piece + ";"
        if sqlite3.complete_statement(pending):
            yield pending
            pending = ""
    rest = pending[:-1]
    if rest.strip():
        yield rest


def migrate(conn: sqlite3.Connection, target: int | None = None) -> int:
    """Apply the pending migrations up to ``target`` (default: all) and return the resulting version.

    ``conn`` must be in autocommit mode (``isolation_level=None``) so that each step can own its
    transaction. Each step takes the write lock (BEGIN IMMEDIATE) and re-reads the version under
    it, so two processes opening the same new file do not both apply a step. A database newer
    than this code raises SchemaTooNewError rather than being used with a schema it may not match.
    """
    steps = migrations()
    latest = len(steps)
    goal = latest if target is None else target
    if not 0 <= goal <= latest:
        raise ValueError(f"target schema version must be between 0 and {latest}, got {target}")
    if conn.isolation_level is not None or conn.in_transaction:
        raise ValueError(
            "migrate() needs a connection in autocommit mode (isolation_level=None), outside a transaction"
        )
    while True:
        conn.execute("BEGIN IMMEDIATE")
        try:
            current = check_not_newer(conn)
            if current >= goal:
                conn.execute("COMMIT")
                return current
            step = steps[current]
            for statement in _statements(step.sql):
                conn.execute(statement)
            conn.execute(f"PRAGMA user_version = {step.version:d}")
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
