"""The built-in formats end to end: a real server delivers to a real receiver, and the requests are
read back by libraries nobody here wrote (``cloudevents`` and ``standardwebhooks`` from PyPI)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from cloudevents.core.base import BaseCloudEvent
from cloudevents.core.bindings.http import HTTPMessage, from_binary_event, from_http_event, from_structured_event
from google.protobuf.timestamp_pb2 import Timestamp
from standardwebhooks.webhooks import Webhook

from tests.harness import Api
from tests.http_sink import Request, Sink, running_sink
from tidings.v1 import catalog_pb2, events_pb2, hooks_pb2

COMPANY = "companies/8"
PROJECT = "companies/8/projects/6778"
STAMP = Timestamp(seconds=1_738_884_852, nanos=246_562_000)  # 2025-02-06T23:34:12.246562Z
TIME = datetime(2025, 2, 6, 23, 34, 12, 246562, tzinfo=UTC)
BIG = 2**63 - 1


@pytest.fixture
def sink() -> Iterator[Sink]:
    with running_sink() as s:
        yield s


def make_hook(api: Api, parent: str, url: str, payload_format: str, trigger: tuple[str, str]) -> hooks_pb2.Hook:
    hook = api.hooks.CreateHook(
        hooks_pb2.CreateHookRequest(
            parent=parent, hook=hooks_pb2.Hook(destination_url=url, payload_format=payload_format)
        )
    )
    api.hooks.BatchCreateTriggers(
        hooks_pb2.BatchCreateTriggersRequest(
            parent=hook.name, triggers=[hooks_pb2.Trigger(resource_name=trigger[0], event_type=trigger[1])]
        )
    )
    return hook


def publish(api: Api, sink: Sink, event: events_pb2.Event) -> tuple[str, Request]:
    event_id = api.events.PublishEvents(events_pb2.PublishEventsRequest(events=[event])).results[0].event_id
    assert not sink.wait_for({event_id}, timeout=10)
    with sink.arrived:
        [request] = [r for r in sink.requests if r.header("Tidings-Delivery-Id") == event_id]
    return event_id, request


def project_event(**fields: Any) -> events_pb2.Event:
    return events_pb2.Event(
        company_id=8,
        project_id=6778,
        resource_name="RFIs",
        resource_id=BIG,
        event_type="update",
        user_id=5447,
        timestamp=STAMP,
        metadata=events_pb2.EventMetadata(source_user_id=987654321, source_application_id="app-ü"),
        related_resources=[events_pb2.RelatedResource(id=1234, name="Direct Costs")],
        **fields,
    )


def company_event() -> events_pb2.Event:
    return events_pb2.Event(
        company_id=8, resource_name="Projects", resource_id=6778, event_type="create", user_id=1, timestamp=STAMP
    )


def expected_data(event_id: str) -> dict[str, object]:
    return {
        "event_id": event_id,
        "company_id": "8",
        "project_id": "6778",
        "resource_name": "RFIs",
        "resource_id": str(BIG),
        "event_type": "update",
        "user_id": "5447",
        "timestamp": "2025-02-06T23:34:12.246562Z",
        "metadata": {
            "source_user_id": "987654321",
            "source_project_id": None,
            "source_operation_id": None,
            "source_company_id": None,
            "source_application_id": "app-ü",
        },
        "related_resources": [{"id": "1234", "name": "Direct Costs"}],
    }


def message(request: Request) -> HTTPMessage:
    return HTTPMessage(headers=dict(request.headers), body=request.body)


def assert_attributes(event: BaseCloudEvent, event_id: str, source: str, type_: str, subject: str) -> None:
    assert event.get_attributes() == {
        "specversion": "1.0",
        "id": event_id,
        "source": source,
        "type": type_,
        "subject": subject,
        "time": TIME,
        "datacontenttype": "application/json",
    }


def test_list_payload_formats_shows_the_built_in_ones(api: Api) -> None:
    formats = api.catalog.ListPayloadFormats(catalog_pb2.ListPayloadFormatsRequest()).payload_formats
    shown = {f.name: (f.content_type, f.distribution, f.version) for f in formats}
    assert shown["standard-webhooks.v1"] == ("application/json", "tidings-server", "0.1.0")
    assert shown["cloudevents.structured.v1"] == (
        "application/cloudevents+json; charset=utf-8",
        "tidings-server",
        "0.1.0",
    )
    assert shown["cloudevents.binary.v1"] == ("application/json", "tidings-server", "0.1.0")
    descriptions = {f.name: f.description for f in formats}
    assert "Standard Webhooks" in descriptions["standard-webhooks.v1"]
    assert "structured mode" in descriptions["cloudevents.structured.v1"]
    assert "binary mode" in descriptions["cloudevents.binary.v1"]


def test_cloudevents_structured(api: Api, sink: Sink) -> None:
    make_hook(api, PROJECT, sink.url(), "cloudevents.structured.v1", ("RFIs", "update"))
    event_id, request = publish(api, sink, project_event())
    assert request.header("Content-Type") == "application/cloudevents+json; charset=utf-8"
    assert not [k for k, _ in request.headers if k.lower().startswith("ce-")]
    event = from_structured_event(message(request))
    assert_attributes(event, event_id, "/companies/8/projects/6778", "tidings.rfis.update", str(BIG))
    assert event.get_data() == expected_data(event_id)
    assert from_http_event(message(request)).get_attributes() == event.get_attributes()


def test_cloudevents_binary(api: Api, sink: Sink) -> None:
    make_hook(api, PROJECT, sink.url(), "cloudevents.binary.v1", ("RFIs", "update"))
    event_id, request = publish(api, sink, project_event())
    assert request.header("Content-Type") == "application/json"
    assert request.header("ce-specversion") == "1.0"
    event = from_binary_event(message(request))
    assert_attributes(event, event_id, "/companies/8/projects/6778", "tidings.rfis.update", str(BIG))
    assert event.get_data() == expected_data(event_id)
    assert json.loads(request.body) == expected_data(event_id)


@pytest.mark.parametrize("payload_format", ["cloudevents.structured.v1", "cloudevents.binary.v1"])
def test_cloudevents_company_event_has_a_company_source(api: Api, sink: Sink, payload_format: str) -> None:
    make_hook(api, COMPANY, sink.url(), payload_format, ("Projects", "create"))
    event_id, request = publish(api, sink, company_event())
    event = from_http_event(message(request))
    assert_attributes(event, event_id, "/companies/8", "tidings.projects.create", "6778")
    data = event.get_data()
    assert isinstance(data, dict)
    assert (data["project_id"], data["resource_name"], data["related_resources"]) == (None, "Projects", [])
    assert data["metadata"] == dict.fromkeys(
        ["source_user_id", "source_project_id", "source_operation_id", "source_company_id", "source_application_id"]
    )


def test_standard_webhooks_body_is_signed_and_verifies(api: Api, sink: Sink) -> None:
    hook = make_hook(api, PROJECT, sink.url(), "standard-webhooks.v1", ("RFIs", "update"))
    event_id, request = publish(api, sink, project_event())
    assert request.header("Content-Type") == "application/json"
    payload = Webhook(hook.signing_secret).verify(request.body, dict(request.headers))
    assert payload == {
        "type": "rfis.update",
        "timestamp": "2025-02-06T23:34:12.246562Z",
        "data": expected_data(event_id),
    }
    assert request.header("webhook-id") == event_id


@pytest.mark.parametrize("payload_format", ["cloudevents.structured.v1", "cloudevents.binary.v1"])
def test_cloudevents_deliveries_are_signed_too(api: Api, sink: Sink, payload_format: str) -> None:
    hook = make_hook(api, PROJECT, sink.url(), payload_format, ("RFIs", "update"))
    _, request = publish(api, sink, project_event())
    Webhook(hook.signing_secret).verify(request.body, dict(request.headers), json_parse=False)
