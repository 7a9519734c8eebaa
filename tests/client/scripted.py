"""A scripted DeliveryService, EventService and RotateSigningSecret on a real gRPC server.

It stands in for the remote end only: the client under test talks real gRPC over loopback to it.
Each test says what the server answers (pages, failures, watch streams) and then inspects the
requests that arrived, so what is checked is the client's side of the conversation: paging,
resuming a watch from its token, retrying UNAVAILABLE, the metadata and fields it sends.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator, Sequence
from concurrent import futures
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import grpc
from google.protobuf.duration_pb2 import Duration
from google.protobuf.message import Message
from google.protobuf.timestamp_pb2 import Timestamp

from tidings.v1 import deliveries_pb2, deliveries_pb2_grpc, events_pb2, events_pb2_grpc, hooks_pb2

HOOK = "companies/8/projects/6778/hooks/procore-sync"
T0 = datetime(2026, 11, 20, 9, 30, tzinfo=UTC)


def ts(value: datetime) -> Timestamp:
    out = Timestamp()
    out.FromDatetime(value)
    return out


def delivery(
    n: int,
    status: deliveries_pb2.DeliveryStatus.ValueType = deliveries_pb2.DELIVERY_STATUS_DELIVERED,
    *,
    resource_name: str = "RFIs",
    full: bool = False,
) -> deliveries_pb2.Delivery:
    """Delivery number ``n`` of HOOK, published ``n`` minutes after T0."""
    event_id = f"01JDELIVERY{n:015d}"
    created = T0 + timedelta(minutes=n)
    message = deliveries_pb2.Delivery(
        name=f"{HOOK}/deliveries/{event_id}",
        hook=HOOK,
        status=status,
        event=events_pb2.Event(
            id=event_id,
            company_id=8,
            project_id=6778,
            resource_name=resource_name,
            resource_id=54000 + n,
            event_type="update",
            user_id=5447,
            timestamp=ts(created),
            metadata=events_pb2.EventMetadata(source_user_id=5447, source_application_id="procore"),
        ),
        attempt_count=1,
        create_time=ts(created),
        update_time=ts(created + timedelta(seconds=2)),
        last_response_status=200 if status == deliveries_pb2.DELIVERY_STATUS_DELIVERED else 503,
        last_error="" if status == deliveries_pb2.DELIVERY_STATUS_DELIVERED else "HTTP 503 Service Unavailable",
    )
    if full:
        message.body = b'{"id": %d, "resource_name": "RFIs"}' % (54000 + n)
        message.content_type = "application/json"
        message.attempts.append(
            deliveries_pb2.Attempt(
                number=1,
                start_time=ts(created + timedelta(seconds=1)),
                end_time=ts(created + timedelta(seconds=1, milliseconds=84)),
                request_headers=[deliveries_pb2.Header(name="Authorization", value="••••••4e94b")],
                response_status=message.last_response_status,
                response_headers=[deliveries_pb2.Header(name="Content-Type", value="text/plain")],
                response_body=b"ok",
                error=message.last_error,
            )
        )
    return message


def change(n: int, status: deliveries_pb2.DeliveryStatus.ValueType) -> deliveries_pb2.DeliveryChange:
    return deliveries_pb2.DeliveryChange(
        delivery=delivery(n, status), change_time=ts(T0 + timedelta(minutes=n, seconds=3)), resume_token=f"tok-{n}"
    )


@dataclass
class Stream:
    """One WatchDeliveries connection: these changes, then this ending (None: stay open)."""

    changes: Sequence[deliveries_pb2.DeliveryChange]
    end: grpc.StatusCode | None = grpc.StatusCode.UNAVAILABLE
    end_message: str = "server shutting down"


@dataclass
class Script:
    """What the server answers; tests set fields, the servicer reads them."""

    deliveries: list[deliveries_pb2.Delivery] = field(default_factory=list)  # newest first
    page_cap: int = 2
    # Each ListDeliveries page costs one of these: True answers an empty page (token kept).
    empty_pages: list[bool] = field(default_factory=list)
    # Per method name, codes to fail the next calls with, in order (OK: answer that call).
    failures: dict[str, list[grpc.StatusCode]] = field(default_factory=dict)
    streams: list[Stream] = field(default_factory=list)
    redeliveries: list[deliveries_pb2.RedeliverDeliveriesResponse] = field(default_factory=list)
    overview: deliveries_pb2.HookOverview | None = None
    test_response: deliveries_pb2.SendTestEventResponse | None = None
    # Seconds every call waits before answering.
    delay: float = 0.0


@dataclass
class Received:
    method: str
    request: Message
    metadata: dict[str, str]
    at: float


class ScriptedDeliveryService(deliveries_pb2_grpc.DeliveryServiceServicer):
    def __init__(self) -> None:
        self.script = Script()
        self.received: list[Received] = []
        self._lock = threading.Lock()
        self.stream_open = threading.Event()

    def reset(self) -> Script:
        with self._lock:
            self.script = Script()
            self.received.clear()
            self.stream_open.clear()
        return self.script

    def requests(self, method: str) -> list[Message]:
        with self._lock:
            return [r.request for r in self.received if r.method == method]

    def _arrive(self, method: str, request: Message, context: grpc.ServicerContext) -> None:
        with self._lock:
            metadata = {k: v for k, v in context.invocation_metadata() if isinstance(v, str)}
            self.received.append(Received(method, request, metadata, time.monotonic()))
            pending = self.script.failures.get(method)
            code = pending.pop(0) if pending else None
        if self.script.delay:
            time.sleep(self.script.delay)
        if code is not None and code != grpc.StatusCode.OK:
            context.abort(code, f"scripted {code.name}")

    def ListDeliveries(  # noqa: N802 - gRPC method names
        self, request: deliveries_pb2.ListDeliveriesRequest, context: grpc.ServicerContext
    ) -> deliveries_pb2.ListDeliveriesResponse:
        self._arrive("ListDeliveries", request, context)
        start = int(request.page_token or "0")
        if self.script.empty_pages and self.script.empty_pages.pop(0):
            return deliveries_pb2.ListDeliveriesResponse(next_page_token=str(start))
        size = min(request.page_size or 50, self.script.page_cap)
        page = self.script.deliveries[start : start + size]
        more = start + size < len(self.script.deliveries)
        return deliveries_pb2.ListDeliveriesResponse(deliveries=page, next_page_token=str(start + size) if more else "")

    def GetDelivery(  # noqa: N802 - gRPC method names
        self, request: deliveries_pb2.GetDeliveryRequest, context: grpc.ServicerContext
    ) -> deliveries_pb2.Delivery:
        self._arrive("GetDelivery", request, context)
        for d in self.script.deliveries:
            if d.name == request.name:
                return d
        context.abort(grpc.StatusCode.NOT_FOUND, f"delivery {request.name!r} not found")

    def GetHookOverview(  # noqa: N802 - gRPC method names
        self, request: deliveries_pb2.GetHookOverviewRequest, context: grpc.ServicerContext
    ) -> deliveries_pb2.HookOverview:
        self._arrive("GetHookOverview", request, context)
        if self.script.overview is None or self.script.overview.hook.name != request.name:
            context.abort(grpc.StatusCode.NOT_FOUND, f"hook {request.name!r} not found")
        return self.script.overview

    def WatchDeliveries(  # noqa: N802 - gRPC method names
        self, request: deliveries_pb2.WatchDeliveriesRequest, context: grpc.ServicerContext
    ) -> Iterator[deliveries_pb2.DeliveryChange]:
        self._arrive("WatchDeliveries", request, context)
        with self._lock:
            stream = self.script.streams.pop(0) if self.script.streams else Stream((), None)
        yield from stream.changes
        self.stream_open.set()
        if stream.end is None:
            done = threading.Event()
            context.add_callback(done.set)
            done.wait(30)
            return
        context.abort(stream.end, stream.end_message)

    def RedeliverDeliveries(  # noqa: N802 - gRPC method names
        self, request: deliveries_pb2.RedeliverDeliveriesRequest, context: grpc.ServicerContext
    ) -> deliveries_pb2.RedeliverDeliveriesResponse:
        self._arrive("RedeliverDeliveries", request, context)
        if not self.script.redeliveries:
            context.abort(grpc.StatusCode.NOT_FOUND, f"delivery {request.name!r} not found")
        return self.script.redeliveries.pop(0)

    def SendTestEvent(  # noqa: N802 - gRPC method names
        self, request: deliveries_pb2.SendTestEventRequest, context: grpc.ServicerContext
    ) -> deliveries_pb2.SendTestEventResponse:
        self._arrive("SendTestEvent", request, context)
        if self.script.test_response is None:
            context.abort(grpc.StatusCode.FAILED_PRECONDITION, "the hook is disabled")
        return self.script.test_response


class ScriptedEventService(events_pb2_grpc.EventServiceServicer):
    """PublishEvents that records each call (failing as scripted) and echoes one result per event."""

    def __init__(self, recorder: ScriptedDeliveryService) -> None:
        self._recorder = recorder

    def PublishEvents(  # noqa: N802 - gRPC method names
        self, request: events_pb2.PublishEventsRequest, context: grpc.ServicerContext
    ) -> events_pb2.PublishEventsResponse:
        self._recorder._arrive("PublishEvents", request, context)
        return events_pb2.PublishEventsResponse(
            results=[
                events_pb2.PublishedEvent(event_id=f"ev-{e.idempotency_key}", deliveries=1) for e in request.events
            ]
        )


class ScriptedHookService:
    """RotateSigningSecret alone, recording each call (failing as scripted): enough to show the
    client never repeats a rotation, which the real server cannot be made to refuse. The other
    HookService methods are the real server's business, so they are not registered at all."""

    def __init__(self, recorder: ScriptedDeliveryService) -> None:
        self._recorder = recorder

    def RotateSigningSecret(  # noqa: N802 - the gRPC method's name
        self, request: hooks_pb2.RotateSigningSecretRequest, context: grpc.ServicerContext
    ) -> hooks_pb2.Hook:
        self._recorder._arrive("RotateSigningSecret", request, context)
        return hooks_pb2.Hook(
            name=request.name,
            payload_format="procore.v4",
            status=hooks_pb2.HOOK_STATUS_ACTIVE,
            ordering=hooks_pb2.DELIVERY_ORDERING_UNORDERED,
            signing_secret="whsec_c2NyaXB0ZWQtc2VjcmV0LXNjcmlwdGVkLXNlY3JldA==",
        )


