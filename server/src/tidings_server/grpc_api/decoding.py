"""Request bytes that do not parse are the caller's mistake: INVALID_ARGUMENT, and a warning.

grpcio deserialises a request before the handler runs and reports a failure as UNKNOWN with a
traceback logged at error level, as if the server had a defect. So the services are registered
with raw bytes in, and each handler parses its request itself, first thing.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import AsyncIterator, Callable, Mapping
from typing import Any

import grpc
from google.protobuf.message import DecodeError

log = logging.getLogger(__name__)

Context = grpc.aio.ServicerContext[Any, Any]


def register(add_to_server: Callable[[Any, Any], None], servicer: object, server: grpc.aio.Server) -> None:
    """Run a generated ``add_*_to_server(servicer, server)`` with every unary-request method
    taking raw bytes and parsing them itself."""
    add_to_server(servicer, _Registrar(server))


class _Registrar:
    """What a generated ``add_*_to_server`` needs of a server, rewriting what it registers."""

    def __init__(self, server: grpc.aio.Server) -> None:
        self._server = server

    def add_generic_rpc_handlers(self, handlers: object) -> None:
        """Ignored: ``add_registered_method_handlers`` registers the same methods, rewritten."""

    def add_registered_method_handlers(
        self, service: str, handlers: Mapping[str, grpc.RpcMethodHandler[Any, Any]]
    ) -> None:
        parsing = {name: _parsing(f"/{service}/{name}", handler) for name, handler in handlers.items()}
        self._server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(service, parsing),))
        self._server.add_registered_method_handlers(service, parsing)


def _parsing(method: str, handler: Any) -> Any:
    """The handler with its request deserialiser moved inside it (unary requests only)."""
    parse = handler.request_deserializer
    if parse is None or handler.request_streaming:
        return handler

    async def request(raw: bytes, context: Context) -> Any:
        try:
            return parse(raw)
        except DecodeError as exc:
            log.warning("malformed request", extra={"method": method, "error": str(exc), "bytes": len(raw)})
            await context.abort(
                grpc.StatusCode.INVALID_ARGUMENT,
                f"request: the bytes are not a valid {method.rsplit('/', 1)[-1]} request message ({exc})",
            )
            raise AssertionError("abort returned") from None  # pragma: no cover - abort always raises

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
