"""Unary RPC/s of the gRPC adapter against the other ways it could reach the trio core.

The adapter hands every call from grpc.aio's asyncio thread to trio (TrioBridge). To see what
that hop costs, the same process and session also serve the same RPCs:

  aio-direct   grpc.aio in a thread, the same servicers awaiting the core in asyncio: the
               ceiling, since no call changes thread or loop;
  tidings      serve(Config(store_url="memory:")): the server as it runs;
  sync-thread  grpc.server with a thread pool whose handlers call trio.from_thread.run
               (the RPC's end cancels the trio call, as a real adapter would need);
  aio-guest    grpc.aio hosting trio as a guest run on the same loop and thread, TrioBridge.

Variants run interleaved, rotating their order each round, so the noise of a shared machine
falls on all of them alike; the client is a separate process so it never holds the server's
GIL. Client-cancel latency is the time from a client cancelling a call blocked in the store
until trio delivers Cancelled to it; it needs no server change because the slow store comes
in as a storage plugin.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import statistics
import sys
import threading
import time
from collections import defaultdict
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from functools import partial
from typing import Any, Protocol, TypeVar, cast

import grpc
import outcome
import trio

from bench.loadgen import ClientPool, Load
from tidings.v1 import catalog_pb2, catalog_pb2_grpc, hooks_pb2, hooks_pb2_grpc
from tidings_server.app import Config, Running, build_core, serve
from tidings_server.delivery.clock import Clock
from tidings_server.delivery.engine import DeliveryEngine
from tidings_server.domain.catalog import CatalogService, FormatInfo
from tidings_server.domain.errors import AlreadyExists, NotFound, TidingsError, Unavailable
from tidings_server.domain.hooks import HookService
from tidings_server.domain.model import Hook
from tidings_server.domain.paging import Page
from tidings_server.domain.ports import Store
from tidings_server.domain.pulse import Pulse
from tidings_server.grpc_api import convert
from tidings_server.grpc_api.bridge import TrioBridge
from tidings_server.grpc_api.errors import status_for
from tidings_server.grpc_api.server import Core
from tidings_server.grpc_api.servicers import CatalogServicer, HookServicer
from tidings_server.plugins.manager import Plugins
from tidings_server.plugins.spec import StorageBackend, hookimpl
from tidings_server.stores.memory import MemoryStore

T = TypeVar("T")

PARENT = "companies/1/projects/2"
HOOK_ID = "bench"
HOOK_NAME = f"{PARENT}/hooks/{HOOK_ID}"
SLOW_HOOK = "companies/1/hooks/slow"
DESTINATION_HOST = "hooks.example.com"  # allowed by name, so creating the hook resolves nothing
CONFIG = Config(
    listen="127.0.0.1:0",
    store_url="memory:",
    allowed_destination_hosts=frozenset({DESTINATION_HOST}),
    auth=False,  # the bridge is measured here, not the token lookup
)
SERVER_OPTIONS = [("grpc.so_reuseport", 0)]
GRACE = 1.0
START_TIMEOUT = 30.0
STOP_TIMEOUT = 30.0
WAIT = 5.0
"""How long the cancel probe waits for each step before declaring the run broken."""

CATALOG = catalog_pb2.DESCRIPTOR.services_by_name["CatalogService"].full_name
HOOKS = hooks_pb2.DESCRIPTOR.services_by_name["HookService"].full_name
METHODS: dict[str, tuple[str, bytes]] = {
    "ListPayloadFormats": (
        f"/{CATALOG}/ListPayloadFormats",
        catalog_pb2.ListPayloadFormatsRequest().SerializeToString(),
    ),
    "GetHook": (f"/{HOOKS}/GetHook", hooks_pb2.GetHookRequest(name=HOOK_NAME).SerializeToString()),
}


# -- where servers run ---------------------------------------------------------------------


class Host(Protocol):
    def start(self) -> int: ...

    def stop(self) -> None: ...


class _ThreadHost:
    """A server body on its own thread: ``start`` waits for its port, ``stop`` asks it to end
    and re-raises any error it ended with, so a broken variant cannot pass unnoticed."""

    def __init__(self, name: str) -> None:
        self._port = 0
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._guarded, name=name, daemon=True)

    def start(self) -> int:
        self._thread.start()
        if not self._ready.wait(START_TIMEOUT):
            raise TimeoutError(f"server did not start within {START_TIMEOUT:.0f} s")
        if self._error is not None:
            raise self._error
        return self._port

    def stop(self) -> None:
        self._request_stop()
        self._thread.join(STOP_TIMEOUT)
        if self._thread.is_alive():
            raise RuntimeError(f"server did not stop within {STOP_TIMEOUT:.0f} s")
        if self._error is not None:
            raise self._error

    def _guarded(self) -> None:
        try:
            self._main()
        except BaseException as exc:  # reported by start() or stop()
            self._error = exc
        finally:
            self._ready.set()

    def _main(self) -> None:
        raise NotImplementedError

    def _request_stop(self) -> None:
        raise NotImplementedError


class TrioHost(_ThreadHost):
    """Runs ``body(task_status=...)`` in a trio run on its own thread until stopped."""

    def __init__(self, body: Callable[..., Awaitable[object]]) -> None:
        super().__init__("bench-trio")
        self._body = body
        self._token: trio.lowlevel.TrioToken | None = None
        self._cancel: Callable[[], None] | None = None

    def _request_stop(self) -> None:
        if self._token is not None and self._cancel is not None:
            with contextlib.suppress(trio.RunFinishedError):
                self._token.run_sync_soon(self._cancel)

    def _main(self) -> None:
        trio.run(self._run)

    async def _run(self) -> None:
        self._token = trio.lowlevel.current_trio_token()
        async with trio.open_nursery() as nursery:
            self._cancel = nursery.cancel_scope.cancel
            self._port = await nursery.start(self._body)
            self._ready.set()


class AsyncioHost(_ThreadHost):
    """Runs ``body(started)`` on its own thread and asyncio loop until stopped, by cancellation."""

    def __init__(self, body: Callable[[Callable[[int], None]], Awaitable[None]]) -> None:
        super().__init__("bench-asyncio")
        self._body = body
        self._loop: asyncio.AbstractEventLoop | None = None
        self._task: asyncio.Task[None] | None = None

    def _request_stop(self) -> None:
        if self._loop is not None and self._task is not None:
            with contextlib.suppress(RuntimeError):  # the loop has closed
                self._loop.call_soon_threadsafe(self._task.cancel)

    def _main(self) -> None:
        with contextlib.suppress(asyncio.CancelledError):  # how stop() ends it
            asyncio.run(self._run())

    async def _run(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._task = cast("asyncio.Task[None]", asyncio.current_task())

        def started(port: int) -> None:
            self._port = port
            self._ready.set()

        await self._body(started)


class NoEngine:
    """Baselines deliver nothing, so a hook change has no delivery engine to wake."""

    def wake(self) -> None:
        pass

    async def render(self, hook: object, event: object) -> object:
        raise RuntimeError("the baseline server renders nothing")

    async def probe(self, hook: object, event: object) -> object:
        raise RuntimeError("the baseline server sends nothing")


def baseline_core(store: Store, plugins: Plugins, config: Config, clock: Clock) -> Core:
    """The core as serve() builds it, minus delivery, for variants with their own adapter."""
    return build_core(store, plugins, config, clock, cast(DeliveryEngine, NoEngine()), Pulse())


@asynccontextmanager
async def open_core(config: Config, plugins: Plugins) -> AsyncIterator[Core]:
    backend = plugins.storage_backend_for(config.store_url)
    async with backend.open(config.store_url) as store:
        yield baseline_core(store, plugins, config, Clock())


def add_servicers(server: grpc.aio.Server, bridge: TrioBridge, core: Core) -> None:
    hooks_pb2_grpc.add_HookServiceServicer_to_server(HookServicer(bridge, core.hooks), server)
    catalog_pb2_grpc.add_CatalogServiceServicer_to_server(CatalogServicer(bridge, core.catalog), server)


# -- tidings: the server itself --------------------------------------------------------------


async def serve_tidings(
    config: Config, plugins: Plugins, *, task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED
) -> None:
    async with trio.open_nursery() as nursery:
        running: Running = await nursery.start(partial(serve, config, plugins=plugins))
        task_status.started(running.port)


# -- aio-direct: the ceiling -------------------------------------------------------------------


class DirectBridge(TrioBridge):
    """Awaits the core in asyncio itself: the servicers' own code, minus the hop to trio."""

    def __init__(self) -> None:  # there is no trio to hand calls to
        pass

    async def call(self, fn: Callable[..., Awaitable[T]], *args: Any) -> T:
        return await fn(*args)


