"""The Store contract for what ``tidings-server status`` reads: recent activity and failing hooks.

Both are read from what every node writes to the store, so the figures are the cluster's,
whichever node (or a process beside them) asks.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from tidings_server.domain.model import Attempt, DeliveryStatus
from tidings_server.domain.ports import AttemptRecord, Store
from tidings_server.testing.stores.samples import MICROSECOND, T0, T1, T2, event_id, make_event, make_hook, make_trigger

PROJECT = "companies/1/projects/2"


async def _hooks(store: Store, *names: str) -> None:
    for name in names:
        hook = f"{PROJECT}/hooks/{name}"
        await store.create_hook(make_hook(hook))
        await store.add_triggers(hook, [make_trigger(hook)])


def _delivery(hook: str, n: int) -> str:
    return f"{PROJECT}/hooks/{hook}/deliveries/{event_id(n)}"


async def _attempt(
    store: Store, name: str, end: datetime, status: int, outcome: DeliveryStatus, error: str = ""
) -> None:
    attempt = Attempt(1, end - timedelta(milliseconds=5), end, (), status, (), b"", error)
    due = end + timedelta(seconds=1) if outcome is DeliveryStatus.RETRYING else None
    await store.record_attempts([AttemptRecord(name, attempt, outcome, due, error)])


class StatusStoreContract:
    """Inherit in a ``Test…`` class with a ``store`` fixture, as ``StoreContract`` is."""

    async def test_activity_counts_the_recent_changes_by_the_status_they_led_to(self, store: Store) -> None:
        await _hooks(store, "h")
        await store.publish_events([make_event(n) for n in range(1, 5)], T0)  # four changes: queued
        assert len(await store.claim_due(T0, limit=10, lease_until=T2, owner="node-1-1-ab12")) == 4
        await _attempt(store, _delivery("h", 1), T1, 200, DeliveryStatus.DELIVERED)
        await _attempt(store, _delivery("h", 2), T1, 503, DeliveryStatus.RETRYING, "HTTP 503")
        await _attempt(store, _delivery("h", 3), T1 + MICROSECOND, 404, DeliveryStatus.FAILED, "HTTP 404")
        await _attempt(store, _delivery("h", 4), T1 + MICROSECOND, 503, DeliveryStatus.DISCARDED, "HTTP 503")

        recent = await store.activity(T1, scan_limit=100)
        expected = dict.fromkeys(DeliveryStatus, 0) | {
            DeliveryStatus.DELIVERED: 1,
            DeliveryStatus.RETRYING: 1,
            DeliveryStatus.FAILED: 1,
            DeliveryStatus.DISCARDED: 1,
        }
        assert (dict(recent.counts), recent.complete) == (expected, True)
        everything = await store.activity(T0, scan_limit=100)
        assert (dict(everything.counts), everything.complete) == (expected | {DeliveryStatus.QUEUED: 4}, True)
        # At or after ``since``: the last two attempts, a microsecond later.
        later = await store.activity(T1 + MICROSECOND, scan_limit=100)
        assert dict(later.counts) == dict.fromkeys(DeliveryStatus, 0) | {
            DeliveryStatus.FAILED: 1,
            DeliveryStatus.DISCARDED: 1,
        }
        # The scan reads the newest changes only, and says when it was cut short.
        cut = await store.activity(T0, scan_limit=3)
        assert (dict(cut.counts), cut.complete) == (
            dict.fromkeys(DeliveryStatus, 0)
            | {DeliveryStatus.RETRYING: 1, DeliveryStatus.FAILED: 1, DeliveryStatus.DISCARDED: 1},
            False,
        )
        quiet = await store.activity(T2, scan_limit=100)
        assert (dict(quiet.counts), quiet.complete) == (dict.fromkeys(DeliveryStatus, 0), True)

    async def test_activity_of_an_empty_store_is_nothing(self, store: Store) -> None:
        empty = await store.activity(T0, scan_limit=10)
        assert (dict(empty.counts), empty.complete) == (dict.fromkeys(DeliveryStatus, 0), True)

    async def test_failing_hooks_are_listed_by_failure_streak(self, store: Store) -> None:
        await _hooks(store, "a", "b", "recovered", "gone")
        await store.publish_events([make_event(n) for n in range(1, 3)], T0)
        await store.claim_due(T0, limit=100, lease_until=T2, owner="node-1-1-ab12")
        for n in (1, 2):  # a: two failures in a row
            await _attempt(store, _delivery("a", n), T1, 500, DeliveryStatus.RETRYING, f"HTTP 500 #{n}")
        await _attempt(store, _delivery("b", 1), T1, 200, DeliveryStatus.DELIVERED)
        await _attempt(store, _delivery("b", 2), T1 + MICROSECOND, 502, DeliveryStatus.RETRYING, "HTTP 502")
        await _attempt(store, _delivery("recovered", 1), T1, 500, DeliveryStatus.RETRYING, "HTTP 500")
        await _attempt(store, _delivery("recovered", 2), T1 + MICROSECOND, 204, DeliveryStatus.DELIVERED)
        for n in (1, 2):  # the most failures of all, but the hook is deleted
            await _attempt(store, _delivery("gone", n), T1, 500, DeliveryStatus.RETRYING, "HTTP 500")
        await store.delete_hook(f"{PROJECT}/hooks/gone")

        failing = await store.failing_hooks(limit=10)
        assert [(f.hook_name, f.consecutive_failures) for f in failing] == [
            (f"{PROJECT}/hooks/a", 2),
            (f"{PROJECT}/hooks/b", 1),
        ]
        a, b = failing
        assert (a.last_failure_time, a.last_success_time) == (T1, None)
        assert a.last_failure_reason in {"HTTP 500 #1", "HTTP 500 #2"}  # two failures at one time
        assert (b.last_failure_time, b.last_failure_reason, b.last_success_time) == (T1 + MICROSECOND, "HTTP 502", T1)
        assert [f.hook_name for f in await store.failing_hooks(limit=1)] == [f"{PROJECT}/hooks/a"]
        assert await store.failing_hooks(limit=0) == []
