"""Prometheus metrics of a real server, scraped over HTTP during deliveries and checked against
what the receiver saw."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import replace

import grpc
import httpx
import pytest
from google.protobuf import field_mask_pb2
from prometheus_client.parser import text_string_to_metric_families

from tests.api.test_deliveries import PROJECT, make_hook, publish
from tests.harness import Api, ServerThread
from tests.http_sink import HeldReceiver, Sink, running_sink
from tidings.v1 import deliveries_pb2, events_pb2, hooks_pb2
from tidings_server.app import Config
from tidings_server.delivery.breaker import BreakerConfig
from tidings_server.telemetry.metrics import MetricsConfig

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


@pytest.fixture
def server_config(server_config: Config) -> Config:
    return replace(server_config, metrics=MetricsConfig(listen="127.0.0.1:0", queue_sample_every=0.1))


def scrape(server: ServerThread) -> Samples:
    assert server.running is not None
    assert server.running.metrics_port is not None
    reply = httpx.get(f"http://127.0.0.1:{server.running.metrics_port}/metrics", timeout=5)
    assert reply.status_code == 200
    assert reply.headers["content-type"].startswith("text/plain")
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(reply.text)
        for sample in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def total(samples: Samples, name: str, **labels: str) -> float:
    """The sum over every series of ``name`` whose labels include ``labels``."""
    want = set(labels.items())
    return sum(v for (n, have), v in samples.items() if n == name and want <= have)


def until(ready: Callable[[], bool], why: str, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not ready():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {why}")
        time.sleep(0.05)


@pytest.fixture
def sink() -> Iterator[Sink]:
    with running_sink() as s:
        yield s


def test_metrics_count_what_the_receiver_saw(server: ServerThread, api: Api) -> None:
    with running_sink() as sink:
        sink.answers["/fails"] = [400]
        sink.answers["/flaky"] = [503, 200]
        ok = make_hook(api, sink.url("/ok"))
        failing = make_hook(api, sink.url("/fails"))
        flaky = make_hook(api, sink.url("/flaky"))
        events = [("RFIs", n, "create") for n in range(1, 21)]
        publish(api, *events[:10])
        publish(api, *events[10:])
        with pytest.raises(grpc.RpcError) as refused:  # a call refused is timed too, as an error
            api.events.PublishEvents(
                events_pb2.PublishEventsRequest(events=[events_pb2.Event(company_id=8, traceparent="bad")])
            )
        assert refused.value.code() is grpc.StatusCode.INVALID_ARGUMENT
        until(lambda: len(sink.received) == 20 * 3 + 1, "every attempt at the receiver")
        until(
            lambda: total(scrape(server), "tidings_deliveries_total") == 61,
            "every attempt recorded in the metrics",
        )
        samples = scrape(server)

    assert value(samples, "tidings_events_published_total") == 20
    assert value(samples, "tidings_published_deliveries_total") == 60
    # 20 + 19 delivered at first try, one flaky delivery retried once then delivered.
    assert value(samples, "tidings_deliveries_total", outcome="delivered", payload_format="procore.v4") == 40
    assert value(samples, "tidings_deliveries_total", outcome="failed", payload_format="procore.v4") == 20
    assert value(samples, "tidings_deliveries_total", outcome="retried", payload_format="procore.v4") == 1
    assert value(samples, "tidings_hook_deliveries_total", hook=ok.name, outcome="delivered") == 20
    assert value(samples, "tidings_hook_deliveries_total", hook=failing.name, outcome="failed") == 20
    assert value(samples, "tidings_hook_deliveries_total", hook=flaky.name, outcome="retried") == 1
    # One attempt observed per request the receiver answered, by the class of its answer.
    count = "http_client_request_duration_seconds_count"
    assert value(samples, count, http_response_status_class="2xx") == 40
    assert value(samples, count, http_response_status_class="4xx") == 20
    assert value(samples, count, http_response_status_class="5xx") == 1
    # The same observations under the tidings name, sums included.
    for status_class in ("2xx", "4xx", "5xx"):
        for suffix in ("_count", "_sum"):
            assert value(samples, f"tidings_attempt_duration_seconds{suffix}", status_class=status_class) == value(
                samples, f"http_client_request_duration_seconds{suffix}", http_response_status_class=status_class
            )
    assert value(samples, "tidings_publish_events_duration_seconds_count", result="ok") == 2
    assert value(samples, "tidings_publish_events_duration_seconds_count", result="error") == 1
    # A whole call takes at least as long as its durable part.
    assert value(samples, "tidings_publish_events_duration_seconds_sum", result="ok") >= value(
        samples, "tidings_store_operation_duration_seconds_sum", operation="publish_events"
    )
    assert value(samples, "tidings_delivery_latency_seconds_count") == 40
    assert value(samples, "tidings_delivery_latency_seconds_sum") > 0
    assert value(samples, "tidings_store_operation_duration_seconds_count", operation="publish_events") == 2
    assert value(samples, "tidings_store_operation_duration_seconds_count", operation="record_attempts") >= 1
    assert value(samples, "tidings_attempts_in_flight") == 0
    assert value(samples, "tidings_watch_streams") == 0
    assert value(samples, "tidings_circuits_open") == 0
    assert value(samples, "tidings_rate_limited_hooks") == 0
    assert value(samples, "process_resident_memory_bytes") > 0


def set_status(api: Api, name: str, status: hooks_pb2.HookStatus.ValueType) -> None:
    api.hooks.UpdateHook(
        hooks_pb2.UpdateHookRequest(
            hook=hooks_pb2.Hook(name=name, status=status), update_mask=field_mask_pb2.FieldMask(paths=["status"])
        )
    )


def test_queue_depth_shows_a_paused_hooks_backlog_and_its_age(server: ServerThread, api: Api, sink: Sink) -> None:
    hook = make_hook(api, sink.url("/in"))
    set_status(api, hook.name, hooks_pb2.HOOK_STATUS_PAUSED)
    publish(api, ("RFIs", 1, "create"), ("RFIs", 2, "create"), ("RFIs", 3, "create"))
    until(lambda: value(scrape(server), "tidings_deliveries_due") == 3, "the backlog sampled")
    until(lambda: value(scrape(server), "tidings_oldest_due_age_seconds") >= 0.2, "the backlog ageing")
    set_status(api, hook.name, hooks_pb2.HOOK_STATUS_ACTIVE)
    until(lambda: len(sink.received) == 3, "the backlog delivered")
    until(lambda: value(scrape(server), "tidings_deliveries_due") == 0, "an empty queue sampled")
    assert value(scrape(server), "tidings_oldest_due_age_seconds") == 0


def test_hook_labels_can_be_switched_off(server_config: Config) -> None:
    config = replace(server_config, metrics=replace(server_config.metrics, hook_labels=False))
    server = ServerThread(config).start()
    try:
        api = Api.connect(server.port)
        with running_sink() as sink:
            make_hook(api, sink.url("/in"), parent=PROJECT)
            publish(api, ("RFIs", 1, "create"))
            until(lambda: total(scrape(server), "tidings_deliveries_total") == 1, "the attempt recorded")
        samples = scrape(server)
        assert not [key for key in samples if key[0].startswith("tidings_hook_deliveries")]
        api.channel.close()
    finally:
        server.stop()


def test_no_metrics_endpoint_unless_asked(server_config: Config) -> None:
    server = ServerThread(replace(server_config, metrics=MetricsConfig())).start()
    try:
        assert server.running is not None
        assert server.running.metrics_port is None
    finally:
        server.stop()


def test_in_flight_and_watch_streams_are_what_is_open_at_the_scrape(server: ServerThread, api: Api) -> None:
    """Scraped while the receiver holds every request it got: the gauges count those, no more."""
    with HeldReceiver() as receiver:
        first = make_hook(api, receiver.url("/a"))
        make_hook(api, receiver.url("/b"))
        watch = api.deliveries.WatchDeliveries(deliveries_pb2.WatchDeliveriesRequest(parent=first.name))
        try:
            until(lambda: value(scrape(server), "tidings_watch_streams") == 1, "the watch stream counted")
            publish(api, ("RFIs", 1, "create"), ("RFIs", 2, "create"))
            until(lambda: receiver.waiting == 4, "two requests held at each path")
            samples = scrape(server)
            assert value(samples, "tidings_attempts_in_flight") == receiver.waiting == 4
            assert total(samples, "tidings_deliveries_total") == 0, "nothing recorded while all are in flight"
            receiver.release()
            until(lambda: total(scrape(server), "tidings_deliveries_total") == 4, "the four attempts recorded")
            assert value(scrape(server), "tidings_attempts_in_flight") == 0
        finally:
            watch.cancel()
        until(lambda: value(scrape(server), "tidings_watch_streams") == 0, "the closed stream no longer counted")
    assert receiver.answered == 4


def test_an_open_circuit_and_a_rate_limited_hook_are_counted(server_config: Config) -> None:
    breaker = BreakerConfig(consecutive=3, deactivate_after=None)
    config = replace(server_config, engine=replace(server_config.engine, breaker=breaker))
    server = ServerThread(config).start()
    try:
        api = Api.connect(server.port)
        with running_sink() as sink:
            sink.answers["/down"] = [503]
            make_hook(api, sink.url("/down"))
            limited = make_hook(api, sink.url("/slow"))
            api.hooks.UpdateHook(
                hooks_pb2.UpdateHookRequest(
                    hook=hooks_pb2.Hook(
                        name=limited.name, rate_limit=hooks_pb2.RateLimit(per_second=0.01, burst=1)
                    ),  # one send per 100 s
                    update_mask=field_mask_pb2.FieldMask(paths=["rate_limit"]),
                )
            )
            publish(api, *[("RFIs", n, "create") for n in range(1, 6)])
            until(lambda: value(scrape(server), "tidings_circuits_open") == 1, "the failing hook's circuit open")
            until(lambda: value(scrape(server), "tidings_rate_limited_hooks") == 1, "the limited hook counted")
            # The five published, and the server's own news that the circuit opened.
            until(lambda: value(scrape(server), "tidings_events_published_total") == 6, "circuit_opened counted")
            samples = scrape(server)
            assert sink.hits.get("/slow") == 1, "the limit let one send through"
            assert sink.hits.get("/down", 0) >= 3, "the circuit opened after three failures in a row"
            assert value(samples, "tidings_deliveries_total", outcome="delivered", payload_format="procore.v4") == 1
        api.channel.close()
    finally:
        server.stop()