class AsyncioStore:
    """What CreateHook and GetHook need from a store, yielding to asyncio where MemoryStore
    yields to trio, so the ceiling does the same work bar the bridge."""

    def __init__(self) -> None:
        self._hooks: dict[str, Hook] = {}

    async def create_hook(self, hook: Hook) -> None:
        await asyncio.sleep(0)
        if hook.name in self._hooks:
            raise AlreadyExists(f"hook {hook.name} already exists")
        self._hooks[hook.name] = hook

    async def get_hook(self, name: str) -> Hook:
        await asyncio.sleep(0)
        hook = self._hooks.get(name)
        if hook is None:
            raise NotFound(f"hook {name} does not exist")
        return hook


class WallClock:
    """The time without trio, whose clock cannot be read outside a trio run."""

    def now(self) -> datetime:
        return datetime.now(UTC)


async def serve_aio_direct(config: Config, plugins: Plugins, started: Callable[[int], None]) -> None:
    core = baseline_core(cast(Store, AsyncioStore()), plugins, config, cast(Clock, WallClock()))
    server = grpc.aio.server(options=SERVER_OPTIONS)
    add_servicers(server, DirectBridge(), core)
    port = server.add_insecure_port(config.listen)
    await server.start()
    try:
        started(port)
        await asyncio.get_running_loop().create_future()  # until cancelled
    finally:
        await server.stop(GRACE)


