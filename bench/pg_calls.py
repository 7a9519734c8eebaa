"""What one PostgreSQL store call costs under trio: the thread hop, the query, and batching.

psycopg's async API needs asyncio, so the PostgreSQL store runs psycopg's sync API in trio
worker threads behind a CapacityLimiter as large as its connection pool. This measures, on a
database of its own (created and dropped on the server at ``--admin-url``), median of
``--repeat`` interleaved runs:

* hop: ``trio.to_thread.run_sync`` of a no-op, through the limiter;
* query: ``SELECT 1`` in a transaction on a pooled connection, called on the trio thread
  (blocking the loop; the floor a call can cost);
* hop + query: the same in a worker thread, as the store runs every call;
* concurrent: 8 tasks doing hop + query at once, with a pool (and limiter) of 1 and of 8;
* publish: events/s through the store's publish_events, 1 and 100 events per call.
"""

from __future__ import annotations

import argparse
import secrets
import statistics
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

import psycopg
import psycopg_pool
import trio
from psycopg import sql
from ulid import ULID

from tidings_postgresql.backend import PostgresBackend
from tidings_server.domain.model import Event, Hook, HookStatus, Trigger
from tidings_server.domain.names import trigger_name

T0 = datetime(2026, 11, 1, tzinfo=UTC)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--admin-url", default="postgresql://postgres@127.0.0.1:5432/test")
    parser.add_argument("--calls", type=int, default=2000, help="calls per measurement")
    parser.add_argument("--repeat", type=int, default=5)


def _select_one(pool: psycopg_pool.ConnectionPool[Any]) -> None:
    with pool.connection() as conn, conn.transaction():
        conn.execute("SELECT 1").fetchone()


async def _timed(calls: int, fn: Callable[[], Awaitable[None]]) -> float:
    start = time.perf_counter()
    for _ in range(calls):
        await fn()
    return (time.perf_counter() - start) / calls * 1e6


async def _concurrent(url: str, size: int, calls: int) -> float:
    """Calls per second of 8 tasks sharing a pool and limiter of ``size``."""
    pool: psycopg_pool.ConnectionPool[Any] = psycopg_pool.ConnectionPool(url, min_size=size, max_size=size, open=False)
    await trio.to_thread.run_sync(lambda: pool.open(wait=True))
    limiter = trio.CapacityLimiter(size)

    async def worker() -> None:
        for _ in range(calls // 8):
            await trio.to_thread.run_sync(_select_one, pool, limiter=limiter)

    start = time.perf_counter()
    async with trio.open_nursery() as nursery:
        for _ in range(8):
            nursery.start_soon(worker)
    rate = (calls // 8 * 8) / (time.perf_counter() - start)
    await trio.to_thread.run_sync(pool.close)
    return rate


async def _publish_rate(url: str, per_call: int, events: int) -> float:
    async with PostgresBackend().open(url) as store:
        name = f"companies/1/projects/2/hooks/bench{secrets.token_hex(3)}"
        await store.create_hook(
            Hook(name, 1, 2, name, "https://r.example.com/", "", "procore.v4", HookStatus.ACTIVE, T0, T0)
        )
        await store.add_triggers(name, [Trigger(trigger_name(name, "RFIs", "update"), "RFIs", "update", T0)])
        batch = [Event(str(ULID()), 0, T0, 1, 2, 7, "RFIs", i, "update") for i in range(events)]
        start = time.perf_counter()
        for i in range(0, events, per_call):
            await store.publish_events(batch[i : i + per_call], T0)
        return events / (time.perf_counter() - start)


async def _round(url: str, calls: int) -> dict[str, float]:
    pool: psycopg_pool.ConnectionPool[Any] = psycopg_pool.ConnectionPool(url, min_size=1, max_size=1, open=False)
    await trio.to_thread.run_sync(lambda: pool.open(wait=True))
    limiter = trio.CapacityLimiter(1)

    async def hop() -> None:
        await trio.to_thread.run_sync(lambda: None, limiter=limiter)

    async def query() -> None:
        _select_one(pool)  # blocking on purpose: the cost without a hop

    async def hop_query() -> None:
        await trio.to_thread.run_sync(_select_one, pool, limiter=limiter)

    result = {
        "hop µs": await _timed(calls, hop),
        "query µs": await _timed(calls, query),
        "hop + query µs": await _timed(calls, hop_query),
    }
    await trio.to_thread.run_sync(pool.close)
    result["8 tasks, pool 1, calls/s"] = await _concurrent(url, 1, calls)
    result["8 tasks, pool 8, calls/s"] = await _concurrent(url, 8, calls)
    result["publish 1 event/call, events/s"] = await _publish_rate(url, 1, calls // 4)
    result["publish 100 events/call, events/s"] = await _publish_rate(url, 100, calls * 5)
    return result


def run(args: argparse.Namespace) -> int:
    name = f"tidings_bench_{secrets.token_hex(4)}"
    with psycopg.connect(args.admin_url, autocommit=True) as admin:
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    url = args.admin_url.rsplit("/", 1)[0] + "/" + name
    try:
        rounds = [trio.run(_round, url, args.calls) for _ in range(args.repeat)]
    finally:
        with psycopg.connect(args.admin_url, autocommit=True) as admin:
            admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
    for key in rounds[0]:
        values = [r[key] for r in rounds]
        print(f"{key:36} median {statistics.median(values):10.1f}   (runs: {', '.join(f'{v:.1f}' for v in values)})")
    return 0
