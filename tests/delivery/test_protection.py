"""Endpoint protection in virtual time: rate limits, circuit breakers and deactivation, with
real HTTP on loopback and exact send times."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import timedelta

import trio
from trio.testing import MockClock

from tests.delivery.world import LOOPBACK, ORIGIN, World, cushioned_limiter, plugins, rfi, world
from tests.receivers import Received, Reply, ScriptedReceiver
from tidings_server import operational
from tidings_server.delivery.breaker import BreakerConfig
from tidings_server.delivery.engine import USER_AGENT, DeliveryEngine, EngineConfig
from tidings_server.delivery.http import Sender
from tidings_server.domain.hooks import HookInput, RetryPolicyInput
from tidings_server.domain.model import DeliveryStatus, HookStatus, SendRate


def _times(receiver: ScriptedReceiver, start: float) -> list[float]:
    """Send times relative to ``start``, to the microsecond the store keeps."""
    return [round(r.time - start, 6) for r in receiver.requests]


async def test_rate_limit_spaces_sends_exactly_at_the_limit(autojump_clock: MockClock, nursery: trio.Nursery) -> None:
    receiver = await ScriptedReceiver().start(nursery)
    async with world() as w:
        hook = await w.hook(receiver.url(), rate_limit=SendRate(per_second=2.0, burst=1))
        start = trio.current_time()
        await w.publish(*(rfi(n) for n in range(1, 6)))
        done = await w.settle(hook, 5)
        assert _times(receiver, start) == [0.0, 0.5, 1.0, 1.5, 2.0]
        assert {d.status for d in done} == {DeliveryStatus.DELIVERED}
        assert [d.attempt_count for d in done] == [1] * 5  # waiting is no attempt, nor a failure
        overview = await w.history.overview(hook.name)
        assert overview.rate_limited_time is not None
        assert overview.rate_limited_time > ORIGIN
        assert w.engine.throttle.rate_limited_hooks(w.clock.now()) == 1  # the metric's source
        assert w.engine.throttle.rate_limited_hooks(w.clock.now() + timedelta(minutes=2)) == 0


async def test_a_burst_goes_at_once_then_the_rate(autojump_clock: MockClock, nursery: trio.Nursery) -> None:
    receiver = await ScriptedReceiver().start(nursery)
    async with world() as w:
        hook = await w.hook(receiver.url(), rate_limit=SendRate(per_second=1.0, burst=3))
        start = trio.current_time()
        await w.publish(*(rfi(n) for n in range(1, 7)))
        await w.settle(hook, 6)
        assert _times(receiver, start) == [0.0, 0.0, 0.0, 1.0, 2.0, 3.0]


async def test_a_limit_change_takes_effect_on_the_next_send(autojump_clock: MockClock, nursery: trio.Nursery) -> None:
    receiver = await ScriptedReceiver().start(nursery)
    async with world() as w:
        hook = await w.hook(receiver.url(), rate_limit=SendRate(per_second=1.0, burst=1))
        start = trio.current_time()
        await w.publish(*(rfi(n) for n in range(1, 9)))
        await trio.sleep(2.5)  # sent at 0, 1 and 2; the next would go at 3
        await w.hooks.update_hook(hook.name, HookInput(rate_limit=SendRate(10.0, 1)), ["rate_limit"])
        await trio.sleep(1.0)  # five more, 0.1 s apart, from the change on
        await w.hooks.update_hook(hook.name, HookInput(rate_limit=SendRate(0.5, 1)), ["rate_limit"])
        await w.settle(hook, 8)
        assert _times(receiver, start) == [0.0, 1.0, 2.0, 2.5, 2.6, 2.7, 2.8, 2.9]
        [last] = receiver.requests[-1:]
        assert last.time - start < 3.5 + 2.0 + 1e-6


async def test_removing_the_limit_releases_the_waiting_at_once(
    autojump_clock: MockClock, nursery: trio.Nursery
) -> None:
    receiver = await ScriptedReceiver().start(nursery)
    async with world() as w:
        hook = await w.hook(receiver.url(), rate_limit=SendRate(per_second=1 / 60, burst=1))  # 1 a minute
        start = trio.current_time()
        await w.publish(*(rfi(n) for n in range(1, 4)))
        await trio.sleep(10)
        await w.hooks.update_hook(hook.name, HookInput(rate_limit=None), ["rate_limit"])
        await w.settle(hook, 3)
        assert _times(receiver, start) == [0.0, 10.0, 10.0]


BREAKER = EngineConfig(poll=None, breaker=BreakerConfig(consecutive=3, deactivate_after=None))
POLICY = RetryPolicyInput(initial_backoff=timedelta(seconds=1), max_backoff=timedelta(seconds=60))


async def test_an_open_circuit_sends_one_probe_at_a_time_then_full_speed(
    autojump_clock: MockClock, nursery: trio.Nursery
) -> None:
    start = trio.current_time()

    def down_until_ten(request: Received) -> Reply:
        return Reply(503) if request.time - start < 10 else Reply(200)

    failing = await ScriptedReceiver(default=down_until_ten).start(nursery)
    healthy = await ScriptedReceiver().start(nursery)
    told = await ScriptedReceiver().start(nursery)
    async with world(BREAKER) as w:
        circuits = (("Webhook Hooks", "circuit_opened"), ("Webhook Hooks", "circuit_closed"))
        admins = await w.hook(told.url(), parent="companies/8", triggers=circuits)
        hook = await w.hook(failing.url(), policy=POLICY)
        other = await w.hook(healthy.url(), triggers=(("RFIs", "create"),), policy=POLICY)
        await w.publish(*(rfi(n) for n in range(1, 6)))
        for at in (2.0, 4.0, 8.0, 12.0):  # the healthy hook's events, during the outage and after
            await trio.sleep_until(start + at)
            await w.publish(rfi(100 + int(at), event_type="create"))
            if at == 4.0:  # the probe of 3 s failed: the next goes at 7 s
                overview = await w.history.overview(hook.name)
                assert overview.circuit_open_time == ORIGIN
                assert overview.next_probe_time == ORIGIN + timedelta(seconds=7)
                assert w.engine.throttle.breakers.open_count() == 1  # the metric's source
        done = await w.settle(hook, 5)
        await w.settle(other, 4)
        # Five at once, the third failure opens the circuit; then one probe at a time on the
        # backoff schedule (1, 2, 4, 8 s apart); the probe at 15 succeeds, the other four follow.
        assert _times(failing, start) == [0.0] * 5 + [1.0, 3.0, 7.0, 15.0] + [15.0] * 4
        assert {d.status for d in done} == {DeliveryStatus.DELIVERED}
        assert _times(healthy, start) == [2.0, 4.0, 8.0, 12.0]  # never slowed
        assert not w.engine.throttle.breakers.is_open(hook.name)
        assert w.engine.throttle.breakers.open_count() == 0
        await w.settle(admins, 2)  # told when it opened (at 0) and when it closed (at 15)
        assert _times(told, start) == [0.0, 15.0]
        assert [json.loads(r.body)["reason"] for r in told.requests] == ["circuit_opened", "circuit_closed"]


def _unavailable(start: float, *, until: float, retry_after: str) -> Callable[[Received], Reply]:
    """An endpoint answering 503 with ``Retry-After`` until ``until`` seconds after ``start``, then 200."""

    def reply(request: Received) -> Reply:
        return Reply(503, headers=(("Retry-After", retry_after),)) if request.time - start < until else Reply(200)

    return reply


async def test_probes_honour_the_endpoints_retry_after(autojump_clock: MockClock, nursery: trio.Nursery) -> None:
    start = trio.current_time()
    failing = await ScriptedReceiver(default=_unavailable(start, until=40, retry_after="10")).start(nursery)
    async with world(BREAKER) as w:
        hook = await w.hook(failing.url(), policy=POLICY)
        await w.publish(*(rfi(n) for n in range(1, 6)))
        await trio.sleep_until(start + 15)
        overview = await w.history.overview(hook.name)
        assert overview.next_probe_time == ORIGIN + timedelta(seconds=20)  # 10 + Retry-After, not 10 + 2
        done = await w.settle(hook, 5)
        # Five at once (the third failure opens the circuit); each probe then waits the 10 s the
        # endpoint asks for, longer than the backoff steps of 1, 2, 4 and 8 s; the probe at 40
        # succeeds and the other four follow at once.
        assert _times(failing, start) == [0.0] * 5 + [10.0, 20.0, 30.0, 40.0] + [40.0] * 4
        assert {d.status for d in done} == {DeliveryStatus.DELIVERED}


async def test_a_retry_after_past_the_cap_waits_only_the_cap(autojump_clock: MockClock, nursery: trio.Nursery) -> None:
    start = trio.current_time()
    failing = await ScriptedReceiver(default=_unavailable(start, until=100, retry_after="86400")).start(nursery)
    async with world(BREAKER) as w:
        hook = await w.hook(failing.url(), policy=POLICY)  # max_backoff 60 s
        await w.publish(*(rfi(n) for n in range(1, 4)))
        await w.settle(hook, 3)
        assert _times(failing, start) == [0.0] * 3 + [60.0, 120.0, 120.0, 120.0]


async def test_a_retry_window_ending_behind_an_open_circuit_discards(
    autojump_clock: MockClock, nursery: trio.Nursery
) -> None:
    failing = await ScriptedReceiver(default=Reply(503)).start(nursery)
    policy = RetryPolicyInput(
        initial_backoff=timedelta(seconds=1), max_backoff=timedelta(seconds=60), retry_window=timedelta(minutes=1)
    )
    async with world(BREAKER) as w:
        hook = await w.hook(failing.url(), policy=policy)
        start = trio.current_time()
        await w.publish(*(rfi(n) for n in range(1, 5)))
        done = await w.settle(hook, 4)
        assert {d.status for d in done} == {DeliveryStatus.DISCARDED}
        # Four at once, then probes at 1, 3, 7, 15, 31; at 60 every window is over: the probe
        # of 60 s (capped) never comes, and nothing else was sent in between.
        assert _times(failing, start) == [0.0] * 4 + [1.0, 3.0, 7.0, 15.0, 31.0]
        assert all(round((d.update_time - ORIGIN).total_seconds(), 6) <= 60.0 + 1e-6 for d in done)


DEACTIVATING = EngineConfig(poll=None, breaker=BreakerConfig(consecutive=3, deactivate_after=timedelta(hours=2)))
SLOW_POLICY = RetryPolicyInput(initial_backoff=timedelta(seconds=1), max_backoff=timedelta(minutes=50))


async def test_a_hook_failing_for_the_period_is_disabled_at_exactly_the_period(
    autojump_clock: MockClock, nursery: trio.Nursery
) -> None:
    failing = await ScriptedReceiver(default=Reply(503, body=b"down")).start(nursery)
    async with world(DEACTIVATING) as w:
        hook = await w.hook(failing.url(), policy=SLOW_POLICY)
        start = trio.current_time()
        await w.publish(*(rfi(n) for n in range(1, 4)))
        await w.settle(hook, 3, within=3 * 3600)  # discarded when the hook is disabled
        disabled = await w.store.get_hook(hook.name)
        assert disabled.status is HookStatus.DISABLED
        assert disabled.disable_time == ORIGIN + timedelta(hours=2)
        assert disabled.disabled_reason.startswith("disabled by tidings: no successful delivery for 2 hours")
        assert "HTTP 503" in disabled.disabled_reason
        assert round(failing.requests[-1].time - start, 6) == 7200.0  # the last probe, at the period
        done = await w.deliveries(hook)
        assert {d.status for d in done} == {DeliveryStatus.DISCARDED}


async def test_a_restart_does_not_reset_the_deactivation_period(
    autojump_clock: MockClock, nursery: trio.Nursery
) -> None:
    failing = await ScriptedReceiver(default=Reply(503, body=b"down")).start(nursery)
    async with world(DEACTIVATING) as w:
        hook = await w.hook(failing.url(), policy=SLOW_POLICY)
        start = trio.current_time()
        await w.publish(*(rfi(n) for n in range(1, 4)))
        await trio.sleep(3600)  # failing since 0, probes at 1, 3, 7, … 2047; the next is due at 4095
        await w.engine.drain(0)  # the process stops: its breaker, and what it knew, are gone
        assert len(failing.requests) == 3 + 11
        async with second_node(w, DEACTIVATING) as restarted:
            await w.settle(hook, 3, within=3 * 3600)
            assert not restarted.throttle.breakers.is_open(hook.name)  # dropped with the hook
        disabled = await w.store.get_hook(hook.name)
        assert disabled.status is HookStatus.DISABLED
        # Counted from the first failure before the restart, not from 4095 s.
        assert disabled.disable_time == ORIGIN + timedelta(hours=2)
        assert f"failing since {ORIGIN.isoformat()}" in disabled.disabled_reason
        # After the restart: all three at 4095 (a closed circuit: this node knew nothing), which
        # opens it again; the earliest retry due (4097) is its first probe, then probes doubling
        # from 2 s, the last one at exactly the period.
        after = [round(r.time - start, 6) for r in failing.requests[14:]]
        probes = [4097.0, 4099.0, 4103.0, 4111.0, 4127.0, 4159.0, 4223.0, 4351.0, 4607.0, 5119.0, 6143.0, 7200.0]
        assert after == [4095.0] * 3 + probes
        # Disabling forgets the failing run: enabled again, the hook has a whole period afresh.
        again = ORIGIN + timedelta(hours=3)
        assert await w.store.mark_failing(hook.name, again, last_success=None) == again


@asynccontextmanager
async def second_node(w: World, config: EngineConfig) -> AsyncIterator[DeliveryEngine]:
    """Another engine (another node) on the world's store, as a second process sharing it."""
    async with Sender(LOOPBACK, USER_AGENT) as sender, trio.open_nursery() as nursery:
        engine = DeliveryEngine(
            w.store, plugins().payload_formats, sender, w.clock, config, lambda: 0.0, render_limiter=cushioned_limiter
        )
        await nursery.start(engine.run)
        yield engine
        await engine.drain(0)


