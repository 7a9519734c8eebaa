"""DeliveryService end to end: a real server on SQLite delivering to a real receiver, then the
history read back over gRPC the way the admin screens use it."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import replace

import grpc
import pytest
from google.protobuf import field_mask_pb2
from google.protobuf.duration_pb2 import Duration

from tests.harness import Api, ServerThread
from tests.http_sink import Sink, running_sink
from tidings.v1 import deliveries_pb2, deliveries_pb2_grpc, events_pb2, hooks_pb2
from tidings_server.app import Config
from tidings_server.grpc_api.deliveries import DeliveryServicer, WatchSettings

COMPANY = "companies/8"
PROJECT = "companies/8/projects/6778"
D = deliveries_pb2
QUEUED, RETRYING, DELIVERED, FAILED, DISCARDED = (
    D.DELIVERY_STATUS_QUEUED,
    D.DELIVERY_STATUS_RETRYING,
    D.DELIVERY_STATUS_DELIVERED,
    D.DELIVERY_STATUS_FAILED,
    D.DELIVERY_STATUS_DISCARDED,
)


@pytest.fixture
def server_config(server_config: Config) -> Config:
    return replace(server_config, watch=WatchSettings(poll=0.5, stall_timeout=1.0))


@pytest.fixture
def sink() -> Iterator[Sink]:
    with running_sink() as s:
        yield s


def make_hook(
    api: Api,
    url: str,
    *,
    parent: str = PROJECT,
    pairs: tuple[tuple[str, str], ...] = (("RFIs", "create"), ("RFIs", "update"), ("Submittals", "update")),
    authorization: str = "",
) -> hooks_pb2.Hook:
    hook = api.hooks.CreateHook(
        hooks_pb2.CreateHookRequest(
            parent=parent,
            hook=hooks_pb2.Hook(
                destination_url=url,
                payload_format="procore.v4",
                authorization_header=authorization,
                retry_policy=hooks_pb2.RetryPolicy(
                    initial_backoff=Duration(nanos=100_000_000), max_backoff=Duration(nanos=200_000_000)
                ),
            ),
        )
    )
    if pairs:
        api.hooks.BatchCreateTriggers(
            hooks_pb2.BatchCreateTriggersRequest(
                parent=hook.name, triggers=[hooks_pb2.Trigger(resource_name=r, event_type=e) for r, e in pairs]
            )
        )
    return hook


def publish(api: Api, *events: tuple[str, int, str], project_id: int = 6778) -> list[str]:
    reply = api.events.PublishEvents(
        events_pb2.PublishEventsRequest(
            events=[
                events_pb2.Event(
                    company_id=8,
                    project_id=project_id,
                    resource_name=resource,
                    resource_id=resource_id,
                    event_type=event_type,
                    user_id=5447,
                )
                for resource, resource_id, event_type in events
            ]
        )
    )
    return [r.event_id for r in reply.results]


def _until(ready: Callable[[], bool], why: str, timeout: float = 10.0) -> None:
    """Poll ``ready`` (the server runs in another thread) until it holds or ``timeout`` passes."""
    deadline = time.monotonic() + timeout
    while not ready():
        assert time.monotonic() < deadline, why
        time.sleep(0.01)


def settled(api: Api, parent: str, count: int, timeout: float = 20.0) -> list[deliveries_pb2.Delivery]:
    """Wait until ``count`` deliveries under ``parent`` are no longer pending; newest first."""
    rows: list[deliveries_pb2.Delivery] = []

    def done() -> bool:
        rows[:] = api.deliveries.ListDeliveries(D.ListDeliveriesRequest(parent=parent, page_size=1000)).deliveries
        return len(rows) >= count and all(r.status not in (QUEUED, RETRYING) for r in rows)

    _until(done, f"deliveries under {parent} still pending", timeout)
    return rows


def listed(api: Api, **fields: object) -> list[str]:
    """Event ids of every delivery the request lists, following page tokens."""
    ids: list[str] = []
    token = ""
    while True:
        reply = api.deliveries.ListDeliveries(D.ListDeliveriesRequest(page_token=token, **fields))  # type: ignore[arg-type]
        ids += [d.event.id for d in reply.deliveries]
        token = reply.next_page_token
        if not token:
            return ids


def test_list_shows_the_event_rows_newest_first_and_every_filter_narrows_them(api: Api, sink: Sink) -> None:
    ok = make_hook(api, sink.url("/ok"))
    sink.answers["/refuses"] = [400]
    refusing = make_hook(api, sink.url("/refuses"), pairs=(("RFIs", "update"),))
    ids = publish(api, ("RFIs", 1, "create"), ("RFIs", 2, "update"), ("Submittals", 2, "update"))
    later = publish(api, ("RFIs", 1, "update"))
    rows = settled(api, ok.name, 4)
    assert [r.event.id for r in rows] == [*later, *reversed(ids)]
    first = rows[0]
    assert (first.event.resource_name, first.event.resource_id, first.event.event_type) == ("RFIs", 1, "update")
    assert first.status == DELIVERED
    assert first.hook == ok.name
    assert first.last_response_status == 200
    assert first.name == f"{ok.name}/deliveries/{later[0]}"
    assert first.event.user_id == 5447
    assert first.event.project_id == 6778
    settled(api, refusing.name, 2)

    def on_ok(**fields: object) -> list[str]:
        return listed(api, parent=ok.name, **fields)

    assert on_ok(resource_id=1) == [later[0], ids[0]]
    assert on_ok(resource_name="Submittals") == [ids[2]]
    assert on_ok(resource_name="RFIs", resource_id=2) == [ids[1]]
    assert on_ok(event_type="create") == [ids[0]]
    assert on_ok(statuses=[DELIVERED]) == [*later, *reversed(ids)]
    assert on_ok(statuses=[FAILED, DISCARDED]) == []
    assert listed(api, parent=refusing.name, statuses=[FAILED]) == [later[0], ids[1]]
    assert listed(api, parent=refusing.name, filter='status = "failed" AND response_status >= 400') == [
        later[0],
        ids[1],
    ]
    assert on_ok(filter="resource_id = 2 OR event_type = create") == [ids[2], ids[1], ids[0]]
    assert on_ok(filter='NOT resource_name = "RFIs"') == [ids[2]]
    # Time range: start inclusive, end exclusive, over the publish time.
    cut = rows[0].create_time
    assert on_ok(start_time=cut) == later
    assert on_ok(end_time=cut) == list(reversed(ids))
    assert on_ok(filter=f'create_time >= "{cut.ToJsonString()}"') == later
    # Project and company parents hold every hook's deliveries; the filter can pick a hook.
    assert sorted(listed(api, parent=PROJECT)) == sorted([*ids, *later, ids[1], later[0]])
    assert listed(api, parent=COMPANY, filter=f'hook = "{refusing.name}"') == [later[0], ids[1]]
    assert listed(api, parent="companies/8/projects/1") == []
    assert listed(api, parent="companies/9") == []


def test_pages_stay_correct_while_new_deliveries_arrive(api: Api, sink: Sink) -> None:
    hook = make_hook(api, sink.url())
    first = publish(api, *[("RFIs", i, "update") for i in range(1, 8)])
    settled(api, hook.name, 7)
    seen: list[str] = []
    token = ""
    while True:
        reply = api.deliveries.ListDeliveries(D.ListDeliveriesRequest(parent=hook.name, page_size=3, page_token=token))
        seen += [d.event.id for d in reply.deliveries]
        publish(api, ("RFIs", 99, "update"))  # newer than every page: never shows up behind the cursor
        token = reply.next_page_token
        if not token:
            break
    assert seen == list(reversed(first))


def test_get_delivery_shows_the_body_as_sent_and_every_attempt(api: Api, sink: Sink) -> None:
    sink.answers["/flaky"] = [503, 200]
    hook = make_hook(api, sink.url("/flaky"), authorization="Bearer 0123456789abcdef")
    [event_id] = publish(api, ("RFIs", 7, "update"))
    [row] = settled(api, hook.name, 1)
    got = api.deliveries.GetDelivery(D.GetDeliveryRequest(name=row.name))
    assert got.status == DELIVERED
    assert got.attempt_count == 2
    with sink.arrived:
        bodies = [body for delivery_id, body in sink.received if delivery_id == event_id]
    assert bodies == [got.body, got.body]  # exactly the bytes the receiver got, both times
    assert got.content_type == "application/json"
    assert [a.number for a in got.attempts] == [1, 2]
    assert [a.response_status for a in got.attempts] == [503, 200]
    assert "503" in got.attempts[0].error
    assert got.attempts[1].error == ""
    sent = {h.name.lower(): h.value for h in got.attempts[0].request_headers}
    assert sent["authorization"] == "••••••cdef"  # masked, never the secret
    assert sent["tidings-delivery-id"] == event_id
    assert got.attempts[0].end_time.ToDatetime() >= got.attempts[0].start_time.ToDatetime()
    assert got.event.id == event_id
    assert got.event.resource_id == 7
    basic = api.deliveries.GetDelivery(D.GetDeliveryRequest(name=row.name, view=D.DELIVERY_VIEW_BASIC))
    assert basic.body == b""
    assert not basic.attempts
    assert basic.status == DELIVERED
    full = api.deliveries.ListDeliveries(D.ListDeliveriesRequest(parent=hook.name, view=D.DELIVERY_VIEW_FULL))
    assert full.deliveries[0] == got


def test_a_delivery_not_attempted_yet_shows_the_body_it_will_be_sent_with(api: Api, sink: Sink) -> None:
    hook = make_hook(api, sink.url())
    api.hooks.UpdateHook(
        hooks_pb2.UpdateHookRequest(
            hook=hooks_pb2.Hook(name=hook.name, status=hooks_pb2.HOOK_STATUS_PAUSED),
            update_mask=field_mask_pb2.FieldMask(paths=["status"]),
        )
    )
    [event_id] = publish(api, ("RFIs", 7, "update"))
    got = api.deliveries.GetDelivery(D.GetDeliveryRequest(name=f"{hook.name}/deliveries/{event_id}"))
    assert got.status == QUEUED
    assert not got.attempts
    assert json.loads(got.body)["resource_id"] == "7"
    assert got.content_type == "application/json"


def test_overview_sums_up_the_hook(api: Api, sink: Sink) -> None:
    sink.answers["/mixed"] = [200, 400, 503, 200]
    hook = make_hook(api, sink.url("/mixed"))
    empty = api.deliveries.GetHookOverview(D.GetHookOverviewRequest(name=hook.name))
    assert empty.hook.name == hook.name
    assert empty.delivered_count == 0
    assert empty.success_rate == 0
    assert not empty.HasField("latency_p50")
    assert not empty.HasField("last_success_time")
    for i in range(3):  # one at a time, so the receiver's answers go in a known order
        publish(api, ("RFIs", i + 1, "update"))
        settled(api, hook.name, i + 1)
    got = api.deliveries.GetHookOverview(D.GetHookOverviewRequest(name=hook.name))
    assert (got.delivered_count, got.failed_count, got.queued_count, got.retrying_count) == (2, 1, 0, 0)
    assert got.success_rate == pytest.approx(2 / 3)
    assert got.HasField("latency_p50")
    assert got.HasField("latency_p95")
    assert got.latency_p50.ToTimedelta() <= got.latency_p95.ToTimedelta()
    assert got.consecutive_failures == 0  # the last attempt (after a 503) succeeded
    assert "400" in got.last_failure_reason or "503" in got.last_failure_reason
    assert got.last_success_time.ToDatetime() >= got.last_failure_time.ToDatetime()
    assert not got.HasField("next_retry_time")
    assert got.hook.authorization_header == ""


def test_overview_shows_the_next_retry_and_the_failure_streak(api: Api, sink: Sink) -> None:
    sink.answers["/down"] = [503]
    hook = make_hook(api, sink.url("/down"))
    publish(api, ("RFIs", 1, "update"))

    def overview() -> deliveries_pb2.HookOverview:
        return api.deliveries.GetHookOverview(D.GetHookOverviewRequest(name=hook.name))

    _until(lambda: overview().consecutive_failures >= 3, "fewer than 3 failed attempts")
    got = overview()
    assert got.retrying_count == 1
    assert "503" in got.last_failure_reason
    assert got.HasField("next_retry_time")
    assert not got.HasField("last_success_time")


def test_redeliver_one_sends_again_and_keeps_the_earlier_attempts(api: Api, sink: Sink) -> None:
    hook = make_hook(api, sink.url())
    [event_id] = publish(api, ("RFIs", 1, "update"))
    [row] = settled(api, hook.name, 1)
    reply = api.deliveries.RedeliverDeliveries(D.RedeliverDeliveriesRequest(name=row.name))
    assert (reply.queued_count, list(reply.names), reply.more) == (1, [row.name], False)
    assert sink.wait_until(lambda: [i for i, _ in sink.received].count(event_id) == 2, 10)

    def delivery() -> deliveries_pb2.Delivery:
        return api.deliveries.GetDelivery(D.GetDeliveryRequest(name=row.name))

    _until(lambda: delivery().attempt_count == 2 and delivery().status == DELIVERED, "not delivered again")
    got = delivery()
    assert got.status == DELIVERED
    assert [a.number for a in got.attempts] == [1, 2]


def test_redeliver_by_filter_takes_failed_and_discarded_and_leaves_the_rest(api: Api, sink: Sink) -> None:
    sink.answers["/x"] = [400, 400, 200]
    hook = make_hook(api, sink.url("/x"))
    publish(api, ("RFIs", 1, "update"))
    settled(api, hook.name, 1)
    publish(api, ("RFIs", 2, "update"))
    settled(api, hook.name, 2)
    publish(api, ("RFIs", 3, "update"))
    rows = settled(api, hook.name, 3)
    assert [r.status for r in rows] == [DELIVERED, FAILED, FAILED]
    nothing = api.deliveries.RedeliverDeliveries(
        D.RedeliverDeliveriesRequest(parent=hook.name, filter='status = "discarded"')
    )
    assert (nothing.queued_count, list(nothing.names), nothing.more) == (0, [], False)
    one = api.deliveries.RedeliverDeliveries(
        D.RedeliverDeliveriesRequest(parent=hook.name, filter='status = "failed"', limit=1)
    )
    assert (list(one.names), one.more) == ([rows[1].name], True)
    rest = api.deliveries.RedeliverDeliveries(
        D.RedeliverDeliveriesRequest(parent=PROJECT, filter='status = "failed" AND resource_id = 1')
    )
    assert (list(rest.names), rest.more) == ([rows[2].name], False)
    again = settled(api, hook.name, 3)
    # A limit the last matches fill exactly leaves nothing more to ask for.
    exact = api.deliveries.RedeliverDeliveries(
        D.RedeliverDeliveriesRequest(parent=hook.name, filter="resource_id = 3", limit=1)
    )
    assert (list(exact.names), exact.more) == ([rows[0].name], False)
    again = settled(api, hook.name, 3)
    assert [r.status for r in again] == [DELIVERED, DELIVERED, DELIVERED]
    assert [r.attempt_count for r in again] == [2, 2, 2]


def test_redeliver_brings_back_discarded_deliveries_once_the_hook_is_active(api: Api, sink: Sink) -> None:
    hook = make_hook(api, sink.url())

    def set_status(status: hooks_pb2.HookStatus.ValueType) -> None:
        api.hooks.UpdateHook(
            hooks_pb2.UpdateHookRequest(
                hook=hooks_pb2.Hook(name=hook.name, status=status),
                update_mask=field_mask_pb2.FieldMask(paths=["status"]),
            )
        )

    set_status(hooks_pb2.HOOK_STATUS_PAUSED)
    publish(api, ("RFIs", 1, "update"))
    set_status(hooks_pb2.HOOK_STATUS_DISABLED)
    [row] = settled(api, hook.name, 1)
    assert row.status == DISCARDED
    assert row.attempt_count == 0
    with pytest.raises(grpc.RpcError) as refused:
        api.deliveries.RedeliverDeliveries(D.RedeliverDeliveriesRequest(name=row.name))
    assert refused.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "disabled" in (refused.value.details() or "")
    bulk = api.deliveries.RedeliverDeliveries(D.RedeliverDeliveriesRequest(parent=hook.name))
    assert bulk.queued_count == 0  # a disabled hook's deliveries are skipped
    set_status(hooks_pb2.HOOK_STATUS_ACTIVE)
    api.deliveries.RedeliverDeliveries(D.RedeliverDeliveriesRequest(name=row.name))
    [row] = settled(api, hook.name, 1)
    assert row.status == DELIVERED
    assert row.attempt_count == 1


def test_send_test_event_answers_with_what_the_endpoint_said(api: Api, sink: Sink) -> None:
    sink.answers["/teapot"] = [418]
    hook = make_hook(api, sink.url("/teapot"), pairs=(("RFIs", "update"),), authorization="Bearer abcdefghijk")
    reply = api.deliveries.SendTestEvent(D.SendTestEventRequest(name=hook.name))
    assert reply.response_status == 418
    assert "418" in reply.error
    assert reply.latency.ToTimedelta().total_seconds() > 0
    assert json.loads(reply.body)["resource_type"] == "RFIs"
    headers = {h.name.lower(): h.value for h in reply.request_headers}
    assert headers["authorization"] == "••••••"  # a short token shows nothing
    with sink.arrived:
        assert sink.received[-1] == (headers["tidings-delivery-id"], reply.body)
    # Nothing is recorded: the history of the hook stays empty.
    assert listed(api, parent=hook.name) == []
    good = make_hook(api, sink.url("/fine"), pairs=())
    ok = api.deliveries.SendTestEvent(D.SendTestEventRequest(name=good.name))
    assert (ok.response_status, ok.error) == (200, "")


def test_test_event_to_a_disabled_hook_is_refused(api: Api, sink: Sink) -> None:
    hook = make_hook(api, sink.url())
    api.hooks.UpdateHook(
        hooks_pb2.UpdateHookRequest(
            hook=hooks_pb2.Hook(name=hook.name, status=hooks_pb2.HOOK_STATUS_DISABLED),
            update_mask=field_mask_pb2.FieldMask(paths=["status"]),
        )
    )
    with pytest.raises(grpc.RpcError) as refused:
        api.deliveries.SendTestEvent(D.SendTestEventRequest(name=hook.name))
    assert refused.value.code() == grpc.StatusCode.FAILED_PRECONDITION


# -- watching ---------------------------------------------------------------------------------


def _servicer(server: ServerThread) -> DeliveryServicer:
    assert server.running is not None
    assert server.running.grpc.deliveries is not None
    return server.running.grpc.deliveries


class Watcher:
    """A WatchDeliveries stream read on a thread, so the test can act while it arrives."""

    def __init__(self, api: Api, server: ServerThread, **fields: object) -> None:
        self.changes: list[deliveries_pb2.DeliveryChange] = []
        self.error: grpc.RpcError | None = None
        self.cond = threading.Condition()
        servicer = _servicer(server)
        before = servicer.watches_started
        self.call = api.deliveries.WatchDeliveries(D.WatchDeliveriesRequest(**fields))  # type: ignore[arg-type]
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()
        # Served from here on: its position is fixed, so what happens next is what it sees.
        _until(lambda: servicer.watches_started > before or self.error is not None, "the watch did not start")

    def _read(self) -> None:
        try:
            for change in self.call:
                with self.cond:
                    self.changes.append(change)
                    self.cond.notify_all()
        except grpc.RpcError as exc:
            with self.cond:
                self.error = exc
                self.cond.notify_all()

    def wait(self, count: int, timeout: float = 15.0) -> list[deliveries_pb2.DeliveryChange]:
        with self.cond:
            assert self.cond.wait_for(lambda: len(self.changes) >= count or self.error is not None, timeout)
            return list(self.changes)

    def cancel(self) -> None:
        self.call.cancel()
        self.thread.join(10)


def test_watch_follows_a_delivery_from_queued_through_retrying_to_delivered(
    api: Api, server: ServerThread, sink: Sink
) -> None:
    sink.answers["/flaky"] = [503, 503, 200]
    hook = make_hook(api, sink.url("/flaky"))
    watcher = Watcher(api, server, parent=hook.name)
    [event_id] = publish(api, ("RFIs", 1, "update"))
    changes = watcher.wait(4)
    watcher.cancel()
    assert [(c.delivery.status, c.delivery.attempt_count) for c in changes] == [
        (QUEUED, 0),
        (RETRYING, 1),
        (RETRYING, 2),
        (DELIVERED, 3),
    ]
    assert {c.delivery.event.id for c in changes} == {event_id}
    assert changes[-1].delivery.last_response_status == 200
    assert len({c.resume_token for c in changes}) == 4


def test_watch_filters_by_status_and_scope(api: Api, server: ServerThread, sink: Sink) -> None:
    hook = make_hook(api, sink.url())
    other = make_hook(api, sink.url(), parent="companies/8/projects/1", pairs=(("RFIs", "update"),))
    delivered = Watcher(api, server, parent=PROJECT, statuses=[DELIVERED])
    publish(api, ("RFIs", 1, "update"), project_id=1)
    [mine] = publish(api, ("RFIs", 2, "update"))
    changes = delivered.wait(1)
    settled(api, other.name, 1)
    settled(api, hook.name, 1)
    # A fence: everything committed before it (the other project's delivery too) has been
    # offered to the watch by the time the fence's own change arrives.
    [fence] = publish(api, ("RFIs", 3, "update"))
    delivered.wait(2)
    delivered.cancel()
    seen = [(c.delivery.event.id, c.delivery.status) for c in delivered.changes]
    assert seen[:-1] == [(mine, DELIVERED)]
    assert seen[-1] == (fence, DELIVERED)
    assert changes[0].delivery.hook == hook.name


def test_resuming_a_watch_loses_and_repeats_nothing(api: Api, server: ServerThread, sink: Sink) -> None:
    hook = make_hook(api, sink.url())
    first = Watcher(api, server, parent=hook.name)
    ids = publish(api, ("RFIs", 1, "update"), ("RFIs", 2, "update"))
    seen = first.wait(2)[:2]
    first.cancel()
    more = publish(api, ("RFIs", 3, "update"))
    settled(api, hook.name, 3)
    second = Watcher(api, server, parent=hook.name, resume_token=seen[-1].resume_token)
    second.wait(4)
    # A fence: once its two changes arrive, nothing earlier can still be on its way.
    [fence] = publish(api, ("RFIs", 4, "update"))
    after_fence = second.wait(6)
    second.cancel()
    assert [(c.delivery.event.id, c.delivery.status) for c in after_fence[4:]] == [(fence, QUEUED), (fence, DELIVERED)]
    rest = after_fence[:4]
    changes = [(c.delivery.event.id, c.delivery.status) for c in [*seen, *rest]]
    assert sorted(changes) == sorted(
        [(i, s) for i in [*ids, *more] for s in (QUEUED, DELIVERED)]
    )  # every change once, none missed, none repeated
    assert len(rest) == 4


def test_a_cancelled_watch_ends_on_the_server_at_once(api: Api, server: ServerThread) -> None:
    assert server.running is not None
    assert server.running.grpc.deliveries is not None
    servicer = server.running.grpc.deliveries
    watcher = Watcher(api, server, parent=COMPANY)
    assert servicer.active_watches == 1
    watcher.cancel()
    # Well within the stream's 0.5 s poll + 1 s stall timeout: ended by the cancel itself.
    _until(lambda: not servicer.active_watches, "the stream kept running after the client cancelled", 2.0)


def test_a_stuck_watcher_is_dropped_and_does_not_slow_delivery(server: ServerThread, sink: Sink) -> None:
    api = Api.connect(server.port)
    hook = make_hook(api, sink.url())
    # A client that never reads, with flow-control windows kept small so the server's writes
    # back up quickly instead of filling megabytes of transport buffers first.
    stuck = grpc.insecure_channel(
        f"127.0.0.1:{server.port}",
        options=[("grpc.http2.bdp_probe", 0), ("grpc.http2.lookahead_bytes", 1024)],
    )
    call = deliveries_pb2_grpc.DeliveryServiceStub(stuck).WatchDeliveries(
        D.WatchDeliveriesRequest(parent=hook.name), timeout=120
    )
    _until(lambda: _servicer(server).active_watches == 1, "the stuck watch did not start")
    # The rate with and without such watchers is measured by `python -m bench watch`; here,
    # every delivery arrives while the stuck stream is still open, then it is dropped.
    # Events keep coming until the server drops the stream (its writes back up only while
    # changes are offered), and every batch is delivered meanwhile. The client reads nothing
    # before the drop: reading earlier would unstick the stream, and deliveries can all
    # arrive within the stall timeout.
    ids: list[str] = []
    for start in range(0, 15_000, 500):
        ids += publish(api, *[("RFIs", i + 1, "update") for i in range(start, start + 500)])
        assert not sink.wait_for(set(ids), 60)
        if _servicer(server).watches_dropped:
            break
    _until(lambda: _servicer(server).watches_dropped == 1, "the stuck watch was not dropped")
    with pytest.raises(grpc.RpcError) as dropped:
        for _ in call:
            pass
    assert dropped.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    details = dropped.value.details() or ""
    assert "resume_token=" in details
    token = details.rsplit("resume_token=", 1)[1]
    resumed = Watcher(api, server, parent=hook.name, resume_token=token)
    assert resumed.wait(1)[0].delivery.hook == hook.name
    resumed.cancel()
    stuck.close()
    api.channel.close()


def test_shutdown_ends_watch_streams_with_unavailable(server_config: Config) -> None:
    server = ServerThread(server_config).start()
    api = Api.connect(server.port)
    watcher = Watcher(api, server, parent=COMPANY)
    started = time.monotonic()
    server.stop()
    assert time.monotonic() - started < 5
    with watcher.cond:
        assert watcher.cond.wait_for(lambda: watcher.error is not None, 5)
    assert watcher.error is not None
    assert watcher.error.code() == grpc.StatusCode.UNAVAILABLE
    api.channel.close()


def test_a_resume_token_from_another_watch_is_refused(api: Api, server: ServerThread, sink: Sink) -> None:
    hook = make_hook(api, sink.url())
    watcher = Watcher(api, server, parent=hook.name)
    publish(api, ("RFIs", 1, "update"))
    token = watcher.wait(1)[0].resume_token
    watcher.cancel()
    with pytest.raises(grpc.RpcError) as refused:
        next(iter(api.deliveries.WatchDeliveries(D.WatchDeliveriesRequest(parent=PROJECT, resume_token=token))))
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "resume_token" in (refused.value.details() or "")


def test_redeliver_by_filter_walks_past_deliveries_of_disabled_hooks(
    api: Api, server: ServerThread, sink: Sink
) -> None:
    sink.answers["/refuses"] = [400]
    older = make_hook(api, sink.url("/refuses"), pairs=(("Submittals", "update"),))
    newer = make_hook(api, sink.url("/refuses"), pairs=(("RFIs", "update"),))
    publish(api, ("Submittals", 1, "update"))
    [kept] = settled(api, older.name, 1)
    publish(api, *[("RFIs", i, "update") for i in (1, 2, 3)])
    settled(api, newer.name, 3)
    api.hooks.UpdateHook(
        hooks_pb2.UpdateHookRequest(
            hook=hooks_pb2.Hook(name=newer.name, status=hooks_pb2.HOOK_STATUS_DISABLED),
            update_mask=field_mask_pb2.FieldMask(paths=["status"]),
        )
    )
    # The three newest failures belong to the disabled hook: skipped, and they do not use up the limit.
    reply = api.deliveries.RedeliverDeliveries(
        D.RedeliverDeliveriesRequest(parent=PROJECT, filter='status = "failed"', limit=1)
    )
    assert (list(reply.names), reply.more) == ([kept.name], False)


def test_redelivering_a_pending_delivery_is_refused(api: Api, sink: Sink) -> None:
    hook = make_hook(api, sink.url())
    api.hooks.UpdateHook(
        hooks_pb2.UpdateHookRequest(
            hook=hooks_pb2.Hook(name=hook.name, status=hooks_pb2.HOOK_STATUS_PAUSED),
            update_mask=field_mask_pb2.FieldMask(paths=["status"]),
        )
    )
    [event_id] = publish(api, ("RFIs", 1, "update"))
    name = f"{hook.name}/deliveries/{event_id}"
    with pytest.raises(grpc.RpcError) as refused:
        api.deliveries.RedeliverDeliveries(D.RedeliverDeliveriesRequest(name=name))
    assert refused.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "queued" in (refused.value.details() or "")
    assert api.deliveries.GetDelivery(D.GetDeliveryRequest(name=name)).status == QUEUED


def test_a_hook_created_again_under_an_old_name_starts_with_no_history(api: Api, sink: Sink) -> None:
    def create() -> hooks_pb2.Hook:
        hook = api.hooks.CreateHook(
            hooks_pb2.CreateHookRequest(
                parent=PROJECT,
                hook_id="again",
                hook=hooks_pb2.Hook(destination_url=sink.url(), payload_format="procore.v4"),
            )
        )
        api.hooks.BatchCreateTriggers(
            hooks_pb2.BatchCreateTriggersRequest(
                parent=hook.name, triggers=[hooks_pb2.Trigger(resource_name="RFIs", event_type="update")]
            )
        )
        return hook

    first = create()
    [old] = publish(api, ("RFIs", 1, "update"))
    settled(api, first.name, 1)
    api.hooks.DeleteHook(hooks_pb2.DeleteHookRequest(name=first.name))
    assert listed(api, parent=first.name) == [old]  # a deleted hook's history stays listed
    second = create()
    assert listed(api, parent=second.name) == []
    assert listed(api, parent=PROJECT) == [old]  # and stays in its project's history
    [new] = publish(api, ("RFIs", 2, "update"))
    settled(api, second.name, 1)
    assert listed(api, parent=second.name) == [new]
