"""The PostgreSQL statements that read leases stay bounded by what is in flight, not by the
length of the queue, on plans made without statistics (a day's partition is new and empty
when its first burst arrives, and nothing may wait for ANALYZE).

Each statement is run under EXPLAIN (ANALYZE, BUFFERS) on its generic plan, as the store runs
it, in a transaction rolled back; the pages it touches are compared at two lengths of one
hook's queue, with the same few deliveries leased. Before these statements read the leases
through their own indexes, the claim's lease count and the next wake-up's lease half walked
every pending delivery of the hook: a backlog of 400,000 made each claim take 0.8 s.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import timedelta
from typing import Any

import psycopg

from tidings_postgresql import cluster, deliveries
from tidings_postgresql.backend import PostgresBackend
from tidings_server.testing.stores.samples import T0, make_event, make_hook, make_trigger

HOOK = "companies/1/projects/2/hooks/h"
LEASE = T0 + timedelta(seconds=30)
OWNER = "host-1-aaaa"


def _pages(url: str, statement: str, args: Mapping[str, Any]) -> int:
    """Shared buffers the statement touched (hit or read), on its generic plan, undone after."""
    with psycopg.connect(url) as conn:
        conn.execute("SET LOCAL plan_cache_mode = force_generic_plan")
        [(plan,)] = conn.execute("EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) " + statement, args).fetchall()
        conn.rollback()
    top = plan[0]["Plan"]
    return int(top["Shared Hit Blocks"]) + int(top["Shared Read Blocks"])


def _statements(url: str) -> dict[str, int]:
    now = T0 + timedelta(seconds=1)
    claim = {"now": now, "limit": 1, "lease_until": LEASE, "owner": OWNER, "hooks": [HOOK], "finished": []}
    return {
        # %(…)b is psycopg's binary placeholder; EXPLAIN takes the same arguments as text.
        "claim": _pages(url, re.sub(r"%\((\w+)\)b", r"%(\1)s", deliveries._CLAIM), claim),
        "next wake-up": _pages(url, deliveries._NEXT_DUE, {"after": now}),
        "heartbeat": _pages(url, cluster._EXTEND, {"node": OWNER, "now": now, "lease_until": LEASE}),
    }


async def _publish(store: Any, first: int, count: int) -> None:
    for start in range(first, first + count, 500):
        batch = range(start, min(start + 500, first + count))
        await store.publish_events([make_event(n, resource_id=n) for n in batch], T0)


async def test_lease_reads_do_not_grow_with_the_queue(postgres_url: str) -> None:
    async with PostgresBackend().open(postgres_url) as store:
        await store.create_hook(make_hook(HOOK, max_concurrency=64))
        await store.add_triggers(HOOK, [make_trigger(HOOK)])
        await _publish(store, 1, 500)
        assert len(await store.claim_due(T0, limit=8, lease_until=LEASE, owner=OWNER)) == 8
        short = _statements(postgres_url)
        await _publish(store, 501, 9_500)
        long = _statements(postgres_url)
    for name, pages in long.items():
        # Twenty times the queue: a walk of the pending deliveries touches about twenty times
        # the pages; reading the leases touches the same few, give or take an index level.
        assert pages <= 2 * short[name] + 10, (name, short[name], pages)
