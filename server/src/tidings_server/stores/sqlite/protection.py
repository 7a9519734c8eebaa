"""SQL of endpoint protection that is not about deliveries: since when a hook fails (for its
deactivation), one row per hook in ``hook_failing``."""

from __future__ import annotations

import sqlite3
from datetime import datetime
from typing import Final

from tidings_server.domain import failing
from tidings_server.stores.sqlite.rows import from_micros, optional_time

_FAILING: Final = """
    SELECT f.since, (SELECT last_success_time FROM hook_health WHERE hook_name = :hook)
    FROM (SELECT :hook AS hook_name) AS h LEFT JOIN hook_failing AS f ON f.hook_name = h.hook_name
"""
_WRITE_FAILING: Final = "INSERT OR REPLACE INTO hook_failing (hook_name, since) VALUES (?, ?)"
_CLEAR_FAILING: Final = "DELETE FROM hook_failing WHERE hook_name = ?"


def mark_failing(conn: sqlite3.Connection, *, hook_name: str, since: int, last_success: int | None) -> datetime:
    recorded, success = conn.execute(_FAILING, {"hook": hook_name}).fetchone()
    held = failing.holding(
        optional_time(recorded), (optional_time(success), optional_time(last_success)), from_micros(since)
    )
    if recorded is None or held != from_micros(recorded):  # written only when it changes
        conn.execute(_WRITE_FAILING, (hook_name, since))
    return held


def clear_failing(conn: sqlite3.Connection, *, hook_name: str) -> None:
    conn.execute(_CLEAR_FAILING, (hook_name,))
