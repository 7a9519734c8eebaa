"""Client behaviour against a scripted DeliveryService: paging, watch resume, retries, TLS, token.

The scripted server answers what each test says; the assertions are about what the client did
with it and what it sent (see tests/client/scripted.py).
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import grpc
import pytest
import trustme

from tests.client.scripted import HOOK, T0, ScriptedServer, Stream, change, delivery, overview
from tidings.v1 import deliveries_pb2
from tidings_client import (
    AsyncClient,
    Client,
    DeadlineExceeded,
    DeliveryFilter,
    DeliveryStatus,
    DeliveryView,
    Event,
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    Options,
    OutOfRange,
    Retry,
    Tls,
    Unavailable,
)

FAST = Retry(max_attempts=4, initial_backoff=0.02, max_backoff=0.1)
DELIVERED = deliveries_pb2.DELIVERY_STATUS_DELIVERED
FAILED = deliveries_pb2.DELIVERY_STATUS_FAILED
RETRYING = deliveries_pb2.DELIVERY_STATUS_RETRYING


@pytest.fixture
def client(scripted: ScriptedServer) -> Iterator[Client]:
    with Client(options=Options(target=scripted.target, retry=FAST, token="s3cret", timeout=5)) as c:
        yield c


def test_list_deliveries_pages_through_empty_pages(client: Client, scripted: ScriptedServer) -> None:
    script = scripted.service.script
    script.deliveries = [delivery(n) for n in range(7, 2, -1)]
    script.empty_pages = [False, True, True, False, False]  # a sparse filter: pages with nothing, token set
    where = DeliveryFilter(
        resource_id=54321,
        resource_name="RFIs",
        statuses=(DeliveryStatus.FAILED, DeliveryStatus.DISCARDED),
        event_type="update",
        start_time=T0,
        end_time=T0 + timedelta(days=1),
        filter="response_status >= 500",
    )
    got = list(client.list_deliveries(HOOK, where, page_size=2))
    assert [d.event.resource_id for d in got if d.event] == [54007, 54006, 54005, 54004, 54003]
    requests = scripted.service.requests("ListDeliveries")
    assert [r.page_token for r in requests] == ["", "2", "2", "2", "4"]  # type: ignore[attr-defined]
    for r in requests:  # every page carries the same filters
        assert isinstance(r, deliveries_pb2.ListDeliveriesRequest)
        assert (r.parent, r.resource_id, r.resource_name, r.event_type) == (HOOK, 54321, "RFIs", "update")
        assert list(r.statuses) == [FAILED, deliveries_pb2.DELIVERY_STATUS_DISCARDED]
        assert r.start_time.ToDatetime(tzinfo=UTC) == T0
        assert r.end_time.ToDatetime(tzinfo=UTC) == T0 + timedelta(days=1)
        assert r.filter == "response_status >= 500"
        assert r.view == deliveries_pb2.DELIVERY_VIEW_UNSPECIFIED


def test_delivery_values_are_plain_python(client: Client, scripted: ScriptedServer) -> None:
    scripted.service.script.deliveries = [delivery(5, FAILED, full=True)]
    d = client.get_delivery(f"{HOOK}/deliveries/01JDELIVERY000000000000005", view=DeliveryView.FULL)
    assert d.status is DeliveryStatus.FAILED
    assert d.create_time == T0 + timedelta(minutes=5)
    assert d.create_time is not None
    assert d.create_time.tzinfo is UTC
    assert d.next_attempt_time is None  # unset stays None, not 1970
    assert d.event is not None
    assert d.event.metadata is not None
    assert d.event.metadata.source_application_id == "procore"
    assert d.event.metadata.source_project_id is None
    assert d.body.startswith(b'{"id": 54005')
    [attempt] = d.attempts
    assert attempt.end_time is not None
    assert attempt.start_time is not None
    assert attempt.end_time - attempt.start_time == timedelta(milliseconds=84)
    assert attempt.response_status == 503
    [request] = scripted.service.requests("GetDelivery")
    assert request.view == deliveries_pb2.DELIVERY_VIEW_FULL  # type: ignore[attr-defined]


def test_token_is_sent_as_bearer_metadata(client: Client, scripted: ScriptedServer) -> None:
    scripted.service.script.overview = overview()
    o = client.get_hook_overview(HOOK)
    assert o.hook.name == HOOK
    assert (o.delivered_count, o.failed_count, o.success_rate) == (40, 3, 0.8)
    assert o.latency_p50 == timedelta(milliseconds=84)
    assert scripted.service.received[0].metadata["authorization"] == "Bearer s3cret"
    assert scripted.service.received[0].metadata["user-agent"].startswith("tidings-client/")


def test_idempotent_calls_retry_unavailable_with_backoff(client: Client, scripted: ScriptedServer) -> None:
    script = scripted.service.script
    script.overview = overview()
    script.failures["GetHookOverview"] = [grpc.StatusCode.UNAVAILABLE] * 3
    assert client.get_hook_overview(HOOK).hook.name == HOOK
    times = [r.at for r in scripted.service.received]
    assert len(times) == 4
    gaps = [b - a for a, b in itertools.pairwise(times)]
    # Jittered between half and all of 20, 40, 80 ms.
    for gap, ceiling in zip(gaps, [0.02, 0.04, 0.08], strict=True):
        assert gap >= ceiling / 2


def test_retries_give_up_after_max_attempts(client: Client, scripted: ScriptedServer) -> None:
    scripted.service.script.failures["GetDelivery"] = [grpc.StatusCode.UNAVAILABLE] * 10
    with pytest.raises(Unavailable):
        client.get_delivery(f"{HOOK}/deliveries/x")
    assert len(scripted.service.requests("GetDelivery")) == FAST.max_attempts


def test_calls_unsafe_to_repeat_are_not_retried(client: Client, scripted: ScriptedServer) -> None:
    scripted.service.script.failures["RedeliverDeliveries"] = [grpc.StatusCode.UNAVAILABLE]
    with pytest.raises(Unavailable):
        client.redeliver(f"{HOOK}/deliveries/x")
    scripted.service.script.failures["SendTestEvent"] = [grpc.StatusCode.UNAVAILABLE]
    with pytest.raises(Unavailable):
        client.send_test_event(HOOK)
    # A repeated rotation would replace the secret the lost answer carried.
    scripted.service.script.failures["RotateSigningSecret"] = [grpc.StatusCode.UNAVAILABLE]
    with pytest.raises(Unavailable):
        client.rotate_signing_secret(HOOK)
    assert len(scripted.service.received) == 3


def test_publish_retries_a_batch_with_the_same_keys(client: Client, scripted: ScriptedServer) -> None:
    scripted.service.script.failures["PublishEvents"] = [grpc.StatusCode.UNAVAILABLE]
    events = [
        Event(company_id=8, project_id=6778, resource_name="RFIs", resource_id=n, event_type="update", user_id=5447)
        for n in range(1, 1501)
    ]
    results = client.publish(events)
    requests = scripted.service.requests("PublishEvents")
    assert [len(r.events) for r in requests] == [1000, 1000, 500]  # type: ignore[attr-defined]
    first, retried, second = ([e.idempotency_key for e in r.events] for r in requests)  # type: ignore[attr-defined]
    assert first == retried  # the refused batch went again with the same keys
    assert all(first)
    assert not set(first) & set(second)
    assert [r.event_id for r in results] == [f"ev-{k}" for k in first + second]
    assert [r.idempotency_key for r in results] == first + second


def test_publishing_unkeyed_events_is_not_retried(client: Client, scripted: ScriptedServer) -> None:
    scripted.service.script.failures["PublishEvents"] = [grpc.StatusCode.UNAVAILABLE]
    event = Event(company_id=8, project_id=6778, resource_name="RFIs", resource_id=1, event_type="update", user_id=1)
    with pytest.raises(Unavailable) as err:
        client.publish_events([event])
    assert err.value.published == ()
    assert len(scripted.service.requests("PublishEvents")) == 1


def test_publish_reports_the_batches_published_before_a_failure(client: Client, scripted: ScriptedServer) -> None:
    scripted.service.script.failures["PublishEvents"] = [grpc.StatusCode.OK, grpc.StatusCode.INVALID_ARGUMENT]
    event = Event(company_id=8, project_id=6778, resource_name="RFIs", resource_id=1, event_type="update", user_id=1)
    with pytest.raises(InvalidArgument) as err:
        client.publish([event] * 3, batch_size=2)
    assert len(err.value.published) == 2
    assert len(scripted.service.requests("PublishEvents")) == 2


def test_other_errors_are_not_retried(client: Client, scripted: ScriptedServer) -> None:
    with pytest.raises(NotFound) as err:
        client.get_delivery(f"{HOOK}/deliveries/nope")
    assert "nope" in err.value.message
    with pytest.raises(FailedPrecondition):
        client.send_test_event(HOOK)
    assert len(scripted.service.received) == 2


def test_redeliver_and_test_event(client: Client, scripted: ScriptedServer) -> None:
    script = scripted.service.script
    script.redeliveries = [deliveries_pb2.RedeliverDeliveriesResponse(queued_count=2, names=["a", "b"], more=True)]
    result = client.redeliver_matching(HOOK, 'status = "failed"', limit=2)
    assert (result.queued_count, result.names, result.more) == (2, ("a", "b"), True)
    [request] = scripted.service.requests("RedeliverDeliveries")
    assert isinstance(request, deliveries_pb2.RedeliverDeliveriesRequest)
    assert (request.name, request.parent, request.filter, request.limit) == ("", HOOK, 'status = "failed"', 2)
    script.test_response = deliveries_pb2.SendTestEventResponse(response_status=204, response_excerpt=b"")
    script.test_response.latency.FromTimedelta(timedelta(milliseconds=12))
    sent = client.send_test_event(HOOK)
    assert sent.ok
    assert sent.latency == timedelta(milliseconds=12)


def test_default_deadline_and_per_call_timeout(scripted: ScriptedServer) -> None:
    scripted.service.script.overview = overview()
    scripted.service.script.delay = 0.5
    with Client(scripted.target, timeout=0.1) as c:
        with pytest.raises(DeadlineExceeded):
            c.get_hook_overview(HOOK)
        assert c.get_hook_overview(HOOK, timeout=5).hook.name == HOOK
    assert len(scripted.service.requests("GetHookOverview")) == 2  # the deadline is not retried


def test_watch_resumes_from_the_last_token(client: Client, scripted: ScriptedServer) -> None:
    scripted.service.script.streams = [
        Stream([change(1, RETRYING), change(2, DELIVERED)], grpc.StatusCode.UNAVAILABLE),
        Stream([], grpc.StatusCode.UNAVAILABLE),  # reconnect refused once more: backoff, try again
        Stream([change(3, FAILED)], grpc.StatusCode.RESOURCE_EXHAUSTED, "too slow; resume from tok-3"),
        Stream([change(4, DELIVERED)], None),
    ]
    changes = client.watch(HOOK, statuses=[DeliveryStatus.DELIVERED, DeliveryStatus.FAILED])
    got = [next(changes) for _ in range(4)]
    changes.close()
    assert [c.resume_token for c in got] == ["tok-1", "tok-2", "tok-3", "tok-4"]
    assert [c.delivery.status for c in got] == [
        DeliveryStatus.RETRYING,
        DeliveryStatus.DELIVERED,
        DeliveryStatus.FAILED,
        DeliveryStatus.DELIVERED,
    ]
    requests = scripted.service.requests("WatchDeliveries")
    assert [r.resume_token for r in requests] == ["", "tok-2", "tok-2", "tok-3"]  # type: ignore[attr-defined]
    assert all(list(r.statuses) == [DELIVERED, FAILED] for r in requests)  # type: ignore[attr-defined]


def test_a_watch_dropped_before_its_first_change_resumes_where_the_server_said(
    client: Client, scripted: ScriptedServer
) -> None:
    scripted.service.script.streams = [
        Stream([], grpc.StatusCode.RESOURCE_EXHAUSTED, "dropped; resume with resume_token=tok-7"),
        Stream([change(8, DELIVERED)], None),
    ]
    changes = client.watch(HOOK)
    assert next(changes).resume_token == "tok-8"
    changes.close()
    requests = scripted.service.requests("WatchDeliveries")
    assert [r.resume_token for r in requests] == ["", "tok-7"]  # type: ignore[attr-defined]


def test_watch_starts_from_a_given_token_and_gives_up(client: Client, scripted: ScriptedServer) -> None:
    scripted.service.script.streams = [Stream([], grpc.StatusCode.UNAVAILABLE)] * 10
    with pytest.raises(Unavailable):
        list(client.watch(HOOK, resume_token="tok-9"))
    requests = scripted.service.requests("WatchDeliveries")
    assert len(requests) == FAST.max_attempts
    assert {r.resume_token for r in requests} == {"tok-9"}  # type: ignore[attr-defined]


def test_watch_does_not_resume_other_errors(client: Client, scripted: ScriptedServer) -> None:
    scripted.service.script.streams = [Stream([], grpc.StatusCode.OUT_OF_RANGE, "resume_token too old")]
    with pytest.raises(OutOfRange, match="too old"):
        list(client.watch(HOOK, resume_token="tok-0"))
    assert len(scripted.service.requests("WatchDeliveries")) == 1


def test_async_client_pages_retries_and_resumes(scripted: ScriptedServer) -> None:
    script = scripted.service.script
    script.deliveries = [delivery(n) for n in range(5, 0, -1)]
    script.failures["ListDeliveries"] = [grpc.StatusCode.UNAVAILABLE]
    script.streams = [
        Stream([change(1, RETRYING)], grpc.StatusCode.UNAVAILABLE),
        Stream([change(2, DELIVERED)], None),
    ]

    async def main() -> None:
        async with AsyncClient(options=Options(target=scripted.target, retry=FAST, token="t")) as client:
            got = [d.name async for d in client.list_deliveries(HOOK)]
            assert len(got) == 5
            watch = client.watch(HOOK)
            seen = [await anext(watch), await anext(watch)]
            await watch.aclose()
            assert [c.resume_token for c in seen] == ["tok-1", "tok-2"]
            with pytest.raises(NotFound):
                await client.get_hook_overview(HOOK)

    asyncio.run(main())
    assert len(scripted.service.requests("ListDeliveries")) == 1 + 3  # one refused, then three pages
    assert [r.resume_token for r in scripted.service.requests("WatchDeliveries")] == ["", "tok-1"]  # type: ignore[attr-defined]


def test_mutual_tls(tls_server: ScriptedServer, ca: trustme.CA, tmp_path: object) -> None:
    tls_server.service.reset().overview = overview()
    me = ca.issue_cert("admin@tidings.test")
    tls = Tls(
        root_certificates=ca.cert_pem.bytes(),
        certificate_chain=me.cert_chain_pems[0].bytes(),
        private_key=me.private_key_pem.bytes(),
        server_name="tidings.test",
    )
    with Client(tls_server.target, tls=tls, token="tok") as client:
        assert client.get_hook_overview(HOOK).hook.name == HOOK
    assert tls_server.service.received[0].metadata["authorization"] == "Bearer tok"
    # Without a client certificate the handshake fails: nothing reaches the service.
    anonymous = Tls(root_certificates=ca.cert_pem.bytes(), server_name="tidings.test")
    options = Options(tls_server.target, anonymous, retry=Retry(max_attempts=1), timeout=5)
    with Client(options=options) as client, pytest.raises(Unavailable):
        client.get_hook_overview(HOOK)
    assert len(tls_server.service.received) == 1


def test_tls_needs_key_and_certificate_together() -> None:
    with pytest.raises(ValueError, match="private key"):
        Tls(certificate_chain=b"cert")


def test_times_must_be_aware(client: Client) -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        list(client.list_deliveries(HOOK, DeliveryFilter(start_time=datetime(2026, 11, 1))))


def test_async_client_delivery_methods(scripted: ScriptedServer) -> None:
    script = scripted.service.script
    d = delivery(5, FAILED, full=True)
    script.deliveries = [d]
    script.overview = overview()
    script.redeliveries = [
        deliveries_pb2.RedeliverDeliveriesResponse(queued_count=1, names=[d.name]),
        deliveries_pb2.RedeliverDeliveriesResponse(queued_count=0, more=False),
    ]
    script.test_response = deliveries_pb2.SendTestEventResponse(response_status=200, body=b"{}")
    # publish(): refused, then answered on the retry; publish_events() without keys: refused.
    unavailable, ok = grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.OK
    script.failures["PublishEvents"] = [unavailable, ok, unavailable]
    script.failures["RotateSigningSecret"] = [unavailable, ok]
    event = Event(company_id=8, project_id=6778, resource_name="RFIs", resource_id=1, event_type="update", user_id=1)

    async def main() -> None:
        async with AsyncClient(options=Options(target=scripted.target, retry=FAST)) as client:
            got = await client.get_delivery(d.name)
            assert got.attempts[0].response_status == 503
            assert (await client.get_hook_overview(HOOK)).success_rate == 0.8
            assert (await client.redeliver(d.name)).names == (d.name,)
            assert (await client.redeliver_matching(HOOK, 'status = "failed"')).queued_count == 0
            assert (await client.send_test_event(HOOK)).ok
            [published] = await client.publish([event])  # keyed, so retried after UNAVAILABLE
            assert published.event_id == f"ev-{published.idempotency_key}"
            with pytest.raises(Unavailable):
                await client.publish_events([event])  # unkeyed: not retried
            with pytest.raises(Unavailable):
                await client.rotate_signing_secret(HOOK)  # never repeated
            rotated = await client.rotate_signing_secret(HOOK, timedelta(0))
            assert rotated.signing_secret.startswith("whsec_")

    asyncio.run(main())
    assert len(scripted.service.requests("PublishEvents")) == 3
    first, second = scripted.service.requests("RotateSigningSecret")
    assert not first.HasField("overlap")  # unset, so the server's default applies
    assert second.overlap.ToTimedelta() == timedelta(0)  # type: ignore[attr-defined]
