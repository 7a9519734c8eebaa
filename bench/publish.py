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
``--unrelated N`` runs each case a second time beside N more hooks whose triggers no published
event matches (the same company and resource, other projects): what fan-out must not pay for.
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
from tidings.v1 import events_pb2, events_pb2_grpc, hooks_pb2, hooks_pb2_grpc


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
    parser.add_argument(
        "--unrelated",
        type=int,
        default=0,
        metavar="N",
        help="also run each case beside N hooks with triggers no event matches (default 0: not run)",
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


_Case = tuple[int, int, Path | None]  # hooks fanned out to, unrelated hooks, checkout


def _unrelated_hooks(channel: grpc.Channel, url: str, count: int) -> None:
    """``count`` active hooks of company 8 in projects the published events are not in, each
    with a trigger on the published resource and event type. Made 64 at a time."""
    hooks = hooks_pb2_grpc.HookServiceStub(channel)
    hook = hooks_pb2.Hook(destination_url=url, payload_format="procore.v4")
    trigger = hooks_pb2.Trigger(resource_name="RFIs", event_type="update")
    for start in range(0, count, 64):
        made = [
            hooks.CreateHook.future(
                hooks_pb2.CreateHookRequest(parent=f"companies/8/projects/{100_000 + i}", hook=hook)
            )
            for i in range(start, min(count, start + 64))
        ]
        names = [future.result().name for future in made]
        triggered = [
            hooks.BatchCreateTriggers.future(hooks_pb2.BatchCreateTriggersRequest(parent=name, triggers=[trigger]))
            for name in names
        ]
        for future in triggered:
            future.result()


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
    besides = sorted({0, args.unrelated})
    cases: list[_Case] = [(h, u, c) for h in (0, args.hooks) for u in besides for c in checkouts]
    rates: dict[_Case, list[float]] = {case: [] for case in cases}
    cpu: dict[_Case, list[float]] = {case: [] for case in cases}
    database: dict[_Case, list[float]] = {case: [] for case in cases}
    requests = _requests(args.events + args.batch, args.batch)
    counted = args.events  # the first request warms the channel
    load_before = Path("/proc/loadavg").read_text().split()[0]
    try:
        with tempfile.TemporaryDirectory() as tmp:
            for repeat in range(args.repeats):
                for n, (hooks, unrelated, checkout) in enumerate(cases):
                    with (
                        store(args.store, Path(tmp), f"p{repeat}_{n}") as where,
                        server(where, checkout=checkout) as srv,
                    ):
                        with grpc.insecure_channel(f"127.0.0.1:{srv.port}") as channel:
                            make_hooks(channel, f"http://127.0.0.1:{silent.port}/in", hooks, 1)
                            _unrelated_hooks(channel, f"http://127.0.0.1:{silent.port}/in", unrelated)
                        before = Cpu.now(srv.pid, where.database)
                        elapsed = _publish_all(srv.port, requests, args.publishers)
                        spent_server, spent_database = Cpu.now(srv.pid, where.database).since(before)
                    case = (hooks, unrelated, checkout)
                    rates[case].append(counted / elapsed)
                    cpu[case].append(spent_server / counted * 1e6)
                    database[case].append(spent_database / counted * 1e6)
    finally:
        silent.close()
    load_after = Path("/proc/loadavg").read_text().split()[0]
    print(
        f"{args.events} events per run in PublishEvents calls of {args.batch}, {args.publishers} publishers,"
        f" {args.store}; medians of {args.repeats} interleaved runs; load average {load_before} / {load_after}"
    )
    header = ("case", "events/s", "runs", "server µs/event", "(runs)", "db µs/event")
    width = 28 + (24 if args.unrelated else 0)
    print(f"{{:<{width}}} {{:>9}} {{:<26}} {{:>15}} {{:<18}} {{:>11}}".format(*header))
    for case in cases:
        hooks, unrelated, checkout = case
        label = (
            ("no matching hook" if hooks == 0 else f"fanned out to {hooks} hooks")
            + (f" beside {unrelated:,} unrelated" if unrelated else "")
            + (f" @{checkout.name}" if checkout else "")
        )
        got, spent = rates[case], cpu[case]
        print(
            f"{label:<{width}} {statistics.median(got):>9,.0f} {', '.join(f'{r:,.0f}' for r in got):<26}"
            f" {statistics.median(spent):>15,.0f} {', '.join(f'{c:,.0f}' for c in spent):<18}"
            f" {statistics.median(database[case]):>11,.0f}"
        )
    return 0
