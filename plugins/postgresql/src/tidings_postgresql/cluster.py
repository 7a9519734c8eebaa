"""The cluster's part of the store: nodes, their heartbeats and leases, and wake-up notices.

Notices travel by LISTEN/NOTIFY: writes send them inside their own transactions (so a notice
arrives only for what committed), and ``listen`` holds one dedicated connection, in a thread
blocking on ``notifies()``, that hands each notice to the trio loop with
``trio.from_thread.run_sync``. When that connection breaks it is opened again, and both
notices are handed on once it is back, since anything may have happened meanwhile.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from datetime import datetime
from typing import Any, Final

import psycopg
import trio

from tidings_postgresql.changelog import NOTICE_CHANNEL
from tidings_server.domain.errors import Unavailable
from tidings_server.domain.ports import NodeInfo, Notice

log = logging.getLogger(__name__)


_REGISTER: Final = """
    INSERT INTO nodes (node_id, role, host, pid, start_time, last_seen, in_flight, version)
    VALUES (%s, %s, %s, %s, %s, %s, %s, %s)
    ON CONFLICT (node_id) DO UPDATE SET role = excluded.role, host = excluded.host, pid = excluded.pid,
        start_time = excluded.start_time, last_seen = excluded.last_seen, in_flight = excluded.in_flight,
        version = excluded.version
"""
_BEAT: Final = """
    INSERT INTO nodes (node_id, role, host, pid, start_time, last_seen, in_flight)
    VALUES (%(node)s, 'all', '', 0, %(now)s, %(now)s, %(in_flight)s)
    ON CONFLICT (node_id) DO UPDATE SET last_seen = excluded.last_seen, in_flight = excluded.in_flight
"""
# One statement for every lease the node holds that has not run out. A lease row another
# transaction holds is skipped, never waited for: it is being deleted (its attempt recorded),
# released or taken over, and waiting could close a cycle with a writer that holds the rows of
# its deliveries first and their leases after (a record). The next beat extends it if it stays.
_EXTEND: Final = """
    UPDATE leases SET lease_until = %(lease_until)s
    WHERE delivery_name IN (
        SELECT delivery_name FROM leases WHERE owner = %(node)s AND lease_until > %(now)s FOR UPDATE SKIP LOCKED)
"""
# The same for a node leaving: what it skips is in the hands of another writer already.
_RELEASE_NODE: Final = """
    UPDATE leases SET lease_until = NULL, owner = NULL
    WHERE delivery_name IN (SELECT delivery_name FROM leases WHERE owner = %s FOR UPDATE SKIP LOCKED)
"""
_NODES: Final = "SELECT node_id, role, host, pid, start_time, last_seen, in_flight, version FROM nodes ORDER BY node_id"
RECONNECT_DELAY: Final = 1.0
"""Seconds between attempts to open the listening connection again."""
POLL_SECONDS: Final = 0.5
"""How long the listening thread blocks before it checks whether it was asked to stop."""


def register_node(conn: psycopg.Connection[Any], *, node: NodeInfo) -> None:
    conn.execute(
        _REGISTER,
        (node.node_id, node.role, node.host, node.pid, node.start_time, node.last_seen, node.in_flight, node.version),
    )


def heartbeat(
    conn: psycopg.Connection[Any], *, node_id: str, now: datetime, lease_until: datetime, in_flight: int
) -> int:
    args = {"node": node_id, "now": now, "lease_until": lease_until, "in_flight": in_flight}
    conn.execute(_BEAT, args)
    with conn.cursor() as cur:
        cur.execute(_EXTEND, args)
        return cur.rowcount


def list_nodes(conn: psycopg.Connection[Any]) -> list[NodeInfo]:
    return [NodeInfo(*row) for row in conn.execute(_NODES).fetchall()]


def remove_node(conn: psycopg.Connection[Any], *, node_id: str) -> None:
    conn.execute("DELETE FROM nodes WHERE node_id = %s", (node_id,))
    conn.execute(_RELEASE_NODE, (node_id,))
    conn.execute("SELECT pg_notify(%s, %s)", (NOTICE_CHANNEL, Notice.DUE.value))


def _listen_blocking(
    conninfo: str, on_notice: Callable[[Notice], None], started: Callable[[], None], stop: threading.Event
) -> None:
    """The listening thread: LISTEN on a connection of its own, reconnecting until ``stop``."""
    first = True
    while not stop.is_set():
        try:
            with psycopg.connect(conninfo, autocommit=True, connect_timeout=5) as conn:
                conn.execute(f"LISTEN {NOTICE_CHANNEL}")
                if first:
                    trio.from_thread.run_sync(started)
                    first = False
                else:  # notices sent while the connection was down are lost: assume both
                    for notice in Notice:
                        trio.from_thread.run_sync(on_notice, notice)
                while not stop.is_set():
                    for n in conn.notifies(timeout=POLL_SECONDS):
                        try:
                            notice = Notice(n.payload)
                        except ValueError:
                            continue  # someone else's payload on our channel: not ours to act on
                        trio.from_thread.run_sync(on_notice, notice)
        except psycopg.OperationalError as exc:
            if first:
                raise Unavailable(f"cannot listen for notices on the PostgreSQL store: {exc}") from exc
            log.warning("the PostgreSQL notice connection broke; reconnecting", extra={"error": str(exc)})
            stop.wait(RECONNECT_DELAY)
        except trio.RunFinishedError:
            return


async def listen(
    conninfo: str,
    on_notice: Callable[[Notice], None],
    *,
    task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Call ``on_notice`` for every notice any server sends, until cancelled."""
    stop = threading.Event()
    try:
        # abandon_on_cancel: the thread notices ``stop`` within POLL_SECONDS and closes its connection.
        await trio.to_thread.run_sync(
            _listen_blocking, conninfo, on_notice, lambda: task_status.started(), stop, abandon_on_cancel=True
        )
    finally:
        stop.set()
