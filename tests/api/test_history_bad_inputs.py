"""Bad inputs to DeliveryService: the exact status and a message naming the field and the problem,
and the history left exactly as it was (every row compares a full listing before and after)."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import grpc
import pytest

from tests.harness import Api, ServerThread, secrets_key
from tidings.v1 import deliveries_pb2, events_pb2, hooks_pb2
from tidings_server.app import Config

D = deliveries_pb2
PROJECT = "companies/8/projects/6778"
HOOK = f"{PROJECT}/hooks/rfi-sync"
OTHER = "companies/9/hooks/elsewhere"
EVENT = "01JKQ0000000000000000000AB"
INVALID = grpc.StatusCode.INVALID_ARGUMENT
NOT_FOUND = grpc.StatusCode.NOT_FOUND
Call = Callable[[Api], object]


@pytest.fixture(scope="module")
def seeded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Api, str]]:
    path = tmp_path_factory.mktemp("history") / "tidings.sqlite3"
    config = Config(listen="127.0.0.1:0", store_url=f"sqlite:///{path}", secrets_key=secrets_key())
    server = ServerThread(config).start()
    api = Api.connect(server.port)
    api.hooks.CreateHook(
        hooks_pb2.CreateHookRequest(
            parent=PROJECT,
            hook_id="rfi-sync",
            hook=hooks_pb2.Hook(
                destination_url="https://hooks.example.com/in",
                payload_format="procore.v4",
                status=hooks_pb2.HOOK_STATUS_PAUSED,  # nothing is sent: the history stays put
            ),
        )
    )
    api.hooks.BatchCreateTriggers(
        hooks_pb2.BatchCreateTriggersRequest(
            parent=HOOK, triggers=[hooks_pb2.Trigger(resource_name="RFIs", event_type="update")]
        )
    )
    reply = api.events.PublishEvents(
        events_pb2.PublishEventsRequest(
            events=[
                events_pb2.Event(
                    company_id=8, project_id=6778, resource_name="RFIs", resource_id=i, event_type="update", user_id=1
                )
                for i in (1, 2, 3)
            ]
        )
    )
    yield api, reply.results[0].event_id
    api.channel.close()
    server.stop()


def _snapshot(api: Api) -> list[D.Delivery]:
    return list(api.deliveries.ListDeliveries(D.ListDeliveriesRequest(parent=PROJECT, page_size=1000)).deliveries)


def _token(api: Api) -> str:
    return api.deliveries.ListDeliveries(D.ListDeliveriesRequest(parent=HOOK, page_size=1)).next_page_token


def _list(**fields: object) -> Call:
    return lambda api: api.deliveries.ListDeliveries(D.ListDeliveriesRequest(**fields))  # type: ignore[arg-type]


def _watch(**fields: object) -> Call:
    return lambda api: next(iter(api.deliveries.WatchDeliveries(D.WatchDeliveriesRequest(**fields))))  # type: ignore[arg-type]


CASES: list[tuple[str, Call, grpc.StatusCode, tuple[str, ...]]] = [
    ("list: empty parent", _list(parent=""), INVALID, ("parent", "not a valid parent")),
    ("list: malformed parent", _list(parent="projects/6778"), INVALID, ("parent", "projects/6778")),
    ("list: wildcard project", _list(parent="companies/8/projects/-"), INVALID, ("parent", "wildcard")),
    ("list: malformed hook", _list(parent=f"{PROJECT}/hooks/UPPER"), INVALID, ("parent", "not a valid hook name")),
    ("list: unknown hook", _list(parent=f"{PROJECT}/hooks/nope"), NOT_FOUND, ("parent", "no delivery history")),
    ("list: negative page size", _list(parent=HOOK, page_size=-1), INVALID, ("page_size", "negative")),
    ("list: garbage token", _list(parent=HOOK, page_token="%%%"), INVALID, ("page_token", "not a token")),
    (
        "list: token of another request",
        lambda api: api.deliveries.ListDeliveries(
            D.ListDeliveriesRequest(parent=HOOK, page_token=_token(api), resource_name="RFIs")
        ),
        INVALID,
        ("page_token", "different request"),
    ),
    ("list: negative resource id", _list(parent=HOOK, resource_id=-3), INVALID, ("resource_id", "positive")),
    ("list: bad event type", _list(parent=HOOK, event_type="Update!"), INVALID, ("event_type", "'Update!'")),
    ("list: unspecified status", _list(parent=HOOK, statuses=[0]), INVALID, ("statuses[0]", "not a delivery status")),
    ("list: unknown status number", _list(parent=HOOK, statuses=[3, 42]), INVALID, ("statuses[1]", "42")),
    ("list: unknown view", _list(parent=HOOK, view=7), INVALID, ("view", "BASIC or FULL")),
    (
        "list: end before start",
        _list(parent=HOOK, start_time={"seconds": 2_000_000_000}, end_time={"seconds": 1_000_000_000}),
        INVALID,
        ("end_time", "later than start_time"),
    ),
    ("filter: unknown field", _list(parent=HOOK, filter='colour = "red"'), INVALID, ("filter", "position 1", "colour")),
    ("filter: wrong type", _list(parent=HOOK, filter='resource_id = "abc"'), INVALID, ("filter", "position 15")),
    ("filter: bad status", _list(parent=HOOK, filter="status = lost"), INVALID, ("filter", "lost")),
    ("filter: dangling AND", _list(parent=HOOK, filter="status = failed AND"), INVALID, ("filter", "position")),
    ("filter: bad timestamp", _list(parent=HOOK, filter='create_time > "yesterday"'), INVALID, ("filter", "RFC 3339")),
    (
        "get: malformed name",
        lambda api: api.deliveries.GetDelivery(D.GetDeliveryRequest(name=HOOK)),
        INVALID,
        ("name",),
    ),
    (
        "get: event id not a ULID",
        lambda api: api.deliveries.GetDelivery(D.GetDeliveryRequest(name=f"{HOOK}/deliveries/42")),
        INVALID,
        ("name", "{hook}/deliveries/{event id}"),
    ),
    (
        "get: foreign delivery",
        lambda api: api.deliveries.GetDelivery(D.GetDeliveryRequest(name=f"{OTHER}/deliveries/{EVENT}")),
        NOT_FOUND,
        (OTHER,),
    ),
    (
        "overview: unknown hook",
        lambda api: api.deliveries.GetHookOverview(D.GetHookOverviewRequest(name=f"{PROJECT}/hooks/nope")),
        NOT_FOUND,
        ("nope",),
    ),
    ("watch: malformed parent", _watch(parent="companies/x"), INVALID, ("parent",)),
    ("watch: unknown hook", _watch(parent=OTHER), NOT_FOUND, ("parent", OTHER)),
    ("watch: bad status", _watch(parent=HOOK, statuses=[9]), INVALID, ("statuses[0]",)),
    ("watch: garbage resume token", _watch(parent=HOOK, resume_token="zzz"), INVALID, ("resume_token",)),
    (
        "redeliver: neither name nor parent",
        lambda api: api.deliveries.RedeliverDeliveries(D.RedeliverDeliveriesRequest()),
        INVALID,
        ("name, parent", "exactly one"),
    ),
    (
        "redeliver: both name and parent",
        lambda api: api.deliveries.RedeliverDeliveries(
            D.RedeliverDeliveriesRequest(name=f"{HOOK}/deliveries/{EVENT}", parent=HOOK)
        ),
        INVALID,
        ("exactly one",),
    ),
    (
        "redeliver: limit too large",
        lambda api: api.deliveries.RedeliverDeliveries(D.RedeliverDeliveriesRequest(parent=HOOK, limit=5000)),
        INVALID,
        ("limit", "1000"),
    ),
    (
        "redeliver: bad filter",
        lambda api: api.deliveries.RedeliverDeliveries(D.RedeliverDeliveriesRequest(parent=HOOK, filter="status =")),
        INVALID,
        ("filter", "position"),
    ),
    (
        "redeliver: unknown delivery",
        lambda api: api.deliveries.RedeliverDeliveries(D.RedeliverDeliveriesRequest(name=f"{HOOK}/deliveries/{EVENT}")),
        NOT_FOUND,
        (EVENT,),
    ),
    (
        "test event: unknown hook",
        lambda api: api.deliveries.SendTestEvent(D.SendTestEventRequest(name=OTHER)),
        NOT_FOUND,
        (OTHER,),
    ),
    (
        "test event: malformed name",
        lambda api: api.deliveries.SendTestEvent(D.SendTestEventRequest(name="hooks/1")),
        INVALID,
        ("name", "not a valid hook name"),
    ),
]


@pytest.mark.parametrize(("call", "code", "words"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_input_is_refused_and_changes_nothing(
    seeded: tuple[Api, str], call: Call, code: grpc.StatusCode, words: tuple[str, ...]
) -> None:
    api, _ = seeded
    before = _snapshot(api)
    assert len(before) == 3
    with pytest.raises(grpc.RpcError) as refused:
        call(api)
    assert refused.value.code() == code, refused.value.details()
    details = refused.value.details() or ""
    for word in words:
        assert word in details, f"{word!r} not in {details!r}"
    assert _snapshot(api) == before


def test_a_delivery_name_must_name_an_existing_delivery_of_that_hook(seeded: tuple[Api, str]) -> None:
    api, event_id = seeded
    found = api.deliveries.GetDelivery(D.GetDeliveryRequest(name=f"{HOOK}/deliveries/{event_id}"))
    assert found.event.id == event_id
    with pytest.raises(grpc.RpcError) as refused:
        api.deliveries.GetDelivery(D.GetDeliveryRequest(name=f"{PROJECT}/hooks/other/deliveries/{event_id}"))
    assert refused.value.code() == NOT_FOUND
