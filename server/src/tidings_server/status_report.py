"""``tidings-server status``: what an operator checks first, read from the store the servers share.

Read from the store, not asked of one server: every node writes its heartbeat, its attempts
and the change log there, so one read gives the cluster's figures whichever nodes are up (and
says "no live nodes" when none is, which a call to a server could not). A SQLite file is read
through ``?mode=ro`` beside the server that holds it. The figures:

* nodes heard from within ``cluster.ALIVE_BEATS`` heartbeats, each with its tidings-server
  version, its uptime and the attempts it had in flight at its last heartbeat;
* deliveries due now and not leased, and how long the oldest has been due;
* the last minute's changes by the status they led to (delivered, retried, failed, discarded,
  and queued: created or queued again), from the change log, bounded by ``ACTIVITY_SCAN``;
* the hooks failing now, most failures in a row first.

The summary shows this command's version beside the versions the live nodes run (each node
records its own when it registers), so a cluster half-way through an upgrade says so.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timedelta
from urllib.parse import urlsplit

from tidings_server import __version__, cluster
from tidings_server.domain.model import DeliveryStatus
from tidings_server.domain.ports import Activity, FailingHook, NodeInfo, QueueDepth, Store

WINDOW = timedelta(minutes=1)
ACTIVITY_SCAN = 500_000
"""Changes read at most for the last minute's figures: ~4,000 deliveries/s, each created and attempted."""
DUE_LIMIT = 1_000_000
"""Due deliveries counted at most (a larger backlog reads as this, with a ``+``)."""
OUTCOMES = (
    (DeliveryStatus.DELIVERED, "delivered"),
    (DeliveryStatus.RETRYING, "retried"),
    (DeliveryStatus.FAILED, "failed"),
    (DeliveryStatus.DISCARDED, "discarded"),
    (DeliveryStatus.QUEUED, "queued"),
)


def read_only_url(url: str) -> str:
    """The store URL to read beside a running server: a SQLite file opened ``?mode=ro`` (the
    server holds its lock); other stores as given (several processes share them anyway)."""
    parts = urlsplit(url)
    if parts.scheme.lower() != "sqlite" or "mode=" in parts.query:
        return url
    return f"{url}{'&' if parts.query else '?'}mode=ro"


@dataclass(frozen=True, slots=True)
class Status:
    """Everything the report shows, as read at ``now``."""

    now: datetime
    store: str  # the URL with any password hidden
    nodes: list[NodeInfo]
    queue: QueueDepth
    activity: Activity
    failing: list[FailingHook]
    failing_limit: int

    @property
    def in_flight(self) -> int:
        return sum(n.in_flight for n in self.nodes)

    @property
    def uptime(self) -> timedelta | None:
        """How long the longest-running live node has been up."""
        return max((self.now - n.start_time for n in self.nodes), default=None)

    @property
    def oldest_due_age(self) -> timedelta | None:
        due = self.queue.oldest_due_time
        return None if due is None else max(self.now - due, timedelta(0))


async def read(store: Store, shown_url: str, now: datetime, lease: timedelta, failing: int) -> Status:
    """Read the figures from ``store``: four bounded reads, none of them a write."""
    nodes = cluster.alive(await store.list_nodes(), now, lease)
    queue = await store.queue_depth(now, limit=DUE_LIMIT)
    activity = await store.activity(now - WINDOW, scan_limit=ACTIVITY_SCAN)
    failing_hooks = await store.failing_hooks(limit=failing) if failing else []
    return Status(now, shown_url, nodes, queue, activity, failing_hooks, failing)


def ago(age: timedelta) -> str:
    """A compact age: ``42s``, ``17m``, ``5h``, ``3d``."""
    seconds = max(0, int(age.total_seconds()))
    if seconds < 120:
        return f"{seconds}s"
    if seconds < 7200:
        return f"{seconds // 60}m"
    if seconds < 172800:
        return f"{seconds // 3600}h"
    return f"{seconds // 86400}d"


