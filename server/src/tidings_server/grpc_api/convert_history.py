"""Translation of delivery history between protobuf messages and domain records."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

from tidings.v1 import deliveries_pb2, events_pb2
from tidings_server.domain.errors import InvalidArgument
from tidings_server.domain.history import Criteria, Detail, Overview, TestResult
from tidings_server.domain.model import Attempt, Delivery, DeliveryStatus, Event
from tidings_server.domain.ports import Change
from tidings_server.grpc_api.convert import duration, hook, timestamp

_STATUS_TO_PROTO = {
    DeliveryStatus.QUEUED: deliveries_pb2.DELIVERY_STATUS_QUEUED,
    DeliveryStatus.RETRYING: deliveries_pb2.DELIVERY_STATUS_RETRYING,
    DeliveryStatus.DELIVERED: deliveries_pb2.DELIVERY_STATUS_DELIVERED,
    DeliveryStatus.FAILED: deliveries_pb2.DELIVERY_STATUS_FAILED,
    DeliveryStatus.DISCARDED: deliveries_pb2.DELIVERY_STATUS_DISCARDED,
}
_STATUS_FROM_PROTO: dict[int, DeliveryStatus] = {v: k for k, v in _STATUS_TO_PROTO.items()}
_VIEWS = (deliveries_pb2.DELIVERY_VIEW_BASIC, deliveries_pb2.DELIVERY_VIEW_FULL)


def statuses(field: str, values: Sequence[int]) -> frozenset[DeliveryStatus]:
    """Decode a repeated status filter; UNSPECIFIED or an unknown number is an error here,
    since a caller listing it surely meant something."""
    found = set()
    for i, value in enumerate(values):
        status = _STATUS_FROM_PROTO.get(value)
        if status is None:
            raise InvalidArgument(
                f"{field}[{i}]: {value} is not a delivery status; use QUEUED, RETRYING, DELIVERED, FAILED or DISCARDED"
            )
        found.add(status)
    return frozenset(found)


def view(field: str, value: int, default: int) -> int:
    if value == deliveries_pb2.DELIVERY_VIEW_UNSPECIFIED:
        return default
    if value not in _VIEWS:
        raise InvalidArgument(f"{field}: {value} is not a view; use BASIC or FULL")
    return value


def _time(field: str, message: deliveries_pb2.ListDeliveriesRequest, name: str) -> datetime | None:
    if not message.HasField(name):  # type: ignore[arg-type]
        return None
    try:
        value: datetime = getattr(message, name).ToDatetime(tzinfo=UTC)
    except (ValueError, OverflowError):
        raise InvalidArgument(f"{field}: not a valid point in time") from None
    return value


def criteria(request: deliveries_pb2.ListDeliveriesRequest) -> Criteria:
    return Criteria(
        parent=request.parent,
        statuses=statuses("statuses", request.statuses),
        resource_name=request.resource_name,
        resource_id=request.resource_id,
        event_type=request.event_type,
        start_time=_time("start_time", request, "start_time"),
        end_time=_time("end_time", request, "end_time"),
        filter=request.filter,
    )


def event(value: Event) -> events_pb2.Event:
    m = value.metadata
    return events_pb2.Event(
        id=value.id,
        company_id=value.company_id,
        project_id=value.project_id or 0,
        resource_name=value.resource_name,
        resource_id=value.resource_id,
        event_type=value.event_type,
        user_id=value.user_id,
        timestamp=timestamp(value.timestamp),
        metadata=events_pb2.EventMetadata(
            source_user_id=m.source_user_id,
            source_project_id=m.source_project_id,
            source_operation_id=m.source_operation_id,
            source_company_id=m.source_company_id,
            source_application_id=m.source_application_id,
        ),
        related_resources=[events_pb2.RelatedResource(id=r.id, name=r.name) for r in value.related_resources],
        idempotency_key=value.idempotency_key,
    )


def _event_summary(value: Delivery) -> events_pb2.Event:
    """What a delivery itself knows of its event, for one whose event is gone."""
    return events_pb2.Event(
        id=value.event_id,
        company_id=value.company_id,
        project_id=value.project_id or 0,
        resource_name=value.resource_name,
        resource_id=value.resource_id,
        event_type=value.event_type,
    )


def delivery(value: Delivery, of: Event | None) -> deliveries_pb2.Delivery:
    message = deliveries_pb2.Delivery(
        name=value.name,
        hook=value.hook_name,
        status=_STATUS_TO_PROTO[value.status],
        event=event(of) if of is not None else _event_summary(value),
        attempt_count=value.attempt_count,
        create_time=timestamp(value.create_time),
        update_time=timestamp(value.update_time),
        last_error=value.last_error,
        last_response_status=value.last_response_status or 0,
    )
    if value.next_attempt_time is not None:
        message.next_attempt_time.CopyFrom(timestamp(value.next_attempt_time))
    return message


def _headers(pairs: Sequence[tuple[str, str]]) -> list[deliveries_pb2.Header]:
    return [deliveries_pb2.Header(name=k, value=v) for k, v in pairs]


def attempt(value: Attempt) -> deliveries_pb2.Attempt:
    return deliveries_pb2.Attempt(
        number=value.number,
        start_time=timestamp(value.start_time),
        end_time=timestamp(value.end_time),
        request_headers=_headers(value.request_headers),
        response_status=value.response_status or 0,
        response_headers=_headers(value.response_headers),
        response_body=value.response_body,
        error=value.error,
    )


def detail(value: Detail, full: bool) -> deliveries_pb2.Delivery:
    message = delivery(value.delivery, value.event)
    if full:
        if value.rendered is not None:
            message.body = value.rendered.body
            message.content_type = value.rendered.content_type
        message.attempts.extend(attempt(a) for a in value.attempts)
    return message


def overview(value: Overview) -> deliveries_pb2.HookOverview:
    counts = value.counts
    message = deliveries_pb2.HookOverview(
        hook=hook(value.hook),
        queued_count=counts[DeliveryStatus.QUEUED],
        retrying_count=counts[DeliveryStatus.RETRYING],
        delivered_count=counts[DeliveryStatus.DELIVERED],
        failed_count=counts[DeliveryStatus.FAILED],
        discarded_count=counts[DeliveryStatus.DISCARDED],
        success_rate=value.success_rate,
        last_failure_reason=value.last_failure_reason,
        consecutive_failures=value.consecutive_failures,
        project_id=value.project_id or 0,
    )
    if value.latency_p50 is not None:
        message.latency_p50.CopyFrom(duration(value.latency_p50))
    if value.latency_p95 is not None:
        message.latency_p95.CopyFrom(duration(value.latency_p95))
    for name, when in (
        ("last_success_time", value.last_success_time),
        ("last_failure_time", value.last_failure_time),
        ("next_retry_time", value.next_retry_time),
        ("rate_limited_time", value.rate_limited_time),
        ("circuit_open_time", value.circuit_open_time),
        ("next_probe_time", value.next_probe_time),
    ):
        if when is not None:
            getattr(message, name).CopyFrom(timestamp(when))
    return message


def change(value: Change, of: Event | None, resume_token: str) -> deliveries_pb2.DeliveryChange:
    return deliveries_pb2.DeliveryChange(
        delivery=delivery(value.delivery, of), change_time=timestamp(value.time), resume_token=resume_token
    )


def test_result(value: TestResult) -> deliveries_pb2.SendTestEventResponse:
    a = value.attempt
    return deliveries_pb2.SendTestEventResponse(
        response_status=a.response_status or 0,
        latency=duration(a.duration),
        response_excerpt=value.excerpt,
        error=a.error,
        request_headers=_headers(a.request_headers),
        body=value.body,
    )
