"""End to end: events published over gRPC, fanned out, POSTed to a local receiver, recorded.

Two measurements against a real server (``--processes`` of them on one store, ``--store``
sqlite or postgresql, a fresh file or database for each run):

* throughput: EVENTS events published in batches as fast as the server takes them, fanned out
  to HOOKS hooks; deliveries/s from the first publish until the store has every delivery
  recorded as delivered (read from the SQLite file or the database), with the CPU time per
  delivery of the server processes and of the PostgreSQL backends serving the bench database
  (utime + stime from /proc; PostgreSQL's own background processes are not counted);
* latency: events offered at a fixed rate to one hook; publish → received at the receiver,
  p50/p99 (the event's timestamp is its publish time; both ends read this machine's clock).

The receiver runs in its own process and its ceiling is measured in the same run, so the
figures say whether it, rather than the server, was the limit. ``--compare`` runs several
store × processes configurations interleaved, one throughput run of each per repeat and then one
latency run of each per repeat (medians of p50 and p99, and the server's CPU per delivery at the
offered rate), so the machine's background load falls on all of them alike.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import multiprocessing
import multiprocessing.connection
import os
import re
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Final

import grpc
import psycopg
import trio
from google.protobuf.timestamp_pb2 import Timestamp
from psycopg import sql

from bench import http_client
from tidings.v1 import events_pb2, events_pb2_grpc, hooks_pb2, hooks_pb2_grpc
from tidings_server.domain.sealing import encode_key, new_key
from tidings_server.keys import ENV_VAR

_TIMESTAMP = re.compile(rb'"timestamp":"([^"]+)"')


# -- the receiver (own process): answers 200, counts, and keeps publish->receive latencies ----


@dataclass
class Stats:
    count: int = 0
    latencies: list[float] = field(default_factory=list)


STATS = Stats()  # the receiver process's own tally


class _Receiver(http_client.Answering):
    """Counts requests and, from the body's timestamp (its publish time), their latency."""

    def received(self, body: bytes) -> None:
        STATS.count += 1
        if m := _TIMESTAMP.search(body):
            sent = datetime.fromisoformat(m.group(1).decode()).timestamp()
            STATS.latencies.append(time.time() - sent)


def _serve(conn: multiprocessing.connection.Connection) -> None:
    async def main() -> None:
        loop = asyncio.get_running_loop()
        server = await loop.create_server(_Receiver, "127.0.0.1", 0, backlog=4096)
        conn.send(server.sockets[0].getsockname()[1])

        def on_command() -> None:
            try:
                command = conn.recv()
            except EOFError:  # the bench is gone (killed, or it failed): so is its receiver
                serving.cancel()
                return
            if command == "reset":
                STATS.count, STATS.latencies = 0, []
                conn.send(True)
            elif command == "stats":
                conn.send(STATS)

        loop.add_reader(conn.fileno(), on_command)
        async with server:
            serving = asyncio.ensure_future(server.serve_forever())
            with contextlib.suppress(asyncio.CancelledError):
                await serving

    asyncio.run(main())


class ReceiverProcess:
    def __init__(self) -> None:
        context = multiprocessing.get_context("spawn")
        self._conn, child = context.Pipe()
        self._process = context.Process(target=_serve, args=(child,), daemon=True)
        self._process.start()
        if not self._conn.poll(30):
            raise RuntimeError("the receiver did not start")
        self.port: int = self._conn.recv()

    def reset(self) -> None:
        self._conn.send("reset")
        self._conn.recv()

    def stats(self) -> Stats:
        self._conn.send("stats")
        result: Stats = self._conn.recv()
        return result

    def close(self) -> None:
        self._process.terminate()
        self._process.join(5)


# -- a third-party format, to measure the render pool -------------------------------------------

POOLED_PLUGIN = """
from tidings_procore.formats import ProcoreV4Format
from tidings_server.plugins.spec import hookimpl


class Pooled(ProcoreV4Format):
    name = "bench.procore.v4"


@hookimpl
def tidings_payload_formats():
    return [Pooled()]
"""


FAULTY_PLUGIN = """
from tidings_server.plugins.spec import RenderedPayload, hookimpl


class HugeBody:
    name = "bench.hugebody"
    description = "A 50 MB body every time: refused by the contract, after the work."
    content_type = "application/json"

    def render(self, event, context):
        return RenderedPayload({"Content-Type": self.content_type}, b"x" * 50_000_000)


@hookimpl
def tidings_payload_formats():
    return [HugeBody()]
"""


