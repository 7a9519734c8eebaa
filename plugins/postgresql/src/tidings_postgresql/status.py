"""The PostgreSQL store's reads for ``tidings-server status``: recent activity and failing hooks.

Both are bounded whatever the history holds: activity reads the newest changes by seq (a
range of the primary key, in the partitions ``since`` leaves), failing hooks read
``hook_health``, one row per hook. Neither takes a lock a writer waits for.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Final

import psycopg

from tidings_server.domain.model import DeliveryStatus
from tidings_server.domain.ports import Activity, FailingHook

_ACTIVITY: Final = """
    SELECT status, count(*) FROM changes
    WHERE seq > (SELECT seq FROM change_log_head) - %(scan)s AND time >= %(since)s
    GROUP BY status
"""
_FAILING: Final = """
    SELECT h.hook_name, h.consecutive_failures, h.last_failure_time, h.last_failure_reason, h.last_success_time
    FROM hook_health AS h JOIN hooks ON hooks.name = h.hook_name
    WHERE h.consecutive_failures > 0
    ORDER BY h.consecutive_failures DESC, h.hook_name
    LIMIT %s
"""


def activity(conn: psycopg.Connection[Any], *, since: datetime, scan_limit: int) -> Activity:
    counts = dict.fromkeys(DeliveryStatus, 0)
    for status, total in conn.execute(_ACTIVITY, {"scan": max(scan_limit, 0), "since": since}).fetchall():
        counts[DeliveryStatus(status)] = total
    return Activity(counts, complete=sum(counts.values()) < scan_limit)


def failing_hooks(conn: psycopg.Connection[Any], *, limit: int) -> list[FailingHook]:
    return [FailingHook(*row) for row in conn.execute(_FAILING, (max(limit, 0),)).fetchall()]