async def test_two_nodes_share_one_rate_limit(autojump_clock: MockClock, nursery: trio.Nursery) -> None:
    receiver = await ScriptedReceiver().start(nursery)
    # The second node learns of due work by polling (as a node missing a notice would), the
    # first by its own wake-ups: they claim at different moments, from one bucket.
    async with world() as w, second_node(w, EngineConfig(poll=0.01)) as other:
        hook = await w.hook(receiver.url(), rate_limit=SendRate(per_second=4.0, burst=1), max_concurrency=1)
        start = trio.current_time()
        await w.publish(*(rfi(n) for n in range(1, 9)))
        await w.settle(hook, 8)
        assert _times(receiver, start) == [0.0, 0.25, 0.5, 0.75, 1.0, 1.25, 1.5, 1.75]
        # Both nodes claimed and were held back by the one bucket: the limit is the hook's, not a node's.
        # Both nodes claimed and were held back by the one bucket: the limit is the hook's, not a node's.
        assert hook.name in w.engine.throttle.limited
        assert hook.name in other.throttle.limited


async def test_breakers_are_per_node(autojump_clock: MockClock, nursery: trio.Nursery) -> None:
    failing = await ScriptedReceiver(default=Reply(503)).start(nursery)
    async with world(BREAKER) as w, second_node(w, BREAKER) as other:
        hook = await w.hook(failing.url(), policy=POLICY)
        await w.publish(*(rfi(n) for n in range(1, 4)))  # only the first node is woken: it claims all three
        await trio.sleep(0.5)
        assert w.engine.throttle.breakers.is_open(hook.name)
        assert not other.throttle.breakers.is_open(hook.name)  # it has seen no attempt of its own
        overview = await w.history.overview(hook.name)
        assert overview.circuit_open_time == ORIGIN