# -- sync-thread: grpcio's thread pool calling trio.from_thread.run -----------------------------


class ToTrio:
    """Runs a core call in trio from a pool thread. The RPC's end cancels it if it still runs:
    without that a cancelled call would hold its thread and its trio task until done."""

    def __init__(self, token: trio.lowlevel.TrioToken) -> None:
        self._token = token

    def __call__(self, context: grpc.ServicerContext, fn: Callable[..., Awaitable[T]], *args: Any) -> T:
        scope = trio.CancelScope()
        finished = False

        def cancel() -> None:
            if not finished:
                with contextlib.suppress(trio.RunFinishedError):
                    self._token.run_sync_soon(scope.cancel)

        async def run() -> T:
            with scope:
                return await fn(*args)
            raise Unavailable("the call was cancelled")

        context.add_callback(cancel)
        try:
            return trio.from_thread.run(run, trio_token=self._token)
        except TidingsError as exc:
            context.abort(status_for(exc), str(exc))
        finally:
            finished = True


class SyncHookServicer(hooks_pb2_grpc.HookServiceServicer):
    def __init__(self, to_trio: ToTrio, hooks: HookService) -> None:
        self._to_trio = to_trio
        self._hooks = hooks

    def CreateHook(  # noqa: N802 - gRPC method names
        self, request: hooks_pb2.CreateHookRequest, context: grpc.ServicerContext
    ) -> hooks_pb2.Hook:
        given = convert.hook_input(request.hook)
        return convert.hook(self._to_trio(context, self._hooks.create_hook, request.parent, given, request.hook_id))

    def GetHook(self, request: hooks_pb2.GetHookRequest, context: grpc.ServicerContext) -> hooks_pb2.Hook:  # noqa: N802
        return convert.hook(self._to_trio(context, self._hooks.get_hook, request.name))


class SyncCatalogServicer(catalog_pb2_grpc.CatalogServiceServicer):
    def __init__(self, to_trio: ToTrio, catalog: CatalogService) -> None:
        self._to_trio = to_trio
        self._catalog = catalog

    def ListPayloadFormats(  # noqa: N802
        self, request: catalog_pb2.ListPayloadFormatsRequest, context: grpc.ServicerContext
    ) -> catalog_pb2.ListPayloadFormatsResponse:
        async def list_formats() -> Page[FormatInfo]:  # a trio task, as in the adapter
            return self._catalog.list_formats(request.page_size, request.page_token)

        page = self._to_trio(context, list_formats)
        return catalog_pb2.ListPayloadFormatsResponse(
            payload_formats=[convert.payload_format(f) for f in page.items], next_page_token=page.next_page_token
        )


