"""Thin servicers: decode the request, call the trio core through the bridge, encode the reply."""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from functools import partial
from typing import Any, NoReturn, TypeVar

import grpc
from google.protobuf import empty_pb2

from tidings.v1 import catalog_pb2, catalog_pb2_grpc, events_pb2, events_pb2_grpc, hooks_pb2, hooks_pb2_grpc
from tidings_server.domain.catalog import CatalogService
from tidings_server.domain.errors import TidingsError
from tidings_server.domain.events import EventService
from tidings_server.domain.hooks import HookService
from tidings_server.grpc_api import convert
from tidings_server.grpc_api.bridge import TrioBridge
from tidings_server.grpc_api.errors import status_for

log = logging.getLogger(__name__)
T = TypeVar("T")
Context = grpc.aio.ServicerContext[Any, Any]


class Servicer:
    def __init__(self, bridge: TrioBridge) -> None:
        self._bridge = bridge

    async def _call(self, context: Context, fn: Callable[..., Awaitable[T]], *args: Any) -> T:
        """Run ``fn`` in trio; domain errors become their status, anything else INTERNAL."""
        try:
            return await self._bridge.call(fn, *args)
        except TidingsError as exc:
            await abort(context, status_for(exc), str(exc))
        except Exception:
            log.exception("unexpected error in %s", getattr(fn, "__qualname__", fn))
            await abort(context, grpc.StatusCode.INTERNAL, "internal error; the server log has the details")

    async def _decode(self, context: Context, fn: Callable[[], T]) -> T:
        """Decode request fields; a bad value is INVALID_ARGUMENT like any domain check."""
        try:
            return fn()
        except TidingsError as exc:
            await abort(context, status_for(exc), str(exc))


MAX_DETAILS = 4096  # characters; grpc-message travels in trailing metadata, which has a hard limit


async def abort(context: Context, code: grpc.StatusCode, message: str) -> NoReturn:
    """End the call with ``code``; a message is bounded even if some check quoted too much."""
    if len(message) > MAX_DETAILS:
        message = message[: MAX_DETAILS - 1] + "…"
    await context.abort(code, message)
    raise AssertionError("abort returned")  # pragma: no cover - abort always raises


class HookServicer(Servicer, hooks_pb2_grpc.HookServiceServicer):
    def __init__(self, bridge: TrioBridge, hooks: HookService) -> None:
        super().__init__(bridge)
        self._hooks = hooks

    async def CreateHook(  # noqa: N802 - gRPC method names
        self, request: hooks_pb2.CreateHookRequest, context: Context
    ) -> hooks_pb2.Hook:
        given = await self._decode(context, lambda: convert.hook_input(request.hook))
        hook = await self._call(context, self._hooks.create_hook, request.parent, given, request.hook_id)
        return convert.hook(hook, with_secret=True)

    async def GetHook(self, request: hooks_pb2.GetHookRequest, context: Context) -> hooks_pb2.Hook:  # noqa: N802
        return convert.hook(await self._call(context, self._hooks.get_hook, request.name))

    async def ListHooks(  # noqa: N802
        self, request: hooks_pb2.ListHooksRequest, context: Context
    ) -> hooks_pb2.ListHooksResponse:
        page = await self._call(
            context, self._hooks.list_hooks, request.parent, request.page_size, request.page_token, request.filter
        )
        return hooks_pb2.ListHooksResponse(
            hooks=[convert.hook(h) for h in page.items], next_page_token=page.next_page_token
        )

    async def UpdateHook(  # noqa: N802
        self, request: hooks_pb2.UpdateHookRequest, context: Context
    ) -> hooks_pb2.Hook:
        mask = list(request.update_mask.paths)
        given = await self._decode(context, lambda: convert.hook_input(request.hook, mask))
        return convert.hook(await self._call(context, self._hooks.update_hook, request.hook.name, given, mask))

    async def DeleteHook(  # noqa: N802
        self, request: hooks_pb2.DeleteHookRequest, context: Context
    ) -> empty_pb2.Empty:
        await self._call(context, self._hooks.delete_hook, request.name)
        return empty_pb2.Empty()

    async def BatchCreateTriggers(  # noqa: N802
        self, request: hooks_pb2.BatchCreateTriggersRequest, context: Context
    ) -> hooks_pb2.BatchCreateTriggersResponse:
        pairs = [(t.resource_name, t.event_type) for t in request.triggers]
        triggers = await self._call(context, self._hooks.create_triggers, request.parent, pairs)
        return hooks_pb2.BatchCreateTriggersResponse(triggers=[convert.trigger(t) for t in triggers])

    async def BatchDeleteTriggers(  # noqa: N802
        self, request: hooks_pb2.BatchDeleteTriggersRequest, context: Context
    ) -> empty_pb2.Empty:
        await self._call(
            context, self._hooks.delete_triggers, request.parent, list(request.names), request.allow_missing
        )
        return empty_pb2.Empty()

    async def ListTriggers(  # noqa: N802
        self, request: hooks_pb2.ListTriggersRequest, context: Context
    ) -> hooks_pb2.ListTriggersResponse:
        page = await self._call(
            context, self._hooks.list_triggers, request.parent, request.page_size, request.page_token
        )
        return hooks_pb2.ListTriggersResponse(
            triggers=[convert.trigger(t) for t in page.items], next_page_token=page.next_page_token
        )

    async def RotateSigningSecret(  # noqa: N802
        self, request: hooks_pb2.RotateSigningSecretRequest, context: Context
    ) -> hooks_pb2.Hook:
        overlap = await self._decode(context, lambda: convert.signing_overlap(request))
        hook = await self._call(context, self._hooks.rotate_signing_secret, request.name, overlap)
        return convert.hook(hook, with_secret=True)


