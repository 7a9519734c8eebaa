"""Store-level publish and record rates on SQLite, through the Store API only.

It uses nothing newer than the store before delivery history (commit dc32719), so the same
file measures both sides of a schema change: run it once against this tree and once against
an older one put first on the path, alternating, e.g.

    git archive dc32719 server/src | tar -x -C /tmp/before
    PYTHONPATH=/tmp/before/server/src .venv/bin/python -m bench.store_rates
    .venv/bin/python -m bench.store_rates

``--claims 0,10000`` measures claiming instead: one busy hook beside that many idle ones
(put the older tree first on the path the same way to compare).

Rates are per second of the process's CPU time (the store's worker thread included), which
the other work on a shared machine disturbs less than wall time.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from dataclasses import replace
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


async def claim_rate(path: Path, events: int, idle_hooks: int, batch: int = 64) -> float:
    """Deliveries claimed per CPU second: ``events`` events to one hook, claimed ``batch`` at a
    time (each batch recorded delivered before the next claim, as the engine does; only the
    claims are timed), beside ``idle_hooks`` active hooks that have nothing to send."""
    async with SqliteBackend().open(f"sqlite:///{path}") as store:
        for h in range(idle_hooks + 1):
            name = f"companies/1/projects/{h + 2}/hooks/h{h}"
            hook = Hook(
                name, 1, h + 2, name, "https://receiver.example.com/", "", "procore.v4", HookStatus.ACTIVE, T0, T0
            )
            await store.create_hook(replace(hook, max_concurrency=batch))
        busy = "companies/1/projects/2/hooks/h0"
        await store.add_triggers(busy, [Trigger(trigger_name(busy, "RFIs", "update"), "RFIs", "update", T0)])
        drafts = [Event(str(ULID()), 0, T0, 1, 2, 7, "RFIs", i % RESOURCE_IDS, "update") for i in range(events)]
        for i in range(0, events, 500):
            await store.publish_events(drafts[i : i + 500], T0)
        attempt = Attempt(1, T0, T0, (), 200, (), b"ok", "")
        now = T0 + timedelta(minutes=1)
        claimed, spent = 0, 0.0
        while True:
            start = time.process_time()
            claims = await store.claim_due(now, limit=batch, lease_until=now + timedelta(hours=1), owner="bench")
            spent += time.process_time() - start
            if not claims:
                break
            claimed += len(claims)
            done = [AttemptRecord(c.delivery.name, attempt, DeliveryStatus.DELIVERED, None, "") for c in claims]
            await store.record_attempts(done)
    return claimed / spent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--events", type=int, default=20_000, help="events per run (default 20000)")
    parser.add_argument("--repeats", type=int, default=1, help="runs, each on a fresh file (default 1)")
    parser.add_argument(
        "--claims",
        metavar="IDLE,…",
        help="instead, claim rates of one busy hook beside each of these numbers of idle hooks, e.g. 0,10000",
    )
    args = parser.parse_args()
    for _ in range(args.repeats):
        if args.claims:
            figures = []
            for idle in (int(n) for n in args.claims.split(",")):
                with tempfile.TemporaryDirectory() as tmp:
                    rate = trio.run(claim_rate, Path(tmp) / "claims.sqlite3", args.events, idle)
                figures.append(f"{idle} idle hooks: {rate:,.0f} claimed/s ({1e6 / rate:,.1f} µs each)")
            print("; ".join(figures), flush=True)
            continue
        with tempfile.TemporaryDirectory() as tmp:
            published, recorded = trio.run(rates, Path(tmp) / "rates.sqlite3", args.events)
        print(f"published {published:,.0f} deliveries/s, recorded {recorded:,.0f} deliveries/s", flush=True)


if __name__ == "__main__":
    main()
