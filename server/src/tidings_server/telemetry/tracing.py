"""OpenTelemetry traces of delivery attempts, continuing the publisher's trace.

An event stores the W3C ``traceparent`` it was published under. Each attempt becomes one HTTP
client span, a child of that context (a root span when there is none), with the semantic
convention attributes, and the POST carries the span's own ``traceparent``: the receiver's
trace joins the publisher's. OpenTelemetry is an optional extra (``tidings-server[otel]``) and
is imported only when tracing is configured; when it is not, the engine holds no tracer and an
attempt pays one ``is None`` test.
"""

from __future__ import annotations

import contextlib
import importlib.util
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol
from urllib.parse import urlsplit, urlunsplit

from tidings_server.domain.model import Event, Hook

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import SpanProcessor

EXTRA = "tidings-server[otel]"


class AttemptSpan(Protocol):
    """One attempt being traced: the header value the POST carries, and how to end it."""

    traceparent: str

    def end(self, status: int | None, error: str) -> None: ...


class AttemptTracer(Protocol):
    def start(self, event: Event, hook: Hook, attempt: int) -> AttemptSpan: ...

    def close(self) -> None:
        """Export what is left and stop."""


@dataclass(frozen=True, slots=True)
class TracingConfig:
    """Where spans go: an OTLP/HTTP endpoint, or a span processor (tests pass an in-memory one)."""

    otlp_endpoint: str | None = None
    processor: SpanProcessor | None = None

    @property
    def enabled(self) -> bool:
        return self.otlp_endpoint is not None or self.processor is not None


class TracingUnavailable(Exception):
    """Tracing was asked for but its optional dependencies are not installed."""


def available() -> bool:
    return importlib.util.find_spec("opentelemetry.sdk") is not None


def _safe_url(url: str) -> tuple[str, str, int | None]:
    """``url.full`` without credentials (the semantic conventions ask for them to be removed),
    the host and the port."""
    parts = urlsplit(url)
    netloc = parts.hostname or ""
    if ":" in netloc:
        netloc = f"[{netloc}]"
    if parts.port is not None:
        netloc += f":{parts.port}"
    port = parts.port or {"http": 80, "https": 443}.get(parts.scheme)
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, "")), parts.hostname or "", port


def tracer(config: TracingConfig, version: str) -> AttemptTracer:
    """An OpenTelemetry tracer exporting as ``config`` says."""
    if not available():
        raise TracingUnavailable(f"tracing needs OpenTelemetry: pip install '{EXTRA}'")
    return _OtelTracer(config, version)


class _OtelTracer:
    def __init__(self, config: TracingConfig, version: str) -> None:
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor
        from opentelemetry.trace import SpanKind, Status, StatusCode, set_span_in_context
        from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

        self._provider = TracerProvider(
            resource=Resource.create({"service.name": "tidings", "service.version": version})
        )
        processor = config.processor
        if processor is None:
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

            processor = BatchSpanProcessor(OTLPSpanExporter(endpoint=config.otlp_endpoint))
        self._provider.add_span_processor(processor)
        self._tracer = self._provider.get_tracer("tidings_server.delivery", version)
        self._propagator = TraceContextTextMapPropagator()
        self._kind = SpanKind.CLIENT
        self._set = set_span_in_context
        self._status = Status
        self._error = StatusCode.ERROR

    def start(self, event: Event, hook: Hook, attempt: int) -> AttemptSpan:
        parent = self._propagator.extract({"traceparent": event.traceparent}) if event.traceparent else None
        url, host, port = _safe_url(hook.destination_url)
        attributes: dict[str, Any] = {
            "http.request.method": "POST",
            "server.address": host,
            "url.full": url,
            "tidings.hook": hook.name,
            "tidings.event.id": event.id,
            "tidings.attempt": attempt,
        }
        if port is not None:
            attributes["server.port"] = port
        span = self._tracer.start_span("POST", context=parent, kind=self._kind, attributes=attributes)
        carrier: dict[str, str] = {}
        self._propagator.inject(carrier, context=self._set(span))
        return _OtelSpan(span, carrier["traceparent"], self._status, self._error)

    def close(self) -> None:
        with contextlib.suppress(Exception):  # an exporter that cannot flush must not block a stop
            self._provider.shutdown()


class _OtelSpan:
    __slots__ = ("_error", "_span", "_status", "traceparent")

    def __init__(self, span: Any, traceparent: str, status: Any, error: Any) -> None:
        self._span = span
        self.traceparent = traceparent
        self._status = status
        self._error = error

    def end(self, status: int | None, error: str) -> None:
        span = self._span
        if status is not None:
            span.set_attribute("http.response.status_code", status)
        if error:
            # error.type: the status code for an answer, else what went wrong before one.
            span.set_attribute("error.type", str(status) if status else "tidings.attempt_failed")
            span.set_status(self._status(self._error, error[:200]))
        span.end()
