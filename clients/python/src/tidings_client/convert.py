"""Translation between protobuf messages and the client's values, shared by Client and AsyncClient.

Requests are built here and responses decoded here, so the sync and async clients differ only
in how they wait.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

from google.protobuf.duration_pb2 import Duration
from google.protobuf.field_mask_pb2 import FieldMask
from google.protobuf.timestamp_pb2 import Timestamp

from tidings.v1 import catalog_pb2, deliveries_pb2, events_pb2, hooks_pb2, templates_pb2, tokens_pb2
from tidings_client import types as t

K = TypeVar("K")
V = TypeVar("V")


def _invert(table: Mapping[K, V]) -> dict[V, K]:
    return {v: k for k, v in table.items()}


HOOK_STATUS: dict[t.HookStatus, hooks_pb2.HookStatus.ValueType] = {
    t.HookStatus.ACTIVE: hooks_pb2.HOOK_STATUS_ACTIVE,
    t.HookStatus.PAUSED: hooks_pb2.HOOK_STATUS_PAUSED,
    t.HookStatus.DISABLED: hooks_pb2.HOOK_STATUS_DISABLED,
}
ORDERING: dict[t.DeliveryOrdering, hooks_pb2.DeliveryOrdering.ValueType] = {
    t.DeliveryOrdering.UNORDERED: hooks_pb2.DELIVERY_ORDERING_UNORDERED,
    t.DeliveryOrdering.PER_RESOURCE: hooks_pb2.DELIVERY_ORDERING_PER_RESOURCE,
}
SCOPE: dict[t.Scope, catalog_pb2.Scope.ValueType] = {
    t.Scope.COMPANY: catalog_pb2.SCOPE_COMPANY,
    t.Scope.PROJECT: catalog_pb2.SCOPE_PROJECT,
}
DELIVERY_STATUS: dict[t.DeliveryStatus, deliveries_pb2.DeliveryStatus.ValueType] = {
    t.DeliveryStatus.QUEUED: deliveries_pb2.DELIVERY_STATUS_QUEUED,
    t.DeliveryStatus.RETRYING: deliveries_pb2.DELIVERY_STATUS_RETRYING,
    t.DeliveryStatus.DELIVERED: deliveries_pb2.DELIVERY_STATUS_DELIVERED,
    t.DeliveryStatus.FAILED: deliveries_pb2.DELIVERY_STATUS_FAILED,
    t.DeliveryStatus.DISCARDED: deliveries_pb2.DELIVERY_STATUS_DISCARDED,
}
DELIVERY_VIEW: dict[t.DeliveryView, deliveries_pb2.DeliveryView.ValueType] = {
    t.DeliveryView.BASIC: deliveries_pb2.DELIVERY_VIEW_BASIC,
    t.DeliveryView.FULL: deliveries_pb2.DELIVERY_VIEW_FULL,
}
ROLE: dict[t.Role, tokens_pb2.Role.ValueType] = {
    t.Role.OWNER: tokens_pb2.ROLE_OWNER,
    t.Role.ADMIN: tokens_pb2.ROLE_ADMIN,
    t.Role.VIEWER: tokens_pb2.ROLE_VIEWER,
    t.Role.PUBLISHER: tokens_pb2.ROLE_PUBLISHER,
}
_ROLE_BACK = _invert(ROLE)
_HOOK_STATUS_BACK = _invert(HOOK_STATUS)
_ORDERING_BACK = _invert(ORDERING)
_SCOPE_BACK = _invert(SCOPE)
_DELIVERY_STATUS_BACK = _invert(DELIVERY_STATUS)


class ProtocolError(ValueError):
    """The server sent a value this client does not know (a newer server): say so plainly."""


def _decode(table: Mapping[Any, K], value: int, what: str) -> K:
    try:
        return table[value]
    except KeyError:
        raise ProtocolError(f"the server sent {what} {value}, which this client does not know") from None


# -- scalars -------------------------------------------------------------------------------------


def timestamp(value: datetime) -> Timestamp:
    if value.tzinfo is None:
        raise ValueError("times must be timezone-aware; use datetime.now(UTC) or a time with tzinfo")
    ts = Timestamp()
    ts.FromDatetime(value.astimezone(UTC))
    return ts


def from_timestamp(message: object, field: str) -> datetime | None:
    """An unset Timestamp field is None, not 1970."""
    if not message.HasField(field):  # type: ignore[attr-defined]
        return None
    ts: Timestamp = getattr(message, field)
    return ts.ToDatetime(tzinfo=UTC)


def duration(value: timedelta) -> Duration:
    d = Duration()
    d.FromTimedelta(value)
    return d


def from_duration(message: object, field: str) -> timedelta | None:
    if not message.HasField(field):  # type: ignore[attr-defined]
        return None
    d: Duration = getattr(message, field)
    return d.ToTimedelta()


# -- hooks ---------------------------------------------------------------------------------------


def retry_policy_message(policy: t.RetryPolicy) -> hooks_pb2.RetryPolicy:
    message = hooks_pb2.RetryPolicy(
        retryable_statuses=[hooks_pb2.StatusRange(first=r.first, last=r.last) for r in policy.retryable_statuses]
    )
    for name in ("timeout", "retry_window", "initial_backoff", "max_backoff"):
        value: timedelta | None = getattr(policy, name)
        if value is not None:
            getattr(message, name).CopyFrom(duration(value))
    return message


def retry_policy(message: hooks_pb2.RetryPolicy) -> t.RetryPolicy:
    return t.RetryPolicy(
        timeout=from_duration(message, "timeout"),
        retry_window=from_duration(message, "retry_window"),
        initial_backoff=from_duration(message, "initial_backoff"),
        max_backoff=from_duration(message, "max_backoff"),
        retryable_statuses=tuple(
            t.StatusRange(first=r.first, last=r.last or r.first) for r in message.retryable_statuses
        ),
    )


def hook(message: hooks_pb2.Hook) -> t.Hook:
    return t.Hook(
        name=message.name,
        display_name=message.display_name,
        destination_url=message.destination_url,
        authorization_header=message.authorization_header,
        payload_format=message.payload_format,
        status=_decode(_HOOK_STATUS_BACK, message.status, "hook status"),
        create_time=from_timestamp(message, "create_time"),
        update_time=from_timestamp(message, "update_time"),
        retry_policy=retry_policy(message.retry_policy),
        ordering=_decode(_ORDERING_BACK, message.ordering, "delivery ordering"),
        max_concurrency=message.max_concurrency,
        signing_disabled=message.signing_disabled,
        signing_secret=message.signing_secret,
        previous_secret_expire_time=from_timestamp(message, "previous_secret_expire_time"),
        rate_limit=t.RateLimit(message.rate_limit.per_second, message.rate_limit.burst)
        if message.HasField("rate_limit")
        else None,
        disabled_reason=message.disabled_reason,
        disable_time=from_timestamp(message, "disable_time"),
        projects=tuple(message.projects),
        template=message.template,
        template_revision=message.template_revision,
    )


def create_hook_request(
    parent: str,
    destination_url: str,
    payload_format: str,
    *,
    display_name: str,
    authorization_header: str,
    hook_id: str,
    status: t.HookStatus | None,
    retry_policy: t.RetryPolicy | None,
    ordering: t.DeliveryOrdering | None,
    max_concurrency: int | None,
    signing_disabled: bool,
    rate_limit: t.RateLimit | None = None,
    projects: Sequence[int] = (),
) -> hooks_pb2.CreateHookRequest:
    message = hooks_pb2.Hook(
        display_name=display_name,
        destination_url=destination_url,
        authorization_header=authorization_header,
        payload_format=payload_format,
        status=HOOK_STATUS[status] if status else hooks_pb2.HOOK_STATUS_UNSPECIFIED,
        ordering=ORDERING[ordering] if ordering else hooks_pb2.DELIVERY_ORDERING_UNSPECIFIED,
        max_concurrency=max_concurrency or 0,
        signing_disabled=signing_disabled,
        projects=list(projects),
    )
    if retry_policy is not None:
        message.retry_policy.CopyFrom(retry_policy_message(retry_policy))
    if rate_limit is not None:
        message.rate_limit.CopyFrom(rate_limit_message(rate_limit))
    return hooks_pb2.CreateHookRequest(parent=parent, hook=message, hook_id=hook_id)


def rate_limit_message(value: t.RateLimit) -> hooks_pb2.RateLimit:
    return hooks_pb2.RateLimit(per_second=value.per_second, burst=value.burst)


def update_hook_request(name: str, changes: t.HookChanges) -> hooks_pb2.UpdateHookRequest:
    message = hooks_pb2.Hook(name=name)
    paths: list[str] = []
    if changes.display_name is not None:
        message.display_name = changes.display_name
        paths.append("display_name")
    if changes.destination_url is not None:
        message.destination_url = changes.destination_url
        paths.append("destination_url")
    if changes.authorization_header is not None:
        message.authorization_header = changes.authorization_header
        paths.append("authorization_header")
    if changes.status is not None:
        message.status = HOOK_STATUS[changes.status]
        paths.append("status")
    if changes.retry_policy is not None:
        message.retry_policy.CopyFrom(retry_policy_message(changes.retry_policy))
        paths.append("retry_policy")
    if changes.ordering is not None:
        message.ordering = ORDERING[changes.ordering]
        paths.append("ordering")
    if changes.max_concurrency is not None:
        message.max_concurrency = changes.max_concurrency
        paths.append("max_concurrency")
    if changes.signing_disabled is not None:
        message.signing_disabled = changes.signing_disabled
        paths.append("signing_disabled")
    if changes.rate_limit is not None:
        if changes.rate_limit.per_second:  # unset in the message: no limit
            message.rate_limit.CopyFrom(rate_limit_message(changes.rate_limit))
        paths.append("rate_limit")
    if changes.projects is not None:
        message.projects.extend(changes.projects)
        paths.append("projects")
    if not paths:
        raise ValueError("nothing to update: give at least one field to change")
    return hooks_pb2.UpdateHookRequest(hook=message, update_mask=FieldMask(paths=paths))


def rotate_signing_secret_request(name: str, overlap: timedelta | None) -> hooks_pb2.RotateSigningSecretRequest:
    message = hooks_pb2.RotateSigningSecretRequest(name=name)
    # Unset, not zero, when not given: zero means "stop signing with the old secret at once",
    # while unset lets the server apply its default overlap.
    if overlap is not None:
        message.overlap.CopyFrom(duration(overlap))
    return message


def trigger(message: hooks_pb2.Trigger) -> t.Trigger:
    return t.Trigger(
        name=message.name,
        resource_name=message.resource_name,
        event_type=message.event_type,
        create_time=from_timestamp(message, "create_time"),
    )


def trigger_messages(pairs: Iterable[tuple[str, str]]) -> list[hooks_pb2.Trigger]:
    return [hooks_pb2.Trigger(resource_name=r, event_type=e) for r, e in pairs]


# -- catalog -------------------------------------------------------------------------------------


def catalog_resource(message: catalog_pb2.CatalogResource) -> t.CatalogResource:
    return t.CatalogResource(
        resource_name=message.resource_name,
        scope=_decode(_SCOPE_BACK, message.scope, "scope"),
        event_types=tuple(message.event_types),
        catalog=message.catalog,
        hook_scopes=tuple(_decode(_SCOPE_BACK, s, "scope") for s in message.hook_scopes),
    )


def payload_format(message: catalog_pb2.PayloadFormat) -> t.PayloadFormat:
    return t.PayloadFormat(
        name=message.name,
        description=message.description,
        content_type=message.content_type,
        distribution=message.distribution,
        version=message.version,
    )


# -- events --------------------------------------------------------------------------------------


def event_message(event: t.Event) -> events_pb2.Event:
    message = events_pb2.Event(
        company_id=event.company_id,
        project_id=event.project_id,
        resource_name=event.resource_name,
        resource_id=event.resource_id,
        event_type=event.event_type,
        user_id=event.user_id,
        related_resources=[events_pb2.RelatedResource(id=r.id, name=r.name) for r in event.related_resources],
        idempotency_key=event.idempotency_key,
    )
    if event.timestamp is not None:
        message.timestamp.CopyFrom(timestamp(event.timestamp))
    if event.metadata is not None:
        m = event.metadata
        # Optional fields: only the ones given are set, so the rest reach payloads as null.
        meta = message.metadata
        meta.SetInParent()
        if m.source_user_id is not None:
            meta.source_user_id = m.source_user_id
        if m.source_project_id is not None:
            meta.source_project_id = m.source_project_id
        if m.source_operation_id is not None:
            meta.source_operation_id = m.source_operation_id
        if m.source_company_id is not None:
            meta.source_company_id = m.source_company_id
        if m.source_application_id is not None:
            meta.source_application_id = m.source_application_id
    return message


def event(message: events_pb2.Event) -> t.Event:
    metadata = None
    if message.HasField("metadata"):
        m = message.metadata
        metadata = t.EventMetadata(
            source_user_id=m.source_user_id if m.HasField("source_user_id") else None,
            source_project_id=m.source_project_id if m.HasField("source_project_id") else None,
            source_operation_id=m.source_operation_id if m.HasField("source_operation_id") else None,
            source_company_id=m.source_company_id if m.HasField("source_company_id") else None,
            source_application_id=m.source_application_id if m.HasField("source_application_id") else None,
        )
    return t.Event(
        id=message.id,
        company_id=message.company_id,
        project_id=message.project_id,
        resource_name=message.resource_name,
        resource_id=message.resource_id,
        event_type=message.event_type,
        user_id=message.user_id,
        timestamp=from_timestamp(message, "timestamp"),
        metadata=metadata,
        related_resources=tuple(t.RelatedResource(id=r.id, name=r.name) for r in message.related_resources),
        idempotency_key=message.idempotency_key,
    )


def published(message: events_pb2.PublishedEvent, idempotency_key: str) -> t.PublishedEvent:
    return t.PublishedEvent(
        event_id=message.event_id,
        deliveries=message.deliveries,
        duplicate=message.duplicate,
        idempotency_key=idempotency_key,
        project_template_error=message.project_template_error,
    )


# -- deliveries ----------------------------------------------------------------------------------


def _headers(messages: Iterable[deliveries_pb2.Header]) -> tuple[t.Header, ...]:
    return tuple(t.Header(name=h.name, value=h.value) for h in messages)


def attempt(message: deliveries_pb2.Attempt) -> t.Attempt:
    return t.Attempt(
        number=message.number,
        start_time=from_timestamp(message, "start_time"),
        end_time=from_timestamp(message, "end_time"),
        request_headers=_headers(message.request_headers),
        response_status=message.response_status,
        response_headers=_headers(message.response_headers),
        response_body=message.response_body,
        error=message.error,
    )


def delivery(message: deliveries_pb2.Delivery) -> t.Delivery:
    return t.Delivery(
        name=message.name,
        hook=message.hook,
        status=_decode(_DELIVERY_STATUS_BACK, message.status, "delivery status"),
        event=event(message.event) if message.HasField("event") else None,
        attempt_count=message.attempt_count,
        create_time=from_timestamp(message, "create_time"),
        update_time=from_timestamp(message, "update_time"),
        next_attempt_time=from_timestamp(message, "next_attempt_time"),
        last_error=message.last_error,
        last_response_status=message.last_response_status,
        body=message.body,
        content_type=message.content_type,
        attempts=tuple(attempt(a) for a in message.attempts),
    )


def list_deliveries_request(
    parent: str, where: t.DeliveryFilter, view: t.DeliveryView | None, page_size: int
) -> deliveries_pb2.ListDeliveriesRequest:
    message = deliveries_pb2.ListDeliveriesRequest(
        parent=parent,
        page_size=page_size,
        resource_id=where.resource_id,
        resource_name=where.resource_name,
        statuses=[DELIVERY_STATUS[s] for s in where.statuses],
        event_type=where.event_type,
        filter=where.filter,
        view=DELIVERY_VIEW[view] if view else deliveries_pb2.DELIVERY_VIEW_UNSPECIFIED,
    )
    if where.start_time is not None:
        message.start_time.CopyFrom(timestamp(where.start_time))
    if where.end_time is not None:
        message.end_time.CopyFrom(timestamp(where.end_time))
    return message


def hook_overview(message: deliveries_pb2.HookOverview) -> t.HookOverview:
    return t.HookOverview(
        hook=hook(message.hook),
        queued_count=message.queued_count,
        retrying_count=message.retrying_count,
        delivered_count=message.delivered_count,
        failed_count=message.failed_count,
        discarded_count=message.discarded_count,
        success_rate=message.success_rate,
        latency_p50=from_duration(message, "latency_p50"),
        latency_p95=from_duration(message, "latency_p95"),
        last_success_time=from_timestamp(message, "last_success_time"),
        last_failure_time=from_timestamp(message, "last_failure_time"),
        last_failure_reason=message.last_failure_reason,
        consecutive_failures=message.consecutive_failures,
        next_retry_time=from_timestamp(message, "next_retry_time"),
        rate_limited_time=from_timestamp(message, "rate_limited_time"),
        circuit_open_time=from_timestamp(message, "circuit_open_time"),
        next_probe_time=from_timestamp(message, "next_probe_time"),
        project_id=message.project_id,
    )


def watch_request(
    parent: str, statuses: Iterable[t.DeliveryStatus], resume_token: str
) -> deliveries_pb2.WatchDeliveriesRequest:
    return deliveries_pb2.WatchDeliveriesRequest(
        parent=parent,
        statuses=[DELIVERY_STATUS[s] for s in statuses],
        resume_token=resume_token,
    )


def delivery_change(message: deliveries_pb2.DeliveryChange) -> t.DeliveryChange:
    return t.DeliveryChange(
        delivery=delivery(message.delivery),
        change_time=from_timestamp(message, "change_time"),
        resume_token=message.resume_token,
    )


def redeliver_result(message: deliveries_pb2.RedeliverDeliveriesResponse) -> t.RedeliverResult:
    return t.RedeliverResult(queued_count=message.queued_count, names=tuple(message.names), more=message.more)


def endpoint_test_result(message: deliveries_pb2.SendTestEventResponse) -> t.EndpointTestResult:
    return t.EndpointTestResult(
        response_status=message.response_status,
        latency=from_duration(message, "latency"),
        response_excerpt=message.response_excerpt,
        error=message.error,
        request_headers=_headers(message.request_headers),
        body=message.body,
    )


def token(message: tokens_pb2.Token) -> t.Token:
    return t.Token(
        name=message.name,
        display_name=message.display_name,
        role=_decode(_ROLE_BACK, message.role, "role"),
        scope=message.scope,
        create_time=from_timestamp(message, "create_time"),
        last_used_time=from_timestamp(message, "last_used_time"),
        revoke_time=from_timestamp(message, "revoke_time"),
        secret=message.secret,
        client_cert_name=message.client_cert_name,
    )


def definition_message(d: t.HookDefinition) -> templates_pb2.HookDefinition:
    hook = hooks_pb2.Hook(
        display_name=d.display_name,
        destination_url=d.destination_url,
        authorization_header=d.authorization_header,
        payload_format=d.payload_format,
        ordering=ORDERING[d.ordering] if d.ordering else hooks_pb2.DELIVERY_ORDERING_UNSPECIFIED,
        max_concurrency=d.max_concurrency or 0,
        signing_disabled=d.signing_disabled,
    )
    if d.retry_policy is not None:
        hook.retry_policy.CopyFrom(retry_policy_message(d.retry_policy))
    triggers = [hooks_pb2.Trigger(resource_name=r, event_type=e) for r, e in d.events]
    return templates_pb2.HookDefinition(hook_id=d.hook_id, hook=hook, triggers=triggers)


def template(message: templates_pb2.Template) -> t.Template:
    return t.Template(
        name=message.name,
        display_name=message.display_name,
        hooks=tuple(
            t.HookDefinition(
                hook_id=d.hook_id,
                destination_url=d.hook.destination_url,
                payload_format=d.hook.payload_format,
                events=tuple((x.resource_name, x.event_type) for x in d.triggers),
                display_name=d.hook.display_name,
                authorization_header=d.hook.authorization_header,
                retry_policy=retry_policy(d.hook.retry_policy),
                ordering=_decode(_ORDERING_BACK, d.hook.ordering, "delivery ordering"),
                max_concurrency=d.hook.max_concurrency,
                signing_disabled=d.hook.signing_disabled,
            )
            for d in message.hooks
        ),
        revision=message.revision,
        create_time=from_timestamp(message, "create_time"),
        update_time=from_timestamp(message, "update_time"),
    )


def applied_template(message: templates_pb2.ApplyTemplateResponse) -> t.AppliedTemplate:
    return t.AppliedTemplate(
        created=tuple(hook(h) for h in message.created_hooks),
        existing=tuple(message.existing_hooks),
        already_applied=message.already_applied,
        revision=message.revision,
    )
