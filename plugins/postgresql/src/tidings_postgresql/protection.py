"""SQL of endpoint protection that is not about deliveries: since when a hook fails (for its
deactivation), one row per hook in ``hook_failing``, locked while a node reads and moves it so
two nodes reporting at once agree on the earlier time."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Final

import psycopg

from tidings_server.domain import failing

# The row is made first (unless the hook is gone), so the read below can lock it.
_ENSURE: Final = """
    INSERT INTO hook_failing (hook_name, since) SELECT name, %s FROM hooks WHERE name = %s
    ON CONFLICT (hook_name) DO NOTHING
"""
_LOCK: Final = """
    SELECT f.since, h.last_success_time FROM hook_failing AS f LEFT JOIN hook_health AS h USING (hook_name)
    WHERE f.hook_name = %s FOR UPDATE OF f
"""
_WRITE: Final = "UPDATE hook_failing SET since = %s WHERE hook_name = %s"
_CLEAR: Final = "DELETE FROM hook_failing WHERE hook_name = %s"


def mark_failing(
    conn: psycopg.Connection[Any], *, hook_name: str, since: datetime, last_success: datetime | None
) -> datetime:
    conn.execute(_ENSURE, (since, hook_name))
    row = conn.execute(_LOCK, (hook_name,)).fetchone()
    if row is None:  # the hook is gone: nothing to keep
        return since
    recorded, success = row
    held = failing.holding(recorded, (success, last_success), since)
    if held != recorded:
        conn.execute(_WRITE, (held, hook_name))
    return held


def clear_failing(conn: psycopg.Connection[Any], *, hook_name: str) -> None:
    conn.execute(_CLEAR, (hook_name,))
