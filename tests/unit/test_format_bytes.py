"""The built-in formats' exact bytes: receivers parse them, signatures cover them, so a change in
key order or spelling is a visible change of this file, never an accident."""

from __future__ import annotations

from datetime import UTC, datetime

from tidings_server.domain.model import Event, EventMetadata, RelatedResource
from tidings_server.formats import CloudEventsBinary, CloudEventsStructured, StandardWebhooks
from tidings_server.plugins.spec import RenderContext

EVENT = Event(
    id="01jkg7hb7v8x0a3r2b4c5d6e7f",
    serial=42,
    timestamp=datetime(2025, 2, 6, 23, 34, 12, 246562, tzinfo=UTC),
    company_id=8,
    project_id=6778,
    user_id=5447,
    resource_name="RFI Replies",
    resource_id=54321,
    event_type="create",
    metadata=EventMetadata(source_operation_id=7),
    related_resources=(RelatedResource(1, "RFIs"),),
)
CONTEXT = RenderContext("companies/8/projects/6778/hooks/h", "x")
DATA = (
    '{"event_id":"01jkg7hb7v8x0a3r2b4c5d6e7f","company_id":"8","project_id":"6778","resource_name":"RFI Replies",'
    '"resource_id":"54321","event_type":"create","user_id":"5447","timestamp":"2025-02-06T23:34:12.246562Z",'
    '"metadata":{"source_user_id":null,"source_project_id":null,"source_operation_id":"7","source_company_id":null,'
    '"source_application_id":null},"related_resources":[{"id":"1","name":"RFIs"}]}'
)


def test_standard_webhooks_bytes() -> None:
    rendered = StandardWebhooks().render(EVENT, CONTEXT)
    assert dict(rendered.headers) == {"Content-Type": "application/json"}
    assert rendered.body.decode() == (
        '{"type":"rfi-replies.create","timestamp":"2025-02-06T23:34:12.246562Z","data":' + DATA + "}"
    )


def test_cloudevents_structured_bytes() -> None:
    rendered = CloudEventsStructured().render(EVENT, CONTEXT)
    assert dict(rendered.headers) == {"Content-Type": "application/cloudevents+json; charset=utf-8"}
    assert rendered.body.decode() == (
        '{"specversion":"1.0","id":"01jkg7hb7v8x0a3r2b4c5d6e7f","source":"/companies/8/projects/6778",'
        '"type":"tidings.rfi-replies.create","subject":"54321","time":"2025-02-06T23:34:12.246562Z",'
        '"datacontenttype":"application/json","data":' + DATA + "}"
    )


def test_cloudevents_binary_headers_and_bytes() -> None:
    rendered = CloudEventsBinary().render(EVENT, CONTEXT)
    assert dict(rendered.headers) == {
        "Content-Type": "application/json",
        "ce-specversion": "1.0",
        "ce-id": "01jkg7hb7v8x0a3r2b4c5d6e7f",
        "ce-source": "/companies/8/projects/6778",
        "ce-type": "tidings.rfi-replies.create",
        "ce-subject": "54321",
        "ce-time": "2025-02-06T23:34:12.246562Z",
    }
    assert rendered.body.decode() == DATA
