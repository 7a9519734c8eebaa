"""Watchers on a busy server: delivery throughput and server memory with and without them.

A real server process on SQLite delivers to a local receiver while WatchDeliveries streams
follow everything: some read every change (healthy), some never read at all (stuck, with
small HTTP/2 windows so their backlog reaches the server quickly). Each round publishes the
same load; the figures are the rounds' delivery rates as a ratio of the round without
watchers (median of several), and the server's resident memory (VmRSS) after each round.
Flat memory means the last rounds end where the first did, however many changes the
watchers were offered or refused.
"""

from __future__ import annotations

import argparse
import statistics
import threading
import time
from pathlib import Path
from tempfile import TemporaryDirectory

import grpc

from bench import e2e
from tidings.v1 import deliveries_pb2, deliveries_pb2_grpc

PARENT = "companies/8/projects/6778"


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError("no VmRSS")


class Watchers:
    """Healthy watchers read on threads; stuck ones hold their stream open and never read."""

    def __init__(self, port: int, healthy: int, stuck: int) -> None:
        self.seen = [0] * healthy
        self.dropped = 0
        self._channels: list[grpc.Channel] = []
        self._calls: list[grpc.Future] = []
        self._threads: list[threading.Thread] = []
        for i in range(healthy):
            channel = grpc.insecure_channel(f"127.0.0.1:{port}")
            call = deliveries_pb2_grpc.DeliveryServiceStub(channel).WatchDeliveries(
                deliveries_pb2.WatchDeliveriesRequest(parent=PARENT)
            )
            thread = threading.Thread(target=self._read, args=(i, call), daemon=True)
            thread.start()
            self._channels.append(channel)
            self._calls.append(call)
            self._threads.append(thread)
        for _ in range(stuck):
            channel = grpc.insecure_channel(
                f"127.0.0.1:{port}", options=[("grpc.http2.bdp_probe", 0), ("grpc.http2.lookahead_bytes", 1024)]
            )
            call = deliveries_pb2_grpc.DeliveryServiceStub(channel).WatchDeliveries(
                deliveries_pb2.WatchDeliveriesRequest(parent=PARENT)
            )
            self._channels.append(channel)
            self._calls.append(call)

    def _read(self, i: int, call: grpc.Future) -> None:
        try:
            for _ in call:
                self.seen[i] += 1
        except grpc.RpcError as exc:
            if exc.code() == grpc.StatusCode.RESOURCE_EXHAUSTED:
                self.dropped += 1

    def close(self) -> None:
        for call in self._calls:
            call.cancel()
        for thread in self._threads:
            thread.join(10)
        for channel in self._channels:
            channel.close()


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--events", type=int, default=4000, help="events per round (default 4000)")
    parser.add_argument("--hooks", type=int, default=2, help="hooks every event fans out to (default 2)")
    parser.add_argument("--healthy", type=int, default=4, help="watchers that read everything (default 4)")
    parser.add_argument("--stuck", type=int, default=4, help="watchers that never read (default 4)")
    parser.add_argument("--repeats", type=int, default=3, help="rounds of each kind (default 3)")


def run(args: argparse.Namespace) -> int:
    receiver = e2e.ReceiverProcess()
    try:
        with TemporaryDirectory() as tmp:
            db = Path(tmp) / "watch.sqlite3"
            with e2e.server(db) as srv:
                with grpc.insecure_channel(f"127.0.0.1:{srv.port}") as channel:
                    e2e.make_hooks(channel, f"http://127.0.0.1:{receiver.port}/in", args.hooks, 32)
                rates: dict[str, list[float]] = {"none": [], "watched": []}
                memory: list[tuple[str, int]] = [("start", rss_kib(srv.pid))]
                seen, dropped = 0, 0
                for _ in range(args.repeats):  # interleaved, so drift hits both kinds alike
                    rates["none"].append(e2e.throughput(srv.port, db, args.events, 500, args.hooks, timeout=300))
                    memory.append(("no watchers", rss_kib(srv.pid)))
                    watchers = Watchers(srv.port, args.healthy, args.stuck)
                    time.sleep(0.5)
                    rates["watched"].append(e2e.throughput(srv.port, db, args.events, 500, args.hooks, timeout=300))
                    time.sleep(1.0)  # let healthy watchers catch up before counting
                    memory.append(("watched", rss_kib(srv.pid)))
                    seen += sum(watchers.seen)
                    watchers.close()
                    dropped += watchers.dropped
    finally:
        receiver.close()
    base, watched = statistics.median(rates["none"]), statistics.median(rates["watched"])
    print(
        f"{args.events} events x {args.hooks} hooks per round, {args.repeats} rounds each;"
        f" {args.healthy} healthy + {args.stuck} stuck watchers"
    )
    print(f"no watchers: {base:,.0f} deliveries/s (median of " + ", ".join(f"{r:,.0f}" for r in rates["none"]) + ")")
    print(
        f"watched:     {watched:,.0f} deliveries/s (median of "
        + ", ".join(f"{r:,.0f}" for r in rates["watched"])
        + f"); ratio {watched / base:.2f}"
    )
    print(f"changes read by healthy watchers: {seen:,}; healthy watchers dropped: {dropped}")
    print("server VmRSS after each round: " + ", ".join(f"{label} {kib / 1024:.0f} MiB" for label, kib in memory))
    return 0
