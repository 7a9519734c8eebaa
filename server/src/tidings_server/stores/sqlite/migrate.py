"""SQLite schema migrations: numbered, forward-only SQL files applied in order, one transaction each.

The schema version lives in ``PRAGMA user_version`` (0 for a new file), which SQLite changes
inside the same transaction as the DDL, so a failed step leaves the previous version intact.
Files are ``migrations/NNNN_what.sql`` inside this package, read with importlib.resources so
they are found in a wheel as well as in a source tree. Never edit a released file: add the next.
"""

from __future__ import annotations

import functools
import re
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from importlib import resources

_PACKAGE = "tidings_server.stores.sqlite"
_FILE_RE = re.compile(r"(?P<version>[0-9]{4})_(?P<what>[a-z0-9_]+)\.sql")


class SchemaTooNewError(RuntimeError):
    """The database was written by a newer tidings-server whose schema this one does not know."""


@dataclass(frozen=True, slots=True)
class Migration:
    """One schema step: applying it to version ``version - 1`` yields ``version``."""

    version: int
    name: str
    sql: str


@functools.cache
def migrations() -> tuple[Migration, ...]:
    """Every migration shipped with the package, by version; versions must run 1, 2, … without gaps."""
    found: list[Migration] = []
    for entry in resources.files(_PACKAGE).joinpath("migrations").iterdir():
        m = _FILE_RE.fullmatch(entry.name)
        if m is not None:
            found.append(Migration(int(m["version"]), entry.name, entry.read_text(encoding="utf-8")))
    found.sort(key=lambda step: step.version)
    versions = [step.version for step in found]
    if versions != list(range(1, len(found) + 1)):
        raise RuntimeError(f"SQLite migrations must be numbered 1..N without gaps; found {versions}")
    return tuple(found)


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
        raise SchemaTooNewError(
            f"the database has schema version {current}, but this tidings-server knows versions"
            f" up to {latest}; run a tidings-server at least as new as the one that wrote it"
        )
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
