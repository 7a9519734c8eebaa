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
import tempfile
import time
from collections.abc import Awaitable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TypeVar

import trio

from bench.store_phases import print_medians, run_phases
from tidings_server.stores.sqlite import SqliteBackend

T = TypeVar("T")
HOOKS = 4


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
        meters = await run_phases(
            store, names, events=events, claim_batch=claim_batch, record_batch=record_batch, t0=t0, meter=Meter
        )
    deliveries = events * HOOKS
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
    print_medians(rounds)
    return 0
