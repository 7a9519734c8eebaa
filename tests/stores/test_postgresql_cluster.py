"""Several servers on one PostgreSQL database: claims, leases, nodes and notices across them.

Each "server" here is a store of its own (its own pool) on the same database, as two
tidings-server processes would have.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from datetime import timedelta
from typing import Any

import pytest
import trio

from tidings_postgresql.backend import PostgresBackend
from tidings_postgresql.store import PostgresStore
from tidings_server.domain.model import Ordering, SendRate
from tidings_server.domain.ports import NodeInfo, Notice
from tidings_server.testing.stores.samples import T0, T1, make_event, make_hook, make_trigger

HOOK = "companies/1/projects/2/hooks/h"
LEASE = T0 + timedelta(seconds=30)


@asynccontextmanager
async def _servers(url: str, n: int) -> AsyncIterator[list[PostgresStore]]:
    async with AsyncExitStack() as stack:
        yield [await stack.enter_async_context(PostgresBackend().open(url)) for _ in range(n)]


async def _hook(store: PostgresStore, **changes: Any) -> None:
    await store.create_hook(make_hook(HOOK, **changes))
    await store.add_triggers(HOOK, [make_trigger(HOOK)])


async def test_a_hooks_max_concurrency_holds_across_servers(postgres_url: str) -> None:
    async with _servers(postgres_url, 2) as (a, b):
        await _hook(a, max_concurrency=3)
        await a.publish_events([make_event(n, resource_id=n) for n in range(1, 8)], T0)
        assert len(await a.claim_due(T0, limit=2, lease_until=LEASE, owner="a")) == 2
        assert len(await b.claim_due(T0, limit=10, lease_until=LEASE, owner="b")) == 1
        assert await a.claim_due(T0, limit=10, lease_until=LEASE, owner="a") == []
        # Leases that ran out no longer count, and their deliveries are claimable again.
        later = LEASE + timedelta(microseconds=1)
        assert len(await b.claim_due(later, limit=10, lease_until=later + timedelta(seconds=30), owner="b")) == 3


async def test_per_resource_order_holds_across_servers(postgres_url: str) -> None:
    async with _servers(postgres_url, 2) as (a, b):
        await _hook(a, ordering=Ordering.PER_RESOURCE)
        await a.publish_events([make_event(1, resource_id=5), make_event(2, resource_id=5)], T0)
        [head] = await a.claim_due(T0, limit=10, lease_until=LEASE, owner="a")
        assert head.event.serial == 1
        # The second of the resource waits while the head is pending, leased or not, on any server.
        assert await b.claim_due(T0, limit=10, lease_until=LEASE, owner="b") == []
        # Once the head's lease runs out, the head (not the next of its resource) is claimed again.
        [again] = await b.claim_due(LEASE, limit=10, lease_until=LEASE + timedelta(seconds=30), owner="b")
        assert again.event.serial == 1


async def test_a_heartbeat_extends_the_nodes_own_live_leases_and_removal_releases_them(postgres_url: str) -> None:
    async with _servers(postgres_url, 2) as (a, b):
        await _hook(a)
        await a.publish_events([make_event(n, resource_id=n) for n in (1, 2, 3)], T0)
        node_a = NodeInfo("host-1-aaaa", "all", "host", 1, T0, T0, 0)
        await a.register_node(node_a)
        await b.register_node(NodeInfo("host-2-bbbb", "worker", "host", 2, T0, T0, 0))
        assert len(await a.claim_due(T0, limit=2, lease_until=LEASE, owner=node_a.node_id)) == 2
        assert len(await b.claim_due(T0, limit=5, lease_until=LEASE, owner="host-2-bbbb")) == 1
        extended = LEASE + timedelta(seconds=30)
        assert await a.heartbeat(node_a.node_id, T1, lease_until=extended, in_flight=2) == 2
        nodes = {n.node_id: n for n in await b.list_nodes()}
        assert list(nodes) == ["host-1-aaaa", "host-2-bbbb"]
        assert (nodes["host-1-aaaa"].last_seen, nodes["host-1-aaaa"].in_flight) == (T1, 2)
        assert nodes["host-2-bbbb"].role == "worker"
        # After b's lease ran out, only a's (extended) leases hold the deliveries.
        assert len(await b.claim_due(LEASE, limit=5, lease_until=extended, owner="host-2-bbbb")) == 1
        await a.remove_node(node_a.node_id)
        await a.remove_node("never-registered")
        assert [n.node_id for n in await b.list_nodes()] == ["host-2-bbbb"]
        assert len(await b.claim_due(LEASE, limit=5, lease_until=extended, owner="host-2-bbbb")) == 2


async def test_writes_notify_every_listening_server_when_they_commit(postgres_url: str) -> None:
    async with _servers(postgres_url, 2) as (a, b):
        heard: list[Notice] = []
        arrived = trio.Event()

        def on_notice(notice: Notice) -> None:
            heard.append(notice)
            arrived.set()

        async with trio.open_nursery() as nursery:
            await nursery.start(a.listen, on_notice)
            await _hook(b)  # DUE
            with trio.fail_after(10):
                while Notice.DUE not in heard:
                    await arrived.wait()
                    arrived = trio.Event()
            heard.clear()
            await b.publish_events([make_event(1)], T0)  # DUE and CHANGES
            with trio.fail_after(10):
                while set(heard) != {Notice.DUE, Notice.CHANGES}:
                    await arrived.wait()
                    arrived = trio.Event()
            heard.clear()
            with pytest.raises(ValueError, match="already taken"):
                await b.publish_events([make_event(1)], T0)  # rolled back: nothing to tell
            await b.discard_pending(HOOK, T1, "hook disabled")  # CHANGES
            with trio.fail_after(10):
                while not heard:
                    await arrived.wait()
                    arrived = trio.Event()
            assert heard == [Notice.CHANGES]
            nursery.cancel_scope.cancel()


async def test_a_hooks_rate_limit_holds_across_servers(postgres_url: str) -> None:
    rate = SendRate(per_second=10.0, burst=5)
    async with _servers(postgres_url, 3) as servers:
        await _hook(servers[0], rate_limit=rate)
        granted: list[int] = []

        async def take(store: PostgresStore) -> None:
            for _ in range(4):  # each server asks for 3, four times, all at the same instant
                granted.append((await store.take_sends(HOOK, rate, T0, 3)).granted)

        async with trio.open_nursery() as nursery:
            for store in servers:
                nursery.start_soon(take, store)
        assert sum(granted) == 5  # the one bucket's burst, whoever asked
        # A tenth of a second later exactly one more send is there, for whichever server asks first.
        later = T0 + timedelta(milliseconds=100)
        assert [(await s.take_sends(HOOK, rate, later, 3)).granted for s in servers] == [1, 0, 0]
        assert (await servers[2].hook_stats(HOOK, latency_sample=0)).rate_limited_time == later
