"""The payload formats tidings-server ships: Standard Webhooks and CloudEvents (structured and
binary). They are a plugin like any other, named ``formats`` in the ``tidings`` entry-point
group, so they can be listed, blocked (``--disable-plugin formats``) and tested the same way.
"""

from __future__ import annotations

from tidings_server.formats.cloudevents import CloudEventsBinary, CloudEventsStructured
from tidings_server.formats.standard_webhooks import StandardWebhooks
from tidings_server.plugins.spec import PayloadFormat, hookimpl

__all__ = ["CloudEventsBinary", "CloudEventsStructured", "StandardWebhooks", "tidings_payload_formats"]


@hookimpl
def tidings_payload_formats() -> list[PayloadFormat]:
    return [StandardWebhooks(), CloudEventsStructured(), CloudEventsBinary()]
