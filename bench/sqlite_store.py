"""The SQLite store's CPU per delivery, phase by phase: publish, claim, record.

Through the Store API only, on a fresh file per round: each round publishes EVENTS events to
HOOKS hooks in batches of 500, claims them in batches of ``--claim-batch`` (each followed by
``next_due_time``, as the engine does) and records one delivered attempt each (with a 1 KiB
body) in batches of ``--record-batch`` before the next claim. For every phase it reports this
process's CPU time per delivery (the store's worker thread included), median of ``--repeat``
rounds; the commits are inside each phase's calls.

It uses nothing newer than the store before issue 12's store work, so one file measures two
trees: run it with the older tree first on the path, alternating with this one, e.g.

    PYTHONPATH=/work/wt/base-perf/server/src .venv/bin/python -m bench sqlstore
    .venv/bin/python -m bench sqlstore
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics
import tempfile
import time
from collections.abc import Awaitable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TypeVar

import trio
from ulid import ULID

from tidings_server.domain.model import Attempt, DeliveryStatus, Event, Hook, HookStatus, RenderedBody, Trigger
from tidings_server.domain.names import trigger_name
from tidings_server.domain.ports import AttemptRecord
from tidings_server.stores.sqlite import SqliteBackend

T = TypeVar("T")
HOOKS = 4
PUBLISH_BATCH = 500


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--events", type=int, default=5000, help="events per round (default 5000)")
    parser.add_argument("--claim-batch", type=int, default=32, help="deliveries per claim (default 32)")
    parser.add_argument("--record-batch", type=int, default=16, help="attempts per record call (default 16)")
    parser.add_argument("--repeat", type=int, default=5, help="rounds; medians shown (default 5)")


class Meter:
    """CPU seconds of this process, summed over the calls measured."""

    def __init__(self) -> None:
        self.seconds = 0.0

    async def measure(self, call: Awaitable[T]) -> T:
        start = time.process_time()
        result = await call
        self.seconds += time.process_time() - start
        return result


async def _round(path: Path, events: int, claim_batch: int, record_batch: int, t0: datetime) -> dict[str, float]:
    async with SqliteBackend().open(f"sqlite:///{path}") as store:
        names = [f"companies/1/projects/2/hooks/h{h}" for h in range(HOOKS)]
        for name in names:  # room for every claim at once: the phases are measured apart
            hook = Hook(name, 1, 2, name, "https://r.example.com/", "", "procore.v4", HookStatus.ACTIVE, t0, t0)
            await store.create_hook(dataclasses.replace(hook, max_concurrency=events))
            await store.add_triggers(name, [Trigger(trigger_name(name, "RFIs", "update"), "RFIs", "update", t0)])
        batch = [Event(str(ULID()), 0, t0, 1, 2, 7, "RFIs", i % 500, "update") for i in range(events)]
        deliveries = events * HOOKS
        meters = {phase: Meter() for phase in ("publish", "claim", "record")}
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
        assert claimed == deliveries, f"claimed {claimed} of {deliveries}"
        result = {f"{phase} µs/delivery": meter.seconds / deliveries * 1e6 for phase, meter in meters.items()}
        result["sum µs/delivery"] = sum(result.values())
    return result


def run(args: argparse.Namespace) -> int:
    t0 = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=5)
    rounds = []
    for _ in range(args.repeat):
        with tempfile.TemporaryDirectory() as tmp:
            rounds.append(trio.run(_round, Path(tmp) / "s.db", args.events, args.claim_batch, args.record_batch, t0))
    print(
        f"{args.events} events x {HOOKS} hooks a round, claims of {args.claim_batch}, record batches of"
        f" {args.record_batch}, {args.repeat} rounds"
    )
    for key in rounds[0]:
        values = [r[key] for r in rounds]
        print(f"{key:22} median {statistics.median(values):7.1f}   (runs: {', '.join(f'{v:.0f}' for v in values)})")
    return 0
