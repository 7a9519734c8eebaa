"""The one table from domain errors to gRPC status codes."""

from __future__ import annotations

import grpc

from tidings_server.domain import errors

STATUS_FOR: dict[type[errors.TidingsError], grpc.StatusCode] = {
    errors.InvalidArgument: grpc.StatusCode.INVALID_ARGUMENT,
    errors.NotFound: grpc.StatusCode.NOT_FOUND,
    errors.AlreadyExists: grpc.StatusCode.ALREADY_EXISTS,
    errors.FailedPrecondition: grpc.StatusCode.FAILED_PRECONDITION,
    errors.Unavailable: grpc.StatusCode.UNAVAILABLE,
    errors.OutOfRange: grpc.StatusCode.OUT_OF_RANGE,
    errors.ResourceExhausted: grpc.StatusCode.RESOURCE_EXHAUSTED,
    errors.DataLoss: grpc.StatusCode.DATA_LOSS,
}


def status_for(exc: errors.TidingsError) -> grpc.StatusCode:
    for kind in type(exc).__mro__:
        code = STATUS_FOR.get(kind)
        if code is not None:
            return code
    return grpc.StatusCode.INTERNAL
