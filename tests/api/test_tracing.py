"""OpenTelemetry traces of a real server: the publisher's trace continues into one client span
per attempt, and the receiver's request carries that span's context."""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterator
from dataclasses import replace

import grpc
import pytest
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from tests.api.test_deliveries import make_hook
from tests.harness import Api, ServerThread
from tests.http_sink import Sink, running_sink
from tidings.v1 import events_pb2
from tidings_server.app import Config
from tidings_server.telemetry.tracing import TracingConfig

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
PUBLISHER_SPAN = "00f067aa0ba902b7"
PUBLISHER = f"00-{TRACE_ID}-{PUBLISHER_SPAN}-01"
HEADER = re.compile(r"00-([0-9a-f]{32})-([0-9a-f]{16})-[0-9a-f]{2}")


@pytest.fixture
def exporter() -> InMemorySpanExporter:
    return InMemorySpanExporter()


@pytest.fixture
def server_config(server_config: Config, exporter: InMemorySpanExporter) -> Config:
    return replace(server_config, tracing=TracingConfig(processor=SimpleSpanProcessor(exporter)))


@pytest.fixture
def sink() -> Iterator[Sink]:
    with running_sink() as s:
        yield s


def publish(api: Api, *, metadata: tuple[tuple[str, str], ...] = (), traceparent: str = "") -> None:
    event = events_pb2.Event(
        company_id=8,
        project_id=6778,
        resource_name="RFIs",
        resource_id=1,
        event_type="create",
        user_id=5,
        traceparent=traceparent,
    )
    api.events.PublishEvents(events_pb2.PublishEventsRequest(events=[event]), metadata=metadata)


def until(ready: Callable[[], bool], why: str, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not ready():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {why}")
        time.sleep(0.02)


def trace_id(span: ReadableSpan) -> str:
    context = span.get_span_context()
    assert context is not None
    return f"{context.trace_id:032x}"


def span_id(span: ReadableSpan) -> str:
    context = span.get_span_context()
    assert context is not None
    return f"{context.span_id:016x}"


def spans(exporter: InMemorySpanExporter, count: int) -> list[ReadableSpan]:
    until(lambda: len(exporter.get_finished_spans()) >= count, f"{count} finished spans")
    found = list(exporter.get_finished_spans())
    assert len(found) == count
    return found


def test_an_attempt_continues_the_publishers_trace_and_passes_it_on(
    api: Api, sink: Sink, exporter: InMemorySpanExporter
) -> None:
    hook = make_hook(api, sink.url("/in"))
    publish(api, metadata=(("traceparent", PUBLISHER),))
    [span] = spans(exporter, 1)
    [request] = sink.requests

    assert span.kind is SpanKind.CLIENT
    assert span.name == "POST"
    assert trace_id(span) == TRACE_ID, "the attempt joins the publisher's trace"
    assert span.parent is not None
    assert f"{span.parent.span_id:016x}" == PUBLISHER_SPAN, "as a child of the publisher's span"
    assert dict(span.attributes or {}) == {
        "http.request.method": "POST",
        "server.address": "127.0.0.1",
        "server.port": sink.port,
        "url.full": sink.url("/in"),
        "http.response.status_code": 200,
        "tidings.hook": hook.name,
        "tidings.event.id": request.header("Tidings-Delivery-Id"),
        "tidings.attempt": 1,
    }
    assert span.status.status_code is StatusCode.UNSET

    header = request.header("traceparent")
    assert header is not None
    m = HEADER.fullmatch(header)
    assert m is not None, header
    assert m[1] == TRACE_ID, "the receiver's trace joins the publisher's"
    assert m[2] == span_id(span), "with the attempt's span as its parent"


def test_a_publishers_own_span_is_the_parent_of_the_attempt_and_of_the_receivers_request(
    api: Api, sink: Sink, exporter: InMemorySpanExporter
) -> None:
    """The publisher traces with OpenTelemetry too (its own provider and in-memory exporter) and
    propagates its span into the call's metadata the standard way: publisher span → attempt span
    → the request the receiver got, one trace."""
    publisher_spans = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(publisher_spans))
    make_hook(api, sink.url("/in"))
    with provider.get_tracer("publisher").start_as_current_span("publish RFI") as publishing:
        carrier: dict[str, str] = {}
        TraceContextTextMapPropagator().inject(carrier)
        publish(api, metadata=tuple(carrier.items()))
    provider.shutdown()
    [published] = publisher_spans.get_finished_spans()
    assert published.get_span_context() == publishing.get_span_context()
    [attempt] = spans(exporter, 1)
    assert trace_id(attempt) == trace_id(published)
    assert attempt.parent is not None
    assert f"{attempt.parent.span_id:016x}" == span_id(published)
    header = sink.requests[0].header("traceparent")
    assert header is not None
    m = HEADER.fullmatch(header)
    assert m is not None, header
    assert (m[1], m[2]) == (trace_id(published), span_id(attempt))


