"""The Store contract for a cluster: leases held by nodes, counted across them, kept by heartbeats.

Several nodes may share one store (PostgreSQL), and a store of one process (memory, SQLite)
keeps the same rules for its one node, so the engine runs the same on either. Two owners
stand for two nodes here; they are only names to the store.
"""

from __future__ import annotations

import dataclasses
from datetime import datetime, timedelta
from typing import Any, ClassVar

import trio

from tidings_server.domain.model import Attempt, DeliveryStatus, Ordering
from tidings_server.domain.ports import AttemptRecord, NodeInfo, Notice, Store
from tidings_server.testing.stores.samples import MICROSECOND, T0, T1, T2, event_id, make_event, make_hook, make_trigger

HOOK = "companies/1/projects/2/hooks/h"
A, B = "host-1-100-ab12", "host-2-200-cd34"


async def _hook(store: Store, name: str = HOOK, **changes: Any) -> None:
    await store.create_hook(make_hook(name, **changes))
    await store.add_triggers(name, [make_trigger(name, "Projects", "create")])


def _name(n: int, hook: str = HOOK) -> str:
    return f"{hook}/deliveries/{event_id(n)}"


async def _claim(store: Store, owner: str, now: datetime = T0, *, lease_until: datetime = T1) -> list[str]:
    return [c.delivery.name for c in await store.claim_due(now, limit=100, lease_until=lease_until, owner=owner)]


def _node(node_id: str, *, role: str = "all", seen: datetime = T0, in_flight: int = 0) -> NodeInfo:
    host, pid = node_id.split("-")[0], int(node_id.split("-")[2])
    return NodeInfo(node_id, role, host, pid, T0, seen, in_flight, version="1.4.0")


