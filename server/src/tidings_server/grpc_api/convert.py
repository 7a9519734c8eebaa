"""Translation between protobuf messages and domain records; nothing else crosses the adapter."""

from __future__ import annotations

import enum
from collections.abc import Collection, Iterable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import TypeVar

from google.protobuf.duration_pb2 import Duration
from google.protobuf.timestamp_pb2 import Timestamp

from tidings.v1 import catalog_pb2, events_pb2, hooks_pb2, templates_pb2
from tidings_server.domain.catalog import CatalogEntry, FormatInfo
from tidings_server.domain.errors import InvalidArgument
from tidings_server.domain.events import EventDraft
from tidings_server.domain.hooks import HookInput, RetryPolicyInput
from tidings_server.domain.model import (
    EventMetadata,
    Hook,
    HookStatus,
    Ordering,
    RelatedResource,
    RetryPolicy,
    Scope,
    SendRate,
    Template,
    Trigger,
)
from tidings_server.domain.ports import Published
from tidings_server.domain.secrets import mask
from tidings_server.domain.templates import Applied, DefinitionInput

MAX_DURATION_SECONDS = 10 * 365 * 86400  # beyond any limit; keeps datetime arithmetic finite
MAX_STATUS_RANGES = 50

_STATUS_TO_PROTO = {
    HookStatus.ACTIVE: hooks_pb2.HOOK_STATUS_ACTIVE,
    HookStatus.PAUSED: hooks_pb2.HOOK_STATUS_PAUSED,
    HookStatus.DISABLED: hooks_pb2.HOOK_STATUS_DISABLED,
}
_STATUS_FROM_PROTO: dict[int, HookStatus] = {v: k for k, v in _STATUS_TO_PROTO.items()}
_ORDERING_TO_PROTO = {
    Ordering.UNORDERED: hooks_pb2.DELIVERY_ORDERING_UNORDERED,
    Ordering.PER_RESOURCE: hooks_pb2.DELIVERY_ORDERING_PER_RESOURCE,
}
_ORDERING_FROM_PROTO: dict[int, Ordering] = {v: k for k, v in _ORDERING_TO_PROTO.items()}
_SCOPE_TO_PROTO = {Scope.COMPANY: catalog_pb2.SCOPE_COMPANY, Scope.PROJECT: catalog_pb2.SCOPE_PROJECT}
_SCOPE_FROM_PROTO: dict[int, Scope] = {v: k for k, v in _SCOPE_TO_PROTO.items()}


def timestamp(value: datetime) -> Timestamp:
    ts = Timestamp()
    ts.FromDatetime(value)
    return ts


E = TypeVar("E", bound=enum.Enum)


def _enum(field: str, value: int, table: Mapping[int, E], what: str) -> E | None:
    """Decode a proto enum: 0 (UNSPECIFIED) means "not given", an unknown number is an error."""
    if value == 0:
        return None
    found = table.get(value)
    if found is None:
        raise InvalidArgument(f"{field}: {value} is not a known {what}")
    return found


def hook_status(field: str, value: int) -> HookStatus | None:
    return _enum(field, value, _STATUS_FROM_PROTO, "hook status")


def scope(field: str, value: int) -> Scope | None:
    return _enum(field, value, _SCOPE_FROM_PROTO, "scope")


def ordering(field: str, value: int) -> Ordering | None:
    return _enum(field, value, _ORDERING_FROM_PROTO, "delivery ordering")


def _duration(field: str, message: hooks_pb2.RetryPolicy, name: str) -> timedelta | None:
    if not message.HasField(name):  # type: ignore[arg-type]
        return None
    return checked_duration(f"{field}.{name}", getattr(message, name))


