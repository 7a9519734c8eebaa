"""Events, deliveries and attempts as the SQL stores keep them: one map of columns to fields.

SQLite and PostgreSQL keep these records in the same columns, in the same order; they differ
only in how a time is kept (integer microseconds since the epoch in SQLite, ``timestamptz`` in
PostgreSQL), so each store passes its own pair of time converters. Header lists and related
resources are JSON text in both.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import datetime
from json.encoder import encode_basestring_ascii as _json_string
from typing import Any, TypeAlias

from tidings_server.domain.model import Attempt, Delivery, DeliveryStatus, Event, EventMetadata, RelatedResource

Write: TypeAlias = Callable[[str, datetime], Any]
"""A time as the store keeps it; the first argument names the field for the error if it is naive."""
Read: TypeAlias = Callable[[Any], datetime]
"""A stored time as an aware datetime."""

NO_RELATED = "[]"


def event_row(event: Event, serial: int, publish_time: Any, write: Write) -> tuple[object, ...]:
    """The row for ``event`` stored as ``serial`` (``publish_time`` already as stored), in the
    column order ``event()`` reads."""
    meta = event.metadata
    related = (
        json.dumps([{"id": r.id, "name": r.name} for r in event.related_resources])
        if event.related_resources
        else NO_RELATED
    )
    return (
        serial,
        event.id,
        publish_time,
        write("timestamp", event.timestamp),
        event.company_id,
        event.project_id,
        event.user_id,
        event.resource_name,
        event.resource_id,
        event.event_type,
        meta.source_user_id,
        meta.source_project_id,
        meta.source_operation_id,
        meta.source_company_id,
        meta.source_application_id,
        related,
        event.idempotency_key,
        event.traceparent,
        event.idempotency_fingerprint,
    )


def event(row: Any, read: Read) -> Event:
    """Read serial, id, publish_time, timestamp, company_id, project_id, user_id, resource_name,
    resource_id, event_type, source_user_id, source_project_id, source_operation_id,
    source_company_id, source_application_id, related_resources, idempotency_key, traceparent,
    idempotency_fingerprint."""
    (
        serial,
        event_id,
        _publish_time,
        timestamp,
        company_id,
        project_id,
        user_id,
        resource_name,
        resource_id,
        event_type,
        source_user_id,
        source_project_id,
        source_operation_id,
        source_company_id,
        source_application_id,
        related,
        idempotency_key,
        traceparent,
        idempotency_fingerprint,
    ) = row
    return Event(
        id=event_id,
        serial=serial,
        timestamp=read(timestamp),
        company_id=company_id,
        project_id=project_id,
        user_id=user_id,
        resource_name=resource_name,
        resource_id=resource_id,
        event_type=event_type,
        metadata=EventMetadata(
            source_user_id=source_user_id,
            source_project_id=source_project_id,
            source_operation_id=source_operation_id,
            source_company_id=source_company_id,
            source_application_id=source_application_id,
        ),
        related_resources=_related(related),
        idempotency_key=idempotency_key,
        traceparent=traceparent,
        idempotency_fingerprint=idempotency_fingerprint,
    )


def _related(text: str) -> tuple[RelatedResource, ...]:
    if text == NO_RELATED:  # most events name none: no parse for them, on every claim
        return ()
    return tuple(RelatedResource(r["id"], r["name"]) for r in json.loads(text))


def delivery(row: Any, read: Read) -> Delivery:
    """Read name, hook_name, event_id, status, attempt_count, create_time, update_time,
    next_attempt_time, first_attempt_time, last_error, company_id, project_id, resource_name,
    resource_id, event_type, last_response_status (columns of deliveries and of changes alike)."""
    (
        name,
        hook_name,
        event_id,
        status,
        attempts,
        created,
        updated,
        next_attempt,
        first_attempt,
        last_error,
        company_id,
        project_id,
        resource_name,
        resource_id,
        event_type,
        response_status,
    ) = row
    return Delivery(
        name=name,
        hook_name=hook_name,
        event_id=event_id,
        status=DeliveryStatus(status),
        attempt_count=attempts,
        create_time=read(created),
        update_time=read(updated),
        next_attempt_time=None if next_attempt is None else read(next_attempt),
        first_attempt_time=None if first_attempt is None else read(first_attempt),
        last_error=last_error,
        company_id=company_id,
        project_id=project_id,
        resource_name=resource_name,
        resource_id=resource_id,
        event_type=event_type,
        last_response_status=response_status,
    )


def headers_text(headers: tuple[tuple[str, str], ...]) -> str:
    """The text ``json.dumps(headers)`` makes (the pairs become JSON arrays, as lists would),
    built from the encoder's own string escaping: two of these per attempt recorded, and
    ``json.dumps`` sets up an encoder on every call (4.3 against 1.5 µs for 8 pairs)."""
    return "[" + ", ".join(f"[{_json_string(name)}, {_json_string(value)}]" for name, value in headers) + "]"


def headers(text: str) -> tuple[tuple[str, str], ...]:
    return tuple((name, value) for name, value in json.loads(text))


def attempt(row: Any, read: Read) -> Attempt:
    """Read number, start_time, end_time, request_headers, response_status, response_headers,
    response_body, error."""
    number, start, end, request_headers, status, response_headers, body, error = row
    return Attempt(
        number=number,
        start_time=read(start),
        end_time=read(end),
        request_headers=headers(request_headers),
        response_status=status,
        response_headers=headers(response_headers),
        response_body=bytes(body),
        error=error,
    )
