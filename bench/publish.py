"""PublishEvents acknowledged durable: events/s and server CPU µs per event of a real server,
with no matching hook and fanned out to ``--hooks`` hooks, in batches of ``--batch``.

Every call returns once its events (and their deliveries) are committed, so the rate is what
the server acknowledges as durable. ``--publishers`` client threads publish at once, each from
requests built before the clock starts, so the bench's own protobuf work is not in the figure.
The fanned-out hooks point at a local listener that accepts connections and never answers,
with ``max_concurrency`` 1: their deliveries wait (four requests in flight in all), so the
delivery engine costs almost nothing beside the publishing measured. Each case runs on a
fresh store per repeat, the cases interleaved, and every figure is the median of the repeats;
``--baseline CHECKOUT`` runs the same cases on another checkout's server in the same session.
"""

from __future__ import annotations

import argparse
import socket
import statistics
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import grpc
from google.protobuf.timestamp_pb2 import Timestamp

from bench.e2e import Cpu, make_hooks, server, store
from tidings.v1 import events_pb2, events_pb2_grpc


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--events", type=int, default=50_000, help="events per run (default 50000)")
    parser.add_argument("--batch", type=int, default=500, help="events per PublishEvents call (default 500)")
    parser.add_argument("--hooks", type=int, default=4, help="hooks of the fanned-out case (default 4)")
    parser.add_argument("--publishers", type=int, default=4, help="client threads publishing at once (default 4)")
    parser.add_argument("--repeats", type=int, default=3, help="runs of each case; medians shown (default 3)")
    parser.add_argument("--store", choices=("sqlite", "postgresql"), default="sqlite")
    parser.add_argument(
        "--baseline", type=Path, metavar="CHECKOUT", help="also run each case on this checkout's server (its .venv)"
    )


class _Silent:
    """A TCP listener on 127.0.0.1 that accepts every connection and never answers."""

    def __init__(self) -> None:
        self._sock = socket.create_server(("127.0.0.1", 0), backlog=128)
        self.port: int = self._sock.getsockname()[1]
        self._held: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self._sock.accept()
            except OSError:
                return
            self._held.append(conn)

    def close(self) -> None:
        self._sock.close()
        for conn in self._held:
            conn.close()


def _requests(total: int, batch: int) -> list[events_pb2.PublishEventsRequest]:
    stamp = Timestamp(seconds=int(time.time()))
    out = []
    for start in range(0, total, batch):
        out.append(
            events_pb2.PublishEventsRequest(
                events=[
                    events_pb2.Event(
                        company_id=8, project_id=6778, resource_name="RFIs", resource_id=start + i + 1,
                        event_type="update", user_id=5447, timestamp=stamp,
                    )
                    for i in range(min(batch, total - start))
                ]
            )
        )  # fmt: skip
    return out


def _publish_all(port: int, requests: list[events_pb2.PublishEventsRequest], publishers: int) -> float:
    """Seconds from the first call until every call has been acknowledged."""
    with grpc.insecure_channel(f"127.0.0.1:{port}", options=[("grpc.max_send_message_length", 64 << 20)]) as channel:
        publish = events_pb2_grpc.EventServiceStub(channel).PublishEvents
        publish(requests[0])  # warm the channel; not counted
        rest = requests[1:]
        started = time.perf_counter()
        with ThreadPoolExecutor(publishers) as pool:
            for _ in pool.map(publish, rest):
                pass
        return time.perf_counter() - started


def run(args: argparse.Namespace) -> int:
    silent = _Silent()
    checkouts: list[Path | None] = [None] + ([args.baseline] if args.baseline else [])
    cases = [(hooks, checkout) for hooks in (0, args.hooks) for checkout in checkouts]
    rates: dict[tuple[int, Path | None], list[float]] = {case: [] for case in cases}
    cpu: dict[tuple[int, Path | None], list[float]] = {case: [] for case in cases}
    database: dict[tuple[int, Path | None], list[float]] = {case: [] for case in cases}
    requests = _requests(args.events + args.batch, args.batch)
    counted = args.events  # the first request warms the channel
    load_before = Path("/proc/loadavg").read_text().split()[0]
    try:
        with tempfile.TemporaryDirectory() as tmp:
            for repeat in range(args.repeats):
                for n, (hooks, checkout) in enumerate(cases):
                    with (
                        store(args.store, Path(tmp), f"p{repeat}_{n}") as where,
                        server(where, checkout=checkout) as srv,
                    ):
                        with grpc.insecure_channel(f"127.0.0.1:{srv.port}") as channel:
                            make_hooks(channel, f"http://127.0.0.1:{silent.port}/in", hooks, 1)
                        before = Cpu.now(srv.pid, where.database)
                        elapsed = _publish_all(srv.port, requests, args.publishers)
                        spent_server, spent_database = Cpu.now(srv.pid, where.database).since(before)
                    rates[(hooks, checkout)].append(counted / elapsed)
                    cpu[(hooks, checkout)].append(spent_server / counted * 1e6)
                    database[(hooks, checkout)].append(spent_database / counted * 1e6)
    finally:
        silent.close()
    load_after = Path("/proc/loadavg").read_text().split()[0]
    print(
        f"{args.events} events per run in PublishEvents calls of {args.batch}, {args.publishers} publishers,"
        f" {args.store}; medians of {args.repeats} interleaved runs; load average {load_before} / {load_after}"
    )
    header = ("case", "events/s", "runs", "server µs/event", "(runs)", "db µs/event")
    print("{:<28} {:>9} {:<26} {:>15} {:<18} {:>11}".format(*header))
    for hooks, checkout in cases:
        label = ("no matching hook" if hooks == 0 else f"fanned out to {hooks} hooks") + (
            f" @{checkout.name}" if checkout else ""
        )
        got, spent = rates[(hooks, checkout)], cpu[(hooks, checkout)]
        print(
            f"{label:<28} {statistics.median(got):>9,.0f} {', '.join(f'{r:,.0f}' for r in got):<26}"
            f" {statistics.median(spent):>15,.0f} {', '.join(f'{c:,.0f}' for c in spent):<18}"
            f" {statistics.median(database[(hooks, checkout)]):>11,.0f}"
        )
    return 0
