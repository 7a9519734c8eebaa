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
from contextlib import ExitStack
from dataclasses import dataclass, field
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
    parser.add_argument(
        "--baseline",
        metavar="CHECKOUT",
        type=Path,
        help="also run the rounds on the server of this checkout (its .venv), interleaved",
    )


@dataclass
class Rounds:
    """One server's figures: deliveries/s and server CPU µs per delivery, by kind of round."""

    rates: dict[str, list[float]] = field(default_factory=lambda: {"none": [], "watched": []})
    cpu_us: dict[str, list[float]] = field(default_factory=lambda: {"none": [], "watched": []})
    memory: list[tuple[str, int]] = field(default_factory=list)
    seen: int = 0
    dropped: int = 0


def _round(srv: e2e.Server, db: Path, args: argparse.Namespace, kind: str, got: Rounds) -> None:
    watchers = Watchers(srv.port, args.healthy, args.stuck) if kind == "watched" else None
    if watchers is not None:
        time.sleep(0.5)
    before = e2e.Cpu.now(srv.pid, "")
    got.rates[kind].append(e2e.throughput(srv.port, db, args.events, 500, args.hooks, timeout=300))
    if watchers is not None:
        time.sleep(1.0)  # let healthy watchers catch up before counting (their CPU counts too)
    spent, _ = e2e.Cpu.now(srv.pid, "").since(before)
    got.cpu_us[kind].append(spent / (args.events * args.hooks) * 1e6)
    got.memory.append(("watched" if watchers else "no watchers", rss_kib(srv.pid)))
    rate, cpu = got.rates[kind][-1], got.cpu_us[kind][-1]
    print(f"  round {kind}: {rate:,.0f} deliveries/s, {cpu:,.0f} µs/delivery", flush=True)
    if watchers is not None:
        got.seen += sum(watchers.seen)
        watchers.close()
        got.dropped += watchers.dropped


def run(args: argparse.Namespace) -> int:
    checkouts: list[Path | None] = [None] if args.baseline is None else [None, args.baseline]
    results = {checkout: Rounds() for checkout in checkouts}
    load_before = Path("/proc/loadavg").read_text().split()[0]
    receiver = e2e.ReceiverProcess()
    try:
        with TemporaryDirectory() as tmp, ExitStack() as stack:
            servers = {}
            for n, checkout in enumerate(checkouts):
                db = Path(tmp) / f"watch{n}.sqlite3"
                srv = stack.enter_context(e2e.server(db, checkout=checkout))
                with grpc.insecure_channel(f"127.0.0.1:{srv.port}") as channel:
                    e2e.make_hooks(channel, f"http://127.0.0.1:{receiver.port}/in", args.hooks, 32)
                results[checkout].memory.append(("start", rss_kib(srv.pid)))
                servers[checkout] = (srv, db)
            for _ in range(args.repeats):  # interleaved, so drift hits every kind alike
                for checkout, (srv, db) in servers.items():
                    print(f"server of {'this checkout' if checkout is None else checkout}:", flush=True)
                    _round(srv, db, args, "none", results[checkout])
                    _round(srv, db, args, "watched", results[checkout])
    finally:
        receiver.close()
    print(
        f"{args.events} events x {args.hooks} hooks per round, {args.repeats} rounds each;"
        f" {args.healthy} healthy + {args.stuck} stuck watchers;"
        f" load average {load_before} before, {Path('/proc/loadavg').read_text().split()[0]} after"
    )
    for checkout, got in results.items():
        print(f"== {'this checkout' if checkout is None else checkout}")
        base = statistics.median(got.rates["none"])
        for kind in ("none", "watched"):
            rate = statistics.median(got.rates[kind])
            print(
                f"{'no watchers' if kind == 'none' else 'watched':<12} {rate:>7,.0f} deliveries/s (median of "
                + ", ".join(f"{r:,.0f}" for r in got.rates[kind])
                + f"); ratio {rate / base:.2f}; server CPU {statistics.median(got.cpu_us[kind]):,.0f} µs/delivery"
                " (" + ", ".join(f"{c:,.0f}" for c in got.cpu_us[kind]) + ")"
            )
        print(f"changes read by healthy watchers: {got.seen:,}; healthy watchers dropped: {got.dropped}")
        print(
            "server VmRSS after each round: " + ", ".join(f"{label} {kib / 1024:.0f} MiB" for label, kib in got.memory)
        )
    return 0
