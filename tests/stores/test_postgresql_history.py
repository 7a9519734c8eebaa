"""History pages on PostgreSQL, where a walk crosses day partitions, against SQLite's one index.

PostgreSQL decides in one statement where a page's walk stops (the hits so far counted as it
goes). Every page and token must be those SQLite returns for the same history, including at
the edges: the page's limit reached on the last row, the scan budget spent exactly, a walk
that crosses days (one of them without rows) in an order the days do not follow, and the
start time cutting a day in two.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from tidings_postgresql.backend import PostgresBackend
from tidings_server.domain import filtering
from tidings_server.domain.model import Attempt, DeliveryStatus
from tidings_server.domain.ports import DELIVERY_FILTER_SCHEMA, AttemptRecord, DeliveryQuery, Store
from tidings_server.stores.sqlite import SqliteBackend
from tidings_server.testing.stores.samples import event_id, make_event, make_hook, make_trigger

HOOK = "companies/1/projects/2/hooks/h"
SIBLING = "companies/1/projects/2/hooks/s"
D0 = datetime(2024, 5, 17, tzinfo=UTC)
# Event n is published on day n % 3 of these (day 2 has no rows), so the ids, which sort by n,
# do not follow the days the deliveries are partitioned by.
DAYS = (0, 1, 3)
EVENTS = 40
QUERIES = {
    "hook": DeliveryQuery(hook_name=HOOK),
    "hook, failed": DeliveryQuery(hook_name=HOOK, statuses=frozenset({DeliveryStatus.FAILED})),
    "hook, failed or discarded": DeliveryQuery(
        hook_name=HOOK, statuses=frozenset({DeliveryStatus.FAILED, DeliveryStatus.DISCARDED})
    ),
    "hook, resource id": DeliveryQuery(hook_name=HOOK, resource_id=3),
    "hook, event type": DeliveryQuery(hook_name=HOOK, event_type="update"),
    "hook, from the middle of a day": DeliveryQuery(hook_name=HOOK, start_time=D0 + timedelta(days=1, hours=12)),
    "hook, matching nothing": DeliveryQuery(
        hook_name=HOOK, filter=filtering.parse("response_status = 418", DELIVERY_FILTER_SCHEMA)
    ),
    "project": DeliveryQuery(company_id=1, project_id=2),
    "project, delivered": DeliveryQuery(company_id=1, project_id=2, statuses=frozenset({DeliveryStatus.DELIVERED})),
    "company": DeliveryQuery(company_id=1),
}
# (limit, scan_limit): pages cut by either, by both at once, and by neither.
BUDGETS = ((1, 1), (1, 100), (3, 2), (3, 3), (5, 7), (7, 5), (13, 40), (40, 40), (100, 1000))


def _when(n: int) -> datetime:
    return D0 + timedelta(days=DAYS[n % 3], hours=n % 24, microseconds=n)


def _status(n: int) -> tuple[DeliveryStatus, int | None]:
    if n % 5 == 0:
        return DeliveryStatus.FAILED, 404
    if n % 7 == 0:
        return DeliveryStatus.DISCARDED, 503
    if n % 2 == 0:
        return DeliveryStatus.DELIVERED, 200
    return DeliveryStatus.QUEUED, None


async def _load(store: Store) -> None:
    for hook in (HOOK, SIBLING):
        await store.create_hook(make_hook(hook, at=D0))
        await store.add_triggers(hook, [make_trigger(hook, "Projects", e, at=D0) for e in ("create", "update")])
    for n in range(1, EVENTS + 1):
        event = make_event(n, resource_id=n % 4, event=("create", "update")[n % 2])
        await store.publish_events([event], _when(n))
    records = []
    for n in range(1, EVENTS + 1):
        status, response = _status(n)
        if response is None:
            continue
        start = _when(n) + timedelta(seconds=1)
        attempt = Attempt(1, start, start + timedelta(milliseconds=20), (), response, (), b"", "")
        records.append(AttemptRecord(f"{HOOK}/deliveries/{event_id(n)}", attempt, status, None, "", None))
    await store.record_attempts(records)


async def _pages(store: Store, query: DeliveryQuery, limit: int, scan_limit: int) -> list[tuple[list[str], str | None]]:
    pages: list[tuple[list[str], str | None]] = []
    after: str | None = None
    while len(pages) <= 2 * EVENTS * 2:  # every delivery examined, one a page, is the most there can be
        page = await store.query_deliveries(query, after=after, limit=limit, scan_limit=scan_limit)
        pages.append(([d.name for d, _ in page.deliveries], page.next_after))
        if page.next_after is None:
            return pages
        after = page.next_after
    raise AssertionError(f"still paging: {pages[-3:]}")


async def test_every_page_and_token_is_sqlites_across_day_partitions(postgres_url: str, tmp_path: Path) -> None:
    async with (
        PostgresBackend().open(postgres_url) as postgresql,
        SqliteBackend().open(f"sqlite:///{tmp_path / 'tidings.sqlite3'}") as sqlite,
    ):
        await _load(postgresql)
        await _load(sqlite)
        for label, query in QUERIES.items():
            expected_names = None
            for limit, scan_limit in BUDGETS:
                expected = await _pages(sqlite, query, limit, scan_limit)
                got = await _pages(postgresql, query, limit, scan_limit)
                assert got == expected, (label, limit, scan_limit)
                names = [name for page, _ in got for name in page]
                # Every budget pages through the same deliveries, newest id first.
                assert names == sorted(names, key=lambda name: name.rsplit("/", 1)[1], reverse=True), label
                assert expected_names is None or names == expected_names, (label, limit, scan_limit)
                expected_names = names
        first = await postgresql.query_deliveries(QUERIES["company"], after=None, limit=EVENTS, scan_limit=1000)
        assert first == await sqlite.query_deliveries(QUERIES["company"], after=None, limit=EVENTS, scan_limit=1000)


async def test_every_change_page_is_sqlites(postgres_url: str, tmp_path: Path) -> None:
    async with (
        PostgresBackend().open(postgres_url) as postgresql,
        SqliteBackend().open(f"sqlite:///{tmp_path / 'tidings.sqlite3'}") as sqlite,
    ):
        await _load(postgresql)
        await _load(sqlite)
        for query in (QUERIES["hook"], QUERIES["hook, failed"], QUERIES["project, delivered"], QUERIES["company"]):
            for limit, scan_limit in BUDGETS:
                pages: list[list[tuple[list[tuple[int, str, DeliveryStatus]], int]]] = []
                for store in (sqlite, postgresql):
                    after = 0
                    got: list[tuple[list[tuple[int, str, DeliveryStatus]], int]] = []
                    while len(got) <= 4 * EVENTS:
                        page = await store.list_changes(query, after=after, limit=limit, scan_limit=scan_limit)
                        got.append(([(c.seq, c.delivery.name, c.delivery.status) for c in page.changes], page.last_seq))
                        if page.last_seq == after:
                            break
                        after = page.last_seq
                    pages.append(got)
                assert pages[1] == pages[0], (query, limit, scan_limit)
