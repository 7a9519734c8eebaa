"""PostgreSQL schema migrations: numbered, forward-only SQL files, applied under an advisory lock.

The version lives in the one-row table ``tidings_schema``. Every server that opens the database
takes the same transaction-level advisory lock before it reads the version, so of ten servers
starting at once on an empty database one applies the migrations and the other nine find them
done. Before anything is written the database is checked: one whose schema is newer than this
code, or one that holds another application's tables (tables, no ``tidings_schema``), is
refused untouched. Files are ``migrations/NNNN_what.sql`` in this package, loaded as
``tidings_server.stores.migrating`` loads every store's; never edit a released one, add the next.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any

import psycopg

from tidings_server.stores import migrating
from tidings_server.stores.migrating import Migration

_PACKAGE = "tidings_postgresql"
MIGRATION_LOCK = 0x7469_6469_6E67_0001  # "tiding" + 1: one key for every tidings database
"""The advisory lock key taken by every migration run (any 64-bit number no one else uses)."""


class SchemaError(ValueError):
    """The database cannot be used by this server; nothing in it was changed.

    A ValueError, so start-up reports it as bad ``--store`` input.
    """


class SchemaTooNewError(SchemaError):
    """The database was written by a newer tidings-server whose schema this one does not know."""


class ForeignDatabaseError(SchemaError):
    """The database holds another application's tables."""


@dataclass(frozen=True, slots=True)
class Migrated:
    """What ``migrate`` did: the version it found (0 for an empty database) and the one it left."""

    found: int
    version: int


@functools.cache
def migrations() -> tuple[Migration, ...]:
    """Every migration shipped with the package, by version."""
    return migrating.load(_PACKAGE, "PostgreSQL")


def latest_version() -> int:
    return len(migrations())


def schema_version(conn: psycopg.Connection[Any]) -> int | None:
    """The schema version, or None for a database without tidings' version table."""
    if conn.execute("SELECT to_regclass('tidings_schema')").fetchone() == (None,):
        return None
    row = conn.execute("SELECT version FROM tidings_schema").fetchone()
    return 0 if row is None else int(row[0])


def _check(conn: psycopg.Connection[Any]) -> int:
    """The version to migrate from, or raise SchemaError if the database must not be touched."""
    current = schema_version(conn)
    latest = latest_version()
    if current is None:
        row = conn.execute(
            "SELECT count(*), min(tablename) FROM pg_tables WHERE schemaname = current_schema()"
        ).fetchone()
        assert row is not None
        if row[0]:
            raise ForeignDatabaseError(
                f"the database holds {row[0]} table(s) of another application (such as {row[1]!r}) and no"
                " tidings schema; give tidings a database of its own"
            )
        return 0
    if current > latest:
        raise SchemaTooNewError(migrating.too_new(current, latest))
    return current


def migrate(conn: psycopg.Connection[Any], target: int | None = None) -> Migrated:
    """Bring the database to ``target`` (default: the latest version).

    Runs in one transaction on ``conn`` (which must not be in one), holding the advisory lock
    from before the version is read until the last step commits.
    """
    steps = migrations()
    goal = len(steps) if target is None else target
    if not 0 <= goal <= len(steps):
        raise ValueError(f"target schema version must be between 0 and {len(steps)}, got {target}")
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (MIGRATION_LOCK,))
        current = _check(conn)
        if current >= goal:
            return Migrated(current, current)
        if current == 0:
            conn.execute("CREATE TABLE IF NOT EXISTS tidings_schema (version integer NOT NULL)")
        for step in steps[current:goal]:
            conn.execute(step.sql.encode())  # bytes: the script is sent as is, no placeholders
        conn.execute("DELETE FROM tidings_schema")
        conn.execute("INSERT INTO tidings_schema (version) VALUES (%s)", (goal,))
    return Migrated(current, goal)
