"""A unary-call load generator in spawned processes.

Why separate processes: a client in the server's process would compete with it for the GIL
and measure the sum of both. Why raw bytes: requests are serialized once and replies are
not parsed, so the client spends as little CPU as it can and the server stays the bottleneck.
The processes live as long as the pool, so a run costs its warm-up and duration, not a start.
"""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing
import multiprocessing.connection
from dataclasses import dataclass
from types import TracebackType

import grpc

MAX_ERRORS = 100
"""A process stops its run after this many failed calls: the numbers would be meaningless."""
CALL_TIMEOUT = 5.0
START_TIMEOUT = 30.0


@dataclass(frozen=True, slots=True)
class Load:
    """Keep ``in_flight`` calls of ``method`` open against 127.0.0.1:``port``; count those that
    complete within ``duration`` seconds after ``warmup`` seconds."""

    port: int
    method: str
    request: bytes
    in_flight: int
    warmup: float
    duration: float
    tls: tuple[bytes, bytes | None, bytes | None] | None = None
    """Root certificates, client key and client certificate chain for a TLS channel; None: plaintext."""


@dataclass(frozen=True, slots=True)
class Result:
    calls: int
    """Calls that succeeded within the measured window."""
    completed: int
    """Calls that succeeded at all, warm-up and tail included: what the server spent CPU on."""
    errors: int
    seconds: float
    first_error: str = ""

    @property
    def rate(self) -> float:
        return self.calls / self.seconds if self.seconds > 0 else 0.0


class ClientPool:
    """``processes`` load processes that split each Load's in-flight calls between them."""

    def __init__(self, processes: int) -> None:
        if processes < 1:
            raise ValueError("at least one client process is needed")
        context = multiprocessing.get_context("spawn")
        self._conns: list[multiprocessing.connection.Connection] = []
        self._procs: list[multiprocessing.process.BaseProcess] = []
        for i in range(processes):
            parent, child = context.Pipe()
            self._conns.append(parent)
            self._procs.append(
                context.Process(target=_serve_loads, args=(child,), name=f"bench-client-{i}", daemon=True)
            )

    def __enter__(self) -> ClientPool:
        for proc in self._procs:
            proc.start()
        for conn in self._conns:
            if not conn.poll(START_TIMEOUT):
                raise TimeoutError(f"a client process did not start within {START_TIMEOUT:.0f} s")
            conn.recv()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, traceback: TracebackType | None
    ) -> None:
        for conn in self._conns:
            with contextlib.suppress(OSError):  # the process is gone already
                conn.send(None)
        for proc in self._procs:
            proc.join(5)
            if proc.is_alive():
                proc.terminate()
                proc.join(5)

    def run(self, load: Load) -> Result:
        """Run ``load`` in every process at once and add up what they counted."""
        n = len(self._conns)
        if load.in_flight < n:
            raise ValueError(f"{load.in_flight} calls in flight cannot be split between {n} processes")
        for i, conn in enumerate(self._conns):
            share = load.in_flight // n + (1 if i < load.in_flight % n else 0)
            conn.send(Load(load.port, load.method, load.request, share, load.warmup, load.duration, load.tls))
        results: list[Result] = []
        for conn in self._conns:
            if not conn.poll(load.warmup + load.duration + CALL_TIMEOUT + 10):
                raise TimeoutError("a client process did not report its run")
            results.append(conn.recv())
        return Result(
            calls=sum(r.calls for r in results),
            completed=sum(r.completed for r in results),
            errors=sum(r.errors for r in results),
            seconds=load.duration,
            first_error=next((r.first_error for r in results if r.first_error), ""),
        )


def _serve_loads(conn: multiprocessing.connection.Connection) -> None:
    """The client process: run each Load it is sent until it is sent None."""
    conn.send("ready")
    while (load := conn.recv()) is not None:
        conn.send(asyncio.run(_drive(load)))


async def _drive(load: Load) -> Result:
    calls = completed = errors = 0
    first_error = ""
    target = f"127.0.0.1:{load.port}"
    if load.tls is None:
        opened = grpc.aio.insecure_channel(target)
    else:
        opened = grpc.aio.secure_channel(target, grpc.ssl_channel_credentials(*load.tls))
    async with opened as channel:
        await asyncio.wait_for(channel.channel_ready(), CALL_TIMEOUT)
        call: grpc.aio.UnaryUnaryMultiCallable[bytes, bytes] = channel.unary_unary(load.method)
        loop = asyncio.get_running_loop()
        start = loop.time() + load.warmup
        end = start + load.duration

        async def keep_one_open() -> None:
            nonlocal calls, completed, errors, first_error
            while loop.time() < end and errors < MAX_ERRORS:
                try:
                    await call(load.request, timeout=CALL_TIMEOUT)
                except grpc.aio.AioRpcError as exc:
                    errors += 1
                    first_error = first_error or f"{exc.code().name}: {exc.details()}"
                    continue
                completed += 1
                if start <= loop.time() < end:
                    calls += 1

        await asyncio.gather(*(keep_one_open() for _ in range(load.in_flight)))
    return Result(calls, completed, errors, load.duration, first_error)
