"""The built-in stores against the storage kit: the same suite a third-party backend runs."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest

from tests.stores.conftest import BACKENDS, SHARED_BACKENDS, BackendFactory
from tidings_server.domain.ports import Store
from tidings_server.testing.stores import StoreContract


@asynccontextmanager
async def _opened(factory: BackendFactory, tmp_path: Path) -> AsyncIterator[Store]:
    with factory(tmp_path) as (backend, url):
        async with backend.open(url) as opened:
            yield opened


class TestBuiltinStores(StoreContract):
    """The stores one process holds."""

    @pytest.fixture(params=[p for p in BACKENDS if p.values[0] not in SHARED_BACKENDS])
    async def store(self, request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Store]:
        async with _opened(request.param, tmp_path) as opened:
            yield opened


class TestSharedStores(StoreContract):
    """The stores several processes share, whose notices reach every one of them."""

    notices_across_processes = True

    @pytest.fixture(params=[p for p in BACKENDS if p.values[0] in SHARED_BACKENDS])
    async def store(self, request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Store]:
        async with _opened(request.param, tmp_path) as opened:
            yield opened
