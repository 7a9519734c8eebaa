"""The PostgreSQL store's CPU per delivery, phase by phase: publish, claim, record.

Through the Store API only, on a database of its own (made and dropped on ``--admin-url``):
each round publishes EVENTS events to HOOKS hooks in batches of 500, claims them all in
batches of 128 as the engine does, and records one delivered attempt each (with a 1 KiB body)
in batches of ``--record-batch``. For every phase it reports the CPU time per delivery of this
process (the store's worker threads included) and of the PostgreSQL backends serving it (from
/proc), median of ``--repeat`` rounds.

``--days N`` first makes N empty days of partitions before the rounds' day, as a store keeping N
days of history has: planning a statement over the deliveries costs per partition and index.

It uses nothing newer than the store of issue 10, so one file measures two trees: run it with
an older tree first on the path, alternating with this one, e.g.

    git worktree add --detach /tmp/before 85df9aa
    PYTHONPATH=/tmp/before/server/src:/tmp/before/plugins/postgresql/src .venv/bin/python -m bench pgstore
    .venv/bin/python -m bench pgstore
"""

from __future__ import annotations

import argparse
import os
import secrets
import time
from collections.abc import Awaitable
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path
from typing import TypeVar

import psycopg
import trio
from psycopg import sql

from bench.store_phases import print_medians, run_phases
from tidings_postgresql import partitions
from tidings_postgresql.backend import PostgresBackend

T = TypeVar("T")
HOOKS = 4
CLAIM_BATCH = 128


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--admin-url", default="postgresql://postgres@127.0.0.1:5432/postgres")
    parser.add_argument("--events", type=int, default=2000, help="events per round (default 2000)")
    parser.add_argument("--record-batch", type=int, default=32, help="attempts per record call (default 32)")
    parser.add_argument("--repeat", type=int, default=5, help="rounds; medians shown (default 5)")
    parser.add_argument(
        "--days",
        type=int,
        default=0,
        help="empty day partitions made before the rounds' day, as a store keeping that many days of"
        " history has (default 0: only the days the rounds write)",
    )


def _backends(database: str) -> list[Path]:
    """The stat files of the backends serving ``database`` (their command line names it)."""
    found = []
    for entry in Path("/proc").iterdir():
        try:
            if entry.name.isdigit() and f" {database} " in (entry / "cmdline").read_bytes().decode(errors="replace"):
                found.append(entry / "stat")
        except OSError:
            continue
    return found


def _seconds(stat: Path) -> float:
    try:
        fields = stat.read_text().rsplit(")", 1)[1].split()
    except OSError:  # it ended meanwhile
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class Meter:
    """CPU seconds of this process and of the store's backends, summed over the calls measured."""

    def __init__(self, database: str) -> None:
        self._stats = _backends(database)  # the pool's connections, open for the whole round
        self.ours = self.theirs = 0.0

    async def measure(self, call: Awaitable[T]) -> T:
        ours, theirs = time.process_time(), sum(map(_seconds, self._stats))
        result = await call
        self.theirs += sum(map(_seconds, self._stats)) - theirs
        self.ours += time.process_time() - ours
        return result


async def _migrate(url: str) -> None:
    async with PostgresBackend().open(url):
        pass


async def _round(url: str, database: str, events: int, record_batch: int, t0: datetime) -> dict[str, float]:
    async with PostgresBackend().open(url + "?pool_size=2") as store:
        names = [f"companies/1/projects/2/hooks/h{secrets.token_hex(3)}" for _ in range(HOOKS)]
        meters = await run_phases(
            store,
            names,
            events=events,
            claim_batch=CLAIM_BATCH,
            record_batch=record_batch,
            t0=t0,
            meter=partial(Meter, database),
        )
        deliveries = events * HOOKS
        result = {}
        for phase, meter in meters.items():
            result[f"{phase}: tidings µs/d"] = meter.ours / deliveries * 1e6
            result[f"{phase}: pg µs/d"] = meter.theirs / deliveries * 1e6
        for name in names:  # the next round's events must not fan out to these too
            await store.delete_hook(name)
    return result


def run(args: argparse.Namespace) -> int:
    database = f"tidings_pgstore_{secrets.token_hex(4)}"
    with psycopg.connect(args.admin_url, autocommit=True) as admin:
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(database)))
    url = args.admin_url.rsplit("/", 1)[0] + "/" + database
    t0 = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=5)
    try:
        if args.days:
            trio.run(_migrate, url)
            with psycopg.connect(url) as conn:
                for family in partitions.FAMILIES:
                    partitions.ensure(conn, family, [t0.date() - timedelta(days=n) for n in range(1, args.days + 1)])
        rounds = [trio.run(_round, url, database, args.events, args.record_batch, t0) for _ in range(args.repeat)]
    finally:
        with psycopg.connect(args.admin_url, autocommit=True) as admin:
            admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(database)))
    print(
        f"{args.events} events x {HOOKS} hooks a round, record batches of {args.record_batch}, {args.repeat} rounds,"
        f" {args.days} empty days before"
    )
    print_medians(rounds)
    return 0