async def serve_sync_thread(
    config: Config, plugins: Plugins, workers: int, *, task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED
) -> None:
    async with open_core(config, plugins) as core:
        pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="bench-grpc")
        server = grpc.server(pool, options=SERVER_OPTIONS)
        to_trio = ToTrio(trio.lowlevel.current_trio_token())
        # Only the measured methods are implemented; the rest answer UNIMPLEMENTED.
        hooks_pb2_grpc.add_HookServiceServicer_to_server(SyncHookServicer(to_trio, core.hooks), server)  # type: ignore[abstract]
        catalog_pb2_grpc.add_CatalogServiceServicer_to_server(SyncCatalogServicer(to_trio, core.catalog), server)  # type: ignore[abstract]
        port = server.add_insecure_port(config.listen)
        server.start()

        def halt() -> None:  # off the trio thread: handlers still finishing need it free
            server.stop(GRACE).wait(STOP_TIMEOUT)
            pool.shutdown(wait=True)

        try:
            task_status.started(port)
            await trio.sleep_forever()
        finally:
            with trio.CancelScope(shield=True):
                await trio.to_thread.run_sync(halt)


# -- aio-guest: trio as a guest of grpc.aio's loop ---------------------------------------------


async def serve_aio_guest(config: Config, plugins: Plugins, started: Callable[[int], None]) -> None:
    loop = asyncio.get_running_loop()
    ready: asyncio.Future[tuple[trio.lowlevel.TrioToken, trio.Nursery, Core]] = loop.create_future()
    done: asyncio.Future[outcome.Outcome[None]] = loop.create_future()

    async def trio_main() -> None:  # runs on this thread, between asyncio callbacks
        async with open_core(config, plugins) as core, trio.open_nursery() as nursery:
            ready.set_result((trio.lowlevel.current_trio_token(), nursery, core))
            await trio.sleep_forever()

    trio.lowlevel.start_guest_run(
        trio_main, run_sync_soon_threadsafe=loop.call_soon_threadsafe, done_callback=done.set_result
    )
    first: list[asyncio.Future[Any]] = [ready, done]
    await asyncio.wait(first, return_when=asyncio.FIRST_COMPLETED)
    if not ready.done():
        done.result().unwrap()
        raise RuntimeError("the trio guest run ended before it was ready")
    token, nursery, core = ready.result()
    server = grpc.aio.server(options=SERVER_OPTIONS)
    add_servicers(server, TrioBridge(token, nursery), core)
    try:
        port = server.add_insecure_port(config.listen)
        await server.start()
        started(port)
        await loop.create_future()  # until cancelled
    finally:
        await server.stop(GRACE)
        token.run_sync_soon(nursery.cancel_scope.cancel)
        (await done).unwrap()


# -- the variants ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Variant:
    name: str
    label: str
    host: Callable[[Config, Plugins], Host]
    has_trio: bool
    """Whether a cancelled call has a trio task to cancel (the cancel probe applies)."""


def variants(sync_workers: int) -> dict[str, Variant]:
    listed = [
        Variant(
            "aio-direct",
            "grpc.aio, core awaited in asyncio",
            lambda c, p: AsyncioHost(partial(serve_aio_direct, c, p)),
            has_trio=False,
        ),
        Variant(
            "tidings",
            "serve(): grpc.aio thread → TrioBridge",
            lambda c, p: TrioHost(partial(serve_tidings, c, p)),
            has_trio=True,
        ),
        Variant(
            "sync-thread",
            f"grpc.server({sync_workers} threads) → from_thread.run",
            lambda c, p: TrioHost(partial(serve_sync_thread, c, p, sync_workers)),
            has_trio=True,
        ),
        Variant(
            "aio-guest",
            "grpc.aio host, trio guest → TrioBridge",
            lambda c, p: AsyncioHost(partial(serve_aio_guest, c, p)),
            has_trio=True,
        ),
    ]
    return {v.name: v for v in listed}


# -- measuring ----------------------------------------------------------------------------------


def prepare(port: int, payload_format: str) -> tuple[bytes, str]:
    """Create the hook GetHook reads; return what both RPCs answer, so variants can be compared."""
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        grpc.channel_ready_future(channel).result(timeout=WAIT)
        hooks = hooks_pb2_grpc.HookServiceStub(channel)
        hooks.CreateHook(
            hooks_pb2.CreateHookRequest(
                parent=PARENT,
                hook_id=HOOK_ID,
                hook=hooks_pb2.Hook(
                    destination_url=f"https://{DESTINATION_HOST}/in",
                    authorization_header="Bearer bench-0123456789",
                    payload_format=payload_format,
                ),
            ),
            timeout=WAIT,
        )
        hook = hooks.GetHook(hooks_pb2.GetHookRequest(name=HOOK_NAME), timeout=WAIT)
        formats = catalog_pb2_grpc.CatalogServiceStub(channel).ListPayloadFormats(
            catalog_pb2.ListPayloadFormatsRequest(), timeout=WAIT
        )
    return formats.SerializeToString(deterministic=True), f"{hook.name} {hook.authorization_header}"


