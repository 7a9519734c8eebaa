"""What a company-scoped principal's lists, filters, watches and redelivery by filter reach:
only its company, even when the filter names another company's hook and that hook has
history a filter would match.

The matrix (test_matrix.py) proves the status codes; this proves the contents. Company 2 has a
live hook with a delivered delivery: every answer below is checked to hold nothing of it, and
an owner's call shows the same filter does match it under its own company.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest

from tests.auth.world import DEADLINE, World, build, event, metadata, project
from tests.http_sink import Sink, running_sink
from tidings.v1 import deliveries_pb2, events_pb2, hooks_pb2

D = deliveries_pb2
DELIVERED = D.DELIVERY_STATUS_DELIVERED


def live(company: int) -> str:
    return f"{project(company)}/hooks/live"


def publish(world: World, company: int, resource_id: int) -> str:
    """An RFI update in ``company`` (only the live hook is triggered by updates); its delivery."""
    update = event(company)
    update.event_type, update.resource_id = "update", resource_id
    reply = world.api.events.PublishEvents(
        events_pb2.PublishEventsRequest(events=[update]), metadata=metadata(world.owner), timeout=DEADLINE
    )
    return f"{live(company)}/deliveries/{reply.results[0].event_id}"


def delivery(world: World, name: str) -> D.Delivery:
    return world.api.deliveries.GetDelivery(
        D.GetDeliveryRequest(name=name), metadata=metadata(world.owner), timeout=DEADLINE
    )


def settled(world: World, name: str, attempts: int = 1) -> D.Delivery:
    """The delivery once it is delivered with ``attempts`` attempts (the sink answers 200)."""
    deadline = time.monotonic() + 15
    while True:
        found = delivery(world, name)
        if found.status == DELIVERED and found.attempt_count == attempts:
            return found
        assert time.monotonic() < deadline, found
        time.sleep(0.02)


@pytest.fixture(scope="module")
def sink() -> Iterator[Sink]:
    with running_sink() as s:
        yield s


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory, sink: Sink) -> Iterator[World]:
    built = build(Path(tmp_path_factory.mktemp("reach")))
    for company in (1, 2):
        built.api.hooks.CreateHook(
            hooks_pb2.CreateHookRequest(
                parent=project(company),
                hook_id="live",
                hook=hooks_pb2.Hook(destination_url=sink.url(f"/c{company}"), payload_format="procore.v4"),
            ),
            metadata=metadata(built.owner),
            timeout=DEADLINE,
        )
        built.api.hooks.BatchCreateTriggers(
            hooks_pb2.BatchCreateTriggersRequest(
                parent=live(company), triggers=[hooks_pb2.Trigger(resource_name="RFIs", event_type="update")]
            ),
            metadata=metadata(built.owner),
            timeout=DEADLINE,
        )
        settled(built, publish(built, company, 1))
    yield built
    built.api.channel.close()
    built.server.stop()


def test_lists_under_the_scope_hold_nothing_of_another_company(world: World) -> None:
    viewer = metadata(world.secrets[("viewer", "companies/1")])
    hooks = world.api.hooks.ListHooks(
        hooks_pb2.ListHooksRequest(parent="companies/1/projects/-"), metadata=viewer, timeout=DEADLINE
    )
    assert sorted(h.name for h in hooks.hooks) == [f"{project(1)}/hooks/h", live(1)]
    listed = world.api.deliveries.ListDeliveries(
        D.ListDeliveriesRequest(parent="companies/1"), metadata=viewer, timeout=DEADLINE
    )
    assert listed.deliveries
    assert {d.name.split("/hooks/")[0] for d in listed.deliveries} == {project(1)}
    other = f'hook = "{live(2)}"'
    named = world.api.deliveries.ListDeliveries(
        D.ListDeliveriesRequest(parent="companies/1", filter=other), metadata=viewer, timeout=DEADLINE
    )
    assert list(named.deliveries) == []
    # The same filter under company 2, by an owner: it does match there.
    owned = world.api.deliveries.ListDeliveries(
        D.ListDeliveriesRequest(parent="companies/2", filter=other), metadata=metadata(world.owner), timeout=DEADLINE
    )
    assert [d.hook for d in owned.deliveries] == [live(2)]


def test_redelivery_by_filter_under_the_scope_never_touches_another_company(world: World, sink: Sink) -> None:
    admin = metadata(world.secrets[("admin", "companies/1")])
    theirs = publish(world, 2, 2)
    mine = publish(world, 1, 2)
    before = settled(world, theirs)
    settled(world, mine)
    named = world.api.deliveries.RedeliverDeliveries(
        D.RedeliverDeliveriesRequest(parent="companies/1", filter=f'hook = "{live(2)}"'),
        metadata=admin,
        timeout=DEADLINE,
    )
    assert (named.queued_count, list(named.names)) == (0, [])
    everything = world.api.deliveries.RedeliverDeliveries(
        D.RedeliverDeliveriesRequest(parent="companies/1", filter='status = "delivered"'),
        metadata=admin,
        timeout=DEADLINE,
    )
    assert everything.queued_count == len(everything.names) >= 2
    assert mine in everything.names
    assert {n.split("/hooks/")[0] for n in everything.names} == {project(1)}
    settled(world, mine, attempts=2)
    assert delivery(world, theirs) == before  # not queued, not attempted, not changed
    # An owner's identical call under company 2 does move it: the filter matched, the scope held.
    owner = world.api.deliveries.RedeliverDeliveries(
        D.RedeliverDeliveriesRequest(parent="companies/2", filter=f'hook = "{live(2)}"'),
        metadata=metadata(world.owner),
        timeout=DEADLINE,
    )
    assert theirs in owner.names
    settled(world, theirs, attempts=2)


def test_a_watch_under_the_scope_sees_no_change_of_another_company(world: World) -> None:
    viewer = metadata(world.secrets[("viewer", "companies/1")])
    call = world.api.deliveries.WatchDeliveries(
        D.WatchDeliveriesRequest(parent="companies/1"), metadata=viewer, timeout=60
    )
    call.initial_metadata()  # the watch is open (and its position fixed) once its headers came
    seen: list[D.DeliveryChange] = []
    ended: list[grpc.StatusCode] = []

    def read() -> None:
        try:
            for change in call:
                seen.append(change)
        except grpc.RpcError as err:
            ended.append(err.code())

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    theirs = publish(world, 2, 3)
    settled(world, theirs)
    # A fence: everything committed before it (company 2's delivery too) was offered to the
    # watch by the time the fence's own change arrives.
    fence = publish(world, 1, 3)
    deadline = time.monotonic() + 15
    while not any(c.delivery.name == fence and c.delivery.status == DELIVERED for c in list(seen)):
        assert time.monotonic() < deadline, [c.delivery.name for c in seen]
        time.sleep(0.02)
    call.cancel()
    reader.join(10)
    assert ended == [grpc.StatusCode.CANCELLED]  # by the test, not refused or dropped
    assert seen
    assert {c.delivery.name.split("/hooks/")[0] for c in seen} == {project(1)}
    assert theirs not in {c.delivery.name for c in seen}
