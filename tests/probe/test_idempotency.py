"""An idempotency key names one event: a retry of it returns the original ids, and the key
reused for a different event is refused (ALREADY_EXISTS, or INVALID_ARGUMENT within one batch)
with nothing of the batch stored."""

from __future__ import annotations

import grpc
import pytest
from google.protobuf.timestamp_pb2 import Timestamp

from tests.harness import Api
from tidings.v1 import deliveries_pb2, events_pb2, hooks_pb2

PROJECT = "companies/8/projects/6778"
TRACE_A = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
TRACE_B = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"


def rfi(key: str, **fields: object) -> events_pb2.Event:
    values: dict[str, object] = {
        "company_id": 8,
        "project_id": 6778,
        "resource_name": "RFIs",
        "resource_id": 54321,
        "event_type": "update",
        "user_id": 5447,
        "idempotency_key": key,
    }
    values.update(fields)
    return events_pb2.Event(**values)  # type: ignore[arg-type]


def publish(api: Api, *events: events_pb2.Event) -> list[events_pb2.PublishedEvent]:
    return list(api.events.PublishEvents(events_pb2.PublishEventsRequest(events=list(events))).results)


def refused(api: Api, *events: events_pb2.Event) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as err:
        publish(api, *events)
    return err.value


def deliveries(api: Api, hook: str) -> list[str]:
    listed = api.deliveries.ListDeliveries(deliveries_pb2.ListDeliveriesRequest(parent=hook, page_size=100))
    return sorted(d.name.rsplit("/", 1)[-1] for d in listed.deliveries)


@pytest.fixture
def hook(api: Api) -> str:
    created = api.hooks.CreateHook(
        hooks_pb2.CreateHookRequest(
            parent=PROJECT,
            hook=hooks_pb2.Hook(
                destination_url="http://127.0.0.1:9/in",
                payload_format="procore.v4",
                status=hooks_pb2.HOOK_STATUS_PAUSED,
            ),
        )
    )
    api.hooks.BatchCreateTriggers(
        hooks_pb2.BatchCreateTriggersRequest(
            parent=created.name, triggers=[hooks_pb2.Trigger(resource_name="RFIs", event_type="update")]
        )
    )
    return created.name


def test_an_identical_retry_returns_the_original_ids(api: Api, hook: str) -> None:
    stamp = Timestamp(seconds=1_738_884_852, nanos=246_562_000)
    related = [events_pb2.RelatedResource(id=7, name="Drawings")]
    [first] = publish(api, rfi("order-17", timestamp=stamp, related_resources=related, traceparent=TRACE_A))
    [no_time] = publish(api, rfi("order-18"))
    # Retries: the same events, one with another trace context, one (like the first) without a
    # time, which the server fills in differently each time it arrives.
    again = publish(
        api,
        rfi("order-17", timestamp=stamp, related_resources=related, traceparent=TRACE_B),
        rfi("order-18"),
        rfi("order-18"),  # a retry merged into the same batch twice
    )
    assert [(p.event_id, p.duplicate, p.deliveries) for p in again] == [
        (first.event_id, True, 0),
        (no_time.event_id, True, 0),
        (no_time.event_id, True, 0),
    ]
    assert deliveries(api, hook) == sorted([first.event_id, no_time.event_id])


@pytest.mark.parametrize(
    "changed",
    [
        {"resource_id": 54322},
        {"event_type": "create"},
        {"user_id": 1},
        {"timestamp": Timestamp(seconds=1_738_884_853)},
        {"related_resources": [events_pb2.RelatedResource(id=8, name="Drawings")]},
        {"metadata": events_pb2.EventMetadata(source_application_id="erp")},
    ],
    ids=["resource-id", "event-type", "user-id", "timestamp", "related", "metadata"],
)
def test_a_key_reused_for_a_different_event_is_already_exists(api: Api, hook: str, changed: dict[str, object]) -> None:
    stamp = Timestamp(seconds=1_738_884_852)
    [first] = publish(api, rfi("order-17", timestamp=stamp))
    fields = {"timestamp": stamp, **changed}
    error = refused(api, rfi("fresh"), rfi("order-17", **fields))
    assert error.code() == grpc.StatusCode.ALREADY_EXISTS
    assert error.details() == (
        f"events[1].idempotency_key: 'order-17' was already used for a different event ({first.event_id});"
        " a retry must repeat its event unchanged, and a new event needs a new key"
    )
    assert deliveries(api, hook) == [first.event_id]  # nothing of the refused batch, "fresh" included
    [fresh] = publish(api, rfi("fresh"))
    assert not fresh.duplicate


def test_one_key_for_two_different_events_in_a_batch_is_invalid(api: Api, hook: str) -> None:
    error = refused(api, rfi("k-1"), rfi("k-2"), rfi("k-1", resource_id=99))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert error.details() == (
        "events[2].idempotency_key: 'k-1' is also the key of events[0], a different event; one key names one event"
    )
    assert deliveries(api, hook) == []


def test_keys_are_per_company(api: Api, hook: str) -> None:
    [ours] = publish(api, rfi("order-17"))
    [theirs] = publish(api, rfi("order-17", company_id=9, project_id=1, resource_id=1))
    assert (theirs.duplicate, theirs.event_id != ours.event_id) == (False, True)
