"""Plugin isolation in the engine, in virtual time: a payload format that raises, returns the
wrong things or hangs fails its own delivery, with an error naming it and its plugin, while
another hook's delivery goes out at the same moment as if nothing had happened."""

from __future__ import annotations

import gc
import threading
import tracemalloc
import types
from collections.abc import Callable, Iterator, Mapping
from datetime import timedelta

import pytest
import trio
from trio.testing import MockClock

from tests.delivery.world import ORIGIN, rfi, world
from tests.receivers import Reply, ScriptedReceiver
from tidings_server.delivery.engine import EngineConfig
from tidings_server.domain.model import DeliveryStatus, Event
from tidings_server.plugins.manager import Plugins
from tidings_server.plugins.spec import RenderContext, RenderedPayload, hookimpl

JSON = {"Content-Type": "application/json"}


class Misbehaving:
    """A format whose render is whatever the test says."""

    name = "acme.misbehaving"
    description = "A format that breaks the contract on purpose."
    content_type = "application/json"

    def __init__(self, render: Callable[[], object]) -> None:
        self._render = render

    def render(self, event: Event, context: RenderContext) -> RenderedPayload:
        return self._render()  # type: ignore[return-value]


def loaded(fmt: Misbehaving) -> Plugins:
    """The installed plugins plus ``fmt``, provided by a plugin called ``acme``."""
    module = types.ModuleType("acme")

    @hookimpl
    def tidings_payload_formats() -> list[object]:
        return [fmt]

    module.tidings_payload_formats = tidings_payload_formats  # type: ignore[attr-defined]
    return Plugins.load(extra=[module])


def raise_(exc: BaseException) -> Callable[[], object]:
    def render() -> object:
        raise exc

    return render


def returns(value: object) -> Callable[[], object]:
    return lambda: value


class ExplodingHeaders(Mapping[str, str]):
    """Headers whose reading fails: plugin code runs inside ``items()`` too."""

    def __getitem__(self, key: str) -> str:
        raise KeyError(key)

    def __iter__(self) -> Iterator[str]:
        raise RuntimeError("headers exploded")

    def __len__(self) -> int:
        return 1


PREFIX = "payload format acme.misbehaving (plugin acme): "


@pytest.mark.parametrize(
    ("render", "error"),
    [
        (raise_(ValueError("boom")), "render() raised ValueError('boom')"),
        (raise_(SystemExit(3)), "render() raised SystemExit(3)"),
        (raise_(KeyboardInterrupt()), "render() raised KeyboardInterrupt()"),
        (returns({"body": b"{}"}), "render() returned a dict, not a RenderedPayload"),
        (returns(RenderedPayload(JSON, "{}")), "render() returned a str body, not bytes"),  # type: ignore[arg-type]
        (returns(RenderedPayload(JSON, bytearray(b"{}"))), "render() returned a bytearray body, not bytes"),  # type: ignore[arg-type]
        (
            returns(RenderedPayload({**JSON, "X-Count": 3}, b"{}")),  # type: ignore[dict-item]
            "header 'X-Count': names and values must be str, not str: int",
        ),
        (returns(RenderedPayload({**JSON, 7: "x"}, b"{}")), "header 7: names and values must be str, not int: str"),  # type: ignore[dict-item]
        (
            returns(RenderedPayload({**JSON, "X-Note": "a\r\nX-Injected: 1"}, b"{}")),
            "header 'X-Note': character 2 of the value is not printable ASCII",
        ),
        (returns(RenderedPayload({**JSON, "X Bad": "1"}, b"{}")), "header 'X Bad': not a valid HTTP header name"),
        (
            returns(RenderedPayload({**JSON, "Authorization": "Bearer stolen"}, b"{}")),
            "header 'Authorization': reserved; tidings sets it",
        ),
        (
            returns(RenderedPayload({**JSON, "Webhook-Signature": "v1,forged"}, b"{}")),
            "header 'Webhook-Signature': reserved; tidings sets it",
        ),
        (
            returns(RenderedPayload({**JSON, "tidings-delivery-id": "x"}, b"{}")),
            "header 'tidings-delivery-id': reserved; tidings sets it",
        ),
        (returns(RenderedPayload({"X-Only": "1"}, b"{}")), "render() returned no Content-Type header"),
        (
            returns(RenderedPayload({**JSON, "content-type": "text/plain"}, b"{}")),
            "header 'content-type': given twice",
        ),
        (
            returns(RenderedPayload(JSON, b"x" * (1024 * 1024 + 1))),
            "render() returned 1048577 bytes, more than the 1048576 allowed",
        ),
        (returns(RenderedPayload(ExplodingHeaders(), b"{}")), "render() raised RuntimeError('headers exploded')"),
    ],
)
async def test_a_broken_render_fails_its_delivery_and_no_other(
    autojump_clock: MockClock, nursery: trio.Nursery, render: Callable[[], object], error: str
) -> None:
    receiver = await nursery.start(ScriptedReceiver(default=Reply(200)).run)
    async with world(loaded=loaded(Misbehaving(render))) as w:
        broken = await w.hook(receiver.url("/broken"), payload_format="acme.misbehaving")
        healthy = await w.hook(receiver.url("/healthy"))
        await w.publish(rfi())
        [failed] = await w.settle(broken)
        [delivered] = await w.settle(healthy)
        assert failed.status is DeliveryStatus.FAILED
        assert failed.last_error == PREFIX + error
        [attempt] = await w.attempts(failed)
        assert (attempt.response_status, attempt.error, attempt.start_time) == (None, PREFIX + error, ORIGIN)
        assert delivered.status is DeliveryStatus.DELIVERED
        assert [(r.target, r.time - w.t0) for r in receiver.requests] == [("/healthy", 0)]
        # Nothing of the broken render reached the wire, and no retry is scheduled for it.
        await trio.sleep(3600)
        assert len(receiver.requests) == 1


