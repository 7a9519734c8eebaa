"""How domain records become PostgreSQL rows and back.

Times are timestamptz (psycopg reads and writes aware datetimes, to the microsecond), durations
bigint microseconds, enums their ``value``, header lists and related resources JSON text. The
column lists here are the one spelling of each record's columns, shared by every query.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any, Final

from tidings_server.domain.model import (
    Attempt,
    Delivery,
    Event,
    Hook,
    HookStatus,
    Ordering,
    RetryPolicy,
    SendRate,
    Trigger,
)
from tidings_server.domain.names import Parent
from tidings_server.stores import rowmap

_MICROSECOND = timedelta(microseconds=1)

HOOK_COLUMNS: Final = (
    "name, company_id, project_id, display_name, destination_url, authorization_header, payload_format,"
    " status, create_time, update_time, timeout_us, retry_window_us, initial_backoff_us, max_backoff_us,"
    " retryable_statuses, ordering, max_concurrency, signing_disabled, signing_secret,"
    " previous_signing_secret, previous_secret_expire_time, rate_limit_per_second, rate_limit_burst,"
    " disabled_reason, disable_time, projects, template, template_revision"
)
DELIVERY_COLUMNS: Final = (
    "name, hook_name, event_id, status, attempt_count, create_time, update_time, next_attempt_time,"
    " first_attempt_time, last_error, company_id, project_id, resource_name, resource_id, event_type,"
    " last_response_status"
)
EVENT_COLUMNS: Final = (
    "serial, id, publish_time, timestamp, company_id, project_id, user_id, resource_name, resource_id,"
    " event_type, source_user_id, source_project_id, source_operation_id, source_company_id,"
    " source_application_id, related_resources, idempotency_key, traceparent,"
    " idempotency_fingerprint"
)
ATTEMPT_COLUMNS: Final = (
    "number, start_time, end_time, request_headers, response_status, response_headers, response_body, error"
)


def prefixed(columns: str, alias: str) -> str:
    """``columns`` each qualified by a table alias (``d.name, d.hook_name, …``)."""
    return ", ".join(f"{alias}.{c.strip()}" for c in columns.split(","))


def aware(what: str, value: datetime) -> datetime:
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"{what} must be timezone-aware, got {value!r}")
    return value


def optional_aware(what: str, value: datetime | None) -> datetime | None:
    return None if value is None else aware(what, value)


def _micros(value: timedelta) -> int:
    return value // _MICROSECOND


def hook_row(hook: Hook) -> tuple[Any, ...]:
    """The row for ``hook`` in HOOK_COLUMNS order, then ``parent``."""
    policy = hook.retry_policy
    return (
        hook.name,
        hook.company_id,
        hook.project_id,
        hook.display_name,
        hook.destination_url,
        hook.authorization_header,
        hook.payload_format,
        hook.status.value,
        aware("create_time", hook.create_time),
        aware("update_time", hook.update_time),
        _micros(policy.timeout),
        _micros(policy.retry_window),
        _micros(policy.initial_backoff),
        _micros(policy.max_backoff),
        sorted(policy.retryable_statuses),
        hook.ordering.value,
        hook.max_concurrency,
        hook.signing_disabled,
        hook.signing_secret,
        hook.previous_signing_secret,
        optional_aware("previous_secret_expire_time", hook.previous_secret_expire_time),
        0.0 if hook.rate_limit is None else hook.rate_limit.per_second,
        0 if hook.rate_limit is None else hook.rate_limit.burst,
        hook.disabled_reason,
        optional_aware("disable_time", hook.disable_time),
        list(hook.projects),
        hook.template,
        hook.template_revision,
        str(Parent(hook.company_id, hook.project_id)),
    )


def hook(row: Any) -> Hook:
    """Read HOOK_COLUMNS."""
    (
        name,
        company_id,
        project_id,
        display_name,
        url,
        authorization,
        payload_format,
        status,
        created,
        updated,
        timeout,
        window,
        initial,
        maximum,
        statuses,
        ordering,
        max_concurrency,
        signing_disabled,
        signing_secret,
        previous_secret,
        previous_expire,
        per_second,
        burst,
        disabled_reason,
        disable_time,
        projects,
        template,
        template_revision,
    ) = row
    return Hook(
        name=name,
        company_id=company_id,
        project_id=project_id,
        display_name=display_name,
        destination_url=url,
        authorization_header=authorization,
        payload_format=payload_format,
        status=HookStatus(status),
        create_time=created,
        update_time=updated,
        retry_policy=RetryPolicy(
            timeout=timedelta(microseconds=timeout),
            retry_window=timedelta(microseconds=window),
            initial_backoff=timedelta(microseconds=initial),
            max_backoff=timedelta(microseconds=maximum),
            retryable_statuses=frozenset(statuses),
        ),
        ordering=Ordering(ordering),
        max_concurrency=max_concurrency,
        signing_disabled=signing_disabled,
        signing_secret=signing_secret,
        previous_signing_secret=previous_secret,
        projects=tuple(sorted(projects)),
        template=template,
        template_revision=template_revision,
        previous_secret_expire_time=previous_expire,
        rate_limit=SendRate(per_second, burst) if per_second else None,
        disabled_reason=disabled_reason,
        disable_time=disable_time,
    )


def trigger(row: Any) -> Trigger:
    name, resource_name, event_type, created = row
    return Trigger(name=name, resource_name=resource_name, event_type=event_type, create_time=created)


def event_row(event: Event, serial: int, publish_time: datetime) -> tuple[Any, ...]:
    """The row for ``event`` stored as ``serial``, in EVENT_COLUMNS order."""
    return rowmap.event_row(event, serial, publish_time, aware)


def event(row: Any) -> Event:
    """Read EVENT_COLUMNS."""
    return rowmap.event(row, _as_read)


def delivery(row: Any) -> Delivery:
    """Read DELIVERY_COLUMNS (of deliveries and of changes alike)."""
    return rowmap.delivery(row, _as_read)


headers_text: Final = rowmap.headers_text


def attempt(row: Any) -> Attempt:
    """Read ATTEMPT_COLUMNS."""
    return rowmap.attempt(row, _as_read)


def _as_read(value: datetime) -> datetime:
    """psycopg reads timestamptz as aware datetimes already."""
    return value
