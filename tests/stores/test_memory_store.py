"""What only the memory backend does: its URL, its plugin hook, and a fresh store per open."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from tidings_server.domain.errors import NotFound
from tidings_server.domain.model import Hook, HookStatus
from tidings_server.plugins.spec import StorageBackend
from tidings_server.stores import memory
from tidings_server.stores.memory import MemoryBackend, MemoryStore

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
