"""The SQLite store's cluster SQL: the node table and lease ownership, for a cluster of one.

A SQLite file has one server at a time (``lock`` keeps it so), yet the server registers,
heartbeats and leaves like any node, so the engine and ``tidings-server status`` treat every
store alike. Each function is the body of one transaction, as in ``deliveries``.
"""

from __future__ import annotations

import sqlite3

from tidings_server.domain.ports import NodeInfo
from tidings_server.stores.sqlite import rows

_UPSERT_NODE = """
    INSERT INTO nodes (node_id, role, host, pid, start_time, last_seen, in_flight, version)
    VALUES (?, ?, ?, ?, ?, ?, ?, ?)
    ON CONFLICT (node_id) DO UPDATE SET role = excluded.role, host = excluded.host, pid = excluded.pid,
        start_time = excluded.start_time, last_seen = excluded.last_seen, in_flight = excluded.in_flight,
        version = excluded.version
"""
# A node heard of first through its heartbeat is registered with what the heartbeat knows.
_BEAT = """
    INSERT INTO nodes (node_id, role, host, pid, start_time, last_seen, in_flight) VALUES (?1, 'all', '', 0, ?2, ?2, ?3)
    ON CONFLICT (node_id) DO UPDATE SET last_seen = excluded.last_seen, in_flight = excluded.in_flight
"""
_EXTEND = """
    UPDATE deliveries INDEXED BY deliveries_leased_by_hook SET lease_until = ?
    WHERE lease_owner = ? AND lease_until IS NOT NULL AND lease_until > ? AND status IN ('queued', 'retrying')
"""
_LIST_NODES = "SELECT node_id, role, host, pid, start_time, last_seen, in_flight, version FROM nodes ORDER BY node_id"
_RELEASE_OWNED = """
    UPDATE deliveries INDEXED BY deliveries_leased_by_hook SET lease_until = NULL, lease_owner = NULL
    WHERE lease_owner = ? AND lease_until IS NOT NULL
"""
_RELEASE_ALL = "UPDATE deliveries SET lease_until = NULL, lease_owner = NULL WHERE lease_until IS NOT NULL"


def register(conn: sqlite3.Connection, *, row: tuple[object, ...]) -> None:
    conn.execute(_UPSERT_NODE, row)


def node_row(node: NodeInfo) -> tuple[object, ...]:
    return (
        node.node_id,
        node.role,
        node.host,
        node.pid,
        rows.to_micros("start_time", node.start_time),
        rows.to_micros("last_seen", node.last_seen),
        node.in_flight,
        node.version,
    )


def heartbeat(conn: sqlite3.Connection, *, node_id: str, now: int, lease_until: int, in_flight: int) -> int:
    conn.execute(_BEAT, (node_id, now, in_flight))
    extended: int = conn.execute(_EXTEND, (lease_until, node_id, now)).rowcount
    return extended


def list_nodes(conn: sqlite3.Connection) -> list[NodeInfo]:
    return [
        NodeInfo(node_id, role, host, pid, rows.from_micros(start), rows.from_micros(seen), in_flight, version)
        for node_id, role, host, pid, start, seen, in_flight, version in conn.execute(_LIST_NODES)
    ]


def remove(conn: sqlite3.Connection, *, node_id: str) -> None:
    conn.execute("DELETE FROM nodes WHERE node_id = ?", (node_id,))
    conn.execute(_RELEASE_OWNED, (node_id,))


def recover(conn: sqlite3.Connection) -> int:
    """Forget the nodes and leases a previous process left: the file has one owner, and it is
    the caller now, so nothing they held is still being attempted. Returns the leases cleared."""
    conn.execute("DELETE FROM nodes")
    released: int = conn.execute(_RELEASE_ALL).rowcount
    return released
