"""The change log's order on PostgreSQL: a reader never skips a change that commits late.

Writers on connections of their own append changes concurrently and hold their transactions
open for a random moment after numbering them, which is exactly when a sequence-numbered log
lets a smaller seq commit after a larger one. A reader pages through ``list_changes`` all the
while, resuming after the last seq each page names; it must see every seq exactly once, in order.
"""

from __future__ import annotations

import random
import threading
import time
from datetime import timedelta

import psycopg

from tidings_postgresql import deliveries, history, partitions
from tidings_postgresql.backend import PostgresBackend
from tidings_server.domain.ports import DeliveryQuery
from tidings_server.testing.stores.samples import T0, make_event, make_hook, make_trigger

WRITERS = 6
BATCHES = 15
EVENTS_PER_BATCH = 3


def _hook(writer: int) -> str:
    return f"companies/1/projects/2/hooks/w{writer}"


def _writer(url: str, writer: int, first: int, failures: list[BaseException]) -> None:
    rng = random.Random(first)
    try:
        with psycopg.connect(url) as conn:
            conn.execute("SET TIME ZONE 'UTC'")
            conn.commit()
            for batch in range(BATCHES):
                n = first + batch * EVENTS_PER_BATCH
                # Each writer's events reach its own hook only, so nothing but the change log
                # (no counter row, no index entry) is shared between the writers.
                events = [make_event(n + i, resource=f"R{writer}") for i in range(EVENTS_PER_BATCH)]
                with conn.transaction():
                    deliveries.publish(conn, events=events, now=T0 + timedelta(milliseconds=n))
                    time.sleep(rng.uniform(0, 0.01))  # numbered, not yet committed
    except BaseException as exc:
        failures.append(exc)


async def test_a_reader_sees_every_change_once_in_order_while_writers_commit_out_of_turn(postgres_url: str) -> None:
    async with PostgresBackend().open(postgres_url) as store:
        for w in range(WRITERS):
            await store.create_hook(make_hook(_hook(w)))
            await store.add_triggers(_hook(w), [make_trigger(_hook(w), f"R{w}")])
    total = WRITERS * BATCHES * EVENTS_PER_BATCH
    failures: list[BaseException] = []
    writers = [
        threading.Thread(target=_writer, args=(postgres_url, w, 1 + w * BATCHES * EVENTS_PER_BATCH, failures))
        for w in range(WRITERS)
    ]
    seen: list[int] = []
    after = 0
    query = DeliveryQuery(company_id=1, project_id=2)
    with psycopg.connect(postgres_url) as reader:
        for family in partitions.FAMILIES:
            partitions.ensure(reader, family, [partitions.day_of(T0)])
        for thread in writers:
            thread.start()
        pages = 0
        while len(seen) < total and pages < 100_000:
            with reader.transaction():
                page = history.list_changes(reader, query=query, after=after, limit=7, scan_limit=50)
            seen += [c.seq for c in page.changes]
            after = page.last_seq
            pages += 1
        for thread in writers:
            thread.join()
    assert failures == []
    assert seen == list(range(1, total + 1))
    assert pages > WRITERS * BATCHES // 2  # the reader really paged while the writers wrote