class ClusterStoreContract:
    """Inherit in a ``Test…`` class with a ``store`` fixture, as ``StoreContract`` is.

    ``notices_across_processes``: whether other processes can share the store (and so whether
    ``listen`` delivers notices); False for stores one process holds.
    """

    notices_across_processes: ClassVar[bool] = False

    async def test_a_hooks_concurrency_holds_across_owners(self, store: Store) -> None:
        await _hook(store, max_concurrency=3)
        await store.publish_events([make_event(n) for n in range(1, 6)], T0)
        assert await _claim(store, A) == [_name(1), _name(2), _name(3)]
        assert await _claim(store, B) == []
        await store.release([_name(2)])
        assert await _claim(store, B, lease_until=T2) == [_name(2)]
        # A's leases ended at T1 and free their slots; B's still holds one.
        assert await _claim(store, B, T1, lease_until=T2) == [_name(1), _name(3)]

    async def test_an_owners_finished_leases_free_their_slots_for_it_alone(self, store: Store) -> None:
        await _hook(store, max_concurrency=2)
        await store.publish_events([make_event(n) for n in range(1, 6)], T0)
        assert await _claim(store, A) == [_name(1), _name(2)]
        # 1's attempt is over, its record not written yet: A's claim may take its slot, still
        # leaving 1 leased (not claimable again); B's claim counts every lease.
        finished = [_name(1)]
        assert await store.claim_due(T0, limit=100, lease_until=T1, owner=B, finished=finished) == []
        claimed = await store.claim_due(T0, limit=100, lease_until=T1, owner=A, finished=finished)
        assert [c.delivery.name for c in claimed] == [_name(3)]
        # Names not leased to the owner, or not leased at all, free nothing.
        others = [_name(2), _name(3), _name(4), "companies/1/projects/2/hooks/h/deliveries/none"]
        assert await store.claim_due(T0, limit=100, lease_until=T1, owner=B, finished=others) == []
        # Once the record is in, the slot is free for anyone, with or without the name.
        done = Attempt(1, T0, T0 + timedelta(seconds=1), (), 200, (), b"", "")
        await store.record_attempts([AttemptRecord(_name(1), done, DeliveryStatus.DELIVERED, None, "")])
        assert await store.claim_due(T0, limit=100, lease_until=T1, owner=B, finished=finished) == []
        both = [_name(1), _name(2)]
        claimed = await store.claim_due(T0, limit=100, lease_until=T1, owner=A, finished=both)
        assert [c.delivery.name for c in claimed] == [_name(4)]

    async def test_a_finished_lease_still_holds_its_resource_in_order(self, store: Store) -> None:
        await _hook(store, ordering=Ordering.PER_RESOURCE, max_concurrency=1)
        await store.publish_events([make_event(1, resource_id=7), make_event(2, resource_id=7)], T0)
        assert await _claim(store, A) == [_name(1)]
        # 1 may still fail and be retried: 2 waits for its record, whatever its slot says.
        assert await store.claim_due(T0, limit=100, lease_until=T1, owner=A, finished=[_name(1)]) == []

    async def test_per_resource_order_holds_across_owners(self, store: Store) -> None:
        await _hook(store, ordering=Ordering.PER_RESOURCE)
        events = [make_event(1, resource_id=7), make_event(2, resource_id=7), make_event(3, resource_id=8)]
        await store.publish_events(events, T0)
        assert await _claim(store, A) == [_name(1), _name(3)]
        assert await _claim(store, B) == []  # 2 waits behind 1, leased to A
        done = Attempt(1, T0, T0 + timedelta(seconds=1), (), 200, (), b"", "")
        await store.record_attempts([AttemptRecord(_name(1), done, DeliveryStatus.DELIVERED, None, "")])
        assert await _claim(store, B) == [_name(2)]

    async def test_a_heartbeat_extends_only_its_own_unexpired_leases(self, store: Store) -> None:
        await _hook(store)
        await store.publish_events([make_event(n) for n in range(1, 4)], T0)
        await store.register_node(_node(A))
        await store.register_node(_node(B))
        assert await store.claim_due(T0, limit=1, lease_until=T1, owner=A) != []
        assert await store.claim_due(T0, limit=1, lease_until=T1, owner=B) != []
        short = T0 + MICROSECOND
        assert await _claim(store, A, lease_until=short) == [_name(3)]
        # At T0 + 2 µs: 1 is A's (unexpired), 2 is B's, 3 was A's but its lease ended.
        now = short + MICROSECOND
        assert await store.heartbeat(A, now, lease_until=T2, in_flight=2) == 1
        later = T2 + timedelta(seconds=1)
        assert await _claim(store, B, T1, lease_until=later) == [_name(2), _name(3)]  # B's own lease ended too
        assert await _claim(store, B, T2 - MICROSECOND, lease_until=later) == []
        assert await _claim(store, B, T2, lease_until=later) == [_name(1)]
        nodes = {n.node_id: n for n in await store.list_nodes()}
        assert (nodes[A].last_seen, nodes[A].in_flight) == (now, 2)
        assert (nodes[B].last_seen, nodes[B].in_flight) == (T0, 0)
        assert (nodes[A].start_time, nodes[A].role, nodes[A].version) == (T0, "all", "1.4.0")  # a beat keeps it

    async def test_a_heartbeat_extends_pending_deliveries_only(self, store: Store) -> None:
        await _hook(store)
        await store.publish_events([make_event(1), make_event(2)], T0)
        assert await _claim(store, A) == [_name(1), _name(2)]
        done = Attempt(1, T0, T0, (), 200, (), b"", "")
        await store.record_attempts([AttemptRecord(_name(1), done, DeliveryStatus.DELIVERED, None, "")])
        await store.discard_pending(HOOK, T0, "gone")
        assert await store.heartbeat(A, T0, lease_until=T2, in_flight=0) == 0

    async def test_nodes_are_registered_listed_and_removed(self, store: Store) -> None:
        assert await store.list_nodes() == []
        worker, api = _node(B, role="worker", in_flight=3), _node(A, role="api", seen=T1)
        await store.register_node(worker)
        await store.register_node(api)
        assert await store.list_nodes() == [api, worker]  # by node id
        # Restarted on a newer version (a rolling upgrade): the node says which it runs now.
        restarted = dataclasses.replace(worker, start_time=T1, last_seen=T2, in_flight=0, version="1.5.0.dev3")
        await store.register_node(restarted)
        assert await store.list_nodes() == [api, restarted]
        await store.remove_node(B)
        await store.remove_node(B)  # unknown by now: not an error
        await store.remove_node("never-registered")
        assert await store.list_nodes() == [api]

    async def test_removing_a_node_releases_its_leases(self, store: Store) -> None:
        await _hook(store)
        await store.publish_events([make_event(1), make_event(2)], T0)
        await store.register_node(_node(A))
        await store.register_node(_node(B))
        assert await store.claim_due(T0, limit=1, lease_until=T2, owner=A) != []
        assert await store.claim_due(T0, limit=1, lease_until=T2, owner=B) != []
        await store.remove_node(A)
        assert await _claim(store, B) == [_name(1)]  # at once, long before T2
        assert [n.node_id for n in await store.list_nodes()] == [B]

    async def test_listen_starts_and_reports_only_notices(self, store: Store) -> None:
        seen: list[Notice] = []
        both = trio.Event()

        def heard(notice: Notice) -> None:
            seen.append(notice)
            if {Notice.DUE, Notice.CHANGES} <= set(seen):
                both.set()

        async with trio.open_nursery() as nursery:
            await nursery.start(store.listen, heard)
            await _hook(store)
            await store.publish_events([make_event(1)], T0)
            if self.notices_across_processes:
                with trio.fail_after(5):
                    await both.wait()
            else:
                await trio.sleep(0.05)
                assert seen == []  # the one process wakes itself in memory
            nursery.cancel_scope.cancel()
        assert all(isinstance(n, Notice) for n in seen)
