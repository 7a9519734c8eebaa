"""EventService end to end: publish over gRPC, delivery to a real receiver, and bad batches."""

from __future__ import annotations

import json
from collections.abc import Iterator

import grpc
import pytest
from google.protobuf.timestamp_pb2 import Timestamp

from tests.harness import Api, ServerThread
from tests.http_sink import Sink, running_sink
from tidings.v1 import events_pb2, hooks_pb2

PROJECT = "companies/8/projects/6778"


@pytest.fixture
def sink() -> Iterator[Sink]:
    with running_sink() as s:
        yield s


def rfi(**fields: object) -> events_pb2.Event:
    values: dict[str, object] = {
        "company_id": 8,
        "project_id": 6778,
        "resource_name": "RFIs",
        "resource_id": 54321,
        "event_type": "update",
        "user_id": 5447,
    }
    values.update(fields)
    return events_pb2.Event(**values)  # type: ignore[arg-type]


def make_hook(api: Api, url: str, payload_format: str = "procore.v3") -> hooks_pb2.Hook:
    hook = api.hooks.CreateHook(
        hooks_pb2.CreateHookRequest(
            parent=PROJECT, hook=hooks_pb2.Hook(destination_url=url, payload_format=payload_format)
        )
    )
    api.hooks.BatchCreateTriggers(
        hooks_pb2.BatchCreateTriggersRequest(
            parent=hook.name, triggers=[hooks_pb2.Trigger(resource_name="RFIs", event_type="update")]
        )
    )
    return hook


def test_publish_delivers_to_every_matching_hook(api: Api, sink: Sink) -> None:
    make_hook(api, sink.url("/a"))
    make_hook(api, sink.url("/b"), payload_format="procore.v2")
    stamp = Timestamp(seconds=1_738_884_852, nanos=246_562_000)
    reply = api.events.PublishEvents(
        events_pb2.PublishEventsRequest(
            events=[
                rfi(
                    timestamp=stamp,
                    metadata=events_pb2.EventMetadata(source_user_id=987654321, source_company_id=8),
                    related_resources=[events_pb2.RelatedResource(id=1234, name="Direct Costs")],
                ),
                rfi(event_type="create"),  # no hook selected it
            ]
        )
    )
    assert [(r.deliveries, r.duplicate) for r in reply.results] == [(2, False), (0, False)]
    event_id = reply.results[0].event_id
    assert len(event_id) == 26
    assert sink.wait_until(lambda: len(sink.received) >= 2, timeout=10)  # one per hook
    bodies = [json.loads(body) for _, body in sink.received]
    assert len(bodies) == 2
    v3 = next(b for b in bodies if b["api_version"] == "v3.0")
    assert v3["ulid"] == event_id
    assert v3["timestamp"] == "2025-02-06T23:34:12.246562Z"
    assert v3["related_resources"] == [{"id": 1234, "name": "Direct Costs"}]
    assert v3["metadata"] == {
        "source_user_id": 987654321,
        "source_project_id": None,
        "source_operation_id": None,
        "source_company_id": 8,
        "source_application_id": None,
    }


def test_idempotency_key_returns_the_original_event(api: Api, sink: Sink) -> None:
    make_hook(api, sink.url())
    first = api.events.PublishEvents(events_pb2.PublishEventsRequest(events=[rfi(idempotency_key="op-1")]))
    again = api.events.PublishEvents(
        events_pb2.PublishEventsRequest(events=[rfi(idempotency_key="op-1"), rfi(idempotency_key="op-2")])
    )
    assert again.results[0].event_id == first.results[0].event_id
    assert (again.results[0].duplicate, again.results[0].deliveries) == (True, 0)
    assert (again.results[1].duplicate, again.results[1].deliveries) == (False, 1)
    assert not sink.wait_for({first.results[0].event_id, again.results[1].event_id}, timeout=10)
    assert len(sink.received) == 2


def company_event(**fields: object) -> events_pb2.Event:
    return rfi(project_id=0, resource_name="Projects", event_type="create", **fields)


BAD_EVENTS: list[tuple[str, list[events_pb2.Event], str]] = [
    ("no events", [], "events: at least one event is required"),
    ("too many", [rfi()] * 1001, "events: 1001 is more than the 1000 allowed"),
    ("missing company", [rfi(company_id=0)], "events[0].company_id: required"),
    ("negative company", [rfi(company_id=-5)], "events[0].company_id: required, a positive integer (got -5)"),
    ("negative project", [rfi(project_id=-1)], "events[0].project_id: must be positive"),
    ("missing resource id", [rfi(), rfi(resource_id=0)], "events[1].resource_id: required"),
    ("missing user", [rfi(user_id=0)], "events[0].user_id: required"),
    ("missing resource name", [rfi(resource_name="")], "events[0].resource_name: required"),
    ("unknown resource", [rfi(resource_name="Widgets")], "unknown resource 'Widgets' for project-level events"),
    ("company resource in a project", [rfi(resource_name="Projects")], "'Projects' is a company-level resource"),
    ("project resource without project", [rfi(project_id=0)], "'RFIs' is a project-level resource; set project_id"),
    ("long resource name", [rfi(resource_name="R" * 201)], "events[0].resource_name: longer than the 200"),
    ("missing event type", [rfi(event_type="")], "events[0].event_type: required"),
    ("event type the resource lacks", [rfi(event_type="exploded")], "'RFIs' has no event type 'exploded'"),
    (
        "timestamp out of range",
        [rfi(timestamp=Timestamp(seconds=2**62))],
        "events[0].timestamp: not a valid point in time",
    ),
    ("event type with spaces", [rfi(event_type="up date")], "is not a lowercase word"),
    ("uppercase event type", [rfi(event_type="UPDATE")], "is not a lowercase word"),
    (
        "bad metadata id",
        [rfi(metadata=events_pb2.EventMetadata(source_user_id=-1))],
        "events[0].metadata.source_user_id: must be a positive integer",
    ),
    (
        "empty application id",
        [rfi(metadata=events_pb2.EventMetadata(source_application_id=""))],
        "events[0].metadata.source_application_id: 1 to 200 characters",
    ),
    (
        "too many related",
        [rfi(related_resources=[events_pb2.RelatedResource(id=1, name="x")] * 101)],
        "events[0].related_resources: 101 is more than the 100 allowed",
    ),
    (
        "related without name",
        [rfi(related_resources=[events_pb2.RelatedResource(id=1)])],
        "events[0].related_resources[0].name: required",
    ),
    ("idempotency key with space", [rfi(idempotency_key="a b")], "events[0].idempotency_key"),
    ("idempotency key too long", [company_event(idempotency_key="k" * 201)], "events[0].idempotency_key"),
    ("bad event in a good batch", [rfi(), rfi(), rfi(user_id=-3)], "events[2].user_id"),
]


@pytest.mark.parametrize(("events", "problem"), [c[1:] for c in BAD_EVENTS], ids=[c[0] for c in BAD_EVENTS])
def test_bad_batches_are_refused_whole(
    server: ServerThread, api: Api, sink: Sink, events: list[events_pb2.Event], problem: str
) -> None:
    make_hook(api, sink.url())
    with pytest.raises(grpc.RpcError) as err:
        api.events.PublishEvents(events_pb2.PublishEventsRequest(events=events))
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert problem in (err.value.details() or "")
    # Nothing of the batch was stored: a good publish afterwards is the only delivery.
    ok = api.events.PublishEvents(events_pb2.PublishEventsRequest(events=[rfi()]))
    assert not sink.wait_for({ok.results[0].event_id}, timeout=10)
    assert [i for i, _ in sink.received] == [ok.results[0].event_id]
