"""Request bytes that are no valid message: INVALID_ARGUMENT for every method, logged as a
warning without a traceback, and the server goes on serving."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import grpc
import pytest
from google.protobuf.descriptor import FieldDescriptor
from grpc_reflection.v1alpha import reflection_pb2

from tests.harness import Api
from tidings.v1 import catalog_pb2, deliveries_pb2, events_pb2, hooks_pb2, templates_pb2, tokens_pb2

SERVICES = [hooks_pb2, catalog_pb2, events_pb2, deliveries_pb2, templates_pb2, tokens_pb2]
METHODS = [
    (f"/{service.full_name}/{method.name}", method.server_streaming)
    for module in SERVICES
    for service in module.DESCRIPTOR.services_by_name.values()
    for method in service.methods
]
STRING_FIRST = [  # methods whose request's field 1 is a string
    (f"/{service.full_name}/{method.name}", method.server_streaming)
    for module in SERVICES
    for service in module.DESCRIPTOR.services_by_name.values()
    for method in service.methods
    if 1 in method.input_type.fields_by_number
    and method.input_type.fields_by_number[1].type == FieldDescriptor.TYPE_STRING
]
HEALTH = ("/grpc.health.v1.Health/Check", False)
GARBAGE = {
    "corrupt-wire-format": (b"\xff\xff\xff\xff\xff garbage", [*METHODS, HEALTH]),
    "truncated-field": (b"\x0a\x80\x01abc", [*METHODS, HEALTH]),  # field 1 says 128 bytes follow; 3 do
    "invalid-utf8-string": (b"\x0a\x02\xff\xfe", [*STRING_FIRST, HEALTH]),
}


def call(api: Api, path: str, streaming: bool, raw: bytes) -> grpc.RpcError:
    """Send ``raw`` as the request, unserialised, on the real channel."""
    send: Callable[[Any], object]
    if streaming:
        stream: Any = api.channel.unary_stream(path, request_serializer=None, response_deserializer=None)
        send = lambda request: list(stream(request, timeout=10))  # noqa: E731
    else:
        unary: Any = api.channel.unary_unary(path, request_serializer=None, response_deserializer=None)
        send = lambda request: unary(request, timeout=10)  # noqa: E731
    with pytest.raises(grpc.RpcError) as err:
        send(raw)
    return err.value


@pytest.mark.parametrize(("raw", "methods"), GARBAGE.values(), ids=list(GARBAGE))
def test_every_method_refuses_garbage_as_invalid_argument(
    api: Api, raw: bytes, methods: list[tuple[str, bool]], caplog: pytest.LogCaptureFixture
) -> None:
    assert (len(METHODS), len(STRING_FIRST)) == (28, 21)  # every service in the proto
    with caplog.at_level(logging.WARNING):
        for path, streaming in methods:
            error = call(api, path, streaming, raw)
            name = path.rsplit("/", 1)[-1]
            assert error.code() == grpc.StatusCode.INVALID_ARGUMENT, (path, error.details())
            assert (error.details() or "").startswith(f"request: the bytes are not a valid {name} request message")
    warnings = [r for r in caplog.records if r.name == "tidings_server.grpc_api.decoding"]
    assert [(r.levelno, r.getMessage(), r.exc_info) for r in warnings] == [
        (logging.WARNING, "malformed request", None)
    ] * len(methods)
    assert [r for r in caplog.records if r.levelno >= logging.ERROR] == []
    # The server is fine, and well-formed calls of the same methods still work.
    listed = api.hooks.ListHooks(hooks_pb2.ListHooksRequest(parent="companies/8"))
    assert list(listed.hooks) == []


REFLECTION = "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo"


@pytest.mark.parametrize("raw", [raw for raw, _ in GARBAGE.values()], ids=list(GARBAGE))
def test_reflection_refuses_garbage_as_invalid_argument(api: Api, raw: bytes, caplog: pytest.LogCaptureFixture) -> None:
    """Reflection's one method streams requests: a bad message in the stream is the caller's
    mistake as anywhere else, not UNKNOWN with a traceback; a good stream still works after."""
    stream: Any = api.channel.stream_stream(REFLECTION, request_serializer=None, response_deserializer=None)
    with caplog.at_level(logging.WARNING), pytest.raises(grpc.RpcError) as err:
        list(stream(iter([raw]), timeout=10))
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT, err.value.details()
    assert (err.value.details() or "").startswith(
        "request: the bytes are not a valid ServerReflectionInfo request message"
    )
    warnings = [r for r in caplog.records if r.name == "tidings_server.grpc_api.decoding"]
    assert [(r.levelno, r.getMessage(), r.exc_info) for r in warnings] == [(logging.WARNING, "malformed request", None)]
    assert [r for r in caplog.records if r.levelno >= logging.ERROR] == []
    good = reflection_pb2.ServerReflectionRequest(list_services="").SerializeToString()
    (answer,) = list(stream(iter([good]), timeout=10))
    listed = reflection_pb2.ServerReflectionResponse.FromString(answer).list_services_response.service
    assert "tidings.v1.HookService" in {s.name for s in listed}