def checked_duration(field: str, value: Duration) -> timedelta:
    """A Duration as a timedelta, refusing negative and absurd values before any arithmetic."""
    if value.seconds < 0 or value.nanos < 0:
        raise InvalidArgument(f"{field}: must not be negative")
    if value.seconds > MAX_DURATION_SECONDS or value.nanos >= 1_000_000_000:
        raise InvalidArgument(f"{field}: {value.seconds} s is not a duration this API accepts")
    return timedelta(seconds=value.seconds, microseconds=value.nanos // 1000)


def signing_overlap(request: hooks_pb2.RotateSigningSecretRequest) -> timedelta | None:
    """The requested overlap, or None (the default) when it is unset."""
    return checked_duration("overlap", request.overlap) if request.HasField("overlap") else None


def retry_policy_input(field: str, message: hooks_pb2.RetryPolicy) -> RetryPolicyInput:
    return RetryPolicyInput(
        timeout=_duration(field, message, "timeout"),
        retry_window=_duration(field, message, "retry_window"),
        initial_backoff=_duration(field, message, "initial_backoff"),
        max_backoff=_duration(field, message, "max_backoff"),
        retryable_statuses=status_ranges(f"{field}.retryable_statuses", message.retryable_statuses),
    )


def status_ranges(field: str, ranges: Sequence[hooks_pb2.StatusRange]) -> tuple[int, ...]:
    """Expand ranges (bounded: at most 100 statuses in all); the domain checks which are allowed."""
    if len(ranges) > MAX_STATUS_RANGES:
        raise InvalidArgument(f"{field}: {len(ranges)} ranges is more than the {MAX_STATUS_RANGES} allowed")
    statuses: set[int] = set()
    for i, r in enumerate(ranges):
        last = r.last or r.first
        if last < r.first:
            raise InvalidArgument(f"{field}[{i}]: last {r.last} is below first {r.first}")
        if r.first < 100 or last > 599:
            raise InvalidArgument(f"{field}[{i}]: {r.first}-{last} is not a range of HTTP statuses")
        statuses.update(range(r.first, last + 1))
    return tuple(sorted(statuses))


def compress(statuses: Iterable[int]) -> list[hooks_pb2.StatusRange]:
    """Sorted statuses as the fewest ranges: 408, 429, 500-599."""
    ranges: list[hooks_pb2.StatusRange] = []
    for status in sorted(statuses):
        if ranges and status == (ranges[-1].last or ranges[-1].first) + 1:
            ranges[-1].last = status
        else:
            ranges.append(hooks_pb2.StatusRange(first=status))
    return ranges


def hook_input(message: hooks_pb2.Hook, paths: Collection[str] | None = None) -> HookInput:
    """Decode the settable fields; with ``paths`` (an update mask) only those are read."""

    def wanted(name: str) -> bool:
        return paths is None or name in paths

    return HookInput(
        display_name=message.display_name,
        destination_url=message.destination_url,
        authorization_header=message.authorization_header,
        payload_format=message.payload_format,
        status=hook_status("hook.status", message.status) if wanted("status") else None,
        retry_policy=retry_policy_input("hook.retry_policy", message.retry_policy)
        if wanted("retry_policy")
        else RetryPolicyInput(),
        ordering=ordering("hook.ordering", message.ordering) if wanted("ordering") else None,
        max_concurrency=message.max_concurrency,
        signing_disabled=message.signing_disabled,
        rate_limit=send_rate(message) if wanted("rate_limit") else None,
        projects=tuple(message.projects),
    )


def send_rate(message: hooks_pb2.Hook) -> SendRate | None:
    """The hook's rate limit as given (checked by the domain); unset is no limit, burst 1 unset."""
    if not message.HasField("rate_limit"):
        return None
    return SendRate(per_second=message.rate_limit.per_second, burst=message.rate_limit.burst or 1)


def duration(value: timedelta) -> Duration:
    d = Duration()
    d.FromTimedelta(value)
    return d


def retry_policy(value: RetryPolicy) -> hooks_pb2.RetryPolicy:
    return hooks_pb2.RetryPolicy(
        timeout=duration(value.timeout),
        retry_window=duration(value.retry_window),
        initial_backoff=duration(value.initial_backoff),
        max_backoff=duration(value.max_backoff),
        retryable_statuses=compress(value.retryable_statuses),
    )


def hook(value: Hook, *, with_secret: bool = False) -> hooks_pb2.Hook:
    """A hook as callers see it: the Authorization header is masked and the signing secret left
    out, except ``with_secret`` (the CreateHook and RotateSigningSecret responses, where the
    caller must learn it and there is no other way to)."""
    expire = value.previous_secret_expire_time
    return hooks_pb2.Hook(
        name=value.name,
        display_name=value.display_name,
        destination_url=value.destination_url,
        authorization_header=mask(value.authorization_header),
        payload_format=value.payload_format,
        status=_STATUS_TO_PROTO[value.status],
        create_time=timestamp(value.create_time),
        update_time=timestamp(value.update_time),
        retry_policy=retry_policy(value.retry_policy),
        ordering=_ORDERING_TO_PROTO[value.ordering],
        max_concurrency=value.max_concurrency,
        # A hook from before signing existed has no secret and is delivered unsigned: say so.
        signing_disabled=value.signing_disabled or not value.signing_secret,
        signing_secret=value.signing_secret if with_secret else "",
        previous_secret_expire_time=timestamp(expire) if expire is not None else None,
        rate_limit=None
        if value.rate_limit is None
        else hooks_pb2.RateLimit(per_second=value.rate_limit.per_second, burst=value.rate_limit.burst),
        disabled_reason=value.disabled_reason,
        disable_time=timestamp(value.disable_time) if value.disable_time is not None else None,
        projects=value.projects,
        template=value.template,
        template_revision=value.template_revision,
    )


def trigger(value: Trigger) -> hooks_pb2.Trigger:
    return hooks_pb2.Trigger(
        name=value.name,
        resource_name=value.resource_name,
        event_type=value.event_type,
        create_time=timestamp(value.create_time),
    )


def catalog_resource(entry: CatalogEntry) -> catalog_pb2.CatalogResource:
    return catalog_pb2.CatalogResource(
        resource_name=entry.resource.name,
        scope=_SCOPE_TO_PROTO[entry.resource.scope],
        event_types=sorted(entry.resource.event_types),
        catalog=entry.catalog,
        hook_scopes=[_SCOPE_TO_PROTO[s] for s in entry.hook_scopes],
    )


def payload_format(info: FormatInfo) -> catalog_pb2.PayloadFormat:
    return catalog_pb2.PayloadFormat(
        name=info.name,
        description=info.description,
        content_type=info.content_type,
        distribution=info.distribution,
        version=info.version,
    )


def _optional(message: events_pb2.EventMetadata, name: str) -> int | None:
    return getattr(message, name) if message.HasField(name) else None  # type: ignore[arg-type]


_NO_METADATA = EventMetadata()  # immutable, so every event published without metadata shares it


def _metadata(message: events_pb2.Event) -> EventMetadata:
    if not message.HasField("metadata"):
        return _NO_METADATA
    meta = message.metadata
    return EventMetadata(
        source_user_id=_optional(meta, "source_user_id"),
        source_project_id=_optional(meta, "source_project_id"),
        source_operation_id=_optional(meta, "source_operation_id"),
        source_company_id=_optional(meta, "source_company_id"),
        source_application_id=meta.source_application_id if meta.HasField("source_application_id") else None,
    )


def event_draft(where: str, message: events_pb2.Event) -> EventDraft:
    timestamp = None
    if message.HasField("timestamp"):
        try:
            timestamp = message.timestamp.ToDatetime(tzinfo=UTC)
        except (ValueError, OverflowError):
            raise InvalidArgument(f"{where}.timestamp: not a valid point in time") from None
    related = message.related_resources
    return EventDraft(
        company_id=message.company_id,
        project_id=message.project_id,
        resource_name=message.resource_name,
        resource_id=message.resource_id,
        event_type=message.event_type,
        user_id=message.user_id,
        timestamp=timestamp,
        metadata=_metadata(message),
        related_resources=tuple(RelatedResource(r.id, r.name) for r in related) if related else (),
        idempotency_key=message.idempotency_key,
        traceparent=message.traceparent,
        project_template=message.project_template,
    )


def published(value: Published) -> events_pb2.PublishedEvent:
    return events_pb2.PublishedEvent(
        event_id=value.event_id,
        deliveries=value.deliveries,
        duplicate=value.duplicate,
        project_template_error=value.project_template_error,
    )


def definition_inputs(message: templates_pb2.Template) -> list[DefinitionInput]:
    """A template's hook definitions as given."""
    return [
        DefinitionInput(
            hook_id=d.hook_id,
            hook=hook_input(d.hook),
            triggers=tuple((t.resource_name, t.event_type) for t in d.triggers),
        )
        for d in message.hooks
    ]


def template(value: Template) -> templates_pb2.Template:
    """A template as callers see it: each definition's Authorization header masked."""
    return templates_pb2.Template(
        name=value.name,
        display_name=value.display_name,
        hooks=[
            templates_pb2.HookDefinition(
                hook_id=d.hook_id,
                hook=hooks_pb2.Hook(
                    display_name=d.display_name,
                    destination_url=d.destination_url,
                    authorization_header=mask(d.authorization_header),
                    payload_format=d.payload_format,
                    retry_policy=retry_policy(d.retry_policy),
                    ordering=_ORDERING_TO_PROTO[d.ordering],
                    max_concurrency=d.max_concurrency,
                    signing_disabled=d.signing_disabled,
                ),
                triggers=[hooks_pb2.Trigger(resource_name=r, event_type=e) for r, e in d.triggers],
            )
            for d in value.hooks
        ],
        revision=value.revision,
        create_time=timestamp(value.create_time),
        update_time=timestamp(value.update_time),
    )


def applied(value: Applied) -> templates_pb2.ApplyTemplateResponse:
    return templates_pb2.ApplyTemplateResponse(
        created_hooks=[hook(h, with_secret=True) for h in value.created],
        existing_hooks=value.already_applied,
        already_applied=bool(value.already_applied) and not value.created,
        revision=value.template.revision,
    )
