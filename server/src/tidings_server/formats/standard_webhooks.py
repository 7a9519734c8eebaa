"""``standard-webhooks.v1``: the JSON body the Standard Webhooks specification recommends.

``{"type": "rfis.update", "timestamp": "…Z", "data": {…}}``. The specification leaves ``data``
to the sender; ours is the whole event (``formats.common.data``). Signing is separate: it is a
hook option and works the same with every format.
"""

from __future__ import annotations

from tidings_server.domain.model import Event
from tidings_server.formats.common import data, dumps, event_type, rfc3339
from tidings_server.plugins.spec import RenderContext, RenderedPayload

JSON = "application/json"


class StandardWebhooks:
    name = "standard-webhooks.v1"
    description = "Standard Webhooks JSON: type (resource.event), timestamp and the event as data."
    content_type = JSON

    def render(self, event: Event, context: RenderContext) -> RenderedPayload:
        body = {"type": event_type(event), "timestamp": rfc3339(event.timestamp), "data": data(event)}
        return RenderedPayload({"Content-Type": self.content_type}, dumps(body))
