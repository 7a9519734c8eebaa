"""Deliveries/s of the delivery HTTP client against httpx's own pooled client, under trio.

Every variant keeps ``--in-flight`` POSTs (a small JSON body) open from one trio run in this
process against one receiver:

  sender      Sender: request bytes written and responses parsed on H11Transport's pool
  httpx+h11   httpx.AsyncClient(transport=H11Transport): httpx's client layer on our transport
  httpx       httpx.AsyncClient() with its default transport (httpcore's pool)
  h11         h11 over trio streams, one connection per task, no httpx: what HTTP/1.1
              framing costs before httpx's request and response objects and our pool
  raw         prebuilt request bytes on trio sockets, replies only counted: the most a trio
              client gets from this receiver, so the other rows can be read against it

The receiver is a minimal asyncio HTTP/1.1 server in a spawned process, so it never competes
for this process's GIL; it answers every request with 200 and a 2-byte body. Variants run
interleaved, their order rotating each round, so a shared machine's noise falls on all alike.
Loopback only; every run ends after its warm-up and duration.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import multiprocessing
import multiprocessing.connection
import statistics
import sys
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass

import h11
import httpx
import trio

from tidings_server.delivery.http import H11Transport, Sender
from tidings_server.domain.destinations import DestinationPolicy

POLICY = DestinationPolicy(allow_http=True, allow_private=True)
USER_AGENT = "tidings-bench/1"
BODY = b'{"id":"01JD5E7K4P","resource_name":"RFIs","event_type":"update","resource_id":54321}'
HEADERS = [("Content-Type", "application/json"), ("X-Tidings-Delivery", "bench")]
TIMEOUT = 5.0
MAX_ERRORS = 100
"""A run stops counting after this many failed posts: its number would mean nothing."""
START_TIMEOUT = 30.0
RESPONSE = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"

One = Callable[[], Awaitable[str]]
"""One delivery: "" when it got its 200, else what went wrong."""


# -- the receiver (in its own process) ---------------------------------------------------------


def split_requests(buffer: bytes) -> tuple[list[bytes], bytes]:
    """The bodies of the complete requests at the start of ``buffer``, and the rest of it.

    Parses only what framing needs (Content-Length), so a receiver spends next to nothing.
    """
    bodies: list[bytes] = []
    while (end := buffer.find(b"\r\n\r\n")) >= 0:
        head = buffer[:end].lower()
        at = head.find(b"\r\ncontent-length:")
        length = 0
        if at >= 0:
            stop = head.find(b"\r\n", at + 2)
            length = int(head[at + 17 : stop if stop >= 0 else len(head)])
        total = end + 4 + length
        if len(buffer) < total:
            break
        bodies.append(buffer[end + 4 : total])
        buffer = buffer[total:]
    return bodies, buffer


class Answering(asyncio.Protocol):
    """Answers each complete request with RESPONSE; ``received`` sees each body first."""

    def __init__(self) -> None:
        self._buffer = b""
        self._transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport

    def received(self, body: bytes) -> None:
        """Subclasses count or inspect requests here."""

    def data_received(self, data: bytes) -> None:
        bodies, self._buffer = split_requests(self._buffer + data)
        for body in bodies:
            self.received(body)
        if bodies and self._transport is not None:
            self._transport.write(RESPONSE * len(bodies))


def serve_receiver(conn: multiprocessing.connection.Connection) -> None:
    """The receiver process: report the port, then answer until terminated."""

    async def main() -> None:
        server = await asyncio.get_running_loop().create_server(Answering, "127.0.0.1", 0, backlog=1024)
        conn.send(server.sockets[0].getsockname()[1])
        async with server:
            await server.serve_forever()

    asyncio.run(main())


@contextlib.contextmanager
def receiver_process() -> Iterator[int]:
    context = multiprocessing.get_context("spawn")
    parent, child = context.Pipe()
    process = context.Process(target=serve_receiver, args=(child,), daemon=True)
    process.start()
    try:
        if not parent.poll(START_TIMEOUT):
            raise RuntimeError("the receiver process did not start")
        port: int = parent.recv()
        yield port
    finally:
        process.terminate()
        process.join(5)


# -- the variants ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Run:
    deliveries: int
    errors: int
    seconds: float
    first_error: str

    @property
    def rate(self) -> float:
        return self.deliveries / self.seconds if self.seconds > 0 else 0.0


async def drive(one: One, in_flight: int, warmup: float, duration: float) -> Run:
    """Keep ``in_flight`` deliveries going; count those completing in ``duration`` after ``warmup``."""
    done = errors = 0
    first_error = ""

    async def worker() -> None:
        nonlocal done, errors, first_error
        while errors < MAX_ERRORS:
            try:
                error = await one()
            except Exception as exc:  # a broken client should show in the table, not end the bench
                error = repr(exc)
            if error:
                errors += 1
                first_error = first_error or error
            else:
                done += 1

    async with trio.open_nursery() as nursery:
        for _ in range(in_flight):
            nursery.start_soon(worker)
        await trio.sleep(warmup)
        done0, errors0, t0 = done, errors, trio.current_time()
        await trio.sleep(duration)
        run = Run(done - done0, errors - errors0, trio.current_time() - t0, first_error)
        nursery.cancel_scope.cancel()
    return run


async def run_sender(url: str, in_flight: int, warmup: float, duration: float) -> Run:
    async with Sender(POLICY, USER_AGENT) as sender:

        async def one() -> str:
            outcome = await sender.post(url, HEADERS, BODY, TIMEOUT)
            return "" if outcome.status == 200 and not outcome.failure else outcome.error or str(outcome.status)

        return await drive(one, in_flight, warmup, duration)


async def _run_client(client: httpx.AsyncClient, url: str, in_flight: int, warmup: float, duration: float) -> Run:
    headers = [*HEADERS, ("User-Agent", USER_AGENT)]

    async def one() -> str:
        response = await client.post(url, headers=headers, content=BODY)
        return "" if response.status_code == 200 else f"HTTP {response.status_code}"

    async with client:
        return await drive(one, in_flight, warmup, duration)


async def run_httpx_h11(url: str, in_flight: int, warmup: float, duration: float) -> Run:
    client = httpx.AsyncClient(transport=H11Transport(POLICY), timeout=TIMEOUT)
    return await _run_client(client, url, in_flight, warmup, duration)


async def run_httpx(url: str, in_flight: int, warmup: float, duration: float) -> Run:
    return await _run_client(httpx.AsyncClient(timeout=TIMEOUT), url, in_flight, warmup, duration)


async def run_h11(url: str, in_flight: int, warmup: float, duration: float) -> Run:
    port = httpx.URL(url).port
    assert port is not None
    headers = [
        ("Host", f"127.0.0.1:{port}"),
        *HEADERS,
        ("User-Agent", USER_AGENT),
        ("Content-Length", str(len(BODY))),
    ]
    connections: dict[int, tuple[trio.SocketStream, h11.Connection]] = {}

    async def one() -> str:
        key = id(trio.lowlevel.current_task())
        if key not in connections:
            connections[key] = (await trio.open_tcp_stream("127.0.0.1", port), h11.Connection(h11.CLIENT))
        stream, conn = connections[key]
        data = conn.send(h11.Request(method="POST", target="/hooks/bench", headers=headers)) or b""
        data += (conn.send(h11.Data(data=BODY)) or b"") + (conn.send(h11.EndOfMessage()) or b"")
        await stream.send_all(data)
        status = 0
        while True:
            event = conn.next_event()
            if event is h11.NEED_DATA:
                conn.receive_data(bytes(await stream.receive_some(65536)))
            elif isinstance(event, h11.Response):
                status = event.status_code
            elif isinstance(event, h11.EndOfMessage):
                conn.start_next_cycle()
                return "" if status == 200 else f"HTTP {status}"
            elif not isinstance(event, h11.Data):
                return f"unexpected {event!r}"

    try:
        return await drive(one, in_flight, warmup, duration)
    finally:
        for stream, _ in connections.values():
            stream.socket.close()


async def run_raw(url: str, in_flight: int, warmup: float, duration: float) -> Run:
    port = httpx.URL(url).port
    assert port is not None
    request = (
        f"POST / HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/json\r\n"
        f"X-Tidings-Delivery: bench\r\nUser-Agent: {USER_AGENT}\r\nContent-Length: {len(BODY)}\r\n\r\n"
    ).encode() + BODY
    streams: dict[int, trio.SocketStream] = {}

    async def one() -> str:
        # Each worker task keeps its own connection, found by the task's identity.
        key = id(trio.lowlevel.current_task())
        stream = streams.get(key)
        if stream is None:
            stream = streams[key] = await trio.open_tcp_stream("127.0.0.1", port)
        await stream.send_all(request)
        received = 0
        while received < len(RESPONSE):
            data = await stream.receive_some(65536)
            if not data:
                return "the receiver closed the connection"
            received += len(data)
        return ""

    try:
        return await drive(one, in_flight, warmup, duration)
    finally:
        for stream in streams.values():
            stream.socket.close()


@dataclass(frozen=True, slots=True)
class Variant:
    name: str
    label: str
    run: Callable[[str, int, float, float], Awaitable[Run]]


VARIANTS = {
    v.name: v
    for v in [
        Variant("sender", "Sender (H11Transport)", run_sender),
        Variant("httpx+h11", "httpx.AsyncClient on H11Transport", run_httpx_h11),
        Variant("httpx", "httpx.AsyncClient, default transport", run_httpx),
        Variant("h11", "h11 on trio streams, no httpx", run_h11),
        Variant("raw", "raw bytes on trio sockets (ceiling)", run_raw),
    ]
}


# -- the command -------------------------------------------------------------------------------


def measure(args: argparse.Namespace, chosen: list[Variant]) -> tuple[dict[str, list[float]], dict[str, str]]:
    rates: dict[str, list[float]] = {v.name: [] for v in chosen}
    errors: dict[str, str] = {}
    with receiver_process() as port:
        url = f"http://127.0.0.1:{port}/hooks/bench"
        for round_ in range(args.repeats):
            shift = round_ % len(chosen)
            progress = []
            for variant in [*chosen[shift:], *chosen[:shift]]:
                run = trio.run(variant.run, url, args.in_flight, args.warmup, args.duration)
                rates[variant.name].append(run.rate)
                if run.errors:
                    errors[variant.name] = f"{run.errors} errors, e.g. {run.first_error}"
                progress.append(f"{variant.name} {run.rate:,.0f}")
            print(f"round {round_ + 1}/{args.repeats}: " + ", ".join(progress), file=sys.stderr, flush=True)
    return rates, errors


def table(
    args: argparse.Namespace, chosen: list[Variant], rates: dict[str, list[float]], errors: dict[str, str]
) -> str:
    medians = {name: statistics.median(values) for name, values in rates.items()}
    base = medians.get("httpx")
    ceiling = medians.get("raw")
    rows = [["variant", "client", "deliveries/s (min–max)", "× httpx", "of raw"]]
    for v in chosen:
        low, high = min(rates[v.name]), max(rates[v.name])
        rows.append(
            [
                v.name,
                v.label,
                f"{medians[v.name]:,.0f} ({low:,.0f}–{high:,.0f})",
                f"{medians[v.name] / base:.2f}" if base else "-",
                f"{medians[v.name] / ceiling:.0%}" if ceiling else "-",
            ]
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = [
        f"deliveries/s: median of {args.repeats} interleaved runs; {args.in_flight} posts in flight,"
        f" {args.duration:g} s per run after {args.warmup:g} s warm-up; receiver: asyncio, own process",
        *("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip() for row in rows),
    ]
    lines += [f"! {name}: {error}" for name, error in errors.items()]
    return "\n".join(lines)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    names = list(VARIANTS)
    parser.add_argument("--duration", type=float, default=2.0, help="measured seconds per run (default 2)")
    parser.add_argument("--warmup", type=float, default=0.3, help="unmeasured seconds before each run (default 0.3)")
    parser.add_argument("--repeats", type=int, default=5, help="runs per variant (default 5)")
    parser.add_argument("--in-flight", type=int, default=64, help="posts kept open at once (default 64)")
    parser.add_argument(
        "--variants", nargs="+", choices=names, default=names, metavar="V", help=f"of {', '.join(names)}"
    )


def run(args: argparse.Namespace) -> int:
    if min(args.duration, args.repeats, args.in_flight) <= 0 or args.warmup < 0:
        raise SystemExit("durations and counts must be positive")
    chosen = [VARIANTS[name] for name in VARIANTS if name in args.variants]
    seconds = args.repeats * len(chosen) * (args.warmup + args.duration)
    print(f"{args.repeats * len(chosen)} runs: about {seconds:.0f} s", file=sys.stderr, flush=True)
    started = time.perf_counter()
    rates, errors = measure(args, chosen)
    print(table(args, chosen, rates, errors))
    print(f"({time.perf_counter() - started:.0f} s)", file=sys.stderr)
    return 1 if errors else 0


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.http_client", description=__doc__)
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    add_arguments(parser)
    return run(parser.parse_args())


if __name__ == "__main__":
    sys.exit(main())
