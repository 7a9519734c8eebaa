"""The Store contract for endpoint protection: a hook's rate limit and protection fields, its
token bucket shared by every process, deliveries postponed without an attempt, and since when a
hook fails (kept for its deactivation across restarts)."""

from __future__ import annotations

import dataclasses
from datetime import timedelta

import trio

from tidings_server.domain.model import Attempt, DeliveryStatus, HookStatus, SendRate
from tidings_server.domain.ports import AttemptRecord, Store
from tidings_server.domain.sendrate import SendGrant
from tidings_server.testing.stores.samples import T0, event_id, make_event, make_hook, make_trigger

HOOK = "companies/1/projects/2/hooks/h"
OTHER = "companies/1/projects/2/hooks/other"
NODE = "node-a"
LEASE = T0 + timedelta(minutes=2)
RATE = SendRate(per_second=2.0, burst=3)


def _seconds(s: float) -> timedelta:
    return timedelta(seconds=s)


async def _hook(store: Store, name: str = HOOK) -> None:
    await store.create_hook(make_hook(name))
    await store.add_triggers(name, [make_trigger(name)])


class ProtectionStoreContract:
    """Inherit in a ``Test…`` class that provides a ``store`` fixture."""

    async def test_protection_fields_round_trip(self, store: Store) -> None:
        hook = make_hook(HOOK, rate_limit=SendRate(1000 / 60, 50))
        await store.create_hook(hook)
        assert await store.get_hook(HOOK) == hook
        disabled = dataclasses.replace(
            hook,
            rate_limit=None,
            status=HookStatus.DISABLED,
            disabled_reason="no success for 5 days (since 2024-05-12 12:30:45Z): HTTP 503",
            disable_time=T0 + _seconds(1.000001),
        )
        assert await store.update_hook(HOOK, lambda h: disabled) == disabled
        assert await store.get_hook(HOOK) == disabled
        [claimable] = await store.list_all_hooks(after=None, limit=10)
        assert claimable == disabled

    async def test_a_rate_limited_hook_claims_its_limit(self, store: Store) -> None:
        await store.create_hook(make_hook(HOOK, rate_limit=RATE))
        await store.add_triggers(HOOK, [make_trigger(HOOK)])
        await store.publish_events([make_event(1)], T0)
        [claim] = await store.claim_due(T0, limit=10, lease_until=LEASE, owner=NODE)
        assert claim.hook.rate_limit == RATE

    async def test_a_new_bucket_is_full_then_refills_at_the_rate(self, store: Store) -> None:
        await _hook(store)
        assert await store.take_sends(HOOK, RATE, T0, 5) == SendGrant(3, T0 + _seconds(0.5))
        assert await store.take_sends(HOOK, RATE, T0 + _seconds(0.25), 1) == SendGrant(0, T0 + _seconds(0.5))
        assert await store.take_sends(HOOK, RATE, T0 + _seconds(0.5), 2) == SendGrant(1, T0 + _seconds(1))
        # Idle for long: refilled to the burst, never beyond it.
        assert await store.take_sends(HOOK, RATE, T0 + _seconds(60), 9) == SendGrant(3, T0 + _seconds(60.5))

    async def test_buckets_are_per_hook_and_remember_being_hit(self, store: Store) -> None:
        await _hook(store)
        await _hook(store, OTHER)
        assert (await store.hook_stats(HOOK, latency_sample=0)).rate_limited_time is None
        assert (await store.take_sends(HOOK, RATE, T0, 3)).granted == 3
        assert (await store.hook_stats(HOOK, latency_sample=0)).rate_limited_time is None
        assert (await store.take_sends(OTHER, RATE, T0, 3)).granted == 3
        assert (await store.take_sends(HOOK, RATE, T0 + _seconds(0.1), 1)).granted == 0
        assert (await store.hook_stats(HOOK, latency_sample=0)).rate_limited_time == T0 + _seconds(0.1)
        assert (await store.hook_stats(OTHER, latency_sample=0)).rate_limited_time is None

    async def test_a_lower_burst_applies_at_the_next_take(self, store: Store) -> None:
        await _hook(store)
        assert (await store.take_sends(HOOK, SendRate(10.0, 10), T0, 1)).granted == 1  # 9 left
        assert await store.take_sends(HOOK, SendRate(1.0, 2), T0, 5) == SendGrant(2, T0 + _seconds(1))

    async def test_concurrent_takes_never_grant_more_than_the_bucket(self, store: Store) -> None:
        await _hook(store)
        granted: list[int] = []

        async def take() -> None:
            granted.append((await store.take_sends(HOOK, SendRate(1.0, 5), T0, 2)).granted)

        async with trio.open_nursery() as nursery:
            for _ in range(6):
                nursery.start_soon(take)
        assert sum(granted) == 5

    async def test_postponed_deliveries_wait_without_an_attempt(self, store: Store) -> None:
        await _hook(store)
        await store.publish_events([make_event(1), make_event(2)], T0)
        names = [f"{HOOK}/deliveries/{event_id(n)}" for n in (1, 2)]
        claims = await store.claim_due(T0, limit=10, lease_until=LEASE, owner=NODE)
        assert [c.delivery.name for c in claims] == names
        until = T0 + _seconds(0.5)
        await store.postpone([names[1], f"{HOOK}/deliveries/{event_id(9)}"], until)
        later = await store.get_delivery(names[1])
        assert (later.status, later.next_attempt_time, later.attempt_count) == (DeliveryStatus.QUEUED, until, 0)
        assert later.first_attempt_time is None
        assert await store.claim_due(until - timedelta(microseconds=1), limit=10, lease_until=LEASE, owner=NODE) == []
        assert await store.next_due_time(after=T0) == until
        [again] = await store.claim_due(until, limit=10, lease_until=LEASE, owner=NODE)
        assert (again.delivery.name, again.interrupted) == (names[1], 0)  # a postponement is no interruption

    async def test_hasten_makes_the_hooks_later_deliveries_due_now(self, store: Store) -> None:
        await _hook(store)
        await _hook(store, OTHER)
        await store.publish_events([make_event(1), make_event(2)], T0)
        names = [f"{HOOK}/deliveries/{event_id(n)}" for n in (1, 2)]
        other = f"{OTHER}/deliveries/{event_id(1)}"
        await store.claim_due(T0, limit=10, lease_until=LEASE, owner=NODE)
        later = T0 + _seconds(3600)
        await store.postpone([*names, other], later)
        now = T0 + _seconds(10)
        assert await store.hasten(HOOK, now) == 2
        assert [(await store.get_delivery(n)).next_attempt_time for n in names] == [now, now]
        assert (await store.get_delivery(other)).next_attempt_time == later
        assert await store.hasten(HOOK, now) == 0
        claimed = await store.claim_due(now, limit=10, lease_until=now + _seconds(60), owner=NODE)
        assert [c.delivery.name for c in claimed] == names

    async def test_the_earliest_failing_since_holds_until_a_success(self, store: Store) -> None:
        await _hook(store)
        await _hook(store, OTHER)
        later, latest = T0 + _seconds(30), T0 + _seconds(90)
        assert await store.mark_failing(HOOK, later, last_success=None) == later
        assert await store.mark_failing(HOOK, T0, last_success=None) == T0  # an earlier report wins
        assert await store.mark_failing(HOOK, latest, last_success=None) == T0  # a restarted node learns it
        assert await store.mark_failing(OTHER, latest, last_success=None) == latest  # per hook
        # The node reporting had a success after the recorded time: its own run begins later.
        assert await store.mark_failing(HOOK, latest, last_success=later) == latest
        assert await store.mark_failing(HOOK, latest + _seconds(1), last_success=None) == latest

    async def test_a_success_in_the_hooks_health_ends_the_recorded_run(self, store: Store) -> None:
        await _hook(store)
        await store.publish_events([make_event(1)], T0)
        [claim] = await store.claim_due(T0, limit=1, lease_until=LEASE, owner=NODE)
        assert await store.mark_failing(HOOK, T0, last_success=None) == T0
        ok = Attempt(1, T0 + _seconds(1), T0 + _seconds(2), (), 200, (), b"", "")
        await store.record_attempts([AttemptRecord(claim.delivery.name, ok, DeliveryStatus.DELIVERED, None, "")])
        # Another node saw the success, not this one: the store's health says the run ended.
        assert await store.mark_failing(HOOK, T0 + _seconds(5), last_success=None) == T0 + _seconds(5)

    async def test_cleared_or_deleted_a_hook_fails_afresh(self, store: Store) -> None:
        await _hook(store)
        assert await store.mark_failing(HOOK, T0, last_success=None) == T0
        await store.clear_failing(HOOK)
        await store.clear_failing(OTHER)  # unknown: not an error
        assert await store.mark_failing(HOOK, T0 + _seconds(7), last_success=None) == T0 + _seconds(7)
        await store.delete_hook(HOOK)
        await _hook(store)  # the same name again
        assert await store.mark_failing(HOOK, T0 + _seconds(9), last_success=None) == T0 + _seconds(9)
