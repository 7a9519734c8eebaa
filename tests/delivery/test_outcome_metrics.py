"""Delivery metrics in virtual time: outcomes that take hours on a real server (a retry window
running out) and latencies known to the second, read from the server's own registry."""

from __future__ import annotations

import pytest
import trio
from trio.testing import MockClock

from tests.delivery.test_engine import DEFAULT_SCHEDULE
from tests.delivery.world import rfi, world
from tests.receivers import Reply, ScriptedReceiver
from tidings_server.domain.model import DeliveryStatus
from tidings_server.telemetry import metrics as metrics_module
from tidings_server.telemetry.metrics import OTHER_HOOKS, Metrics


def sample(metrics: Metrics, name: str, **labels: str) -> float:
    return metrics.registry.get_sample_value(name, labels) or 0.0


async def test_a_retry_window_running_out_counts_every_retry_and_one_discard(
    autojump_clock: MockClock, nursery: trio.Nursery
) -> None:
    receiver = await nursery.start(ScriptedReceiver(default=Reply(500)).run)
    metrics = Metrics()
    async with world(metrics=metrics) as w:
        hook = await w.hook(receiver.url())
        await w.publish(rfi())
        [delivery] = await w.settle(hook)
    assert delivery.status is DeliveryStatus.DISCARDED
    attempts = len(DEFAULT_SCHEDULE)
    assert len(receiver.requests) == attempts
    fmt = {"payload_format": "procore.v4"}
    assert sample(metrics, "tidings_deliveries_total", outcome="retried", **fmt) == attempts - 1
    assert sample(metrics, "tidings_deliveries_total", outcome="discarded", **fmt) == 1
    assert sample(metrics, "tidings_deliveries_total", outcome="delivered", **fmt) == 0
    assert sample(metrics, "tidings_hook_deliveries_total", hook=hook.name, outcome="discarded") == 1
    count = "http_client_request_duration_seconds_count"
    assert sample(metrics, count, http_response_status_class="5xx") == attempts
    assert sample(metrics, "tidings_attempt_duration_seconds_count", status_class="5xx") == attempts
    assert sample(metrics, "tidings_delivery_latency_seconds_count") == 0, "never delivered"


async def test_latency_runs_from_publish_to_the_attempt_that_delivered(
    autojump_clock: MockClock, nursery: trio.Nursery
) -> None:
    """Two failures, then a success: the default backoff waits 1 s then 2 s, so the delivery
    arrives exactly 3 s after its publish (attempts take no virtual time)."""
    receiver = await nursery.start(ScriptedReceiver(Reply(503), Reply(502), default=Reply(200)).run)
    metrics = Metrics()
    async with world(metrics=metrics) as w:
        hook = await w.hook(receiver.url())
        await w.publish(rfi())
        [delivery] = await w.settle(hook)
    assert delivery.status is DeliveryStatus.DELIVERED
    assert [r.time - receiver.requests[0].time for r in receiver.requests] == DEFAULT_SCHEDULE[:3]
    assert sample(metrics, "tidings_deliveries_total", outcome="retried", payload_format="procore.v4") == 2
    assert sample(metrics, "tidings_deliveries_total", outcome="delivered", payload_format="procore.v4") == 1
    assert sample(metrics, "tidings_delivery_latency_seconds_count") == 1
    assert sample(metrics, "tidings_delivery_latency_seconds_sum") == DEFAULT_SCHEDULE[2] == 3
    # 3 s falls in the bucket up to 5 s, not in the one up to 1 s.
    assert sample(metrics, "tidings_delivery_latency_seconds_bucket", le="1.0") == 0
    assert sample(metrics, "tidings_delivery_latency_seconds_bucket", le="5.0") == 1
    assert sample(metrics, "tidings_events_published_total") == 1
    assert sample(metrics, "tidings_published_deliveries_total") == 1


async def test_hooks_past_the_label_bound_count_as_other(
    autojump_clock: MockClock, nursery: trio.Nursery, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The first hooks seen get a series each, up to the bound; the rest share ``(other)``, so
    the series stay bounded however many hooks there are (the bound is made 3 here, of 5 hooks)."""
    monkeypatch.setattr(metrics_module, "MAX_HOOK_LABELS", 3)
    receiver = await nursery.start(ScriptedReceiver(default=Reply(200)).run)
    metrics = Metrics()
    async with world(metrics=metrics) as w:
        hooks = [await w.hook(receiver.url(f"/{n}")) for n in range(5)]
        await w.publish(rfi(1), rfi(2))
        for hook in hooks:
            await w.settle(hook, 2)
    series = {
        sample.labels["hook"]: sample.value
        for family in metrics.registry.collect()
        for sample in family.samples
        if sample.name == "tidings_hook_deliveries_total"
    }
    named = {name for name in series if name != OTHER_HOOKS}
    assert len(named) == 3
    assert named <= {h.name for h in hooks}
    assert all(series[name] == 2 for name in named)
    assert series[OTHER_HOOKS] == 4, "the two hooks past the bound, two deliveries each"
    assert sample(metrics, "tidings_deliveries_total", outcome="delivered", payload_format="procore.v4") == 10