class CatalogServicer(Servicer, catalog_pb2_grpc.CatalogServiceServicer):
    def __init__(self, bridge: TrioBridge, catalog: CatalogService) -> None:
        super().__init__(bridge)
        self._catalog = catalog

    async def ListResources(  # noqa: N802
        self, request: catalog_pb2.ListResourcesRequest, context: Context
    ) -> catalog_pb2.ListResourcesResponse:
        scope = await self._decode(context, lambda: convert.scope("scope", request.scope))
        page = await self._call(
            context, _sync(self._catalog.list_resources), scope, request.payload_format, request.page_size,
            request.page_token,
        )  # fmt: skip
        return catalog_pb2.ListResourcesResponse(
            resources=[convert.catalog_resource(e) for e in page.items], next_page_token=page.next_page_token
        )

    async def ListPayloadFormats(  # noqa: N802
        self, request: catalog_pb2.ListPayloadFormatsRequest, context: Context
    ) -> catalog_pb2.ListPayloadFormatsResponse:
        page = await self._call(context, _sync(self._catalog.list_formats), request.page_size, request.page_token)
        return catalog_pb2.ListPayloadFormatsResponse(
            payload_formats=[convert.payload_format(f) for f in page.items], next_page_token=page.next_page_token
        )


class EventServicer(Servicer, events_pb2_grpc.EventServiceServicer):
    def __init__(
        self, bridge: TrioBridge, events: EventService, observe: Callable[[float, bool], None] | None = None
    ) -> None:
        """``observe`` is told each call's duration in seconds and whether it succeeded (metrics)."""
        super().__init__(bridge)
        self._events = events
        self._observe = observe

    async def PublishEvents(  # noqa: N802
        self, request: events_pb2.PublishEventsRequest, context: Context
    ) -> events_pb2.PublishEventsResponse:
        start = time.perf_counter()
        ok = False
        try:
            drafts = await self._decode(
                context, lambda: [convert.event_draft(f"events[{i}]", e) for i, e in enumerate(request.events)]
            )
            trace = next((str(v) for k, v in context.invocation_metadata() or () if k == "traceparent"), "")
            results = await self._call(context, partial(self._events.publish, traceparent=trace), drafts)
            reply = events_pb2.PublishEventsResponse(results=[convert.published(p) for p in results])
            ok = True
            return reply
        finally:
            if self._observe is not None:
                self._observe(time.perf_counter() - start, ok)


def _sync(fn: Callable[..., T]) -> Callable[..., Awaitable[T]]:
    """Run a plain function as a trio task, so every call reaches the core the same way."""

    async def run(*args: Any) -> T:
        return fn(*args)

    run.__qualname__ = fn.__qualname__
    return run
