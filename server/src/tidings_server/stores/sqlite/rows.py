"""How domain records become SQLite rows and back.

Times are integer microseconds since the Unix epoch (exact, and they sort like time), durations
integer microseconds, enums their ``value``, header lists and related resources JSON text. The
column lists here are the single spelling of each record's columns, shared by every query.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

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

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)


def to_micros(what: str, value: datetime) -> int:
    """An aware datetime as integer microseconds since the Unix epoch: exact, and orders like time."""
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"{what} must be timezone-aware, got {value!r}")
    return (value - _EPOCH) // _MICROSECOND


@functools.lru_cache(maxsize=4096)
def from_micros(value: int) -> datetime:
    """The datetime of ``value``; cached, since a claim reads the same few times (a publish's,
    a hook's) on many rows, and a datetime is immutable."""
    return _EPOCH + timedelta(microseconds=value)


def optional_micros(what: str, value: datetime | None) -> int | None:
    return None if value is None else to_micros(what, value)


def optional_time(value: int | None) -> datetime | None:
    return None if value is None else from_micros(value)


def _duration(value: timedelta) -> int:
    return value // _MICROSECOND


def _statuses_text(statuses: frozenset[int]) -> str:
    return ",".join(str(s) for s in sorted(statuses))


@functools.lru_cache(maxsize=256)
def _statuses(text: str) -> frozenset[int]:
    # Cached: most hooks share a handful of lists (above all the default one of 102 statuses).
    return frozenset(int(s) for s in text.split(",")) if text else frozenset()


def hook_row(hook: Hook) -> tuple[object, ...]:
    """The row for ``hook``: the columns ``hook()`` reads (the signing ones last), then ``parent``,
    ``template`` and ``template_revision``."""
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
        to_micros("create_time", hook.create_time),
        to_micros("update_time", hook.update_time),
        _duration(policy.timeout),
        _duration(policy.retry_window),
        _duration(policy.initial_backoff),
        _duration(policy.max_backoff),
        _statuses_text(policy.retryable_statuses),
        hook.ordering.value,
        hook.max_concurrency,
        *signing_row(hook),
        *protection_row(hook),
        str(Parent(hook.company_id, hook.project_id)),
        hook.template,
        hook.template_revision,
    )


def protection_row(hook: Hook) -> tuple[object, ...]:
    """The protection columns of ``hook``, in the order ``with_protection()`` reads them."""
    rate = hook.rate_limit
    return (
        0.0 if rate is None else rate.per_second,
        0 if rate is None else rate.burst,
        hook.disabled_reason,
        optional_micros("disable_time", hook.disable_time),
    )


def with_protection(hook: Hook, row: Sequence[Any]) -> Hook:
    """``hook`` with rate_limit_per_second, rate_limit_burst, disabled_reason and disable_time
    read from ``row``."""
    per_second, burst, reason, disabled = row
    rate = SendRate(per_second, burst) if per_second else None
    return replace(hook, rate_limit=rate, disabled_reason=reason, disable_time=optional_time(disabled))


def signing_row(hook: Hook) -> tuple[object, ...]:
    """The signing columns of ``hook``, in the order ``with_signing()`` reads them."""
    return (
        int(hook.signing_disabled),
        hook.signing_secret,
        hook.previous_signing_secret,
        optional_micros("previous_secret_expire_time", hook.previous_secret_expire_time),
    )


def with_signing(hook: Hook, row: Sequence[Any]) -> Hook:
    """``hook`` with signing_disabled, signing_secret, previous_signing_secret and
    previous_secret_expire_time read from ``row``."""
    disabled, secret, previous, expire = row
    return replace(
        hook,
        signing_disabled=bool(disabled),
        signing_secret=secret,
        previous_signing_secret=previous,
        previous_secret_expire_time=optional_time(expire),
    )


def hook(row: Any) -> Hook:
    """Read name, company_id, project_id, display_name, destination_url, authorization_header,
    payload_format, status, create_time, update_time, timeout_us, retry_window_us,
    initial_backoff_us, max_backoff_us, retryable_statuses, ordering, max_concurrency, and the
    four signing columns when the row has them (``with_signing``), then the four protection
    columns when it has those too (``with_protection``), then the company hook's projects
    (comma-separated, NULL for none), template and template_revision when it has those."""
    if len(row) > 25:
        projects, template, revision = row[25:28]
        found = sorted(int(p) for p in projects.split(",")) if projects else []
        return replace(hook(row[:25]), projects=tuple(found), template=template, template_revision=revision)
    if len(row) > 21:
        return with_protection(hook(row[:21]), row[21:25])
    if len(row) > 17:
        return with_signing(hook(row[:17]), row[17:])
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
        create_time=from_micros(created),
        update_time=from_micros(updated),
        retry_policy=RetryPolicy(
            timeout=timedelta(microseconds=timeout),
            retry_window=timedelta(microseconds=window),
            initial_backoff=timedelta(microseconds=initial),
            max_backoff=timedelta(microseconds=maximum),
            retryable_statuses=_statuses(statuses),
        ),
        ordering=Ordering(ordering),
        max_concurrency=max_concurrency,
    )


def trigger(row: Any) -> Trigger:
    name, resource_name, event_type, created = row
    return Trigger(name=name, resource_name=resource_name, event_type=event_type, create_time=from_micros(created))


def event_row(event: Event, serial: int, publish_time: int) -> tuple[object, ...]:
    """The row for ``event`` stored as ``serial``, in the column order ``event()`` reads."""
    return rowmap.event_row(event, serial, publish_time, to_micros)


def event(row: Any) -> Event:
    """Read the columns of ``rowmap.event``."""
    return rowmap.event(row, from_micros)


def delivery(row: Any) -> Delivery:
    """Read the columns of ``rowmap.delivery`` (of deliveries and of changes alike)."""
    return rowmap.delivery(row, from_micros)


def attempt_row(delivery_name: str, attempt: Attempt) -> tuple[object, ...]:
    """The row for ``attempt`` of ``delivery_name``: the delivery's name, then what ``attempt()`` reads."""
    return (
        delivery_name,
        attempt.number,
        to_micros("start_time", attempt.start_time),
        to_micros("end_time", attempt.end_time),
        rowmap.headers_text(attempt.request_headers),
        attempt.response_status,
        rowmap.headers_text(attempt.response_headers),
        bytes(attempt.response_body),
        attempt.error,
    )


def attempt(row: Any) -> Attempt:
    """Read the columns of ``rowmap.attempt``."""
    return rowmap.attempt(row, from_micros)
