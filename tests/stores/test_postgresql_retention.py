"""Retention on PostgreSQL: whole days go as partitions, the day the cut falls in row by row."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import psycopg
import pytest

from tidings_postgresql import partitions
from tidings_postgresql.backend import PostgresBackend
from tidings_server.domain.errors import NotFound
from tidings_server.domain.model import Attempt, DeliveryStatus, RenderedBody
from tidings_server.domain.ports import AttemptRecord, DeliveryQuery
from tidings_server.testing.stores.samples import event_id, make_event, make_hook, make_trigger

HOOK = "companies/1/projects/2/hooks/h"
D0 = datetime(2024, 5, 17, tzinfo=UTC)
DAY = timedelta(days=1)


def _name(n: int) -> str:
    return f"{HOOK}/deliveries/{event_id(n)}"


def _days(url: str) -> dict[str, list[int]]:
    """For each partitioned table, its days as offsets from D0."""
    with psycopg.connect(url) as conn:
        return {
            table: [(day - D0.date()).days for day in partitions.days(conn, table)]
            for tables in partitions.FAMILIES.values()
            for table in tables
        }


async def test_purge_drops_whole_past_days_and_deletes_the_rest_of_the_cut_day_row_by_row(postgres_url: str) -> None:
    async with PostgresBackend().open(postgres_url) as store:
        await store.create_hook(make_hook(HOOK, at=D0))
        await store.add_triggers(HOOK, [make_trigger(HOOK, at=D0)])
        times = {1: D0 + timedelta(hours=12), 2: D0 + DAY + timedelta(hours=12)}
        times |= {3: D0 + 2 * DAY + timedelta(hours=10), 4: D0 + 2 * DAY + timedelta(hours=14)}
        for n, when in times.items():
            await store.publish_events([make_event(n)], when)
        attempt = Attempt(1, times[1], times[1] + timedelta(seconds=1), (), 200, (), b"ok", "")
        body = RenderedBody(b"{}", "application/json")
        await store.record_attempts([AttemptRecord(_name(1), attempt, DeliveryStatus.DELIVERED, None, "", body)])
        # Each day written has its partitions, and the next day's are made ahead of it.
        assert set(map(tuple, _days(postgres_url).values())) == {(0, 1, 2, 3)}

        cut = D0 + 2 * DAY + timedelta(hours=12)
        counts = []
        while removed := await store.purge(cut, 100):
            counts.append(removed)
        # Day 0 (a delivery, its event, two changes), then day 1 (one of each) as partitions;
        # then of day 2 the delivery, the event and the change made before the cut.
        assert counts == [4, 3, 3]
        assert set(map(tuple, _days(postgres_url).values())) == {(2, 3)}
        for gone in (1, 2, 3):
            with pytest.raises(NotFound):
                await store.get_delivery(_name(gone))
            with pytest.raises(NotFound):
                await store.get_event(event_id(gone))
        page = await store.query_deliveries(DeliveryQuery(hook_name=HOOK), after=None, limit=10, scan_limit=100)
        assert [d.name for d, _ in page.deliveries] == [_name(4)]
        stats = await store.hook_stats(HOOK, latency_sample=10)
        assert (stats.counts[DeliveryStatus.QUEUED], stats.counts[DeliveryStatus.DELIVERED]) == (1, 0)
        # Seqs 1-3 are publishes on days 0-2, 4 the publish after the cut, 5 the attempt (made on
        # day 0, so it went with day 0's partition): only 4 is left, and 5 is still the newest.
        assert await store.change_bounds() == (4, 5)
        # A day dropped by retention is made again if something is still written to it.
        await store.publish_events([make_event(5)], times[1])
        assert (await store.get_delivery(_name(5))).create_time == times[1]
