"""Store test fixtures: ``store`` is an opened, empty store of each backend the contract covers."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from tidings_server.domain.ports import Store
from tidings_server.plugins.spec import StorageBackend
from tidings_server.stores.memory import MemoryBackend
from tidings_server.stores.sqlite import SqliteBackend

BackendFactory = Callable[[Path], tuple[StorageBackend, str]]


def _memory(tmp_path: Path) -> tuple[StorageBackend, str]:
    return MemoryBackend(), "memory:"


def _sqlite(tmp_path: Path) -> tuple[StorageBackend, str]:
    return SqliteBackend(), f"sqlite:///{tmp_path / 'tidings.sqlite3'}"


# Each entry gives a backend and a URL for a fresh store under tmp_path. A new backend joins the
# whole contract suite by adding one entry (with marks= for what it needs, e.g. postgresql).
BACKENDS = [
    pytest.param(_memory, id="memory"),
    pytest.param(_sqlite, id="sqlite"),
]


@pytest.fixture(params=BACKENDS)
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Store]:
    factory: BackendFactory = request.param
    backend, url = factory(tmp_path)
    async with backend.open(url) as opened:
        yield opened