async def test_a_render_past_the_bound_is_abandoned_at_exactly_the_bound(
    autojump_clock: MockClock, nursery: trio.Nursery
) -> None:
    release = threading.Event()

    def hang() -> object:
        release.wait(30)  # real seconds; the test lets it go at the end
        return RenderedPayload(JSON, b"{}")

    receiver = await nursery.start(ScriptedReceiver(default=Reply(200)).run)
    config = EngineConfig(render_timeout=1.5)
    try:
        async with world(config, loaded=loaded(Misbehaving(hang))) as w:
            slow = await w.hook(receiver.url("/slow"), payload_format="acme.misbehaving")
            healthy = await w.hook(receiver.url("/healthy"))
            await w.publish(rfi())
            [delivered] = await w.settle(healthy)
            assert delivered.status is DeliveryStatus.DELIVERED
            assert [r.time - w.t0 for r in receiver.requests] == [0]  # not held up by the slow render
            [failed] = await w.settle(slow)
            assert failed.status is DeliveryStatus.FAILED
            assert failed.last_error == PREFIX + "render() took longer than 1.5 s"
            [attempt] = await w.attempts(failed)
            assert (attempt.start_time, attempt.end_time) == (ORIGIN, ORIGIN + timedelta(seconds=1.5))
            # The hook's later deliveries are tried again (the plugin may recover), each bounded.
            release.set()
            await w.publish(rfi(2))
            [*_, second] = await w.settle(slow, 2)
            assert second.status is DeliveryStatus.DELIVERED
            assert sorted(r.target for r in receiver.requests) == ["/healthy", "/healthy", "/slow"]
    finally:
        release.set()


