"""Day partitions of the big tables: created before a day is first written, dropped by retention.

Each family is partitioned by range on one time column, one partition per UTC day, named
``<table>_YYYYMMDD``. The deliveries family (deliveries, attempts, delivery_bodies) shares its
days: attempts and bodies carry their delivery's create_time, so a day of deliveries and
everything hanging off it go together. Partition DDL runs in a transaction of its own under an
advisory lock, so servers creating the same day at once do not collide, and a write transaction
never holds the parent table's DDL lock.

Retention takes a day away in two steps. First its partitions are detached CONCURRENTLY
(outside any transaction, under a lock of its own that one server at a time takes): that
locks the parent tables only in SHARE UPDATE EXCLUSIVE mode, which no write or read waits for.
A plain DROP of a partition would take the parent ACCESS EXCLUSIVE, stalling every claim,
publish and record behind it, and deadlocking with a publish that holds events and waits for
deliveries while the drop holds deliveries and waits for events. Then, in a transaction,
the detached tables (no longer part of any query) are counted and dropped.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from datetime import UTC, date, datetime, time, timedelta
from typing import Any, Final

import psycopg
from psycopg import sql

PARTITION_LOCK: Final = 0x7469_6469_6E67_0002
"""The advisory lock key taken around partition DDL."""
FAMILIES: Final = {
    "events": ("events",),
    "deliveries": ("deliveries", "attempts", "delivery_bodies"),
    "changes": ("changes",),
}
AHEAD: Final = 1
"""Days created ahead of the day being written, so the day after is ready before midnight."""
RETIRE_LOCK: Final = 0x7469_6469_6E67_0004
"""The advisory lock key held (session-level) by the one server detaching expired days."""
_NAME_RE = re.compile(r"_(\d{8})$")


def day_of(moment: datetime) -> date:
    return moment.astimezone(UTC).date()


def start_of(day: date) -> datetime:
    return datetime.combine(day, time(), tzinfo=UTC)


def partition_name(table: str, day: date) -> str:
    return f"{table}_{day:%Y%m%d}"


def ensure(conn: psycopg.Connection[Any], family: str, days: Iterable[date]) -> None:
    """Create the partitions of ``family`` for ``days`` (and AHEAD days after each) that are missing.

    ``conn`` must not be in a transaction: this runs in one of its own.
    """
    wanted = sorted({d + timedelta(days=n) for d in days for n in range(AHEAD + 1)})
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (PARTITION_LOCK,))
        for table in FAMILIES[family]:
            for day in wanted:
                name = partition_name(table, day)
                if conn.execute("SELECT to_regclass(%s)", (name,)).fetchone() != (None,):
                    continue
                conn.execute(
                    sql.SQL("CREATE TABLE {} PARTITION OF {} FOR VALUES FROM ({}) TO ({})").format(
                        sql.Identifier(name),
                        sql.Identifier(table),
                        sql.Literal(start_of(day)),
                        sql.Literal(start_of(day + timedelta(days=1))),
                    )
                )


def days(conn: psycopg.Connection[Any], table: str) -> list[date]:
    """The days ``table`` has partitions for, oldest first."""
    rows = conn.execute(
        "SELECT c.relname FROM pg_inherits AS i JOIN pg_class AS c ON c.oid = i.inhrelid"
        " WHERE i.inhparent = %s::regclass",
        (table,),
    ).fetchall()
    found: list[date] = []
    for (relname,) in rows:
        m = _NAME_RE.search(relname)
        if m is not None:
            found.append(datetime.strptime(m[1], "%Y%m%d").replace(tzinfo=UTC).date())
    return sorted(found)


def oldest_expired(conn: psycopg.Connection[Any], table: str, before: datetime) -> date | None:
    """The oldest day of ``table`` whose partition lies entirely before ``before``, if any."""
    for day in days(conn, table):
        if start_of(day + timedelta(days=1)) <= before:
            return day
        return None
    return None


def detach(conn: psycopg.Connection[Any], family: str, day: date) -> None:
    """Detach the day's partitions of every table in ``family`` CONCURRENTLY; ``conn`` must be in
    autocommit mode (each detach runs two transactions of its own)."""
    for table in FAMILIES[family]:
        name = partition_name(table, day)
        row = conn.execute(
            "SELECT i.inhdetachpending FROM pg_inherits AS i WHERE i.inhrelid = to_regclass(%s)"
            " AND i.inhparent = %s::regclass",
            (name, table),
        ).fetchone()
        if row is None:
            continue  # detached already (or never made)
        how = "FINALIZE" if row[0] else "CONCURRENTLY"  # a detach interrupted half-way is finished
        conn.execute(
            sql.SQL("ALTER TABLE {} DETACH PARTITION {} " + how).format(sql.Identifier(table), sql.Identifier(name))
        )


def detached(conn: psycopg.Connection[Any], table: str) -> list[date]:
    """The days of ``table`` detached and not dropped yet, oldest first."""
    rows = conn.execute(
        "SELECT c.relname FROM pg_class AS c WHERE c.relkind = 'r' AND NOT c.relispartition"
        " AND c.relnamespace = current_schema()::regnamespace AND c.relname ~ %s",
        (f"^{re.escape(table)}_[0-9]{{8}}$",),
    ).fetchall()
    return sorted(datetime.strptime(r[0][-8:], "%Y%m%d").replace(tzinfo=UTC).date() for r in rows)


def drop(conn: psycopg.Connection[Any], family: str, day: date) -> None:
    """Drop the day's detached tables of every table in ``family`` (inside the caller's
    transaction); they are no partitions any more, so no parent is locked."""
    for table in FAMILIES[family]:
        conn.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(sql.Identifier(partition_name(table, day))))
