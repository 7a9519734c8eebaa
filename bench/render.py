"""What a render costs in each lane: on the engine's thread, in a worker thread, in the render pool.

One installed third-party format (``slack.v1`` from tidings-slack by default) renders the same
event again and again, each render checked against the contract as the engine does: inline
(no hop), through ``trio.to_thread.run_sync`` (the lane of in-process plugins), and through a
``RenderPool`` worker process (the lane of installed plugins). Reported per lane: the median and
p99 of one render at a time and the CPU time this process (the server's side) spends per
render then (what a render costs the server's core, the worker's own CPU aside); and renders
per second with ``--concurrency`` at once (the pool's default 2 workers, which then get
batches of renders) with the CPU per render of this process and of its render workers
together, from /proc. The pool's workers are started before timing: start-up is paid once.

``--e2e`` measures what a delivery pays instead: a real server delivering to a local receiver,
with its hooks on procore.v4 as shipped (rendered inline) and on the same format from a
third-party distribution written for the run (rendered in the pool), interleaved, the CPU per
delivery of the server and its render workers from /proc beside each rate.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import grpc
import trio

from bench import e2e
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
    parser.add_argument(
        "--e2e",
        action="store_true",
        help="instead, end to end: a server's deliveries/s with its hooks on procore.v4 (inline) and on the"
        " same format from a third-party distribution (pooled), interleaved",
    )
    parser.add_argument("--events", type=int, default=3000, help="--e2e: events per run (default 3000)")
    parser.add_argument("--hooks", type=int, default=4, help="--e2e: hooks every event goes to (default 4)")
    parser.add_argument("--hook-concurrency", type=int, default=32, help="--e2e: each hook's (default 32)")


def run(args: argparse.Namespace) -> int:
    if args.e2e:
        return run_e2e(args)
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
        results: dict[str, list[tuple[float, float, float, float, float]]] = {name: [] for name in lanes}
        for _ in range(args.repeats):
            for name, lane in lanes.items():
                results[name].append(await _measure(lane, args.renders, args.concurrency))
    print(f"{args.format}: {args.renders} renders per lane and round, {args.repeats} rounds, interleaved")
    at = f"at {args.concurrency}"
    print(f"{'lane':8} {'p50 µs':>8} {'p99 µs':>8} {'CPU µs':>8} {'renders/s ' + at:>18} {'all CPU µs ' + at:>16}")
    for name, rounds in results.items():
        p50, p99, cpu, rate, all_cpu = (statistics.median(r[i] for r in rounds) for i in range(5))
        print(f"{name:8} {p50:8.0f} {p99:8.0f} {cpu:8.0f} {rate:18,.0f} {all_cpu:16.0f}")
    return 0


def _all_cpu() -> float:
    """CPU seconds so far of this process and its children (the render workers)."""
    return sum(e2e._cpu_seconds(pid) for pid in e2e._descendants(os.getpid()))


async def _measure(lane: object, renders: int, concurrency: int) -> tuple[float, float, float, float, float]:
    """(p50 µs, p99 µs, this process's CPU µs) of one render at a time, then renders/s with
    ``concurrency`` at once and the CPU µs per render of this process and its workers then."""
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

    before = _all_cpu()
    start = time.perf_counter()
    async with trio.open_nursery() as nursery:
        for _ in range(concurrency):
            nursery.start_soon(worker)
    rate = renders / (time.perf_counter() - start)
    all_cpu = (_all_cpu() - before) * 1e6 / renders
    return times[len(times) // 2], times[int(len(times) * 0.99)], cpu, rate, all_cpu


def _e2e_round(args: argparse.Namespace, tmp: Path, name: str, fmt: str, url: str) -> tuple[float, float]:
    """Deliveries/s of one throughput run with every hook on ``fmt``, and the CPU µs per
    delivery of the server and its render workers (all its descendants) meanwhile."""
    db = tmp / f"{name}.sqlite3"
    with e2e.server(db, env=e2e.plugin_site(tmp / f"{name}-site")) as srv:
        with grpc.insecure_channel(f"127.0.0.1:{srv.port}") as channel:
            e2e.make_hooks(channel, url, args.hooks, args.hook_concurrency, fmt)
        time.sleep(2.0)  # the render workers start in the background with the server
        before = e2e.Cpu.now(srv.pid, "")
        rate = e2e.throughput(srv.port, db, args.events, 500, args.hooks, timeout=600)
        spent, _ = e2e.Cpu.now(srv.pid, "").since(before)
    return rate, spent / (args.events * args.hooks) * 1e6


def run_e2e(args: argparse.Namespace) -> int:
    """procore.v4 as shipped (inline) against the same format in a third-party distribution
    (``bench.procore.v4``, rendered in the pool), one throughput run of each per round."""
    lanes = {"inline": "procore.v4", "pooled": "bench.procore.v4"}
    figures: dict[str, list[tuple[float, float]]] = {lane: [] for lane in lanes}
    receiver = e2e.ReceiverProcess()
    try:
        with tempfile.TemporaryDirectory() as tmp:
            for round_ in range(args.repeats):
                for lane, fmt in lanes.items():
                    figures[lane].append(
                        _e2e_round(args, Path(tmp), f"{lane}{round_}", fmt, f"http://127.0.0.1:{receiver.port}/in")
                    )
    finally:
        receiver.close()
    print(f"{args.events} events x {args.hooks} hooks per run, {args.repeats} rounds interleaved, medians")
    print(f"{'lane':8} {'deliveries/s':>13} {'runs':<26} {'CPU µs/delivery (server + workers)':>34}")
    medians = {}
    for lane, runs in figures.items():
        medians[lane] = statistics.median(r for r, _ in runs)
        shown = ", ".join(f"{r:,.0f}" for r, _ in runs)
        print(f"{lane:8} {medians[lane]:13,.0f} {shown:<26} {statistics.median(c for _, c in runs):34.0f}")
    ratios = [p[0] / i[0] for i, p in zip(figures["inline"], figures["pooled"], strict=True)]
    print(
        f"pooled / inline: {medians['pooled'] / medians['inline']:.2f} (medians);"
        f" per round {', '.join(f'{r:.2f}' for r in ratios)}"
    )
    return 0
