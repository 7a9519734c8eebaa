"""What this branch added to the stores, on both built-in backends: the signing fields of a
hook survive a round trip (create, update, read, claim), and ``payload_formats_in_use`` counts
hooks per format for the start-up check. (The shared store contract suites live in
tests/stores; these cases join them when that suite next moves.)"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tidings_server.domain.model import Event, Hook, HookStatus, Trigger
from tidings_server.domain.names import trigger_name
from tidings_server.stores.memory import MemoryBackend
from tidings_server.stores.protocol import Store
from tidings_server.stores.sqlite import SqliteBackend

T0 = datetime(2026, 11, 27, 9, 0, tzinfo=UTC)


def hook(name: str, payload_format: str = "procore.v4") -> Hook:
    return Hook(
        name=name,
        company_id=8,
        project_id=6778,
        display_name="",
        destination_url="https://hooks.example.com/in",
        authorization_header="",
        payload_format=payload_format,
        status=HookStatus.ACTIVE,
        create_time=T0,
        update_time=T0,
        signing_secret="whsec_" + "A" * 43 + "=",
    )


@pytest.fixture(params=["memory", "sqlite"])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Store]:
    backend = MemoryBackend() if request.param == "memory" else SqliteBackend()
    url = "memory:" if request.param == "memory" else f"sqlite:///{tmp_path / 'signing.sqlite3'}"
    async with backend.open(url) as opened:
        yield opened


async def test_signing_fields_round_trip(store: Store) -> None:
    name = "companies/8/projects/6778/hooks/signed"
    created = replace(hook(name), signing_disabled=True)
    await store.create_hook(created)
    assert await store.get_hook(name) == created
    rotated = replace(
        created,
        signing_disabled=False,
        signing_secret="whsec_" + "B" * 43 + "=",
        previous_signing_secret=created.signing_secret,
        previous_secret_expire_time=T0 + timedelta(hours=24, microseconds=1),
    )
    assert await store.update_hook(name, lambda _: rotated) == rotated
    assert await store.get_hook(name) == rotated
    await store.add_triggers(name, [Trigger(trigger_name(name, "RFIs", "update"), "RFIs", "update", T0)])
    event = Event("01jkg7hb7v8x0a3r2b4c5d6e7f", 0, T0, 8, 6778, 1, "RFIs", 5, "update")
    await store.publish_events([event], T0)
    [claim] = await store.claim_due(T0, limit=10, lease_until=T0 + timedelta(minutes=1), in_flight={})
    assert claim.hook == rotated  # what the engine signs with


async def test_payload_formats_in_use_counts_hooks_per_format(store: Store) -> None:
    assert await store.payload_formats_in_use() == {}
    for hook_id, payload_format in (("b", "procore.v4"), ("a", "procore.v4"), ("c", "slack.v1")):
        await store.create_hook(hook(f"companies/8/projects/6778/hooks/{hook_id}", payload_format))
    assert await store.payload_formats_in_use() == {
        "procore.v4": (2, "companies/8/projects/6778/hooks/a"),
        "slack.v1": (1, "companies/8/projects/6778/hooks/c"),
    }
    await store.delete_hook("companies/8/projects/6778/hooks/c")
    assert await store.payload_formats_in_use() == {"procore.v4": (2, "companies/8/projects/6778/hooks/a")}