def test_each_retry_is_a_span_of_its_own_under_the_same_parent(
    api: Api, sink: Sink, exporter: InMemorySpanExporter
) -> None:
    sink.answers["/flaky"] = [503, 200]
    make_hook(api, sink.url("/flaky"))
    publish(api, traceparent=PUBLISHER)
    first, second = sorted(spans(exporter, 2), key=lambda s: s.start_time or 0)
    assert [s.attributes["http.response.status_code"] for s in (first, second) if s.attributes] == [503, 200]
    assert [s.attributes["tidings.attempt"] for s in (first, second) if s.attributes] == [1, 2]
    for span in (first, second):
        assert span.parent is not None
        assert f"{span.parent.span_id:016x}" == PUBLISHER_SPAN
    assert first.status.status_code is StatusCode.ERROR
    assert (first.attributes or {})["error.type"] == "503"
    headers = [r.header("traceparent") for r in sink.requests]
    assert headers[0] != headers[1], "each attempt passes on its own span"


def test_an_events_own_traceparent_wins_over_the_calls(api: Api, sink: Sink, exporter: InMemorySpanExporter) -> None:
    make_hook(api, sink.url("/in"))
    other = f"00-{'1' * 32}-{'2' * 16}-01"
    publish(api, metadata=(("traceparent", PUBLISHER),), traceparent=other)
    [span] = spans(exporter, 1)
    assert trace_id(span) == "1" * 32


def test_without_a_trace_context_an_attempt_starts_a_trace(
    api: Api, sink: Sink, exporter: InMemorySpanExporter
) -> None:
    make_hook(api, sink.url("/in"))
    publish(api, metadata=(("traceparent", "00-zz-not-valid"),))  # ignored, as W3C asks of receivers
    [span] = spans(exporter, 1)
    assert span.parent is None
    header = sink.requests[0].header("traceparent")
    assert header is not None
    assert HEADER.fullmatch(header)


@pytest.mark.parametrize(
    "value",
    [
        "not-a-traceparent",
        f"ff-{TRACE_ID}-{PUBLISHER_SPAN}-01",  # version ff is invalid
        f"00-{'0' * 32}-{PUBLISHER_SPAN}-01",  # all-zero trace id
        f"00-{TRACE_ID}-{'0' * 16}-01",  # all-zero parent id
        f"00-{TRACE_ID.upper()}-{PUBLISHER_SPAN}-01",  # upper case hex
        f"00-{TRACE_ID}-{PUBLISHER_SPAN}-01-extra",  # version 00 has exactly four fields
    ],
)
def test_a_malformed_event_traceparent_is_refused_naming_the_field(api: Api, value: str) -> None:
    with pytest.raises(grpc.RpcError) as caught:
        publish(api, traceparent=value)
    assert caught.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    details = caught.value.details() or ""
    assert details.startswith("events[0].traceparent: ")
    assert "W3C traceparent" in details


def test_a_later_trace_context_version_is_accepted_by_its_first_fields(
    api: Api, sink: Sink, exporter: InMemorySpanExporter
) -> None:
    make_hook(api, sink.url("/in"))
    publish(api, traceparent=f"01-{TRACE_ID}-{PUBLISHER_SPAN}-01-future")
    [span] = spans(exporter, 1)
    assert trace_id(span) == TRACE_ID


def test_no_tracing_no_header(server_config: Config, sink: Sink) -> None:
    server = ServerThread(replace(server_config, tracing=TracingConfig())).start()
    try:
        api = Api.connect(server.port)
        make_hook(api, sink.url("/in"))
        publish(api, traceparent=PUBLISHER)
        until(lambda: len(sink.requests) == 1, "the delivery")
        assert sink.requests[0].header("traceparent") is None
        api.channel.close()
    finally:
        server.stop()


def test_spans_are_exported_over_otlp_to_the_configured_endpoint(server_config: Config, sink: Sink) -> None:
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

    with running_sink() as collector:
        config = replace(server_config, tracing=TracingConfig(otlp_endpoint=collector.url("/v1/traces")))
        server = ServerThread(config).start()
        try:
            api = Api.connect(server.port)
            make_hook(api, sink.url("/in"))
            publish(api, traceparent=PUBLISHER)
            until(lambda: len(sink.requests) == 1, "the delivery")
            api.channel.close()
        finally:
            server.stop()  # flushes what the batch processor holds
        exported = [
            span
            for request in collector.requests
            for resource in ExportTraceServiceRequest.FromString(request.body).resource_spans
            for scope in resource.scope_spans
            for span in scope.spans
        ]
    assert collector.requests[0].header("Content-Type") == "application/x-protobuf"
    [span] = exported
    assert span.trace_id.hex() == TRACE_ID
    assert span.parent_span_id.hex() == PUBLISHER_SPAN
    assert span.name == "POST"
