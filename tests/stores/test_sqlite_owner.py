"""A SQLite file has one server at a time: a second opener is refused, and the one that opens
it clears the leases and nodes its previous process left."""

from __future__ import annotations

import os
from datetime import timedelta
from pathlib import Path

import pytest

from tidings_server.domain.ports import NodeInfo
from tidings_server.stores.sqlite import SqliteBackend, StoreInUseError
from tidings_server.testing.stores.samples import T0, make_event, make_hook, make_trigger

HOOK = "companies/1/projects/2/hooks/h"


async def test_a_second_opener_is_refused_while_the_first_holds_the_file(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'one.sqlite3'}"
    async with SqliteBackend().open(url):
        with pytest.raises(StoreInUseError, match=rf"already in use by another tidings-server \(pid {os.getpid()}"):
            async with SqliteBackend().open(url):
                pass
    async with SqliteBackend().open(url):  # closing released the lock
        pass


async def test_opening_clears_the_leases_and_nodes_the_previous_process_left(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'one.sqlite3'}"
    async with SqliteBackend().open(url) as store:
        await store.create_hook(make_hook(HOOK))
        await store.add_triggers(HOOK, [make_trigger(HOOK)])
        await store.publish_events([make_event(1)], T0)
        await store.register_node(NodeInfo("gone-1-abcd", "all", "gone", 1, T0, T0, 1))
        [claim] = await store.claim_due(T0, limit=10, lease_until=T0 + timedelta(days=1), owner="gone-1-abcd")
        # The process dies here: nothing releases the lease.
    async with SqliteBackend().open(url) as store:
        assert await store.list_nodes() == []
        [again] = await store.claim_due(T0, limit=10, lease_until=T0 + timedelta(seconds=30), owner="next-2-abcd")
        assert again.delivery.name == claim.delivery.name
