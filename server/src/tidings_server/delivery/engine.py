"""The delivery nursery: a dispatcher claims due deliveries, attempts run per hook, results are
recorded in groups, and old history is purged.

One structured tree owns it all. Claims never exceed a hook's free concurrency (counted by the
store across every node), so a hanging endpoint holds at most its own ``max_concurrency`` slots
and never delays another hook. Claims are leased to this node, and a heartbeat extends them
while their attempts run, so a lease can be short: a node that dies holds its work only until
its leases end. A publish (on any node: the store's notices) wakes the dispatcher at once;
otherwise it sleeps until the next delivery is due, or ``poll`` at most.
"""

from __future__ import annotations

import logging
import random
from collections import Counter
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import cast

import trio
import trio.lowlevel

from tidings_server import __version__, cluster, operational
from tidings_server.delivery import policy
from tidings_server.delivery.breaker import BreakerConfig, Breakers
from tidings_server.delivery.clock import Clock
from tidings_server.delivery.http import Outcome, Sender
from tidings_server.delivery.render_pool import RenderBusy, RenderFailed, RenderPool
from tidings_server.delivery.render_worker import render_checked
from tidings_server.delivery.scrub import scrub_attempt
from tidings_server.delivery.throttle import Throttle
from tidings_server.domain import signing, states
from tidings_server.domain.errors import ResourceExhausted, Unavailable
from tidings_server.domain.hooks import disable_hook
from tidings_server.domain.model import (
    PENDING_STATUSES,
    Attempt,
    Delivery,
    DeliveryStatus,
    Event,
    Hook,
    Ordering,
    RenderedBody,
)
from tidings_server.domain.ports import AttemptRecord, Claim, Store
from tidings_server.domain.secrets import mask
from tidings_server.plugins.spec import PayloadFormat, RenderContext, RenderError
from tidings_server.telemetry.tracing import AttemptTracer

log = logging.getLogger(__name__)

USER_AGENT = f"tidings/{__version__}"
STORE_RETRY = 1.0
"""Seconds between tries of a claim or a record while the store is unavailable."""
DELIVERY_ID_HEADER = "Tidings-Delivery-Id"
HOOK_HEADER = "Tidings-Hook"
TEST_HEADER = "Tidings-Test"  # "true" on a test send, whatever the format: a receiver can ignore it
INLINE_RENDER_BYTES = 4 * 1024 * 1024
"""Bodies of bundled formats kept for the other hooks of the same event: thousands of usual
bodies, so the deliveries of one publish find theirs, and a few of the largest allowed."""


@dataclass(frozen=True, slots=True)
class EngineConfig:
    """Tuning of the delivery nursery; the defaults suit one server on a small machine."""

    max_in_flight: int = 512
    claim_batch: int = 128
    # How long a claim is held without a heartbeat; this node's heartbeat (every lease / 3)
    # extends its leases while their attempts run, so only a dead node's leases ever end.
    lease: timedelta = timedelta(seconds=30)
    # The longest the dispatcher sleeps without a wake-up, in case a notice from another node
    # was lost; None: only when woken or when something falls due (a store of one process).
    poll: float | None = 1.0
    retention: timedelta = timedelta(days=28)
    purge_every: float = 60.0
    purge_batch: int = 500
    record_batch: int = 256
    # A render is plugin code: the call is bounded in time (a failure past it), and so, apart,
    # is the wait for a free worker (retried later past it: the format is busy, not broken).
    # In-process plugins get a few worker threads per format, so one that hangs (its abandoned
    # threads hold their slots) cannot starve another format.
    render_timeout: float = 2.0
    render_wait: float = 10.0
    render_threads_per_format: int = 4
    # A delivery whose attempts were cut short by its server's death more than this many times
    # in a row is failed instead of attempted again: whatever kills the server (a render, a
    # response) must not do so on every restart.
    poison_after: int = 3
    # When a hook's circuit opens, and when a hook failing without a success is disabled.
    breaker: BreakerConfig = field(default_factory=BreakerConfig)


@dataclass(slots=True)
class _Flight:
    hook: str
    claim: Claim