class CancelProbe:
    """A storage plugin (``benchslow:``): a MemoryStore whose GetHook of SLOW_HOOK blocks until
    cancelled and notes when trio delivered the cancellation."""

    scheme = "benchslow"
    description = "MemoryStore with a GetHook that blocks until cancelled (benchmarks only)"

    def __init__(self) -> None:
        self.entered = threading.Event()
        self.cancelled = threading.Event()
        self.cancelled_at = 0.0

    @hookimpl
    def tidings_storage_backends(self) -> list[StorageBackend]:
        return [self]

    @asynccontextmanager
    async def open(self, url: str) -> AsyncIterator[Store]:
        yield cast(Store, _SlowStore(self))


class _SlowStore(MemoryStore):
    def __init__(self, probe: CancelProbe) -> None:
        super().__init__()
        self._probe = probe

    async def get_hook(self, name: str) -> Hook:
        if name != SLOW_HOOK:
            return await super().get_hook(name)
        self._probe.entered.set()
        try:
            await trio.sleep(STOP_TIMEOUT)
        finally:
            self._probe.cancelled_at = time.perf_counter()
            self._probe.cancelled.set()
        raise Unavailable("the slow call was not cancelled")


def cancel_latencies(variant: Variant, rounds: int) -> list[float]:
    """Seconds from a client's cancel to Cancelled in the trio task, ``rounds`` times."""
    probe = CancelProbe()
    host = variant.host(replace(CONFIG, store_url="benchslow:"), Plugins.load(extra=[probe]))
    port = host.start()
    latencies: list[float] = []
    try:
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            get_hook = hooks_pb2_grpc.HookServiceStub(channel).GetHook
            for _ in range(rounds):
                probe.entered.clear()
                probe.cancelled.clear()
                call = get_hook.future(hooks_pb2.GetHookRequest(name=SLOW_HOOK), timeout=STOP_TIMEOUT)
                if not probe.entered.wait(WAIT):
                    raise TimeoutError(f"{variant.name}: the slow call did not reach the store")
                cancelled = time.perf_counter()
                call.cancel()
                if not probe.cancelled.wait(WAIT):
                    raise TimeoutError(f"{variant.name}: a client cancel did not reach trio within {WAIT:.0f} s")
                latencies.append(probe.cancelled_at - cancelled)
    finally:
        host.stop()
    return latencies


@dataclass
class Tally:
    """Per (variant, method): RPC/s of each run, and the server process's CPU µs per call."""

    rates: dict[tuple[str, str], list[float]] = field(default_factory=lambda: defaultdict(list))
    cpu: dict[tuple[str, str], list[float]] = field(default_factory=lambda: defaultdict(list))
    errors: dict[tuple[str, str], str] = field(default_factory=dict)


def measure(args: argparse.Namespace, chosen: Sequence[Variant], methods: Sequence[str]) -> Tally:
    """Every variant and method ``args.repeats`` times; a fresh server per variant and round.

    Each round starts with a different variant, so none always follows the same neighbour.
    CPU per call is counted because the machine may be shared: a variant starved of CPU
    looks slow in RPC/s, but its cost per call stays what it was.
    """
    plugins = Plugins.load()
    payload_format = min(plugins.payload_formats)
    tally = Tally()
    expected: tuple[bytes, str] | None = None
    with ClientPool(args.clients) as pool:
        for round_ in range(args.repeats):
            shift = round_ % len(chosen)
            progress: list[str] = []
            for variant in [*chosen[shift:], *chosen[:shift]]:
                host = variant.host(CONFIG, plugins)
                port = host.start()
                try:
                    answers = prepare(port, payload_format)
                    if expected is not None and answers != expected:
                        raise RuntimeError(f"{variant.name} answers differently from the other variants")
                    expected = answers
                    for method in methods:
                        path, request = METHODS[method]
                        cpu = time.process_time()
                        result = pool.run(Load(port, path, request, args.in_flight, args.warmup, args.duration))
                        cpu = time.process_time() - cpu
                        key = (variant.name, method)
                        tally.rates[key].append(result.rate)
                        tally.cpu[key].append(cpu / max(result.completed, 1) * 1e6)
                        if result.errors:
                            tally.errors[key] = f"{result.errors} errors, e.g. {result.first_error}"
                        progress.append(f"{variant.name}/{method} {result.rate:,.0f}")
                finally:
                    host.stop()
            print(f"round {round_ + 1}/{args.repeats}: " + ", ".join(progress), file=sys.stderr, flush=True)
    return tally