def plugin_site(site: Path) -> dict[str, str]:
    """Two third-party distributions written to ``site`` as pip leaves them, so they render in
    the render pool like any installed plugin: ``bench.procore.v4`` (procore.v4 renamed) and
    ``bench.hugebody`` (a faulty format); the environment that puts them on the server's path."""
    for dist, module, source in (
        ("pooled", "bench_pooled_format", POOLED_PLUGIN),
        ("faulty", "bench_faulty_format", FAULTY_PLUGIN),
    ):
        info = site / f"bench_{dist}-1.0.dist-info"
        info.mkdir(parents=True)
        (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: bench-{dist}\nVersion: 1.0\n")
        (info / "entry_points.txt").write_text(f"[tidings]\nbench_{dist} = {module}\n")
        (site / f"{module}.py").write_text(source)
    return {"PYTHONPATH": os.pathsep.join(p for p in (str(site), os.environ.get("PYTHONPATH", "")) if p)}


# -- the server --------------------------------------------------------------------------------


POSTGRES_ADMIN = "postgresql://postgres@127.0.0.1:5432/test"


@dataclass(frozen=True)
class Store:
    """Where one run keeps its data: a SQLite file, or a PostgreSQL database made for it."""

    url: str
    db: Path | None = None  # the SQLite file
    database: str = ""  # the PostgreSQL database

    @contextmanager
    def counting(self) -> Iterator[Callable[[], int]]:
        """A reader of the deliveries recorded delivered, on one connection held for the run."""
        if self.db is not None:
            with contextlib.closing(sqlite3.connect(f"file:{self.db}?mode=ro", uri=True)) as lite:
                yield lambda: _delivered(lite.execute)
            return
        with psycopg.connect(self.url, autocommit=True) as conn:
            yield lambda: _delivered(conn.execute)


@contextmanager
def store(kind: str, tmp: Path, name: str, admin: str = POSTGRES_ADMIN) -> Iterator[Store]:
    if kind == "sqlite":
        yield Store(f"sqlite:///{tmp / (name + '.sqlite3')}", db=tmp / (name + ".sqlite3"))
        return
    database = f"tidings_bench_{os.getpid()}_{name}"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(database)))
    try:
        yield Store(f"{admin.rsplit('/', 1)[0]}/{database}", database=database)
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(database)))


def _cpu_seconds(pid: int) -> float:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:  # it ended meanwhile
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime


def _descendants(pid: int) -> set[int]:
    found = {pid}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError):
                continue
            if ppid == pid:
                found |= _descendants(int(entry.name))
    return found


def _backends(database: str) -> set[int]:
    """The PostgreSQL backend processes serving ``database`` (their command line names it)."""
    found: set[int] = set()
    if not database:
        return found
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                cmdline = (entry / "cmdline").read_bytes().decode(errors="replace")
            except OSError:
                continue
            if cmdline.startswith("postgres:") and f" {database} " in cmdline:
                found.add(int(entry.name))
    return found


