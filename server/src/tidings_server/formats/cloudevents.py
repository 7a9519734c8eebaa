"""CloudEvents 1.0 over HTTP, in structured mode (the whole event as the JSON body) and in
binary mode (attributes as ``ce-`` headers, the data alone as the body).

Attributes, the same in both modes:

* ``id``: the event id (a ULID), so ``source`` + ``id`` is unique and stable across retries;
* ``source``: ``/companies/{company}/projects/{project}``, or ``/companies/{company}`` for a
  company-level event: the context in which the change happened;
* ``type``: ``tidings.{resource}.{event_type}``, e.g. ``tidings.rfis.update``, the resource as
  it is spelled in trigger names. The prefix names this service, not a vendor, because the
  resource catalogs are plugins and the same type scheme serves all of them;
* ``subject``: the resource id, the thing the event is about within the source;
* ``time``: the event's timestamp, RFC 3339 in UTC with microseconds;
* ``datacontenttype``: ``application/json``; ``data`` is ``formats.common.data(event)``;
* ``tidingstest``: ``"true"``, only on a test send (``tidings hooks test``), an extension
  attribute a receiver can check before acting.
"""

from __future__ import annotations

from tidings_server.domain.model import Event
from tidings_server.formats.common import data, dumps, event_type, rfc3339
from tidings_server.plugins.spec import RenderContext, RenderedPayload

SPECVERSION = "1.0"
DATA_CONTENT_TYPE = "application/json"
TYPE_PREFIX = "tidings."
TEST_ATTRIBUTE = "tidingstest"


def source(event: Event) -> str:
    if event.project_id is None:
        return f"/companies/{event.company_id}"
    return f"/companies/{event.company_id}/projects/{event.project_id}"


def attributes(event: Event, context: RenderContext) -> dict[str, str]:
    """The context attributes, in the order they are written; a test send adds the extension
    attribute ``tidingstest`` (CloudEvents extensions are lowercase letters and digits)."""
    found = {
        "specversion": SPECVERSION,
        "id": event.id,
        "source": source(event),
        "type": TYPE_PREFIX + event_type(event),
        "subject": str(event.resource_id),
        "time": rfc3339(event.timestamp),
        "datacontenttype": DATA_CONTENT_TYPE,
    }
    if context.test:
        found[TEST_ATTRIBUTE] = "true"
    return found


class CloudEventsStructured:
    name = "cloudevents.structured.v1"
    description = "CloudEvents 1.0, structured mode: attributes and data in one application/cloudevents+json body."
    content_type = "application/cloudevents+json; charset=utf-8"

    def render(self, event: Event, context: RenderContext) -> RenderedPayload:
        body = {**attributes(event, context), "data": data(event)}
        return RenderedPayload({"Content-Type": self.content_type}, dumps(body))


class CloudEventsBinary:
    name = "cloudevents.binary.v1"
    description = "CloudEvents 1.0, binary mode: attributes in ce- headers, the event data as a JSON body."
    content_type = DATA_CONTENT_TYPE

    def render(self, event: Event, context: RenderContext) -> RenderedPayload:
        # Every attribute value here is printable ASCII (digits, a ULID, a slug, a time), so
        # none needs the binding's percent-encoding; datacontenttype travels as Content-Type.
        headers = {"Content-Type": self.content_type}
        for key, value in attributes(event, context).items():
            if key != "datacontenttype":
                headers[f"ce-{key}"] = value
        return RenderedPayload(headers, dumps(data(event)))
