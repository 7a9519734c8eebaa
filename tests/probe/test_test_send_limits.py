"""Test sends take the same slots as deliveries and are rate-limited per hook, so SendTestEvent
cannot be used to aim a flood of connections at a destination.

The exact counts and retry times are asserted in virtual time against the engine and the
history service (the receiver runs in the same trio run); the flood itself is then aimed at a
real server over gRPC, where the receiver counts the connections it has open at once.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator

import grpc
import pytest
import trio
from trio.testing import MockClock

from tests.delivery.world import rfi, world
from tests.harness import Api
from tests.http_sink import Sink, running_sink
from tests.receivers import Reply, ScriptedReceiver
from tidings.v1 import deliveries_pb2, hooks_pb2
from tidings_server.delivery.engine import EngineConfig
from tidings_server.domain.errors import ResourceExhausted
from tidings_server.domain.history import TEST_SEND_BURST, TEST_SENDS_PER_SECOND

PROJECT = "companies/8/projects/6778"


async def send_all(send: object, count: int) -> tuple[int, list[str]]:
    """Start ``count`` test sends at once; the number that went through and the refusals."""
    sent = 0
    refused: list[str] = []

    async def one() -> None:
        nonlocal sent
        try:
            await send()  # type: ignore[operator]
        except ResourceExhausted as exc:
            refused.append(str(exc))
        else:
            sent += 1

    async with trio.open_nursery() as nursery:
        for _ in range(count):
            nursery.start_soon(one)
    return sent, refused


async def test_a_flood_of_test_sends_opens_at_most_max_concurrency_connections(
    autojump_clock: MockClock, nursery: trio.Nursery
) -> None:
    receiver = await ScriptedReceiver(Reply(200, delay=1.0), Reply(200, delay=1.0), default=Reply(200)).start(nursery)
    async with world() as w:
        hook = await w.hook(receiver.url("/t"), max_concurrency=2)
        sent, refused = await send_all(lambda: w.history.send_test(hook.name), 300)
        assert w.elapsed() == 1.0  # the two that went through took the receiver's second
        assert (sent, receiver.peak_connections, len(receiver.requests)) == (2, 2, 2)
        # The burst let five through the rate limit; three of them found both slots taken.
        busy = [m for m in refused if "attempts in flight, its max_concurrency" in m]
        limited = [m for m in refused if "are limited to" in m]
        assert (len(busy), len(limited)) == (TEST_SEND_BURST - 2, 300 - TEST_SEND_BURST)
        assert busy[0] == (
            f"name: {hook.name} has 2 attempts in flight, its max_concurrency;"
            " retry within 5 s, when an attempt has finished"
        )
        assert set(limited) == {
            f"name: test sends to {hook.name} are limited to 5 at once and 1 per second; retry in 1.00 s"
        }
        # At t = 1.5 the bucket holds one and a half sends: one goes, the next waits 0.5 s.
        await trio.sleep_until(w.t0 + 1.5)
        await w.history.send_test(hook.name)
        with pytest.raises(ResourceExhausted, match=r"retry in 0\.50 s$"):
            await w.history.send_test(hook.name)
        await trio.sleep_until(w.t0 + 2.0)
        await w.history.send_test(hook.name)
        # Another hook has a bucket of its own.
        other = await w.hook(receiver.url("/other"))
        assert (await send_all(lambda: w.history.send_test(other.name), TEST_SEND_BURST))[0] == TEST_SEND_BURST
    assert TEST_SENDS_PER_SECOND == 1.0


async def test_test_sends_count_against_the_servers_cap(autojump_clock: MockClock, nursery: trio.Nursery) -> None:
    receiver = await ScriptedReceiver(default=Reply(200, delay=1.0)).start(nursery)
    async with world(EngineConfig(max_in_flight=2)) as w:
        first = await w.hook(receiver.url("/a"))
        second = await w.hook(receiver.url("/b"))

        async def both() -> None:
            async with trio.open_nursery() as inner:
                inner.start_soon(w.history.send_test, first.name)
                inner.start_soon(w.history.send_test, first.name)
                await trio.sleep(0.5)
                with pytest.raises(ResourceExhausted) as refused:
                    await w.history.send_test(second.name)
                assert str(refused.value) == (
                    "name: the server has 2 attempts in flight, its --max-in-flight;"
                    " retry within 5 s, when an attempt has finished"
                )

        await both()
        assert receiver.peak_connections == 2
        await w.history.send_test(second.name)  # the slots are free again


async def test_a_delivery_waits_for_the_slot_a_test_send_holds(
    autojump_clock: MockClock, nursery: trio.Nursery
) -> None:
    receiver = await ScriptedReceiver(Reply(200, delay=1.0), default=Reply(200)).start(nursery)
    async with world() as w:
        hook = await w.hook(receiver.url("/t"), max_concurrency=1)

        async def publish_soon() -> None:
            await trio.sleep(0.25)
            await w.publish(rfi())

        async with trio.open_nursery() as inner:
            inner.start_soon(publish_soon)
            await w.history.send_test(hook.name)
        await w.settle(hook)
        assert [r.time - w.t0 for r in receiver.requests] == [0.0, 1.0]  # not 0.25: the slot was taken
        assert receiver.peak_connections == 1


# -- over gRPC, against a real server ---------------------------------------------------------


@pytest.fixture
def slow_sink() -> Iterator[Sink]:
    with running_sink(delay=0.5) as sink:
        yield sink


def test_300_concurrent_test_sends_over_grpc(api: Api, slow_sink: Sink) -> None:
    hook = api.hooks.CreateHook(
        hooks_pb2.CreateHookRequest(
            parent=PROJECT,
            hook=hooks_pb2.Hook(destination_url=slow_sink.url("/t"), payload_format="procore.v4", max_concurrency=2),
        )
    )
    request = deliveries_pb2.SendTestEventRequest(name=hook.name)
    started = time.monotonic()
    calls = [api.deliveries.SendTestEvent.future(request, timeout=30) for _ in range(300)]
    ok = 0
    refused: list[str] = []
    for call in calls:
        if call.exception() is None:
            ok += 1
            continue
        assert call.code() == grpc.StatusCode.RESOURCE_EXHAUSTED, call.details()
        refused.append(call.details() or "")
    elapsed = time.monotonic() - started
    assert slow_sink.peak_connections <= 2
    assert 1 <= ok <= TEST_SEND_BURST + int(elapsed * TEST_SENDS_PER_SECOND) + 1
    assert ok + len(refused) == 300
    assert all(re.search(r"retry (in \d+\.\d\d s|within 5 s)", m) for m in refused), refused[:3]
