"""What a render costs in each lane: on the engine's thread, in a worker thread, in the render pool.

One installed third-party format (``slack.v1`` from tidings-slack by default) renders the same
event again and again, each render checked against the contract as the engine does: inline
(no hop), through ``trio.to_thread.run_sync`` (the lane of in-process plugins), and through a
``RenderPool`` worker process (the lane of installed plugins). Reported per lane: the median and
p99 of one render at a time, and renders per second with ``--concurrency`` at once (the pool's
default 2 workers), and the CPU time this process (the server's side) spends per render one at
a time: what a render costs the server's core, the worker's own CPU aside. The pool's workers
are started before timing: start-up is paid once.
"""

from __future__ import annotations

import argparse
import statistics
import time
from datetime import UTC, datetime

import trio

from tidings_server.app import pooled_formats
from tidings_server.delivery.render_pool import PoolConfig, RenderPool
from tidings_server.delivery.render_worker import render_checked
from tidings_server.domain.model import Event
from tidings_server.plugins.manager import Plugins
from tidings_server.plugins.spec import RenderContext

EVENT = Event(
    id="01jkg7hb7v8x0a3r2b4c5d6e7f",
    serial=1,
    timestamp=datetime(2026, 11, 27, 9, 0, tzinfo=UTC),
    company_id=8,
    project_id=6778,
    user_id=5447,
    resource_name="RFIs",
    resource_id=54321,
    event_type="update",
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--format", default="slack.v1", help="an installed third-party format (default slack.v1)")
    parser.add_argument("--renders", type=int, default=3000, help="renders per lane and measure (default 3000)")
    parser.add_argument("--concurrency", type=int, default=8, help="renders at once for the rate (default 8)")
    parser.add_argument("--repeats", type=int, default=3, help="rounds, lanes interleaved (default 3)")


def run(args: argparse.Namespace) -> int:
    return trio.run(_run, args)


async def _run(args: argparse.Namespace) -> int:
    plugins = Plugins.load()
    fmt = plugins.payload_formats[args.format]
    context = RenderContext("companies/8/projects/6778/hooks/bench", args.format)
    pooled = pooled_formats(plugins)
    if args.format not in pooled:
        print(f"{args.format} is not a third-party format of an installed distribution")
        return 2
    async with RenderPool({args.format: pooled[args.format]}, PoolConfig()) as pool:

        async def inline() -> None:
            render_checked(fmt, EVENT, context)

        async def thread() -> None:
            await trio.to_thread.run_sync(render_checked, fmt, EVENT, context)

        async def process() -> None:
            await pool.render(args.format, EVENT, context, time_bound=2.0, wait=10.0)

        lanes = {"inline": inline, "thread": thread, "pool": process}
        async with trio.open_nursery() as warm:  # start both workers
            for _ in range(2):
                warm.start_soon(process)
        results: dict[str, list[tuple[float, float, float, float]]] = {name: [] for name in lanes}
        for _ in range(args.repeats):
            for name, lane in lanes.items():
                results[name].append(await _measure(lane, args.renders, args.concurrency))
    print(f"{args.format}: {args.renders} renders per lane and round, {args.repeats} rounds, interleaved")
    print(f"{'lane':8} {'p50 µs':>8} {'p99 µs':>8} {'CPU µs':>8} {'renders/s at ' + str(args.concurrency):>18}")
    for name, rounds in results.items():
        p50, p99, cpu, rate = (statistics.median(r[i] for r in rounds) for i in range(4))
        print(f"{name:8} {p50:8.0f} {p99:8.0f} {cpu:8.0f} {rate:18,.0f}")
    return 0


async def _measure(lane: object, renders: int, concurrency: int) -> tuple[float, float, float, float]:
    """(p50 µs, p99 µs, this process's CPU µs) of one render at a time, and renders/s with
    ``concurrency`` at once."""
    assert callable(lane)
    times = []
    cpu = time.process_time()
    for _ in range(renders):
        start = time.perf_counter()
        await lane()
        times.append((time.perf_counter() - start) * 1e6)
    cpu = (time.process_time() - cpu) * 1e6 / renders
    times.sort()
    left = renders

    async def worker() -> None:
        nonlocal left
        while left > 0:
            left -= 1
            await lane()

    start = time.perf_counter()
    async with trio.open_nursery() as nursery:
        for _ in range(concurrency):
            nursery.start_soon(worker)
    rate = renders / (time.perf_counter() - start)
    return times[len(times) // 2], times[int(len(times) * 0.99)], cpu, rate
