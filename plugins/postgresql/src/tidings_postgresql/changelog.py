"""The change log, the per-hook counters and the notices: written by every path that moves deliveries.

Seq order is commit order. A ``bigserial`` is handed out at insert, not at commit, so a reader
that has seen seq 101 could later find seq 100 commit and skip it. Here every transaction that
appends changes numbers them by updating the one row of ``change_log_head``, in the statement
that inserts them: the row stays locked until the transaction commits or rolls back, so the
next appender waits for it, and numbers after, and commits after, every change numbered
before it. Writes are batched (a publish, a batch of attempts), so the row is taken once per
batch and held for the last statement of its transaction only.

That row must be the last lock a transaction waits for: one that held it and then waited for
a row (a counter, a delivery) could deadlock with a writer holding that row and waiting for
the log. So every writer locks its rows and updates the counters first, and appends its
changes last.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any, Final

import psycopg

from tidings_postgresql.rows import DELIVERY_COLUMNS, prefixed

NOTICE_CHANNEL: Final = "tidings"
"""The LISTEN/NOTIFY channel; payloads are ``Notice`` values ("due", "changes")."""

_CHANGE_COLUMNS: Final = f"seq, time, {DELIVERY_COLUMNS}"
# Reserves n seqs (locking the head row until commit) in the statement that uses them.
_HEAD: Final = "WITH head AS (UPDATE change_log_head SET seq = seq + %(n)s RETURNING seq - %(n)s AS base)"
# From the deliveries as they are now, numbered in the order given.
_LOG_DELIVERIES: Final = f"""
    {_HEAD}
    INSERT INTO changes ({_CHANGE_COLUMNS})
    SELECT head.base + u.ord, d.update_time, {prefixed(DELIVERY_COLUMNS, "d")}
    FROM head CROSS JOIN unnest(%(names)b::text[], %(created)b::timestamptz[]) WITH ORDINALITY AS u(name, created, ord)
    JOIN deliveries AS d ON d.name = u.name AND d.create_time = u.created
"""
# New QUEUED deliveries, from the columns publishing inserts them with, numbered in the order given.
_LOG_NEW: Final = f"""
    {_HEAD}
    INSERT INTO changes ({_CHANGE_COLUMNS})
    SELECT head.base + u.ord, u.now, u.name, u.hook, u.event_id, 'queued', 0, u.now, u.now, u.now, NULL, '',
           u.company, u.project, u.resource, u.resource_id, u.event_type, NULL
    FROM head CROSS JOIN unnest(%(names)b::text[], %(hooks)b::text[], %(event_ids)b::text[], %(serials)b::bigint[],
        %(resources)b::text[], %(resource_ids)b::bigint[], %(times)b::timestamptz[], %(companies)b::bigint[],
        %(projects)b::bigint[], %(event_types)b::text[])
        WITH ORDINALITY AS u(name, hook, event_id, serial, resource, resource_id, now, company, project, event_type,
                             ord)
"""
_COUNT: Final = """
    INSERT INTO delivery_counts (hook_name, status, total)
    SELECT * FROM unnest(%b::text[], %b::text[], %b::bigint[])
    ON CONFLICT (hook_name, status) DO UPDATE SET total = delivery_counts.total + excluded.total
"""


def log_deliveries(conn: psycopg.Connection[Any], keys: Sequence[tuple[str, datetime]]) -> None:
    """Append each delivery (name, create_time), as it is now, to the change log, in order."""
    if not keys:
        return
    args = {"n": len(keys), "names": [k[0] for k in keys], "created": [k[1] for k in keys]}
    conn.execute(_LOG_DELIVERIES, args)


NEW_DELIVERY_FIELDS: Final = (
    "names", "hooks", "event_ids", "serials", "resources", "resource_ids", "times", "companies", "projects",
    "event_types",
)  # fmt: skip
"""The columns of a new delivery as publishing has them: (name, hook_name, event_id,
event_serial, resource_name, resource_id, create_time, company_id, project_id, event_type)."""


def log_new(conn: psycopg.Connection[Any], columns: Sequence[list[Any]]) -> None:
    """Append new QUEUED deliveries, given as one list per NEW_DELIVERY_FIELDS column."""
    if not columns or not columns[0]:
        return
    args: dict[str, Any] = dict(zip(NEW_DELIVERY_FIELDS, columns, strict=True))
    args["n"] = len(columns[0])
    conn.execute(_LOG_NEW, args)


def count(conn: psycopg.Connection[Any], deltas: Mapping[tuple[str, str], int]) -> None:
    """Add ``deltas`` (by hook name and status value) to the per-hook counters."""
    items = [(hook, status, delta) for (hook, status), delta in sorted(deltas.items()) if delta]
    if items:
        conn.execute(_COUNT, ([i[0] for i in items], [i[1] for i in items], [i[2] for i in items]))


def notify(conn: psycopg.Connection[Any], *notices: str) -> None:
    """Tell every listening server, when this transaction commits (PostgreSQL folds repeats);
    one statement for all of them."""
    if notices:
        calls = ", ".join(["pg_notify(%s, %s)"] * len(notices))
        conn.execute(f"SELECT {calls}", [arg for notice in notices for arg in (NOTICE_CHANNEL, notice)])
