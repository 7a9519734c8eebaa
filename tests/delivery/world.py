"""A delivery engine wired to the memory store, the built-in plugins and loopback receivers.

Everything runs in the test's trio run, so under ``autojump_clock`` hours of retries pass in
milliseconds and every time asserted is exact. The one exception is rendering, which the engine
runs in worker threads (plugin code is isolated there); trio's autojump cannot see a worker
thread (python-trio/trio#456) and would jump the clock while a render runs. So while a render
is out in a thread, ``CushionedLimiter`` gives the mock clock a cushion of ``RENDER_CUSHION``
real seconds before it jumps: renders take microseconds, and only a test's deliberately slow
plugin lets virtual time move (to its render deadline, exactly).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import cast
from weakref import WeakKeyDictionary

import trio
from trio.testing import MockClock

from tidings_server.delivery.clock import Clock
from tidings_server.delivery.engine import USER_AGENT, DeliveryEngine, EngineConfig
from tidings_server.delivery.http import Sender
from tidings_server.domain.destinations import DestinationPolicy
from tidings_server.domain.events import EventDraft, EventService
from tidings_server.domain.history import HistoryService
from tidings_server.domain.hooks import HookInput, HookService, Lookup, RetryPolicyInput
from tidings_server.domain.model import Attempt, Delivery, Hook, HookStatus, Ordering, SendRate
from tidings_server.domain.ports import Published, Store
from tidings_server.domain.pulse import Pulse
from tidings_server.plugins.manager import Plugins
from tidings_server.stores.memory import MemoryBackend
from tidings_server.telemetry.metrics import Metrics
from tidings_server.telemetry.store import observed

ORIGIN = datetime(2026, 11, 27, 9, 0, tzinfo=UTC)
PROJECT = "companies/8/projects/6778"
LOOPBACK = DestinationPolicy(allow_http=True, allow_private=True)
_PLUGINS: list[Plugins] = []
RENDER_CUSHION = 0.25


# Per mock clock: renders out in threads, and the threshold to restore when none is left.
_RENDERING: WeakKeyDictionary[MockClock, tuple[int, float]] = WeakKeyDictionary()


class CushionedLimiter:
    """A CapacityLimiter that holds the mock clock's autojump back while its threads run.

    ``trio.to_thread.run_sync`` calls ``acquire_on_behalf_of`` on the trio thread before it
    starts a thread and ``release_on_behalf_of`` on it once the thread is done, which brackets
    exactly the time the run loop looks idle to autojump but is not.
    """

    def __init__(self, tokens: int) -> None:
        self._limiter = trio.CapacityLimiter(tokens)

    async def acquire_on_behalf_of(self, borrower: object) -> None:
        await self._limiter.acquire_on_behalf_of(borrower)
        clock = trio.lowlevel.current_clock()
        if isinstance(clock, MockClock):
            count, saved = _RENDERING.get(clock, (0, clock.autojump_threshold))
            _RENDERING[clock] = (count + 1, saved)
            clock.autojump_threshold = max(saved, RENDER_CUSHION)

    def release_on_behalf_of(self, borrower: object) -> None:
        self._limiter.release_on_behalf_of(borrower)
        clock = trio.lowlevel.current_clock()
        if isinstance(clock, MockClock):
            count, saved = _RENDERING.pop(clock)
            if count > 1:
                _RENDERING[clock] = (count - 1, saved)
            else:
                clock.autojump_threshold = saved


def cushioned_limiter(tokens: int) -> trio.CapacityLimiter:
    # Duck-typed: to_thread uses only the two methods above, and CapacityLimiter is final.
    return cast(trio.CapacityLimiter, CushionedLimiter(tokens))


def plugins() -> Plugins:
    if not _PLUGINS:
        _PLUGINS.append(Plugins.load())
    return _PLUGINS[0]


async def no_dns(host: str) -> list[str]:
    return []


@dataclass
class World:
    store: Store
    clock: Clock
    engine: DeliveryEngine
    hooks: HookService
    events: EventService
    history: HistoryService
    t0: float = field(default_factory=trio.current_time)

    async def hook(
        self,
        url: str,
        *,
        parent: str = PROJECT,
        triggers: tuple[tuple[str, str], ...] = (("RFIs", "update"),),
        payload_format: str = "procore.v4",
        authorization: str = "",
        policy: RetryPolicyInput | None = None,
        ordering: Ordering | None = None,
        max_concurrency: int = 0,
        rate_limit: SendRate | None = None,
    ) -> Hook:
        hook = await self.hooks.create_hook(
            parent,
            HookInput(
                destination_url=url,
                payload_format=payload_format,
                authorization_header=authorization,
                retry_policy=policy or RetryPolicyInput(),
                ordering=ordering,
                max_concurrency=max_concurrency,
                rate_limit=rate_limit,
            ),
        )
        await self.hooks.create_triggers(hook.name, list(triggers))
        return hook

    async def publish(self, *drafts: EventDraft) -> list[Published]:
        return await self.events.publish(list(drafts))

    async def deliveries(self, hook: Hook) -> list[Delivery]:
        return await self.store.list_deliveries(hook.name, after=None, limit=10_000)

    async def attempts(self, delivery: Delivery) -> list[Attempt]:
        return await self.store.list_attempts(delivery.name)

    async def settle(self, hook: Hook, count: int = 1, *, within: float = 86_400.0) -> list[Delivery]:
        """Wait (in trio time) until ``count`` deliveries of ``hook`` are no longer pending."""
        pause = 0.01  # doubling up to a minute: hours of virtual retries take few polls
        with trio.fail_after(within):
            while True:
                found = await self.deliveries(hook)
                done = [d for d in found if d.status.value not in ("queued", "retrying")]
                if len(done) >= count:
                    return found
                await trio.sleep(pause)
                pause = min(pause * 2, 60.0)

    def elapsed(self) -> float:
        return trio.current_time() - self.t0


def rfi(resource_id: int = 54321, *, event_type: str = "update", project_id: int = 6778, **kw: object) -> EventDraft:
    return EventDraft(
        company_id=8,
        project_id=project_id,
        resource_name="RFIs",
        resource_id=resource_id,
        event_type=event_type,
        user_id=5447,
        **kw,  # type: ignore[arg-type]
    )


@asynccontextmanager
async def world(
    config: EngineConfig | None = None,
    jitter: Callable[[], float] = lambda: 0.0,
    loaded: Plugins | None = None,
    inline_formats: frozenset[str] = frozenset(),
    metrics: Metrics | None = None,
) -> AsyncIterator[World]:
    """A running engine (with ``loaded`` plugins, or the installed ones); leaving the block
    drains it (grace 0) and closes everything. With ``metrics``, the store is observed for them
    as a server serving metrics observes it."""
    found = loaded or plugins()
    async with MemoryBackend().open("memory:") as opened, Sender(LOOPBACK, USER_AGENT) as sender:
        store = opened if metrics is None else observed(opened, metrics)
        clock = Clock(ORIGIN)
        pulse = Pulse()
        config = config or EngineConfig(poll=None)  # one process, woken in memory: no polls
        origins = {name: origin.plugin for name, origin in found.format_origin.items()}
        engine = DeliveryEngine(
            store,
            found.payload_formats,
            sender,
            clock,
            config,
            jitter,
            on_recorded=pulse.fire,
            format_plugins=origins,
            render_limiter=cushioned_limiter,
            inline_formats=inline_formats,
        )

        def changed() -> None:
            engine.wake()
            pulse.fire()

        lookup = Lookup(list(found.payload_formats), found.catalog.get)
        hooks = HookService(store, lookup, LOOPBACK, no_dns, clock.now, on_change=changed)
        events = EventService(store, found.catalog.get, clock.now, on_published=changed)
        engine.announcer.connect(events.publish)
        history = HistoryService(
            store,
            clock.now,
            pulse,
            engine.render,
            engine.probe,
            retention=config.retention,
            on_change=changed,
            circuit=engine.throttle.breakers.state,
        )
        async with trio.open_nursery() as nursery:
            await nursery.start(engine.run)
            yield World(store, clock, engine, hooks, events, history)
            await engine.drain(0)


def pause(status: HookStatus) -> HookInput:
    return HookInput(status=status)


SECOND = timedelta(seconds=1)
