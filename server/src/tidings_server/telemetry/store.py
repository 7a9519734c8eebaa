"""A Store that counts what passes through it: the one place the metrics learn what happened.

Every delivery outcome is an ``AttemptRecord`` handed to ``record_attempts``, every claim comes
back from ``claim_due`` and every publish goes through ``publish_events``; observing those calls
gives the delivery counters and histograms without one line in the engine, the domain or any
backend, and it works the same over every backend (memory, SQLite, PostgreSQL, a plugin's).
Each operation is also timed. Methods are wrapped on first use, whatever the port grows.
"""

from __future__ import annotations

import functools
import inspect
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

from tidings_server.domain.model import DeliveryStatus
from tidings_server.domain.ports import AttemptRecord, Claim, Published, Store
from tidings_server.telemetry.metrics import Metrics

OUTCOMES = {
    DeliveryStatus.DELIVERED: "delivered",
    DeliveryStatus.RETRYING: "retried",
    DeliveryStatus.FAILED: "failed",
    DeliveryStatus.DISCARDED: "discarded",
}
# Claims whose record never came (an attempt cut short by a defect, a lease lost) are forgotten
# past this many, so the map of claims in flight can never grow without bound.
MAX_TRACKED_CLAIMS = 100_000


@dataclass(frozen=True, slots=True)
class _Claimed:
    hook: str
    payload_format: str
    publish_time: datetime
    redelivered: bool


def status_class(status: int | None) -> str:
    return "error" if not status else f"{status // 100}xx"


class ObservedStore:
    """Wraps ``inner``: every coroutine method is timed, and three of them feed the counters."""

    def __init__(self, inner: Store, metrics: Metrics) -> None:
        self._inner = inner
        self._metrics = metrics
        self._claimed: dict[str, _Claimed] = {}
        self._after: dict[str, Callable[[Any], None]] = {
            "claim_due": self._claims,
            "record_attempts": self._records,
            "publish_events": self._published,
        }

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._inner, name)
        if not inspect.iscoroutinefunction(attr) or name == "listen":  # listen runs as long as the server
            return attr
        timer = self._metrics.store_seconds.labels(name)
        after = self._after.get(name)
        argument_of_interest = name == "record_attempts"

        @functools.wraps(attr)
        async def timed(*args: Any, **kwargs: Any) -> Any:
            start = time.perf_counter()
            try:
                result = await attr(*args, **kwargs)
            finally:
                timer.observe(time.perf_counter() - start)
            if after is not None:
                after(args[0] if argument_of_interest else result)
            return result

        setattr(self, name, timed)  # found directly from now on, without __getattr__
        return timed

    def _claims(self, claims: Sequence[Claim]) -> None:
        if len(self._claimed) > MAX_TRACKED_CLAIMS:
            self._claimed.clear()
        for claim in claims:
            delivery = claim.delivery
            self._claimed[delivery.name] = _Claimed(
                claim.hook.name,
                claim.hook.payload_format,
                delivery.create_time,
                redelivered=delivery.first_attempt_time is None and delivery.attempt_count > 0,
            )

    def _records(self, records: Sequence[AttemptRecord]) -> None:
        metrics = self._metrics
        for record in records:
            claimed = self._claimed.pop(record.delivery_name, None)
            outcome = OUTCOMES.get(record.status, record.status.value)
            metrics.deliveries.labels(outcome, claimed.payload_format if claimed else "unknown").inc()
            if metrics.hook_deliveries is not None:
                hook = claimed.hook if claimed else record.delivery_name.rpartition("/deliveries/")[0]
                metrics.hook_deliveries.labels(metrics.hook_label(hook), outcome).inc()
            attempt = record.attempt
            seconds = attempt.duration.total_seconds()
            metrics.observe_attempt(status_class(attempt.response_status), seconds)
            if record.status is DeliveryStatus.DELIVERED and claimed is not None and not claimed.redelivered:
                metrics.latency_seconds.observe((attempt.end_time - claimed.publish_time).total_seconds())

    def _published(self, results: Sequence[Published]) -> None:
        fresh = [r for r in results if not r.duplicate]
        self._metrics.events_published.inc(len(fresh))
        self._metrics.deliveries_created.inc(sum(r.deliveries for r in fresh))


def observed(store: Store, metrics: Metrics) -> Store:
    """``store`` as the rest of the server sees it once metrics are on."""
    return cast(Store, ObservedStore(store, metrics))
