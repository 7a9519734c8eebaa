"""Server memory over a long run against a format whose every render is a refused 50 MB body.

A real server process on SQLite with two hooks on the same events: one on ``bench.hugebody``
(a third-party distribution written for the run; each render returns 50 MB, which the contract
refuses inside the render worker) and one healthy ``procore.v4`` hook, so the server keeps
delivering too. ``--formats procore.v4,procore.v4 --rate 1000`` makes it a steady run of 2,000
healthy deliveries a second instead, where the CPU per delivery of each sample's window shows
whether the cost grows with the run. Events are published at ``--rate`` per second for ``--minutes``; every
``--every`` seconds the resident memory (VmRSS, from /proc) of the server and of each render
worker is sampled. A rejected render must cost its memory only while it runs: after
``--warm-up`` the server's RSS stays within ±``--tolerance`` of its median, and the last
minute ends where the first one after the warm-up did.
"""

from __future__ import annotations

import argparse
import sqlite3
import statistics
import tempfile
import time
from pathlib import Path

import grpc
import psycopg

from bench import e2e
from bench.watch import rss_kib
from tidings.v1 import events_pb2, events_pb2_grpc


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--minutes", type=float, default=10.0, help="length of the run (default 10)")
    parser.add_argument("--rate", type=int, default=10, help="events published per second (default 10)")
    parser.add_argument("--every", type=float, default=10.0, help="seconds between samples (default 10)")
    parser.add_argument("--warm-up", type=float, default=60.0, help="seconds not judged (default 60)")
    parser.add_argument("--tolerance", type=float, default=0.10, help="allowed spread around the median (0.10)")
    parser.add_argument(
        "--store",
        choices=["sqlite", "postgresql"],
        default="sqlite",
        help="(default sqlite; SQLite's page cache lives in the server and grows with the file, up to its"
        " bound: on PostgreSQL the server's RSS is its own heap alone)",
    )
    parser.add_argument("--postgres-admin", default=e2e.POSTGRES_ADMIN, help="where the bench database is made")
    parser.add_argument("--concurrency", type=int, default=8, help="max_concurrency of each hook (default 8)")
    parser.add_argument(
        "--formats",
        default="bench.hugebody,procore.v4",
        help="one hook per payload format named, every event to each (default bench.hugebody,procore.v4)",
    )


def _statuses(where: e2e.Store) -> dict[str, int]:
    query = "SELECT status, count(*) FROM deliveries GROUP BY status"
    if where.db is not None:
        with sqlite3.connect(f"file:{where.db}?mode=ro", uri=True) as conn:
            return dict(conn.execute(query).fetchall())
    with psycopg.connect(where.url) as conn:
        return {str(status): int(n) for status, n in conn.execute(query).fetchall()}


def _store_mib(where: e2e.Store) -> float:
    """The SQLite file and its WAL (what the page cache can grow to hold); 0 on PostgreSQL."""
    if where.db is None:
        return 0.0
    files = [where.db, where.db.with_name(where.db.name + "-wal")]
    return sum(f.stat().st_size for f in files if f.exists()) / 2**20


def _rss(pid: int) -> int:
    try:
        return rss_kib(pid)
    except (OSError, RuntimeError):  # it ended between the listing and the read
        return 0


def _sample(pid: int, seconds: float) -> tuple[float, int, list[int]]:
    """(seconds, the server's KiB, each render worker's KiB): the workers are its children."""
    return seconds, _rss(pid), [_rss(p) for p in sorted(e2e._descendants(pid) - {pid})]


def run(args: argparse.Namespace) -> int:
    receiver = e2e.ReceiverProcess()
    samples: list[tuple[float, int, list[int]]] = []  # (seconds, server KiB, each worker's KiB)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            env = e2e.plugin_site(Path(tmp) / "site")
            with (
                e2e.store(args.store, Path(tmp), "memory", args.postgres_admin) as where,
                e2e.server(where, env=env) as srv,
                grpc.insecure_channel(f"127.0.0.1:{srv.port}") as channel,
            ):
                url = f"http://127.0.0.1:{receiver.port}/in"
                for payload_format in args.formats.split(","):
                    e2e.make_hooks(channel, url, 1, args.concurrency, payload_format)
                publish = events_pb2_grpc.EventServiceStub(channel).PublishEvents
                start = time.monotonic()
                end = start + args.minutes * 60
                next_sample = start
                second = 0
                header = f"{'s':>5} {'server MiB':>10} {'workers MiB':>24} {'deliveries':>10} {'store MiB':>9}"
                print(header + f" {'delivered':>10} {'server µs/delivered':>19}", flush=True)
                cpu, delivered = e2e.Cpu.now(srv.pid, where.database), 0
                while (now := time.monotonic()) < end:
                    if now >= next_sample:
                        samples.append(_sample(srv.pid, now - start))
                        workers = samples[-1][2]
                        statuses = _statuses(where)
                        done = sum(statuses.values())
                        shown = "+".join(f"{w / 1024:.0f}" for w in workers)
                        cpu_now, delivered_now = e2e.Cpu.now(srv.pid, where.database), statuses.get("delivered", 0)
                        spent, _ = cpu_now.since(cpu)
                        window = delivered_now - delivered
                        per = f"{spent / window * 1e6:19,.0f}" if window else f"{'-':>19}"
                        cpu, delivered = cpu_now, delivered_now
                        print(
                            f"{now - start:5.0f} {samples[-1][1] / 1024:10.1f} {shown:>24} {done:>10}"
                            f" {_store_mib(where):9.1f} {delivered_now:>10} {per}",
                            flush=True,
                        )
                        next_sample += args.every
                    publish(events_pb2.PublishEventsRequest(events=e2e.events(args.rate, second * args.rate + 1)))
                    second += 1
                    time.sleep(max(0.0, start + second - time.monotonic()))
                time.sleep(args.every)  # let the last events settle before the final sample
                samples.append(_sample(srv.pid, time.monotonic() - start))
                statuses = _statuses(where)
    finally:
        receiver.close()
    return _report(args, samples, statuses, second * args.rate)


def _report(
    args: argparse.Namespace, samples: list[tuple[float, int, list[int]]], statuses: dict[str, int], events: int
) -> int:
    judged = [kib for t, kib, _ in samples if t >= args.warm_up]
    if len(judged) < 2:
        print("too short a run to judge: no two samples after the warm-up")
        return 2
    median = statistics.median(judged)
    low, high = min(judged) / median - 1, max(judged) / median - 1
    per_minute = max(1, round(60 / args.every))
    first, last = statistics.mean(judged[:per_minute]), statistics.mean(judged[-per_minute:])
    flat = max(-low, high) <= args.tolerance
    peak_workers = max((max(w, default=0) for _, _, w in samples), default=0)
    print(
        f"{args.store}: {events} events at {args.rate}/s for {args.minutes:g} min, each to a hook of each of"
        f" {args.formats}; deliveries by status: {statuses}"
    )
    print(
        f"server RSS after {args.warm_up:g} s: median {median / 1024:.1f} MiB, min {low:+.1%}, max {high:+.1%};"
        f" first minute {first / 1024:.1f} MiB, last minute {last / 1024:.1f} MiB ({last / first - 1:+.1%});"
        f" peak of one worker {peak_workers / 1024:.0f} MiB"
    )
    print(f"flat within ±{args.tolerance:.0%}: {'yes' if flat else 'NO'}")
    return 0 if flat else 1
