"""The built-in stores against the storage kit: the same suite a third-party backend runs."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.stores.conftest import BACKENDS, BackendFactory
from tidings_server.domain.ports import Store
from tidings_server.testing.stores import StoreContract


class TestBuiltinStores(StoreContract):
    @pytest.fixture(params=BACKENDS)
    async def store(self, request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Store]:
        factory: BackendFactory = request.param
        with factory(tmp_path) as (backend, url):
            async with backend.open(url) as opened:
                yield opened