def _machine_ticks() -> tuple[int, int]:
    """(all, idle) clock ticks of every core so far, from /proc/stat."""
    ticks = [int(t) for t in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    return sum(ticks), ticks[3] + ticks[4]  # idle and iowait


def busy_cores(before: tuple[int, int], after: tuple[int, int]) -> float:
    """Cores the whole machine kept busy between two readings of ``_machine_ticks``: what says
    whether a run was held back by the cores or by something else."""
    total, idle = after[0] - before[0], after[1] - before[1]
    return (os.cpu_count() or 1) * (1 - idle / total) if total else 0.0


@dataclass(frozen=True)
class Cpu:
    """CPU seconds so far of the server processes and of the database's backends."""

    server: dict[int, float]
    database: dict[int, float]

    @classmethod
    def now(cls, server_pid: int, database: str) -> Cpu:
        return cls(
            {p: _cpu_seconds(p) for p in _descendants(server_pid)},
            {p: _cpu_seconds(p) for p in _backends(database)},
        )

    def since(self, before: Cpu) -> tuple[float, float]:
        def spent(now: dict[int, float], then: dict[int, float]) -> float:
            return sum(t - then.get(p, 0.0) for p, t in now.items())

        return spent(self.server, before.server), spent(self.database, before.database)


@dataclass(frozen=True)
class Server:
    port: int
    pid: int


@contextmanager
def server(
    db: Path | Store, processes: int = 1, env: Mapping[str, str] = {}, checkout: Path | None = None
) -> Iterator[Server]:
    """A server process on ``db``: this checkout's, or the one of ``checkout`` (its own venv and
    code), so that two versions of the code can be measured interleaved in one run."""
    url = db.url if isinstance(db, Store) else f"sqlite:///{db}"
    binary = (checkout / ".venv/bin" if checkout else Path(sys.executable).parent) / "tidings-server"
    if checkout is not None:  # its code first (plugins too), so a worktree may share another's .venv
        own = [checkout / "server/src", *sorted(checkout.glob("plugins/*/src"))]
        paths = [*map(str, own), env.get("PYTHONPATH", os.environ.get("PYTHONPATH", ""))]
        env = {**env, "PYTHONPATH": os.pathsep.join(p for p in paths if p)}
    proc = subprocess.Popen(
        [str(binary), "serve", "--listen", "127.0.0.1:0", "--store", url, "--allow-http",
         "--allow-private-destinations", "--log-level", "warning", "--processes", str(processes)],
        stderr=subprocess.PIPE, text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1", ENV_VAR: encode_key(new_key()), "TIDINGS_NO_AUTH": "1", **env},
    )  # fmt: skip
    assert proc.stderr is not None
    port = 0
    for line in proc.stderr:
        if m := re.search(r"listening on port (\d+)", line):
            port = int(m.group(1))
            break
    if not port:
        raise RuntimeError(f"the server exited with {proc.wait(10)}")
    # Read the rest of its log as it comes: a server whose log pipe fills blocks in its next
    # log call, which would stall the run and then its shutdown.
    tail: collections.deque[str] = collections.deque(maxlen=20)
    drain = threading.Thread(target=tail.extend, args=(proc.stderr,), daemon=True)
    drain.start()
    try:
        yield Server(port, proc.pid)
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            sys.stderr.write("".join(tail))
            raise


def make_hooks(
    channel: grpc.Channel, url: str, count: int, concurrency: int, payload_format: str = "procore.v4"
) -> list[str]:
    hooks = hooks_pb2_grpc.HookServiceStub(channel)
    names = []
    for _ in range(count):
        hook = hooks.CreateHook(
            hooks_pb2.CreateHookRequest(
                parent="companies/8/projects/6778",
                hook=hooks_pb2.Hook(destination_url=url, payload_format=payload_format, max_concurrency=concurrency),
            )
        )
        hooks.BatchCreateTriggers(
            hooks_pb2.BatchCreateTriggersRequest(
                parent=hook.name, triggers=[hooks_pb2.Trigger(resource_name="RFIs", event_type="update")]
            )
        )
        names.append(hook.name)
    return names


def make_idle_hooks(channel: grpc.Channel, url: str, count: int) -> None:
    """``count`` active hooks that no published event matches (they have no triggers), in other
    projects: what the claim must not pay for. Created 64 at a time."""
    create = hooks_pb2_grpc.HookServiceStub(channel).CreateHook
    pending: list[grpc.Future] = []
    hook = hooks_pb2.Hook(destination_url=url, payload_format="procore.v4")
    for i in range(count):
        request = hooks_pb2.CreateHookRequest(parent=f"companies/9/projects/{i + 1}", hook=hook)
        pending.append(create.future(request))
        if len(pending) == 64:
            for future in pending:
                future.result()
            pending = []
    for future in pending:
        future.result()


def events(count: int, start: int) -> list[events_pb2.Event]:
    stamp = Timestamp()
    stamp.GetCurrentTime()
    return [
        events_pb2.Event(
            company_id=8, project_id=6778, resource_name="RFIs", resource_id=start + i, event_type="update",
            user_id=5447, timestamp=stamp,
        )
        for i in range(count)
    ]  # fmt: skip


# Both stores keep per-hook counts by status, moved in the transaction that records an attempt:
# polled every 20 ms, they cost the store next to nothing, where counting the deliveries table
# (and, on PostgreSQL, a new connection per poll) took a share of the machine that grew with
# the run and fell on the server being measured.
_DELIVERED: Final = "SELECT coalesce(sum(total), 0) FROM delivery_counts WHERE status = 'delivered'"


def _delivered(execute: Callable[[str], Any]) -> int:
    (n,) = execute(_DELIVERED).fetchone()
    return int(n)


def throughput(port: int, db: Path | Store, total_events: int, batch: int, hooks: int, timeout: float) -> float:
    with (db if isinstance(db, Store) else Store("", db=db)).counting() as count:
        return _throughput(port, count, total_events, batch, hooks, timeout)


def _throughput(
    port: int, count: Callable[[], int], total_events: int, batch: int, hooks: int, timeout: float
) -> float:
    base = count()
    want = base + total_events * hooks
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        publish = events_pb2_grpc.EventServiceStub(channel).PublishEvents
        started = time.perf_counter()
        for n in range(0, total_events, batch):
            publish(events_pb2.PublishEventsRequest(events=events(min(batch, total_events - n), n + 1)))
        deadline = started + timeout
        while (got := count()) < want and time.perf_counter() < deadline:
            time.sleep(0.02)
        elapsed = time.perf_counter() - started
    if got < want:
        raise RuntimeError(f"only {got - base} of {want - base} deliveries recorded within {timeout} s")
    return (want - base) / elapsed


def latency(port: int, receiver: ReceiverProcess, rate: int, seconds: float) -> tuple[float, float, int]:
    receiver.reset()
    per_tick = max(1, rate // 100)  # a batch every 10 ms
    ticks = int(seconds * rate / per_tick)
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        publish = events_pb2_grpc.EventServiceStub(channel).PublishEvents
        start = time.perf_counter()
        for tick in range(ticks):
            wait = start + tick * per_tick / rate - time.perf_counter()
            if wait > 0:
                time.sleep(wait)
            publish(events_pb2.PublishEventsRequest(events=events(per_tick, tick * per_tick + 1)))
    deadline = time.perf_counter() + 30
    while receiver.stats().count < ticks * per_tick and time.perf_counter() < deadline:
        time.sleep(0.05)
    samples = sorted(receiver.stats().latencies)
    if not samples:
        raise RuntimeError("no deliveries arrived")
    p50 = samples[len(samples) // 2] * 1000
    p99 = samples[min(len(samples) - 1, int(len(samples) * 0.99))] * 1000
    return p50, p99, len(samples)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--events", type=int, default=10_000, help="events per throughput run (default 10000)")
    parser.add_argument("--hooks", type=int, default=4, help="hooks every event fans out to (default 4)")
    parser.add_argument("--batch", type=int, default=500, help="events per PublishEvents call (default 500)")
    parser.add_argument("--concurrency", type=int, default=32, help="max_concurrency of each hook (default 32)")
    parser.add_argument("--repeats", type=int, default=3, help="throughput runs; the median is shown (default 3)")
    parser.add_argument("--rate", type=int, default=1000, help="offered events/s for the latency run (default 1000)")
    parser.add_argument("--seconds", type=float, default=5.0, help="length of the latency run (default 5)")
    parser.add_argument("--store", choices=["sqlite", "postgresql"], default="sqlite", help="(default sqlite)")
    parser.add_argument("--processes", type=int, default=1, help="server processes on the store (default 1)")
    parser.add_argument(
        "--compare",
        metavar="STORE:N,…",
        help="instead, run these configurations interleaved, e.g. sqlite:1,postgresql:1,postgresql:2",
    )
    parser.add_argument(
        "--idle-hooks",
        type=lambda text: [int(n) for n in text.split(",")],
        default=[0],
        metavar="N,…",
        help="with --compare: this many more active hooks that receive nothing; a list runs each (default 0)",
    )
    parser.add_argument(
        "--baseline",
        metavar="CHECKOUT",
        type=Path,
        action="append",
        help="with --compare: also run every configuration on the server of this checkout (its .venv and"
        " server/src), interleaved, e.g. a worktree of the code before a change; may be repeated",
    )
    parser.add_argument(
        "--postgres-admin", default=POSTGRES_ADMIN, help=f"where bench databases are made (default {POSTGRES_ADMIN})"
    )

    parser.add_argument(
        "--pooled",
        action="store_true",
        help="hooks use procore.v4 as a third-party distribution ships it, rendered in the render pool",
    )
    parser.add_argument(
        "--beside",
        metavar="FORMAT",
        help="the latency run's events also go to a second hook (its own receiver) with this format, e.g."
        " bench.hugebody (50 MB bodies, all refused) or procore.v4 (the same work, healthy)",
    )


@dataclass
class Figures:
    """What the runs of one configuration measured."""

    rates: list[float] = field(default_factory=list)
    server_us: list[float] = field(default_factory=list)  # CPU µs per delivery
    database_us: list[float] = field(default_factory=list)
    busy: list[float] = field(default_factory=list)  # the machine's busy cores during each throughput run
    latencies: list[tuple[float, float, int]] = field(default_factory=list)  # p50 ms, p99 ms, samples
    latency_us: list[float] = field(default_factory=list)  # server CPU µs per delivery at the offered rate


Config = tuple[str, int, Path | None, int]  # store kind, server processes, checkout (None: this one), idle hooks


def _label(config: Config) -> str:
    kind, processes, checkout, idle = config
    return f"{kind}:{processes}" + ("" if checkout is None else f"@{checkout.name}") + (f"+{idle} idle" if idle else "")


def _one_throughput(args: argparse.Namespace, config: Config, tmp: Path, name: str, url: str) -> Figures:
    kind, processes, checkout, idle = config
    figures = Figures()
    with store(kind, tmp, name, args.postgres_admin) as where, server(where, processes, checkout=checkout) as srv:
        with grpc.insecure_channel(f"127.0.0.1:{srv.port}") as channel:
            make_hooks(channel, url, args.hooks, args.concurrency)
            make_idle_hooks(channel, url, idle)
        before, ticks = Cpu.now(srv.pid, where.database), _machine_ticks()
        rate = throughput(srv.port, where, args.events, args.batch, args.hooks, timeout=300)
        spent_server, spent_database = Cpu.now(srv.pid, where.database).since(before)
        figures.busy.append(busy_cores(ticks, _machine_ticks()))
    deliveries = args.events * args.hooks
    figures.rates.append(rate)
    figures.server_us.append(spent_server / deliveries * 1e6)
    figures.database_us.append(spent_database / deliveries * 1e6)
    return figures


def _one_latency(
    args: argparse.Namespace, config: Config, tmp: Path, name: str, url: str, receiver: ReceiverProcess, into: Figures
) -> None:
    """One latency run of ``config``, with the server's CPU per delivery at the offered rate."""
    kind, processes, checkout, idle = config
    with store(kind, tmp, name, args.postgres_admin) as where, server(where, processes, checkout=checkout) as srv:
        with grpc.insecure_channel(f"127.0.0.1:{srv.port}") as channel:
            make_hooks(channel, url, 1, args.concurrency)
            make_idle_hooks(channel, url, idle)
        before = Cpu.now(srv.pid, where.database)
        p50, p99, count = latency(srv.port, receiver, args.rate, args.seconds)
        spent_server, _ = Cpu.now(srv.pid, where.database).since(before)
    into.latencies.append((p50, p99, count))
    into.latency_us.append(spent_server / count * 1e6)


def _load() -> str:
    """The 1-minute load average, so that a figure says how busy the shared machine was."""
    return Path("/proc/loadavg").read_text().split()[0]


def compare(args: argparse.Namespace) -> int:
    """Each configuration once per repeat, in turn; then a latency run of each."""
    configs: list[Config] = []
    for item in args.compare.split(","):
        kind, _, count = item.partition(":")
        if kind not in ("sqlite", "postgresql") or not count.isdigit() or int(count) < 1:
            raise SystemExit(f"--compare: {item!r} is not STORE:N with STORE sqlite or postgresql")
        for idle in args.idle_hooks:
            configs.append((kind, int(count), None, idle))
            configs += [(kind, int(count), checkout, idle) for checkout in args.baseline or ()]
    load_before = _load()
    receiver = ReceiverProcess()
    results = {config: Figures() for config in configs}
    url = f"http://127.0.0.1:{receiver.port}/in"
    try:
        ceiling = trio.run(http_client.run_raw, url, 64, 0.3, 2.0)
        with tempfile.TemporaryDirectory() as tmp:
            for repeat in range(args.repeats):
                for n, config in enumerate(configs):
                    one = _one_throughput(args, config, Path(tmp), f"r{repeat}_{n}", url)
                    got = results[config]
                    got.rates += one.rates
                    got.server_us += one.server_us
                    got.database_us += one.database_us
                    got.busy += one.busy
            for repeat in range(args.repeats):
                for n, config in enumerate(configs):
                    _one_latency(args, config, Path(tmp), f"lat{repeat}_{n}", url, receiver, results[config])
    finally:
        receiver.close()
    print(f"receiver ceiling (raw HTTP client, 64 in flight): {ceiling.rate:,.0f} requests/s")
    print(
        f"{args.events} events x {args.hooks} hooks (and the idle ones named), batches of {args.batch},"
        f" median of {args.repeats} interleaved runs; latency at {args.rate} events/s for {args.seconds:g} s, 1 hook,"
        f" {args.repeats} interleaved runs"
    )
    print(f"load average before / after: {load_before} / {_load()}")
    header = ("configuration", "deliveries/s", "runs", "tidings µs/d", "(runs)", "pg µs/d", "p50 ms", "p99 ms",
              "(p99 runs)", "µs/d at rate", "busy cores")  # fmt: skip
    print("{:<26} {:>13} {:<24} {:>12} {:<20} {:>8} {:>7} {:>7} {:<20} {:>12} {:>10}".format(*header))
    for config, got in results.items():
        runs = ", ".join(f"{r:,.0f}" for r in got.rates)
        cpu_runs = ", ".join(f"{r:,.0f}" for r in got.server_us)
        p50 = statistics.median(p for p, _, _ in got.latencies)
        p99 = statistics.median(p for _, p, _ in got.latencies)
        p99_runs = ", ".join(f"{p:.1f}" for _, p, _ in got.latencies)
        print(
            f"{_label(config):<26} {statistics.median(got.rates):>13,.0f} {runs:<24}"
            f" {statistics.median(got.server_us):>12,.0f} {cpu_runs:<20} {statistics.median(got.database_us):>8,.0f}"
            f" {p50:>7.1f} {p99:>7.1f} {p99_runs:<20} {statistics.median(got.latency_us):>12,.0f}"
            f" {statistics.median(got.busy):>10.2f}"
        )
    print(f"busy cores: of the machine's {os.cpu_count()}, during the throughput runs (/proc/stat, everything on it)")
    return 0


def run(args: argparse.Namespace) -> int:
    if args.compare:
        return compare(args)
    if (args.store, args.processes) != ("sqlite", 1) or args.baseline is not None:
        args.compare = f"{args.store}:{args.processes}"
        return compare(args)
    receiver = ReceiverProcess()
    beside = ReceiverProcess()  # the second hook's, so its deliveries do not count as the first's
    try:
        ceiling = trio.run(http_client.run_raw, f"http://127.0.0.1:{receiver.port}/in", 64, 0.3, 2.0)
        with tempfile.TemporaryDirectory() as tmp:
            db = Path(tmp) / "bench.sqlite3"
            env = plugin_site(Path(tmp) / "site")
            fmt = "bench.procore.v4" if args.pooled else "procore.v4"
            with server(db, env=env) as srv:
                port = srv.port
                with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
                    url = f"http://127.0.0.1:{receiver.port}/in"
                    make_hooks(channel, url, args.hooks, args.concurrency, fmt)
                rates = [
                    throughput(port, db, args.events, args.batch, args.hooks, timeout=300) for _ in range(args.repeats)
                ]
            with server(Path(tmp) / "latency.sqlite3", env=env) as srv:
                port = srv.port
                with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
                    make_hooks(channel, f"http://127.0.0.1:{receiver.port}/in", 1, args.concurrency, fmt)
                    if args.beside:
                        make_hooks(channel, f"http://127.0.0.1:{beside.port}/in", 1, 8, args.beside)
                p50, p99, n = latency(port, receiver, args.rate, args.seconds)
    finally:
        receiver.close()
        beside.close()
    print(f"receiver ceiling (raw HTTP client, 64 in flight): {ceiling.rate:,.0f} requests/s")
    print(
        f"throughput: {args.events} events x {args.hooks} hooks, batches of {args.batch}, SQLite:"
        f" {statistics.median(rates):,.0f} deliveries/s (median of {len(rates)}: "
        + ", ".join(f"{r:,.0f}" for r in rates)
        + f"); {statistics.median(rates) / ceiling.rate:.0%} of the receiver ceiling"
    )
    print(
        f"latency at {args.rate} events/s offered for {args.seconds:g} s, 1 hook:"
        f" p50 {p50:.1f} ms, p99 {p99:.1f} ms ({n} deliveries)"
    )
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_arguments(parser)
    return run(parser.parse_args())


if __name__ == "__main__":
    sys.exit(main())
