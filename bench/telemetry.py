"""Telemetry cost per attempt: what tracing and the metrics' store observer add, in CPU µs.

Each figure is the median of ``--runs`` rounds of ``--attempts`` iterations, timed with the
process CPU clock, beside a baseline measured in the same round: the same call with telemetry
off. Run: ``python -m bench telemetry``.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import trio
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult

from tidings_server.domain.model import Attempt, DeliveryStatus, Event, Hook
from tidings_server.domain.ports import AttemptRecord
from tidings_server.telemetry.metrics import Metrics
from tidings_server.telemetry.store import ObservedStore
from tidings_server.telemetry.tracing import TracingConfig, tracer
from tidings_server.testing.stores.samples import make_event, make_hook


class _Discard(SpanExporter):
    def export(self, spans: object) -> SpanExportResult:
        return SpanExportResult.SUCCESS


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--attempts", type=int, default=20_000)
    parser.add_argument("--runs", type=int, default=5)


def _cpu_us_per(fn: Callable[[], None], n: int) -> float:
    start = time.process_time()
    for _ in range(n):
        fn()
    return (time.process_time() - start) / n * 1e6


class _Inner:
    async def record_attempts(self, records: object) -> None:
        return None


def run(args: argparse.Namespace) -> int:
    event: Event = make_event(1, traceparent="00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
    hook: Hook = make_hook("companies/1/projects/2/hooks/h", destination_url="https://example.test/in")
    traced = tracer(TracingConfig(processor=BatchSpanProcessor(_Discard())), "bench")
    off: object = None

    def tracing_off() -> None:
        if off is not None:
            raise AssertionError

    def tracing_on() -> None:
        traced.start(event, hook, 1).end(200, "")

    now = datetime(2026, 1, 1, tzinfo=UTC)
    attempt = Attempt(1, now, now + timedelta(milliseconds=3), (), 200, (), b"", "")
    records = [
        AttemptRecord(f"{hook.name}/deliveries/{n}", attempt, DeliveryStatus.DELIVERED, None, "") for n in range(64)
    ]
    plain = _Inner()
    observed = ObservedStore(plain, Metrics())  # type: ignore[arg-type]

    def record_plain() -> None:
        trio.run(plain.record_attempts, records)

    def record_observed() -> None:
        trio.run(observed.record_attempts, records)

    rows: dict[str, list[float]] = {"tracing off": [], "tracing on": [], "record x64": [], "record x64 observed": []}
    for _ in range(args.runs):
        rows["tracing off"].append(_cpu_us_per(tracing_off, args.attempts))
        rows["tracing on"].append(_cpu_us_per(tracing_on, args.attempts))
        rows["record x64"].append(_cpu_us_per(record_plain, args.attempts // 64))
        rows["record x64 observed"].append(_cpu_us_per(record_observed, args.attempts // 64))
    traced.close()
    medians = {name: statistics.median(values) for name, values in rows.items()}
    print(f"{'what':<22}{'CPU µs':>10}")
    for name, value in medians.items():
        print(f"{name:<22}{value:>10.2f}")
    print(f"tracing adds {medians['tracing on'] - medians['tracing off']:.1f} µs per attempt when on")
    per = (medians["record x64 observed"] - medians["record x64"]) / 64
    print(f"the metrics observer adds {per:.2f} µs per recorded attempt")
    return 0
