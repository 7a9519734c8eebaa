"""The change log, the per-hook counters and the notices: written by every path that moves deliveries.

Seq order is commit order. A ``bigserial`` is handed out at insert, not at commit, so a reader
that has seen seq 101 could later find seq 100 commit and skip it. Here every transaction that
appends changes first takes one transaction-level advisory lock (held until it commits or rolls
back) and only then numbers its changes from ``change_log_head``: the next appender waits for
the lock, so it numbers after, and commits after, every change numbered before it. Writes are
batched (a publish, a batch of attempts), so the lock is taken once per batch and held for the
last few statements of its transaction only.

The lock must be the last one a transaction waits for: one that held it and then waited for a
row (a counter, a delivery) could deadlock with a writer holding that row and waiting for the
log. So every writer locks its rows and updates the counters first, and appends its changes
last.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any, Final

import psycopg

from tidings_postgresql.rows import DELIVERY_COLUMNS, prefixed

CHANGE_LOG_LOCK: Final = 0x7469_6469_6E67_0003
NOTICE_CHANNEL: Final = "tidings"
"""The LISTEN/NOTIFY channel; payloads are ``Notice`` values ("due", "changes")."""

_CHANGE_COLUMNS: Final = f"seq, time, {DELIVERY_COLUMNS}"
_NUMBER = "UPDATE change_log_head SET seq = seq + %s RETURNING seq"
# From the deliveries as they are now, numbered in the order given.
_LOG_DELIVERIES: Final = f"""
    INSERT INTO changes ({_CHANGE_COLUMNS})
    SELECT %(base)s + u.ord, d.update_time, {prefixed(DELIVERY_COLUMNS, "d")}
    FROM unnest(%(names)s::text[], %(created)s::timestamptz[]) WITH ORDINALITY AS u(name, created, ord)
    JOIN deliveries AS d ON d.name = u.name AND d.create_time = u.created
"""
_LOG_NEW: Final = f"""
    INSERT INTO changes ({_CHANGE_COLUMNS})
    VALUES (%s, %s, %s, %s, %s, 'queued', 0, %s, %s, %s, NULL, '', %s, %s, %s, %s, %s, NULL)
"""
_COUNT: Final = """
    INSERT INTO delivery_counts (hook_name, status, total)
    SELECT * FROM unnest(%s::text[], %s::text[], %s::bigint[])
    ON CONFLICT (hook_name, status) DO UPDATE SET total = delivery_counts.total + excluded.total
"""


def _numbers(conn: psycopg.Connection[Any], n: int) -> int:
    """Take the log's lock and reserve ``n`` seqs; return the one before the first."""
    conn.execute("SELECT pg_advisory_xact_lock(%s)", (CHANGE_LOG_LOCK,))
    row = conn.execute(_NUMBER, (n,)).fetchone()
    assert row is not None
    return int(row[0]) - n


def log_deliveries(conn: psycopg.Connection[Any], keys: Sequence[tuple[str, datetime]]) -> None:
    """Append each delivery (name, create_time), as it is now, to the change log, in order."""
    if not keys:
        return
    base = _numbers(conn, len(keys))
    args = {"base": base, "names": [k[0] for k in keys], "created": [k[1] for k in keys]}
    conn.execute(_LOG_DELIVERIES, args)


def log_new(conn: psycopg.Connection[Any], rows: Sequence[tuple[Any, ...]]) -> None:
    """Append new QUEUED deliveries: rows of (name, hook_name, event_id, now, company_id,
    project_id, resource_name, resource_id, event_type)."""
    if not rows:
        return
    base = _numbers(conn, len(rows))
    values = [
        (base + i, now, name, hook, event_id, now, now, now, company, project, resource, resource_id, event_type)
        for i, (name, hook, event_id, now, company, project, resource, resource_id, event_type) in enumerate(
            rows, start=1
        )
    ]
    with conn.cursor() as cur:
        cur.executemany(_LOG_NEW, values)


def count(conn: psycopg.Connection[Any], deltas: Mapping[tuple[str, str], int]) -> None:
    """Add ``deltas`` (by hook name and status value) to the per-hook counters."""
    items = [(hook, status, delta) for (hook, status), delta in sorted(deltas.items()) if delta]
    if items:
        conn.execute(_COUNT, ([i[0] for i in items], [i[1] for i in items], [i[2] for i in items]))


def notify(conn: psycopg.Connection[Any], *notices: str) -> None:
    """Tell every listening server, when this transaction commits (PostgreSQL folds repeats)."""
    for notice in notices:
        conn.execute("SELECT pg_notify(%s, %s)", (NOTICE_CHANNEL, notice))
