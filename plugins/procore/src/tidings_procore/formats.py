"""Procore's webhook payloads v2.0, v3.0 and v4.0, rendered from tidings events.

Receivers written for Procore parse these bodies as they are documented, so field names, their
order and their JSON types follow Procore's examples exactly; only the values come from the event.
"""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from datetime import UTC, datetime

from tidings_server.domain.model import Event
from tidings_server.plugins.spec import PayloadFormat, RenderContext, RenderedPayload

JSON = "application/json"


def rfc3339_utc(moment: datetime) -> str:
    """``2025-02-06T23:34:12.246562Z``: UTC, always six fractional digits, as Procore sends.

    A naive datetime is rejected instead of guessed at: a wrong zone would shift every timestamp
    a receiver sees without any error.
    """
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(f"event timestamp {moment!r} has no time zone")
    return moment.astimezone(UTC).replace(tzinfo=None).isoformat(timespec="microseconds") + "Z"


# One encoder for every body: json.dumps with these options builds a new one at each call
# (5.9 against 3.2 µs for a v4 payload).
_ENCODER = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False)


class _JsonFormat(ABC):
    """Serializes ``payload(event)`` the same way for every version, so equal events give equal bytes."""

    name: str
    description: str
    content_type: str = JSON

    @abstractmethod
    def payload(self, event: Event) -> dict[str, object]:
        """The JSON object to send, keys in the order the receiver expects them."""

    def render(self, event: Event, context: RenderContext) -> RenderedPayload:
        body = _ENCODER.encode(self.payload(event))
        return RenderedPayload(headers={"Content-Type": self.content_type}, body=body.encode("utf-8"))


class ProcoreV2Format(_JsonFormat):
    """Procore v2.0: integer ids, the numeric ``id`` next to the ``ulid``, and the change's source."""

    name = "procore.v2"
    description = "Procore webhook payload v2.0: integer ids, a numeric id plus the ULID, and source metadata."
    api_version = "v2.0"

    def payload(self, event: Event) -> dict[str, object]:
        source = event.metadata
        return {
            "id": event.serial,
            "ulid": event.id,
            "timestamp": rfc3339_utc(event.timestamp),
            "metadata": {
                "source_user_id": source.source_user_id,
                "source_project_id": source.source_project_id,
                "source_operation_id": source.source_operation_id,
                "source_company_id": source.source_company_id,
                "source_application_id": source.source_application_id,
            },
            "user_id": event.user_id,
            "company_id": event.company_id,
            "project_id": event.project_id,
            "api_version": self.api_version,
            "event_type": event.event_type,
            "resource_name": event.resource_name,
            "resource_id": event.resource_id,
        }


class ProcoreV3Format(ProcoreV2Format):
    """Procore v3.0 is v2.0 with ``related_resources`` appended (an empty list when there are none)."""

    name = "procore.v3"
    description = "Procore webhook payload v3.0: the v2.0 payload plus the resources related to the changed one."
    api_version = "v3.0"

    def payload(self, event: Event) -> dict[str, object]:
        body = super().payload(event)
        body["related_resources"] = [{"id": r.id, "name": r.name} for r in event.related_resources]
        return body


class ProcoreV4Format(_JsonFormat):
    """Procore v4.0: eight flat fields, every id a string, ``event_type`` renamed ``reason``."""

    name = "procore.v4"
    description = "Procore webhook payload v4.0: eight flat fields with string ids, keyed by the event's ULID."

    def payload(self, event: Event) -> dict[str, object]:
        return {
            "id": event.id,
            "timestamp": rfc3339_utc(event.timestamp),
            "reason": event.event_type,
            "company_id": str(event.company_id),
            "project_id": None if event.project_id is None else str(event.project_id),
            "user_id": str(event.user_id),
            "resource_type": event.resource_name,
            "resource_id": str(event.resource_id),
        }


FORMATS: tuple[PayloadFormat, ...] = (ProcoreV2Format(), ProcoreV3Format(), ProcoreV4Format())
