"""The storage-backend half of the kit: the contract every ``Store`` keeps, as pytest tests.

::

    import pytest
    from tidings_server.testing.stores import StoreContract

    class TestMyStore(StoreContract):
        @pytest.fixture
        async def store(self, tmp_path):
            async with MyBackend().open(f"mystore://{tmp_path}") as opened:
                yield opened

Every test gets a new, empty store from the fixture and runs under pytest-trio (set
``trio_mode = true``). The built-in memory and SQLite stores pass exactly this suite, so a
backend that passes it can stand in for them: hooks and triggers, publishing and fan-out,
claims and leases, attempts, purging, every history query, the nodes of a cluster, what
``tidings-server status`` reads, the tokens callers authenticate with, endpoint protection and
project templates. The parts can also be inherited one by one while a backend is being written.
A backend that several processes share sets ``notices_across_processes = True``: its ``listen``
must then report the notices its writes send.
"""

from __future__ import annotations

from tidings_server.testing.stores.cluster import ClusterStoreContract
from tidings_server.testing.stores.deliveries import DeliveryStoreContract
from tidings_server.testing.stores.history import HistoryStoreContract
from tidings_server.testing.stores.hooks import HookStoreContract
from tidings_server.testing.stores.protection import ProtectionStoreContract
from tidings_server.testing.stores.status import StatusStoreContract
from tidings_server.testing.stores.templates import TemplateStoreContract
from tidings_server.testing.stores.tokens import TokenStoreContract


class StoreContract(
    HookStoreContract,
    DeliveryStoreContract,
    HistoryStoreContract,
    ClusterStoreContract,
    StatusStoreContract,
    TokenStoreContract,
    ProtectionStoreContract,
    TemplateStoreContract,
):
    """All of it: inherit in a ``Test…`` class and provide a ``store`` fixture."""


__all__ = [
    "ClusterStoreContract",
    "DeliveryStoreContract",
    "HistoryStoreContract",
    "HookStoreContract",
    "ProtectionStoreContract",
    "StatusStoreContract",
    "StoreContract",
    "TemplateStoreContract",
    "TokenStoreContract",
]
