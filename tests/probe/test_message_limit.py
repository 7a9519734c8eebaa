"""The largest documented PublishEvents batch fits in what one call may carry, and a call past
that is refused with a message that states the limit."""

from __future__ import annotations

import grpc
import pytest

from tests.harness import Api
from tidings.v1 import events_pb2
from tidings_server.domain.events import MAX_EVENTS_PER_CALL, MAX_RELATED_RESOURCES, MAX_TEXT
from tidings_server.domain.names import MAX_ID
from tidings_server.grpc_api.decoding import MAX_REQUEST_BYTES, TRANSPORT_LIMIT_BYTES

E = events_pb2


def largest_event(i: int) -> events_pb2.Event:
    """An event with every field at its limit (the resource and event type must be real ones)."""
    return E.Event(
        company_id=MAX_ID,
        project_id=MAX_ID,
        resource_name="Change Order Packages",
        resource_id=MAX_ID,
        event_type="update",
        user_id=MAX_ID,
        metadata=E.EventMetadata(
            source_user_id=MAX_ID,
            source_project_id=MAX_ID,
            source_operation_id=MAX_ID,
            source_company_id=MAX_ID,
            source_application_id="a" * MAX_TEXT,
        ),
        related_resources=[E.RelatedResource(id=MAX_ID, name="r" * MAX_TEXT) for _ in range(MAX_RELATED_RESOURCES)],
        idempotency_key=f"{i:04d}".ljust(MAX_TEXT, "k"),
    )


def test_the_largest_documented_batch_is_accepted(api: Api) -> None:
    request = E.PublishEventsRequest(events=[largest_event(i) for i in range(MAX_EVENTS_PER_CALL)])
    size = request.ByteSize()
    assert 20 << 20 < size < MAX_REQUEST_BYTES * 0.7  # ~21 MiB: a third of the limit to spare
    results = api.events.PublishEvents(request, timeout=120).results
    assert (len(results), len({r.event_id for r in results}), any(r.duplicate for r in results)) == (1000, 1000, False)


@pytest.mark.parametrize("size", [MAX_REQUEST_BYTES + 1, TRANSPORT_LIMIT_BYTES - 1024])
def test_a_call_past_the_limit_is_refused_saying_the_limit(api: Api, size: int) -> None:
    padding = size - E.PublishEventsRequest(events=[E.Event(resource_name="")]).ByteSize()
    request = E.PublishEventsRequest(events=[E.Event(resource_name="x" * padding)])
    padding -= request.ByteSize() - size  # the length prefix grew with the value
    request = E.PublishEventsRequest(events=[E.Event(resource_name="x" * padding)])
    assert request.ByteSize() == size
    with pytest.raises(grpc.RpcError) as err:
        api.events.PublishEvents(request, timeout=60)
    assert err.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert err.value.details() == (
        f"request: {size:,} bytes is more than the 33,554,432 bytes (32 MiB) one call may carry;"
        " send fewer events per call"
    )


def test_past_the_transport_limit_grpc_refuses_before_reading(api: Api) -> None:
    request = E.PublishEventsRequest(events=[E.Event(resource_name="x" * TRANSPORT_LIMIT_BYTES)])
    with pytest.raises(grpc.RpcError) as err:
        api.events.PublishEvents(request, timeout=60)
    assert err.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert f"vs. {TRANSPORT_LIMIT_BYTES})" in (err.value.details() or "")