def table(
    args: argparse.Namespace,
    chosen: Sequence[Variant],
    methods: Sequence[str],
    tally: Tally,
    cancels: dict[str, list[float]],
) -> str:
    ceiling = "aio-direct" if any(v.name == "aio-direct" for v in chosen) else None
    median = {key: statistics.median(rates) for key, rates in tally.rates.items()}
    sub = ["RPC/s (min–max)", *(["ratio"] if ceiling else []), "CPU µs"]
    rows = [
        ["", "", *(c for m in methods for c in [m, *[""] * (len(sub) - 1)])],
        ["variant", "bridge", *(sub * len(methods))],
    ]
    for v in chosen:
        row = [v.name, v.label]
        for m in methods:
            rates = tally.rates[v.name, m]
            row.append(f"{median[v.name, m]:,.0f} ({min(rates):,.0f}–{max(rates):,.0f})")
            if ceiling:
                row.append(f"{median[v.name, m] / median[ceiling, m]:.2f}")
            row.append(f"{statistics.median(tally.cpu[v.name, m]):.0f}")
        rows.append(row)
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = [
        f"unary RPC/s, median of {args.repeats} runs (min–max)"
        + (", ratio of medians to aio-direct" if ceiling else "")
        + ", server process CPU µs per call (median);",
        f"{args.in_flight} calls in flight from {args.clients} client process(es),"
        f" {args.duration:g} s measured per run after {args.warmup:g} s warm-up",
        "",
        *("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip() for row in rows),
    ]
    lines.extend(f"! {name}/{method}: {error}" for (name, method), error in sorted(tally.errors.items()))
    if cancels:
        lines.append("")
        lines.append(f"client cancel → Cancelled in the trio task, median (max) of {args.cancel_rounds}:")
        lines.extend(
            f"  {name.ljust(widths[0])}  {statistics.median(s) * 1e3:.2f} ms ({max(s) * 1e3:.2f} ms)"
            for name, s in cancels.items()
        )
    return "\n".join(lines)


# -- the command -------------------------------------------------------------------------------


def add_arguments(parser: argparse.ArgumentParser) -> None:
    names = list(variants(1))
    parser.add_argument("--duration", type=float, default=2.0, help="measured seconds per run (default 2)")
    parser.add_argument("--warmup", type=float, default=0.3, help="unmeasured seconds before each run (default 0.3)")
    parser.add_argument("--repeats", type=int, default=5, help="runs per variant and method (default 5)")
    parser.add_argument("--in-flight", type=int, default=32, help="calls kept open at once (default 32)")
    parser.add_argument("--clients", type=int, default=1, help="client processes sharing them (default 1)")
    parser.add_argument(
        "--sync-workers", type=int, default=None, help="sync-thread's pool size (default: one per call in flight)"
    )
    parser.add_argument("--cancel-rounds", type=int, default=20, help="cancels timed per variant; 0 skips (20)")
    parser.add_argument(
        "--variants", nargs="+", choices=names, default=names, metavar="V", help=f"of {', '.join(names)}"
    )
    parser.add_argument(
        "--methods", nargs="+", choices=list(METHODS), default=list(METHODS), metavar="M", help=", ".join(METHODS)
    )


def run(args: argparse.Namespace) -> int:
    if args.sync_workers is None:
        args.sync_workers = args.in_flight
    if min(args.duration, args.repeats, args.in_flight, args.clients, args.sync_workers) <= 0 or args.warmup < 0:
        raise SystemExit("durations, counts and sizes must be positive")
    available = variants(args.sync_workers)
    chosen = [available[name] for name in available if name in args.variants]
    methods = [m for m in METHODS if m in args.methods]
    runs = args.repeats * len(chosen) * len(methods)
    print(
        f"{runs} runs of {args.warmup + args.duration:g} s: about {runs * (args.warmup + args.duration) / 60:.1f} min",
        file=sys.stderr,
        flush=True,
    )
    started = time.perf_counter()
    tally = measure(args, chosen, methods)
    cancels = {v.name: cancel_latencies(v, args.cancel_rounds) for v in chosen if v.has_trio and args.cancel_rounds}
    print(table(args, chosen, methods, tally, cancels))
    print(f"({time.perf_counter() - started:.0f} s)", file=sys.stderr)
    return 1 if tally.errors else 0