class DeliveryEngine:
    """Runs deliveries until drained; ``wake()`` is how publishes and hook changes reach it."""

    def __init__(
        self,
        store: Store,
        formats: Mapping[str, PayloadFormat],
        sender: Sender,
        clock: Clock,
        config: EngineConfig = EngineConfig(),
        jitter: Callable[[], float] = random.random,
        on_recorded: Callable[[], None] = lambda: None,
        format_plugins: Mapping[str, str] = {},
        render_limiter: Callable[[int], trio.CapacityLimiter] = trio.CapacityLimiter,
        inline_formats: Collection[str] = frozenset(),
        render_pool: RenderPool | None = None,
        tracer: AttemptTracer | None = None,
        node_id: str = "",
    ) -> None:
        """``format_plugins`` names the plugin behind each format, for the errors renders cause;
        ``render_limiter`` makes each format's thread limiter (tests observe renders with it);
        ``inline_formats`` render on the engine's own thread and the formats ``render_pool``
        serves in its worker processes (see ``_render``); ``tracer`` traces each attempt (None:
        tracing is off, at no cost); ``node_id`` owns the leases (a new one when empty)."""
        self.node_id = node_id or cluster.new_node_id()
        self._render_pool = render_pool
        self._store = store
        self._formats = formats
        self._format_plugins = format_plugins
        self._inline_formats = frozenset(inline_formats)
        self._inline_renders: dict[tuple[str, str, bool], tuple[list[tuple[str, str]], bytes]] = {}
        self._inline_bytes = 0  # the bodies' bytes in _inline_renders
        self._render_limiters: dict[str, trio.CapacityLimiter] = {}
        self._render_limiter = render_limiter
        self._sender = sender
        self._tracer = tracer
        self._clock = clock
        self._config = config
        self._jitter = jitter
        self._on_recorded = on_recorded
        self._wake = trio.Event()
        self._stopping = trio.Event()
        self._flights: dict[str, _Flight] = {}
        # This node's attempts per hook, deliveries and test sends alike: a test send is refused
        # when the hook's concurrency is taken here (the store counts the deliveries cluster-wide).
        self._per_hook: Counter[str] = Counter()
        self._probes = 0  # test sends under way: they take slots like deliveries do
        # Deliveries whose attempt is over and whose record is not committed yet: still leased
        # here, but a claim does not count them against their hook's concurrency, so a slot is
        # taken again as soon as its request ends, not one record write later. The value says
        # whether the record may make something claimable (see _to_record).
        self._finishing: dict[str, bool] = {}
        self._claiming = False  # a claim is under way: it counts every attempt that had not ended
        self._records_send, self._records_receive = trio.open_memory_channel[AttemptRecord](config.max_in_flight)
        self._idle = trio.Event()
        self._idle.set()
        self._stopped = trio.Event()
        self._dispatcher_done = trio.Event()
        self._cancel_flights = trio.CancelScope()
        self._flights_closed = False
        # Operational events (a hook disabled, a circuit opened or closed, a delivery discarded),
        # published once the event service is connected (app.py).
        self.announcer = operational.Announcer()
        self.throttle = Throttle(store, Breakers(config.breaker), self.announcer, self._protected)
        self._unreleased: list[str] = []  # claims the throttle could not pass (the store was away)

    def _protected(self) -> None:
        """The throttle hastened deliveries or disabled a hook: claim again, tell watchers."""
        self.wake()
        self._on_recorded()

    def wake(self) -> None:
        """Something may be due now (a publish, a resumed hook, a finished attempt)."""
        self._wake.set()

    @property
    def in_flight(self) -> int:
        return len(self._flights)

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Deliver until ``drain()`` finishes (or the caller cancels)."""
        async with trio.open_nursery() as outer:
            outer.start_soon(self._record_loop)
            background = trio.CancelScope()
            outer.start_soon(self._background, background)
            async with self._records_send:
                async with trio.open_nursery() as attempts:
                    flights: trio.Nursery = await attempts.start(self._run_flights)
                    attempts.start_soon(self._dispatch_loop, flights)
                    task_status.started()
                unfinished = [f.claim.delivery.name for f in self._flights.values()]
                if unfinished:
                    with trio.CancelScope(shield=True):
                        await self._store.release(unfinished)
                    log.info("released unfinished deliveries", extra={"count": len(unfinished)})
            background.cancel()
        self._stopped.set()

    async def drain(self, grace: float) -> None:
        """Stop claiming, give in-flight attempts ``grace`` seconds, cancel the rest (their leases
        are released so the next start picks them up); returns once ``run`` has finished."""
        self._stopping.set()
        self.wake()
        with trio.move_on_after(grace):
            await self._dispatcher_done.wait()  # no claim can start a flight after this
            await self._idle.wait()
        self._cancel_flights.cancel()
        await self._stopped.wait()

    async def _run_flights(self, *, task_status: trio.TaskStatus[trio.Nursery] = trio.TASK_STATUS_IGNORED) -> None:
        """The nursery of the attempts, under one cancel scope that ``drain`` cancels: cheaper
        than a scope per attempt. It stays open to new attempts until the dispatcher is done."""
        with self._cancel_flights:
            async with trio.open_nursery() as flights:
                task_status.started(flights)
                try:
                    await self._dispatcher_done.wait()
                finally:  # drained, cancelled or failing: the nursery closes to new attempts
                    self._flights_closed = True

    # -- dispatcher ------------------------------------------------------------------------

    async def _dispatch_loop(self, attempts: trio.Nursery) -> None:
        try:
            await self._dispatch(attempts)
        finally:
            self._dispatcher_done.set()

    async def _dispatch(self, attempts: trio.Nursery) -> None:
        while not self._stopping.is_set():
            try:
                await self._dispatch_once(attempts)
            except Unavailable as exc:  # the database is away: keep trying, deliver when it is back
                log.warning("claiming failed; trying again", extra={"error": str(exc), "in": STORE_RETRY})
                await trio.sleep(STORE_RETRY)

    async def _dispatch_once(self, attempts: trio.Nursery) -> None:
        """One claim, then a wait for the next wake-up, due time or poll."""
        self._wake = trio.Event()
        if self._unreleased:  # else this node's heartbeat would hold their leases for ever
            await self._store.release(self._unreleased)
            self._unreleased = []
        free = self._config.max_in_flight - len(self._flights) - self._probes
        claims: list[Claim] = []
        held_back: list[str] = []
        now = self._clock.now()
        if free > 0:
            self._claiming = True
            try:
                claims = await self._store.claim_due(
                    now,
                    limit=min(free, self._config.claim_batch),
                    lease_until=now + self._config.lease,
                    owner=self.node_id,
                    finished=tuple(self._finishing),
                )
            finally:
                self._claiming = False
            ready: list[Claim] = []
            taking: Counter[str] = Counter()
            for claim in claims:
                if claim.delivery.name in self._flights:  # still running here; its lease ran out
                    continue
                if self._per_hook[claim.hook.name] + taking[claim.hook.name] >= claim.hook.max_concurrency:
                    # The store counts leases only; a test send running here holds this slot.
                    held_back.append(claim.delivery.name)
                    continue
                taking[claim.hook.name] += 1
                ready.append(claim)
            # Breakers and rate limits: what may not go now is postponed in the store.
            try:
                gated = await self.throttle.gate(ready, now) if ready else None
            except Unavailable:  # claimed, not started: released once the store is back
                for claim in ready:
                    self.throttle.breakers.forget(claim.hook.name, claim.delivery.name)
                self._unreleased += [c.delivery.name for c in ready]
                raise
            for claim in gated.expired if gated else ():
                expired = self.throttle.expired(claim, now)
                await self._to_record(expired, claim.hook)
                await self.throttle.announce_discard(claim, expired)
            for claim in gated.admitted if gated else ():
                flight = _Flight(claim.hook.name, claim)
                self._flights[claim.delivery.name] = flight
                self._per_hook[flight.hook] += 1
                self._idle = trio.Event()
                if self._flights_closed:
                    continue  # not started: released as unfinished when run ends
                attempts.start_soon(self._attempt, flight)
            if held_back:  # claimable again at once; the test send's end wakes the dispatcher
                await self._store.release(held_back)
        if claims and len(claims) == min(free, self._config.claim_batch) and not held_back:
            await trio.lowlevel.checkpoint()
            return  # there may be more due right now
        due = await self._store.next_due_time(after=now) if free > 0 else None
        deadline = self._clock.deadline(due)
        if self._config.poll is not None:
            deadline = min(deadline, trio.current_time() + self._config.poll)
        with trio.move_on_at(deadline):
            await self._wake.wait()

    # -- one attempt -----------------------------------------------------------------------

    async def _attempt(self, flight: _Flight) -> None:
        disable = False
        sent: AttemptRecord | None = None  # recorded (on its way to the store): the breaker hears of it
        try:
            try:
                record, disable = await self._traced(flight.claim)
            except Exception:  # a defect must cost one delivery a lease period, not the server
                log.exception("attempt failed unexpectedly", extra={"delivery": flight.claim.delivery.name})
                self._land(flight)
                return
            await self._to_record(record, flight.claim.hook)
            self._land(flight)
            sent = record
            if disable:  # 410 Gone
                with trio.CancelScope(shield=True):
                    now = self._clock.now()
                    if await disable_hook(self._store, flight.hook, now, record.error):
                        await self.announcer.announce(
                            operational.hook_event(flight.claim.hook, operational.DISABLED, now)
                        )
                self._on_recorded()  # its pending deliveries were discarded: watchers want to know
            else:
                with trio.CancelScope(shield=True):
                    await self.throttle.observe(flight.claim, sent)
        except trio.Cancelled:
            if sent is None:
                log.info("attempt cancelled", extra={"delivery": flight.claim.delivery.name})
            raise
        finally:
            self.throttle.breakers.forget(flight.hook, flight.claim.delivery.name)
            # A freed slot can matter only to a hook that had no room without it, or to a claim
            # under way, which counted it taken: waking for every attempt's end made most claims
            # of a lightly loaded server find nothing. (A hook whose max_concurrency was lowered
            # below what it has in flight waits for the next wake-up or poll once, at worst.)
            full = self._claiming or self._per_hook[flight.hook] >= flight.claim.hook.max_concurrency
            self._release_slot(flight.hook)
            if not self._flights:
                self._idle.set()
            if full:
                self.wake()

    def _land(self, flight: _Flight) -> None:
        """The attempt no longer counts against the server's cap: wake the dispatcher if the cap
        was what stopped it claiming."""
        capped = len(self._flights) + self._probes >= self._config.max_in_flight
        del self._flights[flight.claim.delivery.name]
        if capped:
            self.wake()

    async def _traced(self, claim: Claim, *, test: bool = False) -> tuple[AttemptRecord, bool]:
        """``_perform`` inside one client span when tracing is on; the POST carries its context."""
        if self._tracer is None:
            return await self._perform(claim, test=test)
        span = self._tracer.start(claim.event, claim.hook, claim.delivery.attempt_count + 1)
        try:
            record, disable = await self._perform(claim, (("traceparent", span.traceparent),), test=test)
        except BaseException:
            span.end(None, "the attempt was cut short")
            raise
        span.end(record.attempt.response_status, record.error)
        return record, disable

    async def _perform(
        self, claim: Claim, trace: Sequence[tuple[str, str]] = (), *, test: bool = False
    ) -> tuple[AttemptRecord, bool]:
        """Render, POST and decide; returns the record and whether the hook must be disabled."""
        delivery, event, hook = claim.delivery, claim.event, claim.hook
        number = delivery.attempt_count + 1
        start = self._clock.now()
        if claim.interrupted > self._config.poison_after:
            return self._poisoned(claim, number, start), False
        headers = [(DELIVERY_ID_HEADER, event.id), (HOOK_HEADER, hook.name), *trace]
        if test:
            headers.append((TEST_HEADER, "true"))
        if hook.authorization_header:
            headers.append(("Authorization", hook.authorization_header))
        try:
            body, rendered_headers = await self._render(hook, claim.event, test=test)
        except _NotRendered as exc:  # foreign plugin code: any failure is this delivery's, not ours
            result = policy.Result(failure=exc.failure, error=str(exc))
            return self._conclude(claim, number, start, self._clock.now(), headers, result, None)
        # Signed over the exact bytes sent, at this attempt's time: a retry is signed afresh.
        signed = signing.headers(hook.signing_secrets(start), event.id, start, body)
        headers = [*rendered_headers, *signed, *headers]
        outcome = await self._sender.post(
            hook.destination_url, headers, body, hook.retry_policy.timeout.total_seconds()
        )
        end = self._clock.now()
        # What went on the wire (Host, Content-Length, User-Agent too), when anything did.
        sent = list(outcome.sent_headers) or headers
        rendered = _rendered_body(body, rendered_headers)
        return self._conclude(claim, number, start, end, sent, outcome.result(end), outcome, rendered)

    async def render(self, hook: Hook, event: Event) -> RenderedBody:
        """The body a delivery of ``event`` to ``hook`` is sent with (for history views)."""
        return _rendered_body(*await self._render(hook, event))

    async def probe(self, hook: Hook, event: Event) -> tuple[Attempt, bytes]:
        """Send ``event`` to ``hook`` once, now, exactly as a delivery would be, recording nothing
        (SendTestEvent): the admin learns whether the endpoint works before events flow. Returns
        the attempt and the body it sent (empty when the format could not render it). The request
        says it is a test: a ``Tidings-Test: true`` header, and the format marks the body where
        its shape allows (``RenderContext.test``)."""
        now = self._clock.now()
        delivery = Delivery(
            name=f"{hook.name}/deliveries/{event.id}",
            hook_name=hook.name,
            event_id=event.id,
            status=DeliveryStatus.QUEUED,
            attempt_count=0,
            create_time=now,
            update_time=now,
            next_attempt_time=now,
        )
        self._take_probe_slot(hook)
        try:
            record, _ = await self._traced(Claim(delivery, event, hook), test=True)
        finally:
            self._probes -= 1
            self._release_slot(hook.name)
            self.wake()  # a claim held back by this slot may go now
        return record.attempt, record.rendered.body if record.rendered else b""

    def _take_probe_slot(self, hook: Hook) -> None:
        """Count a test send against the hook's ``max_concurrency`` and the global cap, as a
        delivery is: otherwise any caller could aim a flood of connections at a destination."""
        retry = f"retry within {hook.retry_policy.timeout.total_seconds():g} s, when an attempt has finished"
        if self._per_hook[hook.name] >= hook.max_concurrency:
            raise ResourceExhausted(
                f"name: {hook.name} has {self._per_hook[hook.name]} attempts in flight, its max_concurrency; {retry}"
            )
        if len(self._flights) + self._probes >= self._config.max_in_flight:
            raise ResourceExhausted(
                f"name: the server has {self._config.max_in_flight} attempts in flight, its --max-in-flight; {retry}"
            )
        self._probes += 1
        self._per_hook[hook.name] += 1

    def _release_slot(self, hook_name: str) -> None:
        self._per_hook[hook_name] -= 1
        if not self._per_hook[hook_name]:
            del self._per_hook[hook_name]

    async def _render(self, hook: Hook, event: Event, *, test: bool = False) -> tuple[bytes, list[tuple[str, str]]]:
        """Render ``event`` for ``hook`` in the format's lane; every failure names the plugin.

        Three lanes: formats of installed third-party distributions render in the render pool's
        worker processes; formats shipped with the server render on the engine's thread; plugin
        objects registered in this process (no distribution to start a worker from) render in a
        few worker threads per format. Outside the engine's thread, ``render_wait`` bounds the
        wait for a free worker (running out is retryable) and ``render_timeout`` the call alone.
        """
        name = hook.payload_format
        plugin = self._format_plugins.get(name)
        who = f"payload format {name}" + (f" (plugin {plugin})" if plugin else "")
        fmt = self._formats.get(name)
        if fmt is None:
            raise _NotRendered(
                policy.Failure.FORMAT_UNAVAILABLE,
                f"{who} is not loaded (its plugin is disabled or not installed); retried until it is back",
            )
        context = RenderContext(hook.name, name, test=test)
        try:
            if self._render_pool is not None and self._render_pool.serves(name):
                headers, body = await self._render_pool.render(
                    name, event, context, time_bound=self._config.render_timeout, wait=self._config.render_wait
                )
            elif name in self._inline_formats:
                # Formats shipped with the server are code of ours, reviewed and tested with it: a
                # thread hop per render cost them a third of the delivery rate (docs/performance.md).
                # They still go through the same contract check; only the time bound is not needed.
                headers, body = self._render_inline(fmt, event, context)
            else:
                headers, body = await self._render_in_thread(fmt, event, context)
        except RenderBusy as exc:
            failure, error = policy.Failure.RENDER_BUSY, f"{who}: {exc}"
        except (RenderFailed, RenderError) as exc:
            failure, error = policy.Failure.RENDER, f"{who}: {exc}"
        else:
            return body, headers
        # Raised here, outside the handlers, so the new error carries no context chain back to
        # the render's frames (and the rejected body they hold).
        raise _NotRendered(failure, error)

    def _render_inline(
        self, fmt: PayloadFormat, event: Event, context: RenderContext
    ) -> tuple[list[tuple[str, str]], bytes]:
        """A bundled format's render, made once per event for all the hooks that use the format.

        None of them reads the hook's name from the context (a test renders each for two hooks
        and compares the bytes), so an event fanned out to several hooks of one format is
        rendered, and checked, once; each hook still signs the bytes with its own secrets.
        """
        key = (fmt.name, event.id, context.test)
        renders = self._inline_renders
        rendered = renders.get(key)
        if rendered is None:
            rendered = render_checked(fmt, event, context)
            self._inline_bytes += len(rendered[1])
            renders[key] = rendered
            while self._inline_bytes > INLINE_RENDER_BYTES and len(renders) > 1:
                self._inline_bytes -= len(renders.pop(next(iter(renders)))[1])  # the oldest first
        headers, body = rendered
        return list(headers), body

    async def _render_in_thread(
        self, fmt: PayloadFormat, event: Event, context: RenderContext
    ) -> tuple[list[tuple[str, str]], bytes]:
        """A render abandoned at the bound keeps its thread, and its slot, until it returns."""
        limiter = self._render_limiters.get(fmt.name)
        if limiter is None:
            limiter = self._render_limiters[fmt.name] = self._render_limiter(self._config.render_threads_per_format)
        ticket = object()
        with trio.move_on_after(self._config.render_wait) as waiting:
            await limiter.acquire_on_behalf_of(ticket)
        if waiting.cancelled_caught:
            raise RenderBusy(f"no render thread was free within {self._config.render_wait:g} s")
        slot = _HeldSlot(limiter, ticket)
        try:
            with trio.move_on_after(self._config.render_timeout):
                # Duck-typed: to_thread uses only the limiter's two methods (CapacityLimiter is final).
                return await trio.to_thread.run_sync(
                    render_checked,
                    fmt,
                    event,
                    context,
                    abandon_on_cancel=True,
                    limiter=cast(trio.CapacityLimiter, slot),
                )
        finally:
            slot.release_unless_taken()
        raise RenderFailed(f"render() took longer than {self._config.render_timeout:g} s")

    def _poisoned(self, claim: Claim, number: int, now: datetime) -> AttemptRecord:
        """Fail a delivery that was in flight at too many server deaths, without attempting it."""
        error = (
            f"not attempted again: {claim.interrupted} attempts of this delivery in a row ended with"
            f" the server stopping mid-attempt (more than {self._config.poison_after} allowed); its render or"
            " its send may be what stops the server"
        )
        status = states.transition(claim.delivery.status, states.Cause.POISONED)
        attempt = Attempt(number, now, now, (), None, (), b"", error)
        log.error("delivery poisoned", extra={"delivery": claim.delivery.name, "interrupted": claim.interrupted})
        return AttemptRecord(claim.delivery.name, attempt, status, None, error)

    def _conclude(
        self,
        claim: Claim,
        number: int,
        start: datetime,
        end: datetime,
        headers: list[tuple[str, str]],
        result: policy.Result,
        outcome: Outcome | None,
        rendered: RenderedBody | None = None,
    ) -> tuple[AttemptRecord, bool]:
        delivery, hook = claim.delivery, claim.hook
        decision = policy.decide(
            result,
            hook.retry_policy,
            attempt_number=number,
            first_attempt_time=delivery.first_attempt_time or start,
            now=end,
            jitter=self._jitter(),
        )
        status = states.transition(delivery.status, decision.cause)
        sent = tuple((k, mask(v) if k.lower() == "authorization" else v) for k, v in headers)
        body = outcome.body if outcome else b""
        # What the receiver sent back is scrubbed of the hook's secrets here, before anything of
        # it is stored or returned (a receiver may echo the Authorization header it got).
        attempt = scrub_attempt(
            Attempt(
                number=number,
                start_time=start,
                end_time=end,
                request_headers=sent,
                response_status=result.status,
                response_headers=tuple(outcome.headers) if outcome else (),
                response_body=body,
                error=decision.error,
            ),
            hook,
            cut=len(body) >= self._sender.max_response_body,
        )
        record = AttemptRecord(delivery.name, attempt, status, decision.next_attempt_time, attempt.error, rendered)
        return record, decision.disable_hook

    # -- recorder and purger ---------------------------------------------------------------

    async def _to_record(self, record: AttemptRecord, hook: Hook) -> None:
        # Once written, a retry is due at a new time, and a PER_RESOURCE hook's next delivery of
        # the resource may go: those wake the dispatcher. A delivery that ends frees nothing a
        # claim counts (its slot was freed when its request ended).
        self._finishing[record.delivery_name] = (
            record.status in PENDING_STATUSES or hook.ordering is Ordering.PER_RESOURCE
        )
        await self._records_send.send(record)

    async def _record_loop(self) -> None:
        """Group commit: everything finished while the last write ran goes in the next one."""
        async with self._records_receive:
            async for first in self._records_receive:
                batch = [first]
                while len(batch) < self._config.record_batch:
                    try:
                        batch.append(self._records_receive.receive_nowait())
                    except (trio.WouldBlock, trio.EndOfChannel):
                        break
                await self._record(batch)
                wakes = [self._finishing.pop(r.delivery_name, True) for r in batch]
                self._on_recorded()
                if any(wakes):
                    self.wake()

    async def _record(self, batch: list[AttemptRecord]) -> None:
        """Record a batch, trying again while the database is away; the attempts wait (their
        leases kept by the heartbeat, once it gets through). Stopping, a batch the database
        still refuses is given up: those deliveries are sent again (at least once)."""
        while True:
            try:
                with trio.CancelScope(shield=True):  # a started write always completes
                    await self._store.record_attempts(batch)
                return
            except Unavailable as exc:
                if self._stopping.is_set():
                    log.error("attempts not recorded before stopping; they will be sent again",
                              extra={"count": len(batch), "error": str(exc)})  # fmt: skip
                    return
                log.warning("recording attempts failed; trying again", extra={"error": str(exc), "in": STORE_RETRY})
                await trio.sleep(STORE_RETRY)

    async def _background(self, scope: trio.CancelScope) -> None:
        """The purger, and the heartbeat that keeps this node's leases while their attempts
        run, until ``run`` cancels ``scope``."""
        with scope:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(self._purge_loop)
                in_flight = lambda: len(self._flights)  # noqa: E731 - read at each beat
                nursery.start_soon(cluster.beat, self._store, self.node_id, self._clock, self._config.lease, in_flight)

    async def _purge_loop(self) -> None:
        while True:
            before = self._clock.now() - self._config.retention
            try:
                while await self._store.purge(before, self._config.purge_batch):
                    await trio.lowlevel.checkpoint()
            except Unavailable as exc:  # next round
                log.warning("purging failed", extra={"error": str(exc)})
            await trio.sleep(self._config.purge_every)


class _NotRendered(Exception):
    """This delivery was not rendered; the message names the format and its plugin, ``failure``
    says whether that is the render's fault (permanent) or a busy or missing format (retryable)."""

    def __init__(self, failure: policy.Failure, message: str) -> None:
        super().__init__(message)
        self.failure = failure


class _HeldSlot:
    """A render thread's slot, taken before ``to_thread.run_sync`` so that the wait for it is
    bounded apart from the render; handed to it as its limiter, which releases the slot when the
    thread finishes (an abandoned thread keeps it until then)."""

    def __init__(self, limiter: trio.CapacityLimiter, ticket: object) -> None:
        self._limiter = limiter
        self._ticket = ticket
        self._taken = False

    async def acquire_on_behalf_of(self, borrower: object) -> None:
        self._taken = True  # already held: no checkpoint, so nothing can cancel between

    def release_on_behalf_of(self, borrower: object) -> None:
        self._limiter.release_on_behalf_of(self._ticket)

    def release_unless_taken(self) -> None:
        """Cancelled before the thread started: nobody else will release the slot."""
        if not self._taken:
            self._taken = True
            self._limiter.release_on_behalf_of(self._ticket)


def _rendered_body(body: bytes, headers: list[tuple[str, str]]) -> RenderedBody:
    """What history keeps of a render: the body and its Content-Type."""
    return RenderedBody(body, next((v for k, v in headers if k.lower() == "content-type"), ""))
