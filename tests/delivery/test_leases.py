"""Leases held by the engine's node: a heartbeat every third of the lease keeps them while
attempts run, however long; the node shows in the store with what it has in flight."""

from __future__ import annotations

from datetime import timedelta

import trio
from trio.testing import MockClock

from tests.delivery.world import rfi, world
from tests.receivers import Reply, ScriptedReceiver
from tidings_server.delivery.engine import EngineConfig
from tidings_server.domain.hooks import RetryPolicyInput
from tidings_server.domain.model import DeliveryStatus

LEASE = timedelta(seconds=30)


async def test_an_attempt_longer_than_the_lease_keeps_it(autojump_clock: MockClock, nursery: trio.Nursery) -> None:
    slow = await nursery.start(ScriptedReceiver(default=Reply(200, delay=50)).run)
    async with world(EngineConfig(lease=LEASE, poll=None)) as w:
        hook = await w.hook(slow.url(), policy=RetryPolicyInput(timeout=timedelta(seconds=60)))
        await w.publish(rfi())
        await trio.sleep(45)  # past the 30 s the claim leased it for
        assert w.engine.in_flight == 1
        taken = await w.store.claim_due(w.clock.now(), limit=10, lease_until=w.clock.now() + LEASE, owner="other")
        assert taken == []  # still this node's: its heartbeats moved the lease on
        [node] = await w.store.list_nodes()
        assert (node.node_id, node.in_flight) == (w.engine.node_id, 1)
        assert node.last_seen == w.clock.now() - timedelta(seconds=5)  # beats at 0, 10, 20, 30, 40 s
        [delivery] = await w.settle(hook)
        assert delivery.status is DeliveryStatus.DELIVERED
        assert len(slow.requests) == 1
