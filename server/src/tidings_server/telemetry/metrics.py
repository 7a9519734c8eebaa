"""Prometheus metrics of one server: what it delivers, how fast, and how much is waiting.

Each server has its own registry (tests run several servers in one process) with the process,
platform and garbage-collector collectors beside tidings' own. The numbers are fed by the
observing store (``telemetry.store``), which sees every claim, record and publish go by, and by
a sampler task that reads the queue depth from the store every few seconds; gauges of what
lives in memory (attempts in flight, open watch streams) are read when scraped.

Names follow Prometheus conventions: base units in the name, ``_total`` on counters. Attempt
durations are one observation under two names: OpenTelemetry's ``http.client.request.duration``
as OpenTelemetry's Prometheus exporter spells it (``http_client_request_duration_seconds``), for
dashboards built on the semantic conventions, and ``tidings_attempt_duration_seconds`` beside
the other tidings metrics.
Hook names are labels only on ``tidings_hook_deliveries_total``, which can be switched off and
tracks at most ``MAX_HOOK_LABELS`` hooks (the rest count as ``(other)``), so a server with
thousands of hooks never produces thousands of series by accident.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from wsgiref.simple_server import WSGIServer

import trio
from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    start_http_server,
)
from prometheus_client.gc_collector import GCCollector
from prometheus_client.platform_collector import PlatformCollector
from prometheus_client.process_collector import ProcessCollector

from tidings_server.delivery.clock import Clock
from tidings_server.domain.ports import Store

log = logging.getLogger(__name__)

MAX_HOOK_LABELS = 200
OTHER_HOOKS = "(other)"
# Attempts: loopback answers in a millisecond, the default timeout is 5 s, the longest 30 s.
ATTEMPT_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
# Publish to delivered: milliseconds when all is well, up to the 12 h retry window when not.
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0, 30.0, 60.0, 300.0, 3600.0, 43200.0)
STORE_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0)
QUEUE_SAMPLE_LIMIT = 1_000_000


@dataclass(frozen=True, slots=True)
class MetricsConfig:
    """Where metrics are served (None: not at all) and whether hook names may be labels."""

    listen: str | None = None
    hook_labels: bool = True
    queue_sample_every: float = 5.0


class Metrics:
    """The metric objects of one server, in its own registry."""

    def __init__(self, *, hook_labels: bool = True) -> None:
        self.registry = CollectorRegistry()
        ProcessCollector(registry=self.registry)
        PlatformCollector(registry=self.registry)
        GCCollector(registry=self.registry)
        r = self.registry
        self.deliveries = Counter(
            "tidings_deliveries",
            "Attempts recorded, by what they did to their delivery: delivered, retried, failed or discarded.",
            ["outcome", "payload_format"],
            registry=r,
        )
        self.hook_deliveries: Counter | None = (
            Counter(
                "tidings_hook_deliveries",
                f"Attempts recorded per hook and outcome (at most {MAX_HOOK_LABELS} hooks; the rest are"
                f" {OTHER_HOOKS}).",
                ["hook", "outcome"],
                registry=r,
            )
            if hook_labels
            else None
        )
        self.attempt_seconds = Histogram(
            "http_client_request_duration_seconds",
            "Duration of delivery attempts (OpenTelemetry http.client.request.duration), by response status"
            " class (2xx, 3xx, 4xx, 5xx, or error when nothing answered).",
            ["http_response_status_class"],
            buckets=ATTEMPT_BUCKETS,
            registry=r,
        )
        self.tidings_attempt_seconds = Histogram(
            "tidings_attempt_duration_seconds",
            "Duration of delivery attempts, by response status class (2xx, 3xx, 4xx, 5xx, or error when nothing"
            " answered); the same observations as http_client_request_duration_seconds.",
            ["status_class"],
            buckets=ATTEMPT_BUCKETS,
            registry=r,
        )
        self.latency_seconds = Histogram(
            "tidings_delivery_latency_seconds",
            "From publish to delivered, retries included (manual redeliveries are left out).",
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.events_published = Counter(
            "tidings_events_published",
            "Events stored: PublishEvents' and the server's own operational events (a circuit opened, a hook"
            " disabled); retried duplicates left out.",
            registry=r,
        )
        self.deliveries_created = Counter(
            "tidings_published_deliveries", "Deliveries created by publishing, one per matching hook.", registry=r
        )
        self.publish_seconds = Histogram(
            "tidings_publish_events_duration_seconds",
            "Duration of PublishEvents calls as the server handled them, decoding to reply, by result (ok, or"
            " error when the call was refused or failed).",
            ["result"],
            buckets=STORE_BUCKETS,
            registry=r,
        )
        self.store_seconds = Histogram(
            "tidings_store_operation_duration_seconds",
            "Duration of store operations; publish_events is the durable part of PublishEvents.",
            ["operation"],
            buckets=STORE_BUCKETS,
            registry=r,
        )
        self.due = Gauge(
            "tidings_deliveries_due",
            f"Pending deliveries due now and not in flight, sampled (counted up to {QUEUE_SAMPLE_LIMIT}).",
            registry=r,
        )
        self.oldest_due_age = Gauge(
            "tidings_oldest_due_age_seconds",
            "How long the oldest due delivery has waited past its due time, sampled (0 when none is due).",
            registry=r,
        )
        self.in_flight = Gauge("tidings_attempts_in_flight", "Delivery attempts running now.", registry=r)
        self.watch_streams = Gauge("tidings_watch_streams", "WatchDeliveries streams open now.", registry=r)
        self.circuits_open = Gauge(
            "tidings_circuits_open",
            "Hooks whose circuit breaker on this server is open (their endpoint fails steadily: one probe at a time).",
            registry=r,
        )
        self.rate_limited_hooks = Gauge(
            "tidings_rate_limited_hooks",
            "Hooks whose rate limit held a delivery back on this server within the last minute.",
            registry=r,
        )
        self._hooks_seen: set[str] = set()
        self._attempt_series: dict[str, tuple[Histogram, Histogram]] = {}

    def hook_label(self, hook: str) -> str:
        """The hook's own name while fewer than ``MAX_HOOK_LABELS`` are tracked, else ``(other)``."""
        if hook in self._hooks_seen:
            return hook
        if len(self._hooks_seen) < MAX_HOOK_LABELS:
            self._hooks_seen.add(hook)
            return hook
        return OTHER_HOOKS

    def observe_attempt(self, status_class: str, seconds: float) -> None:
        """One attempt's duration, under both of its names (each class's two series are looked
        up once: a labels() call takes a lock and builds a key, every attempt)."""
        pair = self._attempt_series.get(status_class)
        if pair is None:
            pair = self._attempt_series[status_class] = (
                self.attempt_seconds.labels(status_class),
                self.tidings_attempt_seconds.labels(status_class),
            )
        pair[0].observe(seconds)
        pair[1].observe(seconds)

    def observe_publish(self, seconds: float, ok: bool) -> None:
        self.publish_seconds.labels("ok" if ok else "error").observe(seconds)

    def read_gauges(
        self,
        *,
        in_flight: Callable[[], int],
        watch_streams: Callable[[], int],
        circuits_open: Callable[[], int] = lambda: 0,
        rate_limited_hooks: Callable[[], int] = lambda: 0,
    ) -> None:
        """Gauges of what lives in memory are read at scrape time from these."""
        self.in_flight.set_function(lambda: float(in_flight()))
        self.watch_streams.set_function(lambda: float(watch_streams()))
        self.circuits_open.set_function(lambda: float(circuits_open()))
        self.rate_limited_hooks.set_function(lambda: float(rate_limited_hooks()))