def overview(name: str = HOOK) -> deliveries_pb2.HookOverview:
    return deliveries_pb2.HookOverview(
        hook=hooks_pb2.Hook(
            name=name,
            display_name="Procore sync",
            destination_url="https://hooks.example.com/in",
            authorization_header="••••••4e94b",
            payload_format="procore.v4",
            status=hooks_pb2.HOOK_STATUS_ACTIVE,
            ordering=hooks_pb2.DELIVERY_ORDERING_UNORDERED,
            max_concurrency=8,
            create_time=ts(T0),
            update_time=ts(T0),
        ),
        queued_count=1,
        retrying_count=2,
        delivered_count=40,
        failed_count=3,
        discarded_count=5,
        success_rate=0.8,
        latency_p50=Duration(nanos=84_000_000),
        latency_p95=Duration(seconds=1, nanos=200_000_000),
        last_success_time=ts(T0 + timedelta(hours=1)),
        last_failure_time=ts(T0 + timedelta(hours=2)),
        last_failure_reason="HTTP 503 Service Unavailable",
        consecutive_failures=2,
        next_retry_time=ts(T0 + timedelta(hours=2, minutes=1)),
    )


class ScriptedServer:
    """The scripted service on 127.0.0.1, plain or with TLS (``server_credentials``)."""

    def __init__(self, server_credentials: grpc.ServerCredentials | None = None) -> None:
        self.service = ScriptedDeliveryService()
        self._server = grpc.server(futures.ThreadPoolExecutor(max_workers=8))
        deliveries_pb2_grpc.add_DeliveryServiceServicer_to_server(self.service, self._server)
        events_pb2_grpc.add_EventServiceServicer_to_server(ScriptedEventService(self.service), self._server)
        rotate = ScriptedHookService(self.service).RotateSigningSecret
        handler = grpc.unary_unary_rpc_method_handler(
            rotate,
            request_deserializer=hooks_pb2.RotateSigningSecretRequest.FromString,
            response_serializer=hooks_pb2.Hook.SerializeToString,
        )
        self._server.add_generic_rpc_handlers(
            (grpc.method_handlers_generic_handler("tidings.v1.HookService", {"RotateSigningSecret": handler}),)
        )
        if server_credentials is None:
            self.port = self._server.add_insecure_port("127.0.0.1:0")
        else:
            self.port = self._server.add_secure_port("127.0.0.1:0", server_credentials)
        self._server.start()

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.port}"

    def stop(self) -> None:
        self._server.stop(grace=None).wait(10)
