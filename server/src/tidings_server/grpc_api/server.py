"""The gRPC server: grpc.aio on its own thread and asyncio loop, serving the trio core.

Why this bridge (docs/architecture.md has the measurements): grpc.aio needs no thread per
open stream and reports client cancellation as asyncio cancellation, which the bridge turns
into trio cancellation; keeping trio the main loop lets the core, the tests and the delivery
nursery be plain trio code. Shutdown is explicit: health goes NOT_SERVING, the server stops
taking calls and gives in-flight ones a grace period, then the trio side is cancelled.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import partial

import grpc
import trio
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection, reflection_pb2_grpc

from tidings.v1 import (
    catalog_pb2,
    catalog_pb2_grpc,
    deliveries_pb2,
    deliveries_pb2_grpc,
    events_pb2,
    events_pb2_grpc,
    hooks_pb2,
    hooks_pb2_grpc,
    templates_pb2,
    templates_pb2_grpc,
    tokens_pb2,
    tokens_pb2_grpc,
)
from tidings_server.domain.catalog import CatalogService
from tidings_server.domain.events import EventService
from tidings_server.domain.history import HistoryService
from tidings_server.domain.hooks import HookService
from tidings_server.domain.templates import TemplateService
from tidings_server.domain.tokens import TokenService
from tidings_server.grpc_api.access import Guard, PolicyInterceptor
from tidings_server.grpc_api.bridge import TrioBridge
from tidings_server.grpc_api.decoding import TRANSPORT_LIMIT_BYTES, register
from tidings_server.grpc_api.deliveries import DeliveryServicer, WatchSettings
from tidings_server.grpc_api.servicers import CatalogServicer, EventServicer, HookServicer
from tidings_server.grpc_api.templates import TemplateServicer
from tidings_server.grpc_api.tls import server_credentials
from tidings_server.grpc_api.tokens import TokenServicer
from tidings_server.tls import Certificates

log = logging.getLogger(__name__)

SERVICE_NAMES: Sequence[str] = (
    hooks_pb2.DESCRIPTOR.services_by_name["HookService"].full_name,
    catalog_pb2.DESCRIPTOR.services_by_name["CatalogService"].full_name,
    events_pb2.DESCRIPTOR.services_by_name["EventService"].full_name,
    deliveries_pb2.DESCRIPTOR.services_by_name["DeliveryService"].full_name,
    tokens_pb2.DESCRIPTOR.services_by_name["TokenService"].full_name,
    templates_pb2.DESCRIPTOR.services_by_name["TemplateService"].full_name,
)


class ListenError(Exception):
    """The server could not bind its listen address."""


Reporter = Callable[[BaseException | None], None]
"""Tells the trio side, from the asyncio thread, that serving started (None) or failed."""


@dataclass(frozen=True, slots=True)
class Core:
    """The trio-side services the adapter exposes."""

    hooks: HookService
    catalog: CatalogService
    events: EventService
    history: HistoryService
    tokens: TokenService
    watch: WatchSettings = field(default_factory=WatchSettings)
    auth: bool = True  # False: --no-auth, every caller let through (loopback only)
    templates: TemplateService | None = None
    observe_publish: Callable[[float, bool], None] | None = None  # PublishEvents durations, for metrics


class GrpcServer:
    """Owns the asyncio thread that runs grpc.aio and the trio nursery its calls run in.

    Without a ``core`` it serves health alone (a delivery-only node, for its orchestrator).
    ``reuse_port`` lets sibling processes bind the same port, the kernel spreading connections.
    With ``certificates`` it serves TLS only (mutual TLS when they name a client CA).
    """

    def __init__(
        self, core: Core | None, listen: str, *, reuse_port: bool = False, certificates: Certificates | None = None
    ) -> None:
        self._core = core
        self._listen = listen
        self._reuse_port = reuse_port
        self._certificates = certificates
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop_requested: asyncio.Event | None = None
        self._grace: float = 0.0
        self._finished = trio.Event()
        self._crash: BaseException | None = None
        self.port: int = 0
        self.deliveries: DeliveryServicer | None = None
        self._health: health.aio.HealthServicer | None = None
        self._health_names: Sequence[str] = ()

    async def run(self, *, task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED) -> None:
        """Serve until ``stop()`` (or cancellation); reports the bound port when ready."""
        token = trio.lowlevel.current_trio_token()
        started = trio.Event()
        failure: list[BaseException] = []

        def report(error: BaseException | None) -> None:  # called from the asyncio thread
            def on_trio() -> None:
                if error is not None:
                    failure.append(error)
                started.set()

            token.run_sync_soon(on_trio)

        async with trio.open_nursery() as calls:
            bridge = TrioBridge(token, calls)
            thread = threading.Thread(
                target=self._thread_main, args=(bridge, report, token), name="tidings-grpc", daemon=True
            )
            thread.start()
            await started.wait()
            if failure:
                await self._finished.wait()
                raise failure[0]
            transport = (
                "plaintext" if self._certificates is None else "mutual TLS" if self._certificates.mutual else "TLS"
            )
            log.info("grpc serving", extra={"listen": self._listen, "port": self.port, "transport": transport})
            task_status.started(self.port)
            try:
                await self._finished.wait()
            finally:
                with trio.CancelScope(shield=True):
                    self._request_stop(0.0)
                    await self._finished.wait()
                calls.cancel_scope.cancel()
        if self._crash is not None:
            # Serving ended without a stop: a server that delivers but takes no calls is worse
            # than one that exits and is restarted.
            raise RuntimeError("the gRPC server stopped unexpectedly") from self._crash
        log.info("grpc stopped")

    async def stop(self, grace: float) -> None:
        """Refuse new calls, let in-flight ones finish within ``grace`` seconds, then return."""
        self._request_stop(grace)
        await self._finished.wait()

    def set_serving(self, serving: bool) -> None:
        """Report every service SERVING or NOT_SERVING (the store answering or not); from the
        trio side. Once a stop was asked for, health stays NOT_SERVING whatever comes."""
        loop = self._loop
        if loop is None or loop.is_closed():
            return
        with contextlib.suppress(RuntimeError):  # the loop closed in the meantime
            asyncio.run_coroutine_threadsafe(self._set_health(serving), loop)

    async def _set_health(self, serving: bool) -> None:
        if self._health is None or self._stop_requested is None or self._stop_requested.is_set():
            return
        status = health_pb2.HealthCheckResponse.SERVING if serving else health_pb2.HealthCheckResponse.NOT_SERVING
        for name in self._health_names:
            await self._health.set(name, status)

    def _request_stop(self, grace: float) -> None:
        loop, event = self._loop, self._stop_requested
        if loop is None or event is None or loop.is_closed():
            return
        self._grace = grace
        with contextlib.suppress(RuntimeError):  # the loop closed in the meantime
            loop.call_soon_threadsafe(event.set)

    def _thread_main(self, bridge: TrioBridge, report: Reporter, token: trio.lowlevel.TrioToken) -> None:
        try:
            asyncio.run(self._serve(bridge, report))
        except BaseException as exc:  # reported to trio below; nothing else can catch it
            self._crash = exc
            log.error("the gRPC server thread failed", exc_info=exc)
        finally:
            with contextlib.suppress(trio.RunFinishedError):
                token.run_sync_soon(self._finished.set)

    async def _serve(self, bridge: TrioBridge, report: Reporter) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop_requested = asyncio.Event()
        # grpcio turns SO_REUSEPORT on by default; a lone server keeps it off, so that a second
        # one on the same port fails to bind instead of silently taking half the calls.
        core = self._core
        guard = Guard(bridge, core.tokens if core is not None and core.auth else None)
        server = grpc.aio.server(
            interceptors=[PolicyInterceptor(guard)],
            options=[
                ("grpc.so_reuseport", int(self._reuse_port)),
                ("grpc.max_receive_message_length", TRANSPORT_LIMIT_BYTES),
            ],
        )
        services: Sequence[str] = SERVICE_NAMES if core is not None else ()
        if core is not None:
            add = partial(register, server=server, guard=guard)
            add(hooks_pb2_grpc.add_HookServiceServicer_to_server, HookServicer(bridge, core.hooks))
            add(catalog_pb2_grpc.add_CatalogServiceServicer_to_server, CatalogServicer(bridge, core.catalog))
            events = EventServicer(bridge, core.events, core.observe_publish)
            add(events_pb2_grpc.add_EventServiceServicer_to_server, events)
            self.deliveries = DeliveryServicer(bridge, core.history, core.watch)
            add(deliveries_pb2_grpc.add_DeliveryServiceServicer_to_server, self.deliveries)
            add(tokens_pb2_grpc.add_TokenServiceServicer_to_server, TokenServicer(bridge, core.tokens))
            if core.templates is not None:
                add(templates_pb2_grpc.add_TemplateServiceServicer_to_server, TemplateServicer(bridge, core.templates))
        health_servicer = health.aio.HealthServicer()
        register(health_pb2_grpc.add_HealthServicer_to_server, health_servicer, server, guard)
        reflected = (*services, health_pb2.DESCRIPTOR.services_by_name["Health"].full_name, reflection.SERVICE_NAME)
        # Registered through ``register`` like every service, so that garbage sent to it is
        # INVALID_ARGUMENT too (``enable_server_reflection`` would register it directly).
        register(
            reflection_pb2_grpc.add_ServerReflectionServicer_to_server,
            reflection.aio.ReflectionServicer(reflected),
            server,
            guard,
        )
        try:
            if self._certificates is not None:
                self.port = server.add_secure_port(self._listen, server_credentials(self._certificates))
            else:
                self.port = server.add_insecure_port(self._listen)
            await server.start()
        except BaseException as exc:
            report(ListenError(f"cannot listen on {self._listen}: {exc}"))
            raise
        self._health, self._health_names = health_servicer, ("", *services)
        for name in self._health_names:
            await health_servicer.set(name, health_pb2.HealthCheckResponse.SERVING)
        report(None)
        await self._stop_requested.wait()
        for name in self._health_names:
            await health_servicer.set(name, health_pb2.HealthCheckResponse.NOT_SERVING)
        await server.stop(self._grace)
