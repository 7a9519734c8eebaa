"""What the built-in formats share: one JSON spelling, one time format, one event body.

Bodies are compact UTF-8 JSON with keys in a fixed order, so the same event always renders to
the same bytes (receivers and signatures rely on that). Ids are JSON strings: 64-bit resource
ids do not fit a JavaScript number, and a receiver must never silently lose digits.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime

from tidings_server.domain import names
from tidings_server.domain.model import Event

# One encoder for every body: json.dumps with these options builds a new one at each call.
_ENCODER = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def dumps(value: object) -> bytes:
    return _ENCODER.encode(value).encode("utf-8")


def rfc3339(moment: datetime) -> str:
    """``2025-02-06T23:34:12.246562Z``: UTC, always six fractional digits (RFC 3339)."""
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(f"event timestamp {moment!r} has no time zone")
    return moment.astimezone(UTC).replace(tzinfo=None).isoformat(timespec="microseconds") + "Z"


def _id(value: int | None) -> str | None:
    return None if value is None else str(value)


def event_type(event: Event) -> str:
    """``rfis.update``: the resource as in trigger names, then the event type."""
    return names.trigger_id(event.resource_name, event.event_type)


def data(event: Event) -> dict[str, object]:
    """The event as a JSON object: every field, ``null`` where the event has none."""
    meta = event.metadata
    return {
        "event_id": event.id,
        "company_id": _id(event.company_id),
        "project_id": _id(event.project_id),
        "resource_name": event.resource_name,
        "resource_id": _id(event.resource_id),
        "event_type": event.event_type,
        "user_id": _id(event.user_id),
        "timestamp": rfc3339(event.timestamp),
        "metadata": {
            "source_user_id": _id(meta.source_user_id),
            "source_project_id": _id(meta.source_project_id),
            "source_operation_id": _id(meta.source_operation_id),
            "source_company_id": _id(meta.source_company_id),
            "source_application_id": meta.source_application_id,
        },
        "related_resources": [{"id": str(r.id), "name": r.name} for r in event.related_resources],
    }
