"""The publish → claim → record loop that ``bench sqlstore`` and ``bench pgstore`` both time,
phase by phase, through the Store API only; each store brings its own meter (what CPU it counts).

It uses nothing newer than the store before issue 12's store work, so the benches built on it
can measure an older tree put first on the path."""

from __future__ import annotations

import dataclasses
import statistics
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime, timedelta
from typing import Protocol, TypeVar

from ulid import ULID

from tidings_server.domain.model import Attempt, DeliveryStatus, Event, Hook, HookStatus, RenderedBody, Trigger
from tidings_server.domain.names import trigger_name
from tidings_server.domain.ports import AttemptRecord, Store

T = TypeVar("T")
PHASES = ("publish", "claim", "record")
PUBLISH_BATCH = 500


class Meter(Protocol):
    """Sums the CPU time of the calls it measures, in whatever processes its store counts."""

    async def measure(self, call: Awaitable[T]) -> T: ...


M = TypeVar("M", bound=Meter)


async def run_phases(
    store: Store,
    names: Sequence[str],
    *,
    events: int,
    claim_batch: int,
    record_batch: int,
    t0: datetime,
    meter: Callable[[], M],
) -> dict[str, M]:
    """Hooks ``names`` (room for every claim at once, so the phases are measured apart), then
    ``events`` events fanned out to them in batches of 500; then claims of ``claim_batch``, each
    followed by ``next_due_time`` as the engine does, taking turns with records of one delivered
    attempt (1 KiB body) each in batches of ``record_batch``, so the leases in flight stay at one
    claim's. Returns each phase's meter."""
    for name in names:
        hook = Hook(name, 1, 2, name, "https://r.example.com/", "", "procore.v4", HookStatus.ACTIVE, t0, t0)
        await store.create_hook(dataclasses.replace(hook, max_concurrency=events))
        await store.add_triggers(name, [Trigger(trigger_name(name, "RFIs", "update"), "RFIs", "update", t0)])
    batch = [Event(str(ULID()), 0, t0, 1, 2, 7, "RFIs", i % 500, "update") for i in range(events)]
    meters = {phase: meter() for phase in PHASES}
    for i in range(0, events, PUBLISH_BATCH):
        await meters["publish"].measure(store.publish_events(batch[i : i + PUBLISH_BATCH], t0))
    now = t0 + timedelta(seconds=1)
    lease = now + timedelta(seconds=30)
    attempt = Attempt(1, now, now, (("Content-Type", "application/json"),), 200, (), b"ok", "")
    body = RenderedBody(b"x" * 1024, "application/json")
    claimed = 0
    claim = meters["claim"].measure
    while got := await claim(store.claim_due(now, limit=claim_batch, lease_until=lease, owner="n")):
        await claim(store.next_due_time(after=now))
        claimed += len(got)
        records = [AttemptRecord(c.delivery.name, attempt, DeliveryStatus.DELIVERED, None, "", body) for c in got]
        for i in range(0, len(records), record_batch):
            await meters["record"].measure(store.record_attempts(records[i : i + record_batch]))
    deliveries = events * len(names)
    assert claimed == deliveries, f"claimed {claimed} of {deliveries}"
    return meters


def print_medians(rounds: Sequence[dict[str, float]]) -> None:
    """One line per figure: its median over the rounds, and every round's value."""
    width = max(len(key) for key in rounds[0]) + 2
    for key in rounds[0]:
        values = [r[key] for r in rounds]
        runs = ", ".join(f"{v:.0f}" for v in values)
        print(f"{key:{width}} median {statistics.median(values):8.1f}   (runs: {runs})")