def _time(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()


def as_json(status: Status) -> str:
    """One JSON object; times ISO 8601, ages and the uptime in seconds."""
    age = status.oldest_due_age
    uptime = status.uptime
    document = {
        "version": __version__,
        "store": status.store,
        "time": status.now.isoformat(),
        "uptime_seconds": None if uptime is None else uptime.total_seconds(),
        "nodes": [
            {
                "node_id": n.node_id,
                "role": n.role,
                "host": n.host,
                "pid": n.pid,
                "start_time": n.start_time.isoformat(),
                "last_seen": n.last_seen.isoformat(),
                "in_flight": n.in_flight,
                "version": n.version,
            }
            for n in status.nodes
        ],
        "in_flight": status.in_flight,
        "due": status.queue.due,
        "due_at_least": status.queue.due >= DUE_LIMIT,
        "oldest_due_age_seconds": None if age is None else age.total_seconds(),
        "last_minute": {name: status.activity.counts.get(s, 0) for s, name in OUTCOMES}
        | {"complete": status.activity.complete},
        "failing_hooks": [
            {
                "hook": f.hook_name,
                "consecutive_failures": f.consecutive_failures,
                "last_failure_time": _time(f.last_failure_time),
                "last_failure_reason": f.last_failure_reason,
                "last_success_time": _time(f.last_success_time),
            }
            for f in status.failing
        ],
    }
    return json.dumps(document, indent=2)


def as_text(status: Status, width: int = 120) -> str:
    """A summary of a few lines, then the live nodes and the failing hooks as tables; no line
    wider than ``width`` (reasons and hook names are cut with ``…``)."""
    now = status.now
    uptime = status.uptime
    age = status.oldest_due_age
    plural = "s" if len(status.nodes) != 1 else ""
    counts = status.activity.counts
    rates = ", ".join(f"{counts.get(s, 0)} {name}" for s, name in OUTCOMES)
    due = f"{status.queue.due:,}{'+' if status.queue.due >= DUE_LIMIT else ''}"
    lines = [
        f"version    tidings-server {__version__} (this command){_node_versions(status)}",
        f"store      {status.store}",
        f"uptime     {ago(uptime) if uptime is not None else '-'} (the longest-running live node)",
        f"nodes      {len(status.nodes)} live node{plural}, {status.in_flight} in flight",
        f"due        {due} due now" + (f", the oldest due for {ago(age)}" if age is not None else ""),
        f"last 1m    {rates}" + ("" if status.activity.complete else " (at least: more changes than were read)"),
        f"failing    {_failing_summary(status)}",
    ]
    if status.nodes:
        head = (
            f"{'NODE':<32} {'ROLE':<6} {'HOST':<16} {'PID':>7} {'VERSION':<16} {'UP':>5} {'SEEN':>5} {'IN FLIGHT':>9}"
        )
        lines += ["", head]
        for n in status.nodes:
            lines.append(
                f"{_cut(n.node_id, 32):<32} {n.role:<6} {_cut(n.host, 16):<16} {n.pid:>7}"
                f" {_cut(n.version or UNKNOWN_VERSION, 16):<16}"
                f" {ago(now - n.start_time):>5} {ago(now - n.last_seen):>5} {n.in_flight:>9}"
            )
    if status.failing:
        lines += ["", f"{'FAILING HOOK':<60} {'IN A ROW':>8} {'FAILED':>6} {'OK':>5}  REASON"]
        for f in status.failing:
            failed = ago(now - f.last_failure_time) if f.last_failure_time else "-"
            succeeded = ago(now - f.last_success_time) if f.last_success_time else "never"
            row = f"{_cut(f.hook_name, 60):<60} {f.consecutive_failures:>8} {failed:>6} {succeeded:>5}  "
            lines.append(row + _cut(" ".join(f.last_failure_reason.split()), max(width - len(row), 10)))
    return "\n".join(line[:width] for line in lines)


UNKNOWN_VERSION = "-"
"""Shown for a node that recorded no version (registered by a server from before nodes did)."""


def _node_versions(status: Status) -> str:
    """``; nodes run 1.4.0`` (or ``1.4.0, 1.5.0`` during an upgrade); nothing without live nodes."""
    versions = sorted({n.version or UNKNOWN_VERSION for n in status.nodes})
    return f"; nodes run {', '.join(versions)}" if versions else ""


def _cut(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def _failing_summary(status: Status) -> str:
    shown = len(status.failing)
    if not shown:
        return "no hook's last attempt failed" if status.failing_limit else "not read (--failing 0)"
    text = f"{shown} hook{'s' if shown != 1 else ''} whose last attempts failed"
    if shown >= status.failing_limit:
        text += f" (the {shown} with the most in a row; --failing N shows more)"
    return text
