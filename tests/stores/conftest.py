"""Store test fixtures: ``store`` is an opened, empty store of each backend the contract covers."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path

import pytest

from tests.pg import temporary_database
from tidings_postgresql.backend import PostgresBackend
from tidings_server.domain.ports import Store
from tidings_server.plugins.spec import StorageBackend
from tidings_server.stores.memory import MemoryBackend
from tidings_server.stores.sqlite import SqliteBackend

BackendFactory = Callable[[Path], AbstractContextManager[tuple[StorageBackend, str]]]


@contextmanager
def _memory(tmp_path: Path) -> Iterator[tuple[StorageBackend, str]]:
    yield MemoryBackend(), "memory:"


@contextmanager
def _sqlite(tmp_path: Path) -> Iterator[tuple[StorageBackend, str]]:
    yield SqliteBackend(), f"sqlite:///{tmp_path / 'tidings.sqlite3'}"


@contextmanager
def _postgresql(tmp_path: Path) -> Iterator[tuple[StorageBackend, str]]:
    with temporary_database() as url:
        yield PostgresBackend(), url


# Each entry gives a backend and a URL for a fresh store (under tmp_path, or a database of its
# own made and dropped around the test). A new backend joins the whole contract suite by adding
# one entry.
BACKENDS = [
    pytest.param(_memory, id="memory"),
    pytest.param(_sqlite, id="sqlite"),
    pytest.param(_postgresql, id="postgresql"),
]

SHARED_BACKENDS = frozenset({_postgresql})
"""The backends several processes share: their ``listen`` hears the others' notices."""


@pytest.fixture(params=BACKENDS)
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Store]:
    factory: BackendFactory = request.param
    with factory(tmp_path) as (backend, url):
        async with backend.open(url) as opened:
            yield opened
