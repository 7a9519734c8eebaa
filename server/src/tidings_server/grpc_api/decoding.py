"""Requests as bytes: what is too large is refused saying the limit, and bytes that do not
parse are the caller's mistake (INVALID_ARGUMENT and a warning), not the server's.

grpcio deserialises a request before the handler runs and reports a failure as UNKNOWN with a
traceback logged at error level, as if the server had a defect; and its refusal of a message
over ``max_receive_message_length`` reads "Received message larger than max (N vs. M)". So the
services are registered with raw bytes in, and each handler checks the size and parses its
request itself, first thing. The transport's own limit stays, at twice ours, so that no call
can make the server buffer an unbounded message.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from typing import Any

import grpc
from google.protobuf.message import DecodeError

from tidings_server.grpc_api.access import Guard

log = logging.getLogger(__name__)

MAX_REQUEST_BYTES = 32 * 1024 * 1024
"""The most one call may carry: 1,000 events at every field limit take 21.3 MiB (ASCII text)."""
TRANSPORT_LIMIT_BYTES = 2 * MAX_REQUEST_BYTES

Context = grpc.aio.ServicerContext[Any, Any]


def register(
    add_to_server: Callable[[Any, Any], None], servicer: object, server: grpc.aio.Server, guard: Guard
) -> None:
    """Run a generated ``add_*_to_server(servicer, server)`` with every unary-request method
    taking raw bytes and parsing them itself, then passing the request through ``guard``."""
    add_to_server(servicer, _Registrar(server, guard))


class _Registrar:
    """What a generated ``add_*_to_server`` needs of a server, rewriting what it registers."""

    def __init__(self, server: grpc.aio.Server, guard: Guard) -> None:
        self._server = server
        self._guard = guard

    def add_generic_rpc_handlers(self, handlers: object) -> None:
        """Ignored: ``add_registered_method_handlers`` registers the same methods, rewritten."""

    def add_registered_method_handlers(
        self, service: str, handlers: Mapping[str, grpc.RpcMethodHandler[Any, Any]]
    ) -> None:
        parsing = {
            name: _parsing(f"/{service}/{name}", self._guard.wrap(f"/{service}/{name}", handler))
            for name, handler in handlers.items()
        }
        self._server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(service, parsing),))
        self._server.add_registered_method_handlers(service, parsing)


def _parsing(method: str, handler: Any) -> Any:
    """The handler with its request deserialiser moved inside it: a unary request is parsed
    before the method runs, each message of a request stream as the method reads it."""
    parse = handler.request_deserializer
    if parse is None:
        return handler

    async def request(raw: bytes, context: Context) -> Any:
        if len(raw) > MAX_REQUEST_BYTES:
            await context.abort(
                grpc.StatusCode.RESOURCE_EXHAUSTED,
                f"request: {len(raw):,} bytes is more than the {MAX_REQUEST_BYTES:,} bytes"
                f" ({MAX_REQUEST_BYTES >> 20} MiB) one call may carry; send fewer events per call",
            )
        try:
            return parse(raw)
        except DecodeError as exc:
            log.warning("malformed request", extra={"method": method, "error": str(exc), "bytes": len(raw)})
            await context.abort(
                grpc.StatusCode.INVALID_ARGUMENT,
                f"request: the bytes are not a valid {method.rsplit('/', 1)[-1]} request message ({exc})",
            )
            raise AssertionError("abort returned") from None  # pragma: no cover - abort always raises

    if handler.request_streaming:
        return _parsing_stream(handler, request)
    if not handler.response_streaming:
        unary = handler.unary_unary

        async def unary_unary(raw: bytes, context: Context) -> Any:
            return await unary(await request(raw, context), context)

        return handler._replace(request_deserializer=None, unary_unary=unary_unary)
    stream = handler.unary_stream
    if inspect.isasyncgenfunction(stream):

        async def unary_stream_items(raw: bytes, context: Context) -> AsyncIterator[Any]:
            async for item in stream(await request(raw, context), context):
                yield item

        return handler._replace(request_deserializer=None, unary_stream=unary_stream_items)

    async def unary_stream_writes(raw: bytes, context: Context) -> None:  # the method writes itself
        await stream(await request(raw, context), context)

    return handler._replace(request_deserializer=None, unary_stream=unary_stream_writes)


def _parsing_stream(handler: Any, request: Callable[[bytes, Context], Awaitable[Any]]) -> Any:
    """A request-streaming handler reading parsed messages from the raw ones (reflection's
    ServerReflectionInfo is one): the first bad message ends the call as INVALID_ARGUMENT."""

    async def parsed(raw_messages: AsyncIterator[bytes], context: Context) -> AsyncIterator[Any]:
        async for raw in raw_messages:
            yield await request(raw, context)

    if handler.response_streaming:
        stream = handler.stream_stream
        if inspect.isasyncgenfunction(stream):

            async def stream_stream_items(raw_messages: AsyncIterator[bytes], context: Context) -> AsyncIterator[Any]:
                async for item in stream(parsed(raw_messages, context), context):
                    yield item

            return handler._replace(request_deserializer=None, stream_stream=stream_stream_items)

        async def stream_stream_writes(raw_messages: AsyncIterator[bytes], context: Context) -> None:
            await stream(parsed(raw_messages, context), context)

        return handler._replace(request_deserializer=None, stream_stream=stream_stream_writes)
    unary = handler.stream_unary

    async def stream_unary(raw_messages: AsyncIterator[bytes], context: Context) -> Any:
        return await unary(parsed(raw_messages, context), context)

    return handler._replace(request_deserializer=None, stream_unary=stream_unary)