async def sample_queue(
    metrics: Metrics,
    store: Store,
    clock: Clock,
    every: float,
    *,
    task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Read the queue depth every ``every`` seconds until cancelled; a failing read keeps the last."""
    task_status.started()
    while True:
        now = clock.now()
        try:
            depth = await store.queue_depth(now, limit=QUEUE_SAMPLE_LIMIT)
        except Exception:  # a store that is away must not end the sampling, nor the server
            log.warning("queue depth not sampled", exc_info=True)
        else:
            metrics.due.set(depth.due)
            age = 0.0 if depth.oldest_due_time is None else (now - depth.oldest_due_time).total_seconds()
            metrics.oldest_due_age.set(max(age, 0.0))
        await trio.sleep(every)


@dataclass
class MetricsEndpoint:
    """The HTTP server that answers scrapes, on a thread of its own (prometheus_client's)."""

    server: WSGIServer
    thread: threading.Thread
    port: int = field(init=False)

    def __post_init__(self) -> None:
        self.port = self.server.server_port

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(5)


def serve_metrics(metrics: Metrics, listen: str) -> MetricsEndpoint:
    """Start answering scrapes on ``listen`` (HOST:PORT, port 0 picks one)."""
    host, _, port = listen.rpartition(":")
    server, thread = start_http_server(int(port), host.strip("[]") or "127.0.0.1", registry=metrics.registry)
    return MetricsEndpoint(server, thread)
