"""Store-level publish and record rates on SQLite, through the Store API only.

It uses nothing newer than the store before delivery history (commit dc32719), so the same
file measures both sides of a schema change: run it once against this tree and once against
an older one put first on the path, alternating, e.g.

    git archive dc32719 server/src | tar -x -C /tmp/before
    PYTHONPATH=/tmp/before/server/src .venv/bin/python -m bench.store_rates
    .venv/bin/python -m bench.store_rates

Rates are per second of the process's CPU time (the store's worker thread included), which
the other work on a shared machine disturbs less than wall time.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import trio
from ulid import ULID

from tidings_server.domain import model
from tidings_server.domain.model import Attempt, DeliveryStatus, Event, Hook, HookStatus, Trigger
from tidings_server.domain.names import trigger_name
from tidings_server.domain.ports import AttemptRecord
from tidings_server.stores.sqlite import SqliteBackend

T0 = datetime(2026, 11, 1, tzinfo=UTC)
HOOKS = 4
RESOURCE_IDS = 500


async def rates(path: Path, events: int, publish_batch: int = 500, record_batch: int = 64) -> tuple[float, float]:
    """(deliveries published/s, deliveries recorded/s): ``events`` events fanned out to HOOKS
    hooks, then one delivered attempt each, with a 1 KiB rendered body where the store keeps one."""
    async with SqliteBackend().open(f"sqlite:///{path}") as store:
        for h in range(HOOKS):
            name = f"companies/1/projects/2/hooks/h{h}"
            await store.create_hook(
                Hook(name, 1, 2, name, "https://receiver.example.com/", "", "procore.v4", HookStatus.ACTIVE, T0, T0)
            )
            await store.add_triggers(name, [Trigger(trigger_name(name, "RFIs", "update"), "RFIs", "update", T0)])
        batch = [Event(str(ULID()), 0, T0, 1, 2, 7, "RFIs", i % RESOURCE_IDS, "update") for i in range(events)]
        start = time.process_time()
        for i in range(0, events, publish_batch):
            await store.publish_events(batch[i : i + publish_batch], T0 + timedelta(seconds=i))
        published = events * HOOKS / (time.process_time() - start)
        rendered: dict[str, Any] = {}
        if hasattr(model, "RenderedBody"):  # the store keeps bodies since history
            rendered["rendered"] = model.RenderedBody(b"x" * 1024, "application/json")
        attempt = Attempt(
            1, T0, T0 + timedelta(milliseconds=30), (("Content-Type", "application/json"),), 200, (), b"ok", ""
        )
        records = [
            AttemptRecord(
                f"companies/1/projects/2/hooks/h{h}/deliveries/{e.id}",
                attempt,
                DeliveryStatus.DELIVERED,
                None,
                "",
                **rendered,
            )
            for e in batch
            for h in range(HOOKS)
        ]
        start = time.process_time()
        for i in range(0, len(records), record_batch):
            await store.record_attempts(records[i : i + record_batch])
        recorded = len(records) / (time.process_time() - start)
    return published, recorded


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--events", type=int, default=20_000, help="events per run (default 20000)")
    parser.add_argument("--repeats", type=int, default=1, help="runs, each on a fresh file (default 1)")
    args = parser.parse_args()
    for _ in range(args.repeats):
        with tempfile.TemporaryDirectory() as tmp:
            published, recorded = trio.run(rates, Path(tmp) / "rates.sqlite3", args.events)
        print(f"published {published:,.0f} deliveries/s, recorded {recorded:,.0f} deliveries/s", flush=True)


if __name__ == "__main__":
    main()
