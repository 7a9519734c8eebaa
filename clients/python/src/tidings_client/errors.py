"""The errors the client raises: one class per gRPC status a caller may want to catch.

Callers catch ``NotFound`` or ``Unavailable`` rather than inspecting ``grpc.RpcError``, so code
that embeds the client never needs to import grpc. Every error keeps the status code and the
server's message, which already names the offending field.
"""

from __future__ import annotations

import grpc

from tidings_client.types import PublishedEvent


class TidingsError(Exception):
    """A call failed; ``code`` is the gRPC status and ``message`` the server's explanation."""

    code: grpc.StatusCode = grpc.StatusCode.UNKNOWN
    # Set by publish(): the results of the batches that were published before this failure.
    published: tuple[PublishedEvent, ...] = ()

    def __init__(self, message: str, code: grpc.StatusCode | None = None) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code

    def __str__(self) -> str:
        return f"{self.code.name}: {self.message}"


class InvalidArgument(TidingsError):
    code = grpc.StatusCode.INVALID_ARGUMENT


class NotFound(TidingsError):
    code = grpc.StatusCode.NOT_FOUND


class AlreadyExists(TidingsError):
    code = grpc.StatusCode.ALREADY_EXISTS


class FailedPrecondition(TidingsError):
    code = grpc.StatusCode.FAILED_PRECONDITION


class OutOfRange(TidingsError):
    code = grpc.StatusCode.OUT_OF_RANGE


class Unauthenticated(TidingsError):
    code = grpc.StatusCode.UNAUTHENTICATED


class PermissionDenied(TidingsError):
    code = grpc.StatusCode.PERMISSION_DENIED


class ResourceExhausted(TidingsError):
    code = grpc.StatusCode.RESOURCE_EXHAUSTED


class Unavailable(TidingsError):
    code = grpc.StatusCode.UNAVAILABLE


class DeadlineExceeded(TidingsError):
    code = grpc.StatusCode.DEADLINE_EXCEEDED


class Unimplemented(TidingsError):
    code = grpc.StatusCode.UNIMPLEMENTED


class Cancelled(TidingsError):
    code = grpc.StatusCode.CANCELLED


class Internal(TidingsError):
    code = grpc.StatusCode.INTERNAL


_BY_CODE: dict[grpc.StatusCode, type[TidingsError]] = {
    cls.code: cls
    for cls in (
        InvalidArgument,
        NotFound,
        AlreadyExists,
        FailedPrecondition,
        OutOfRange,
        Unauthenticated,
        PermissionDenied,
        ResourceExhausted,
        Unavailable,
        DeadlineExceeded,
        Unimplemented,
        Cancelled,
        Internal,
    )
}


def from_rpc_error(error: grpc.RpcError) -> TidingsError:
    """The client error for a failed call; codes without a class of their own keep their code."""
    # Both grpc.Call (sync) and grpc.aio.AioRpcError offer code() and details().
    code: grpc.StatusCode = error.code()
    message: str = error.details() or code.name
    cls = _BY_CODE.get(code)
    if cls is None:
        return TidingsError(message, code)
    return cls(message)
