"""The SQLite store's reads for ``tidings-server status``: recent activity and failing hooks.

Both are bounded whatever the history holds: activity reads the newest changes by seq (the
rowid, so one range of the table), failing hooks read ``hook_health``, one row per hook.
"""

from __future__ import annotations

import sqlite3

from tidings_server.domain.model import DeliveryStatus
from tidings_server.domain.ports import Activity, FailingHook
from tidings_server.stores.sqlite import rows

_ACTIVITY = """
    SELECT status, count(*) FROM changes
    WHERE seq > (SELECT coalesce(max(seq), 0) FROM changes) - ? AND time >= ?
    GROUP BY status
"""
_FAILING = """
    SELECT h.hook_name, h.consecutive_failures, h.last_failure_time, h.last_failure_reason, h.last_success_time
    FROM hook_health AS h JOIN hooks ON hooks.name = h.hook_name
    WHERE h.consecutive_failures > 0
    ORDER BY h.consecutive_failures DESC, h.hook_name
    LIMIT ?
"""


def activity(conn: sqlite3.Connection, *, since: int, scan_limit: int) -> Activity:
    counts = dict.fromkeys(DeliveryStatus, 0)
    for status, total in conn.execute(_ACTIVITY, (max(scan_limit, 0), since)):
        counts[DeliveryStatus(status)] = total
    return Activity(counts, complete=sum(counts.values()) < scan_limit)


def failing_hooks(conn: sqlite3.Connection, *, limit: int) -> list[FailingHook]:
    return [
        FailingHook(name, failures, rows.optional_time(failed), reason, rows.optional_time(succeeded))
        for name, failures, failed, reason, succeeded in conn.execute(_FAILING, (max(limit, 0),))
    ]
