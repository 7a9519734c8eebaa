"""A server process as one node of a cluster: its identity, its heartbeat, and who is alive.

Every process sharing a store is a node, whatever the backend: it registers at start, tells
the store every ``lease / 3`` that it is alive (which also extends the leases of the attempts it
runs, so a lease can be short and a long attempt still keeps it), and leaves at a clean
shutdown. A node that stops beating is dead to the others once its leases end.
"""

from __future__ import annotations

import logging
import os
import secrets
import socket
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

import trio

from tidings_server import __version__
from tidings_server.delivery.clock import Clock
from tidings_server.domain.ports import NodeInfo, Store

log = logging.getLogger(__name__)

ROLES = ("all", "api", "worker")
ALIVE_BEATS = 3
"""A node is alive while its last heartbeat is at most this many heartbeat periods old."""


def new_node_id() -> str:
    """``<hostname>-<pid>-<4 random hex>``: readable in logs, unique per process start even when
    a restarted container reuses its hostname and pid."""
    return f"{socket.gethostname()}-{os.getpid()}-{secrets.token_hex(2)}"


def heartbeat_period(lease: timedelta) -> float:
    """Seconds between heartbeats: three chances to renew a lease before it ends."""
    return lease.total_seconds() / 3


def alive(nodes: Sequence[NodeInfo], now: datetime, lease: timedelta) -> list[NodeInfo]:
    """The nodes heard from within the last ``ALIVE_BEATS`` heartbeats."""
    horizon = now - timedelta(seconds=ALIVE_BEATS * heartbeat_period(lease))
    return [n for n in nodes if n.last_seen >= horizon]


@dataclass(frozen=True, slots=True)
class Node:
    """This process as the cluster sees it."""

    node_id: str
    role: str

    def info(self, now: datetime, in_flight: int = 0) -> NodeInfo:
        return NodeInfo(self.node_id, self.role, socket.gethostname(), os.getpid(), now, now, in_flight, __version__)


async def beat(
    store: Store,
    node_id: str,
    clock: Clock,
    lease: timedelta,
    in_flight: Callable[[], int],
    *,
    task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Heartbeat until cancelled, the first one at once. A failed heartbeat (the database away)
    is logged and tried again at the next period: the leases have two more before they end."""
    task_status.started()
    while True:
        now = clock.now()
        try:
            await store.heartbeat(node_id, now, lease_until=now + lease, in_flight=in_flight())
        except Exception as exc:  # the store's trouble, not this loop's: keep beating
            log.warning("heartbeat failed", extra={"node": node_id, "error": str(exc)})
        await trio.sleep(heartbeat_period(lease))