async def test_gone_disables_with_the_reason_and_time(autojump_clock: MockClock, nursery: trio.Nursery) -> None:
    receiver = await ScriptedReceiver(default=Reply(410)).start(nursery)
    async with world() as w:
        hook = await w.hook(receiver.url(), max_concurrency=1)
        await trio.sleep(7)
        await w.publish(rfi(1))
        await w.settle(hook, 1)
        disabled = await w.hooks.get_hook(hook.name)
        assert (disabled.status, disabled.disable_time) == (HookStatus.DISABLED, ORIGIN + timedelta(seconds=7))
        assert "410" in disabled.disabled_reason
        overview = await w.history.overview(hook.name)
        assert overview.hook.disabled_reason == disabled.disabled_reason
        # An admin's decision replaces tidings': re-activated, the hook no longer says why it was off.
        again = await w.hooks.update_hook(hook.name, HookInput(status=HookStatus.ACTIVE), ["status"])
        assert (again.status, again.disabled_reason, again.disable_time) == (HookStatus.ACTIVE, "", None)


OPS = "companies/8"


async def test_operational_events_reach_a_subscribed_hook_in_its_format(
    autojump_clock: MockClock, nursery: trio.Nursery
) -> None:
    gone = await ScriptedReceiver(default=Reply(410)).start(nursery)
    slack = await ScriptedReceiver().start(nursery)
    async with world() as w:
        admins = await w.hook(
            slack.url("/services/T0/B0/x"),
            parent=OPS,
            payload_format="slack.v1",
            triggers=(("Webhook Hooks", "disabled"), ("Webhook Deliveries", "discarded")),
        )
        hook = await w.hook(gone.url())
        await trio.sleep(3)
        await w.publish(rfi())
        await w.settle(hook, 1)
        await w.settle(admins, 1)
        [told] = slack.requests
        assert round(told.time - w.t0, 6) == 3.0  # at once
        message = json.loads(told.body)
        number = operational.hook_number(hook.name)
        assert message["text"].startswith(f"Webhook Hooks {number} had a disabled event in company 8")
        blocks = json.dumps(message["blocks"])
        assert f"related: {hook.name} {number}" in blocks  # which hook, by its name
        assert "via application tidings" in blocks


