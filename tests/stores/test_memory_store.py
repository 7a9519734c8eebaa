"""What only the memory backend does: its URL, its plugin hook, a fresh store per open, no threads."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import trio
from trio.testing import MockClock

from tidings_server.domain.errors import NotFound
from tidings_server.domain.model import Attempt, DeliveryStatus, Hook, HookStatus
from tidings_server.domain.ports import AttemptRecord, DeliveryQuery
from tidings_server.plugins.spec import StorageBackend
from tidings_server.stores import memory
from tidings_server.stores.memory import MemoryBackend, MemoryStore
from tidings_server.testing.stores.samples import make_event, make_trigger

NOW = datetime(2024, 5, 17, 12, 30, 45, 123456, tzinfo=UTC)
HOOK = Hook(
    "companies/1/hooks/h", 1, None, "Deliveries", "https://r.example.com", "", "procore.v4", HookStatus.ACTIVE, NOW, NOW
)


def test_plugin_provides_one_memory_backend() -> None:
    [backend] = memory.tidings_storage_backends()
    assert isinstance(backend, StorageBackend)
    assert isinstance(backend, MemoryBackend)
    assert backend.scheme == "memory"


@pytest.mark.parametrize("url", ["memory:", "MEMORY:"])
async def test_opens_a_memory_url(url: str) -> None:
    async with MemoryBackend().open(url) as store:
        assert isinstance(store, MemoryStore)


@pytest.mark.parametrize("url", ["memory://", "memory:x", "memory:?a=b", "sqlite:///x.db", "memory"])
async def test_rejects_other_urls(url: str) -> None:
    with pytest.raises(ValueError, match="expected 'memory:'"):
        async with MemoryBackend().open(url):
            pass


async def test_each_open_starts_empty() -> None:
    backend = MemoryBackend()
    async with backend.open("memory:") as store:
        await store.create_hook(HOOK)
    async with backend.open("memory:") as store:
        with pytest.raises(NotFound):
            await store.get_hook(HOOK.name)


async def test_never_uses_a_thread_nor_lets_time_pass(
    autojump_clock: MockClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Virtual-time tests of the delivery engine run on it: a store call that waited would let
    the autojump clock leap, and one that used a worker thread would fail here."""

    def no_threads(*args: object, **kwargs: object) -> None:
        raise AssertionError("MemoryStore used a worker thread")

    monkeypatch.setattr(trio.to_thread, "run_sync", no_threads)
    start = trio.current_time()
    async with MemoryBackend().open("memory:") as store:
        await store.create_hook(HOOK)
        await store.add_triggers(HOOK.name, [make_trigger(HOOK.name)])
        [published] = await store.publish_events([make_event(1, project=None)], NOW)
        [claim] = await store.claim_due(NOW, limit=10, lease_until=NOW + timedelta(minutes=1), owner="node-a")
        assert await store.next_due_time() == NOW + timedelta(minutes=1)
        attempt = Attempt(1, NOW, NOW, (), 200, (), b"", "")
        await store.record_attempts([AttemptRecord(claim.delivery.name, attempt, DeliveryStatus.DELIVERED, None, "")])
        await store.release([claim.delivery.name])
        assert await store.discard_pending(HOOK.name, NOW, "none left") == 0
        query = DeliveryQuery(hook_name=HOOK.name)
        page = await store.query_deliveries(query, after=None, limit=10, scan_limit=10)
        assert [d.name for d, _ in page.deliveries] == [claim.delivery.name]
        assert await store.get_rendered(claim.delivery.name) is None
        assert (await store.hook_stats(HOOK.name, latency_sample=10)).counts[DeliveryStatus.DELIVERED] == 1
        changes = await store.list_changes(query, after=0, limit=10, scan_limit=10)
        assert [c.seq for c in changes.changes] == [1, 2]
        assert await store.change_bounds() == (1, 2)
        assert await store.redeliver([claim.delivery.name], NOW) == [claim.delivery.name]
        # A delivery, its event, and three changes (created, delivered, queued again).
        assert await store.purge(NOW + timedelta(days=1), 10) == 5
        assert published.deliveries == 1
    assert trio.current_time() == start