async def test_a_hung_format_holds_only_its_own_threads(autojump_clock: MockClock, nursery: trio.Nursery) -> None:
    """Abandoned renders keep their threads; they use up their format's slots, not the others'.
    A render that waits for a slot past ``render_wait`` is not the format's failure: it is
    retried on the hook's schedule, and delivered once the format has threads again."""
    release = threading.Event()

    def hang() -> object:
        release.wait(30)
        return RenderedPayload(JSON, b"{}")

    receiver = await nursery.start(ScriptedReceiver(default=Reply(200)).run)
    config = EngineConfig(render_timeout=1.0, render_wait=0.5, render_threads_per_format=2)
    try:
        async with world(config, loaded=loaded(Misbehaving(hang))) as w:
            slow = await w.hook(receiver.url("/slow"), payload_format="acme.misbehaving")
            healthy = await w.hook(receiver.url("/healthy"))
            await w.publish(*[rfi(i) for i in range(1, 6)])
            delivered = await w.settle(healthy, 5)
            assert {d.status for d in delivered} == {DeliveryStatus.DELIVERED}
            assert [r.time - w.t0 for r in receiver.requests] == [0] * 5
            done = await w.settle(slow, 2)
            failed = [d for d in done if d.status is DeliveryStatus.FAILED]
            assert [d.last_error for d in failed] == [PREFIX + "render() took longer than 1 s"] * 2
            waiting = [d for d in done if d.status is not DeliveryStatus.FAILED]
            assert {d.status for d in waiting} == {DeliveryStatus.RETRYING}
            for delivery in waiting:
                first = (await w.attempts(delivery))[0]
                assert (first.start_time, first.end_time) == (ORIGIN, ORIGIN + timedelta(seconds=0.5))
                assert first.error == PREFIX + "no render thread was free within 0.5 s"
            release.set()  # the hung renders return: their threads, and slots, are free again
            done = await w.settle(slow, 5)
            assert sorted(d.status.value for d in done) == ["delivered"] * 3 + ["failed"] * 2
    finally:
        release.set()


@pytest.mark.parametrize("inline", [False, True], ids=["plugin format", "bundled format"])
async def test_a_rejected_50_mb_body_is_released_at_once(
    autojump_clock: MockClock, nursery: trio.Nursery, inline: bool
) -> None:
    """No reference cycle keeps a rejected render alive (through its error's traceback): with
    the garbage collector off, the memory is back as soon as the delivery has failed."""
    fmt = Misbehaving(lambda: RenderedPayload(JSON, b"x" * 50_000_000))
    receiver = await nursery.start(ScriptedReceiver(default=Reply(200)).run)
    gc.collect()
    gc.disable()
    tracemalloc.start()
    try:
        async with world(loaded=loaded(fmt), inline_formats=frozenset({fmt.name}) if inline else frozenset()) as w:
            hook = await w.hook(receiver.url(), payload_format=fmt.name)
            before = tracemalloc.get_traced_memory()[0]
            await w.publish(rfi())
            [delivery] = await w.settle(hook)
            current, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
        gc.enable()
    assert delivery.status is DeliveryStatus.FAILED
    assert peak - before > 50_000_000  # it was made
    assert current - before < 5_000_000  # and is gone


@pytest.mark.parametrize("inline", [False, True], ids=["plugin format", "bundled format"])
async def test_bundled_formats_render_on_the_engines_thread_and_others_in_a_worker(
    autojump_clock: MockClock, nursery: trio.Nursery, inline: bool
) -> None:
    threads: list[threading.Thread] = []

    def render() -> object:
        threads.append(threading.current_thread())
        return RenderedPayload(JSON, b"{}")

    fmt = Misbehaving(render)
    receiver = await nursery.start(ScriptedReceiver(default=Reply(200)).run)
    async with world(loaded=loaded(fmt), inline_formats=frozenset({fmt.name}) if inline else frozenset()) as w:
        hook = await w.hook(receiver.url(), payload_format=fmt.name)
        await w.publish(rfi())
        [delivery] = await w.settle(hook)
    assert delivery.status is DeliveryStatus.DELIVERED
    assert (threads == [threading.main_thread()]) is inline


async def test_a_bundled_format_that_breaks_the_contract_still_fails_only_its_delivery(
    autojump_clock: MockClock, nursery: trio.Nursery
) -> None:
    fmt = Misbehaving(returns(RenderedPayload(JSON, "not bytes")))  # type: ignore[arg-type]
    receiver = await nursery.start(ScriptedReceiver(default=Reply(200)).run)
    async with world(loaded=loaded(fmt), inline_formats=frozenset({fmt.name})) as w:
        hook = await w.hook(receiver.url(), payload_format=fmt.name)
        await w.publish(rfi())
        [delivery] = await w.settle(hook)
    assert delivery.status is DeliveryStatus.FAILED
    assert "acme.misbehaving" in delivery.last_error
    assert "plugin acme" in delivery.last_error
