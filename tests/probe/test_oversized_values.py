"""A value of 1 MiB in any string field of any request is INVALID_ARGUMENT naming the field.

An error message travels in trailing metadata, which grpcio caps: a message that quoted the
whole value would come back RESOURCE_EXHAUSTED "received metadata size exceeds hard limit"
instead. Every message quotes a short prefix (domain/quoting.py), so each answer here is short,
names the field and says how long the value was when it quotes it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import grpc
import pytest
from google.protobuf import field_mask_pb2

from tests.harness import Api, ServerThread, secrets_key
from tidings.v1 import catalog_pb2, deliveries_pb2, events_pb2, hooks_pb2
from tidings_server.app import Config
from tidings_server.domain.quoting import quote

PROJECT = "companies/8/projects/6778"
HOOK = f"{PROJECT}/hooks/rfi-sync"
HUGE = "x" * (1 << 20)
HUGE_NAME = f"{PROJECT}/hooks/" + "a" * (1 << 20)
MAX_MESSAGE = 1024  # every answer below is shorter than this
D = deliveries_pb2
H = hooks_pb2
P = pytest.param
Call = Callable[[Api], object]


def event(**fields: object) -> events_pb2.Event:
    base: dict[str, object] = {
        "company_id": 8,
        "project_id": 6778,
        "resource_name": "RFIs",
        "resource_id": 1,
        "event_type": "update",
        "user_id": 5,
    }
    base.update(fields)
    return events_pb2.Event(**base)  # type: ignore[arg-type]


def publish(**fields: object) -> Call:
    return lambda api: api.events.PublishEvents(events_pb2.PublishEventsRequest(events=[event(**fields)]))


def create(**fields: object) -> Call:
    hook: dict[str, object] = {"destination_url": "https://hooks.example.com/in", "payload_format": "procore.v4"}
    parent = str(fields.pop("parent", PROJECT))
    hook_id = str(fields.pop("hook_id", ""))
    hook.update(fields)
    request = H.CreateHookRequest(parent=parent, hook_id=hook_id, hook=H.Hook(**hook))  # type: ignore[arg-type]
    return lambda api: api.hooks.CreateHook(request)


CASES = [
    # HookService
    P(create(parent=HUGE), "parent:", id="create-parent"),
    P(create(hook_id=HUGE), "hook_id:", id="create-hook-id"),
    P(create(display_name=HUGE), "hook.display_name:", id="create-display-name"),
    P(create(destination_url="https://hooks.example.com/" + HUGE), "hook.destination_url:", id="create-url"),
    P(create(destination_url="https://" + HUGE + ".example.com/"), "hook.destination_url:", id="create-url-host"),
    P(create(destination_url=HUGE + "://x"), "hook.destination_url:", id="create-url-scheme"),
    P(create(authorization_header="Bearer " + HUGE), "hook.authorization_header:", id="create-auth"),
    P(create(payload_format=HUGE), "hook.payload_format:", id="create-format"),
    P(lambda api: api.hooks.GetHook(H.GetHookRequest(name=HUGE_NAME)), "name:", id="get-hook"),
    P(lambda api: api.hooks.DeleteHook(H.DeleteHookRequest(name=HUGE)), "name:", id="delete-hook"),
    P(lambda api: api.hooks.ListHooks(H.ListHooksRequest(parent=HUGE)), "parent:", id="list-hooks-parent"),
    P(
        lambda api: api.hooks.ListHooks(H.ListHooksRequest(parent=PROJECT, page_token=HUGE)),
        "page_token:",
        id="list-hooks-token",
    ),
    P(
        lambda api: api.hooks.ListHooks(H.ListHooksRequest(parent=PROJECT, filter=HUGE)),
        "filter:",
        id="list-hooks-filter",
    ),
    P(
        lambda api: api.hooks.UpdateHook(
            H.UpdateHookRequest(hook=H.Hook(name=HOOK), update_mask=field_mask_pb2.FieldMask(paths=[HUGE]))
        ),
        "update_mask:",
        id="update-mask-path",
    ),
    P(
        lambda api: api.hooks.UpdateHook(
            H.UpdateHookRequest(
                hook=H.Hook(name=HOOK, display_name=HUGE), update_mask=field_mask_pb2.FieldMask(paths=["display_name"])
            )
        ),
        "hook.display_name:",
        id="update-display-name",
    ),
    P(
        lambda api: api.hooks.BatchCreateTriggers(
            H.BatchCreateTriggersRequest(parent=HOOK, triggers=[H.Trigger(resource_name=HUGE, event_type="update")])
        ),
        "triggers[0]",
        id="triggers-resource",
    ),
    P(
        lambda api: api.hooks.BatchCreateTriggers(
            H.BatchCreateTriggersRequest(parent=HOOK, triggers=[H.Trigger(resource_name="RFIs", event_type=HUGE)])
        ),
        "triggers[0]",
        id="triggers-event-type",
    ),
    P(
        lambda api: api.hooks.BatchDeleteTriggers(H.BatchDeleteTriggersRequest(parent=HOOK, names=[HUGE])),
        "names[0]:",
        id="delete-triggers-name",
    ),
    P(
        lambda api: api.hooks.ListTriggers(H.ListTriggersRequest(parent=HUGE_NAME)),
        "parent:",
        id="list-triggers-parent",
    ),
    P(
        lambda api: api.hooks.RotateSigningSecret(H.RotateSigningSecretRequest(name=HUGE_NAME)),
        "name:",
        id="rotate-name",
    ),
    # CatalogService
    P(
        lambda api: api.catalog.ListResources(
            catalog_pb2.ListResourcesRequest(scope=catalog_pb2.SCOPE_PROJECT, payload_format=HUGE)
        ),
        "payload_format:",
        id="resources-format",
    ),
    P(
        lambda api: api.catalog.ListPayloadFormats(catalog_pb2.ListPayloadFormatsRequest(page_token=HUGE)),
        "page_token:",
        id="formats-token",
    ),
    # EventService
    P(publish(resource_name=HUGE), "events[0].resource_name:", id="publish-resource"),
    P(publish(event_type=HUGE), "events[0].event_type:", id="publish-event-type"),
    P(publish(idempotency_key=HUGE), "events[0].idempotency_key:", id="publish-key"),
    P(publish(traceparent=HUGE), "events[0].traceparent:", id="publish-traceparent"),
    P(
        publish(related_resources=[events_pb2.RelatedResource(id=1, name=HUGE)]),
        "events[0].related_resources[0].name:",
        id="publish-related",
    ),
    P(
        publish(metadata=events_pb2.EventMetadata(source_application_id=HUGE)),
        "events[0].metadata.source_application_id:",
        id="publish-application",
    ),
    # DeliveryService
    P(lambda api: api.deliveries.ListDeliveries(D.ListDeliveriesRequest(parent=HUGE)), "parent:", id="list-parent"),
    P(
        lambda api: api.deliveries.ListDeliveries(D.ListDeliveriesRequest(parent=PROJECT, filter=HUGE)),
        "filter:",
        id="list-filter",
    ),
    P(
        lambda api: api.deliveries.ListDeliveries(D.ListDeliveriesRequest(parent=PROJECT, resource_name=HUGE)),
        "resource_name:",
        id="list-resource",
    ),
    P(
        lambda api: api.deliveries.ListDeliveries(D.ListDeliveriesRequest(parent=PROJECT, event_type=HUGE)),
        "event_type:",
        id="list-event-type",
    ),
    P(
        lambda api: api.deliveries.ListDeliveries(D.ListDeliveriesRequest(parent=PROJECT, page_token=HUGE)),
        "page_token:",
        id="list-token",
    ),
    P(lambda api: api.deliveries.GetDelivery(D.GetDeliveryRequest(name=HUGE)), "name:", id="get-delivery"),
    P(
        lambda api: api.deliveries.GetHookOverview(D.GetHookOverviewRequest(name=HUGE_NAME)),
        "name:",
        id="overview",
    ),
    P(
        lambda api: api.deliveries.RedeliverDeliveries(D.RedeliverDeliveriesRequest(name=HUGE)),
        "name:",
        id="redeliver-name",
    ),
    P(
        lambda api: api.deliveries.RedeliverDeliveries(D.RedeliverDeliveriesRequest(parent=HUGE)),
        "parent:",
        id="redeliver-parent",
    ),
    P(
        lambda api: api.deliveries.RedeliverDeliveries(D.RedeliverDeliveriesRequest(parent=PROJECT, filter=HUGE)),
        "filter:",
        id="redeliver-filter",
    ),
    P(
        # Within the filter's 2,000 characters, but a value no message should quote whole (twice).
        lambda api: api.deliveries.ListDeliveries(
            D.ListDeliveriesRequest(parent=PROJECT, filter=f'hook = "{"h" * 1900}"')
        ),
        "filter:",
        id="list-deliveries-filter-hook",
    ),
    P(lambda api: api.deliveries.SendTestEvent(D.SendTestEventRequest(name=HUGE_NAME)), "name:", id="test-send"),
    P(
        lambda api: next(iter(api.deliveries.WatchDeliveries(D.WatchDeliveriesRequest(parent=HUGE)))),
        "parent:",
        id="watch-parent",
    ),
    P(
        lambda api: next(
            iter(api.deliveries.WatchDeliveries(D.WatchDeliveriesRequest(parent=PROJECT, resume_token=HUGE)))
        ),
        "resume_token:",
        id="watch-token",
    ),
]


@pytest.fixture(scope="module")
def shared_api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Api]:
    store = tmp_path_factory.mktemp("oversized") / "tidings.sqlite3"
    server = ServerThread(
        Config(listen="127.0.0.1:0", store_url=f"sqlite:///{store}", secrets_key=secrets_key())
    ).start()
    api = Api.connect(server.port)
    try:
        api.hooks.CreateHook(
            H.CreateHookRequest(
                parent=PROJECT,
                hook_id="rfi-sync",
                hook=H.Hook(destination_url="https://hooks.example.com/in", payload_format="procore.v4"),
            )
        )
        yield api
    finally:
        api.channel.close()
        server.stop()


@pytest.mark.parametrize(("call", "field"), CASES)
def test_a_huge_value_is_refused_naming_its_field(shared_api: Api, call: Call, field: str) -> None:
    with pytest.raises(grpc.RpcError) as err:
        call(shared_api)
    details = err.value.details() or ""
    assert (err.value.code(), details.startswith(field)) == (grpc.StatusCode.INVALID_ARGUMENT, True), details
    assert len(details) < MAX_MESSAGE, details[:200]


def test_a_quote_shows_a_prefix_and_the_length() -> None:
    assert quote("short") == "'short'"
    assert quote("x" * 128) == repr("x" * 128)
    assert quote("y" * 1000) == f"{'y' * 128!r}… (1000 characters)"
    assert quote("a'b\n" * 40, limit=8) == repr("a'b\na'b\n") + "… (160 characters)"