async def test_a_discard_is_told_but_never_the_discard_of_a_telling(
    autojump_clock: MockClock, nursery: trio.Nursery
) -> None:
    down = await ScriptedReceiver(default=Reply(503)).start(nursery)
    policy = RetryPolicyInput(initial_backoff=timedelta(seconds=1), retry_window=timedelta(minutes=1))
    async with world(EngineConfig(poll=None, breaker=BreakerConfig(consecutive=0, deactivate_after=None))) as w:
        # The admins' own endpoint is down too: what it is told is discarded in turn, and that
        # must not be told again (to itself), or one discard would feed on itself forever.
        admins = await w.hook(
            down.url("/ops"), parent=OPS, triggers=(("Webhook Deliveries", "discarded"),), policy=policy
        )
        hook = await w.hook(down.url("/rfis"), policy=policy)
        await w.publish(rfi())
        [discarded] = await w.settle(hook, 1)
        assert discarded.status is DeliveryStatus.DISCARDED
        [telling] = await w.settle(admins, 1)
        assert telling.status is DeliveryStatus.DISCARDED
        event = await w.store.get_event(telling.event_id)
        assert (event.resource_name, event.event_type, event.company_id) == ("Webhook Deliveries", "discarded", 8)
        assert [r.name for r in event.related_resources] == [discarded.name]
        await trio.sleep(3600)
        assert len(await w.deliveries(admins)) == 1  # told once; its own discard told nobody
        assert w.engine.announcer.published == 1
