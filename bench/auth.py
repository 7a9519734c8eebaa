"""What authenticating every call costs: unary GetHook calls against a server with auth off
(``--no-auth``) and on (a bearer token, looked up in the store on every call, no cache).

Both servers run in this process on fresh SQLite files, alternating run by run; one blocking
client makes ``--calls`` calls in a row. Rates are medians of ``--runs``; beside each, the CPU
time of the whole process (client, gRPC and the store's thread) per call, from /proc via
``time.process_time``.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

import grpc
import trio

from tidings.v1 import hooks_pb2, hooks_pb2_grpc
from tidings_server.app import Config, Running, serve
from tidings_server.domain.sealing import Keyring, new_key
from tidings_server.domain.tokens import EVERYTHING, Role, TokenService
from tidings_server.keys import KeySource
from tidings_server.stores.sqlite import SqliteBackend

PARENT = "companies/1/projects/2"


async def _owner(store_url: str) -> str:
    async with SqliteBackend().open(store_url) as store:
        issued = await TokenService(store, lambda: datetime.now(UTC)).create_token("bench", Role.OWNER, EVERYTHING)
    return issued.secret


def _measure(path: Path, *, auth: bool, calls: int) -> tuple[float, float]:
    url = f"sqlite:///{path}"
    secret = trio.run(_owner, url) if auth else ""
    config = Config(listen="127.0.0.1:0", store_url=url, secrets_key=KeySource(Keyring([new_key()])), auth=auth)
    ready = threading.Event()
    state: dict[str, object] = {}

    async def main() -> None:
        state["token"] = trio.lowlevel.current_trio_token()
        stop = state["stop"] = trio.Event()
        async with trio.open_nursery() as nursery:
            running: Running = await nursery.start(serve, config)
            state["port"] = running.port
            ready.set()
            await stop.wait()
            await running.stop(1.0)

    thread = threading.Thread(target=trio.run, args=(main,), daemon=True)
    thread.start()
    ready.wait(60)
    metadata = (("authorization", f"Bearer {secret}"),) if auth else ()
    with grpc.insecure_channel(f"127.0.0.1:{state['port']}") as channel:
        stub = hooks_pb2_grpc.HookServiceStub(channel)
        made = stub.CreateHook(
            hooks_pb2.CreateHookRequest(
                parent=PARENT,
                hook=hooks_pb2.Hook(destination_url="https://receiver.example.com/", payload_format="procore.v4"),
            ),
            metadata=metadata,
            timeout=30,
        )
        request = hooks_pb2.GetHookRequest(name=made.name)
        for _ in range(50):  # warm up
            stub.GetHook(request, metadata=metadata, timeout=30)
        cpu, wall = time.process_time(), time.perf_counter()
        for _ in range(calls):
            stub.GetHook(request, metadata=metadata, timeout=30)
        cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    trio.from_thread.run_sync(state["stop"].set, trio_token=state["token"])  # type: ignore[attr-defined]
    thread.join(30)
    return calls / wall, cpu / calls * 1e6


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--calls", type=int, default=2000, help="GetHook calls per run (default 2000)")
    parser.add_argument("--runs", type=int, default=5, help="runs per mode (default 5)")


def run(args: argparse.Namespace) -> int:
    results: dict[bool, list[tuple[float, float]]] = {False: [], True: []}
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(args.runs):
            for auth in (False, True):
                results[auth].append(_measure(Path(tmp) / f"{i}-{auth}.sqlite3", auth=auth, calls=args.calls))
    off_rate = statistics.median(r for r, _ in results[False])
    off_cpu = statistics.median(c for _, c in results[False])
    on_rate = statistics.median(r for r, _ in results[True])
    on_cpu = statistics.median(c for _, c in results[True])
    print(f"GetHook calls/s, --no-auth:       {off_rate:,.0f}  ({off_cpu:,.0f} µs CPU a call)")
    print(
        f"GetHook calls/s, bearer token:    {on_rate:,.0f}  ({on_cpu:,.0f} µs CPU a call;"
        f" {on_rate / off_rate:.2f}× the rate, {on_cpu - off_cpu:+,.0f} µs CPU a call)"
    )
    print(f"median of {args.runs} runs of {args.calls} calls each, one blocking client, SQLite store")
    return 0
