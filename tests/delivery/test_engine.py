"""The delivery engine end to end in virtual time: real HTTP on loopback, exact schedules."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import timedelta

import pytest
import trio
from trio.testing import MockClock

from tests.delivery.world import PROJECT, rfi, world
from tests.receivers import CLOSE, HANG, Received, Reply, ScriptedReceiver, refused_port
from tidings_server.delivery.engine import EngineConfig
from tidings_server.domain.hooks import HookInput, RetryPolicyInput
from tidings_server.domain.model import DeliveryStatus, HookStatus, Ordering
from tidings_server.domain.ports import AttemptRecord

AUTH = "Bearer 7f3a-secret-4e94b"
DEFAULT_SCHEDULE = [0, 1, 3, 7, 15, 31, 63, 127, 255, 511, 1023, 2047, 4095]
DEFAULT_SCHEDULE += [4095 + 3600 * k for k in range(1, 11)]  # 7695 … 40095; 43695 would pass 12 h


async def test_delivers_the_rendered_event_with_its_headers(autojump_clock: MockClock, nursery: trio.Nursery) -> None:
    receiver = await nursery.start(ScriptedReceiver(default=Reply(200, body=b"thanks")).run)
    async with world() as w:
        hook = await w.hook(receiver.url("/in"), authorization=AUTH)
        [published] = await w.publish(rfi())
        assert published.deliveries == 1
        [delivery] = await w.settle(hook)
        [request] = receiver.requests
        assert (request.method, request.target) == ("POST", "/in")
        assert request.header("content-type") == "application/json"
        assert request.header("authorization") == AUTH
        assert request.header("tidings-delivery-id") == published.event_id
        assert (request.header("user-agent") or "").startswith("tidings/")
        body = json.loads(request.body)
        assert body["id"] == published.event_id
        assert (body["reason"], body["resource_type"], body["resource_id"], body["project_id"]) == (
            "update",
            "RFIs",
            "54321",
            "6778",
        )
        assert delivery.status is DeliveryStatus.DELIVERED
        [attempt] = await w.attempts(delivery)
        assert attempt.response_status == 200
        assert attempt.response_body == b"thanks"
        sent = dict(attempt.request_headers)
        assert sent["Authorization"] == "••••••e94b"
        assert AUTH not in repr(attempt)


async def test_default_schedule_runs_twelve_hours_then_discards(
    autojump_clock: MockClock, nursery: trio.Nursery
) -> None:
    receiver = await nursery.start(ScriptedReceiver(default=Reply(500)).run)
    async with world() as w:
        hook = await w.hook(receiver.url())
        await w.publish(rfi())
        [delivery] = await w.settle(hook)
        times = [r.time - receiver.requests[0].time for r in receiver.requests]
        assert times == DEFAULT_SCHEDULE
        assert delivery.status is DeliveryStatus.DISCARDED
        assert delivery.attempt_count == len(DEFAULT_SCHEDULE)
        assert "the retry window is over" in delivery.last_error
        attempts = await w.attempts(delivery)
        assert [a.number for a in attempts] == list(range(1, len(DEFAULT_SCHEDULE) + 1))
        assert [(a.start_time - attempts[0].start_time).total_seconds() for a in attempts] == DEFAULT_SCHEDULE


async def test_retrying_then_delivered_and_retry_after_is_honoured(
    autojump_clock: MockClock, nursery: trio.Nursery
) -> None:
    script = ScriptedReceiver(Reply(503), Reply(429, headers=(("Retry-After", "30"),)), default=Reply(200))
    receiver = await nursery.start(script.run)
    async with world() as w:
        hook = await w.hook(receiver.url())
        await w.publish(rfi())
        await trio.sleep(0.5)  # the first attempt ran at 0; the next is due at 1
        [waiting] = await w.deliveries(hook)
        assert (waiting.status, waiting.attempt_count) == (DeliveryStatus.RETRYING, 1)
        [delivery] = await w.settle(hook)
        times = [r.time - receiver.requests[0].time for r in receiver.requests]
        assert times == [0, 1, 31]  # 1 s backoff, then Retry-After 30 s beats the 2 s backoff
        assert delivery.status is DeliveryStatus.DELIVERED


async def test_per_hook_policy_overrides(autojump_clock: MockClock, nursery: trio.Nursery) -> None:
    receiver = await nursery.start(ScriptedReceiver(default=Reply(503)).run)
    other = await nursery.start(ScriptedReceiver(default=Reply(500)).run)
    policy = RetryPolicyInput(
        initial_backoff=timedelta(seconds=10),
        max_backoff=timedelta(seconds=40),
        retry_window=timedelta(minutes=2),
        retryable_statuses=(503,),
    )
    async with world() as w:
        hook = await w.hook(receiver.url(), policy=policy)
        strict = await w.hook(other.url(), policy=policy)
        await w.publish(rfi())
        [delivery] = await w.settle(hook)
        assert [r.time - receiver.requests[0].time for r in receiver.requests] == [0, 10, 30, 70, 110]
        assert delivery.status is DeliveryStatus.DISCARDED
        [failed] = await w.settle(strict)
        assert failed.status is DeliveryStatus.FAILED
        assert len(other.requests) == 1


@pytest.mark.parametrize(
    ("action", "status", "error"),
    [
        (Reply(404), DeliveryStatus.FAILED, "HTTP 404"),
        (Reply(301, headers=(("Location", "https://elsewhere.example.com/"),)), DeliveryStatus.FAILED, "redirect"),
        (Reply(400), DeliveryStatus.FAILED, "HTTP 400"),
    ],
)
async def test_permanent_failures(
    autojump_clock: MockClock, nursery: trio.Nursery, action: Reply, status: DeliveryStatus, error: str
) -> None:
    receiver = await nursery.start(ScriptedReceiver(default=action).run)
    async with world() as w:
        hook = await w.hook(receiver.url())
        await w.publish(rfi())
        [delivery] = await w.settle(hook)
        assert delivery.status is status
        assert error in delivery.last_error
        assert len(receiver.requests) == 1


async def test_gone_fails_disables_the_hook_and_discards_the_rest(
    autojump_clock: MockClock, nursery: trio.Nursery
) -> None:
    receiver = await nursery.start(ScriptedReceiver(default=Reply(410)).run)
    async with world(EngineConfig(max_in_flight=1)) as w:
        hook = await w.hook(receiver.url(), max_concurrency=1)
        await w.publish(rfi(1), rfi(2), rfi(3))
        deliveries = await w.settle(hook, 3)
        assert sorted(d.status.value for d in deliveries) == ["discarded", "discarded", "failed"]
        assert (await w.hooks.get_hook(hook.name)).status is HookStatus.DISABLED
        assert len(receiver.requests) == 1


async def test_timeout_connection_refused_and_dropped_connections_retry(
    autojump_clock: MockClock, nursery: trio.Nursery
) -> None:
    hanging = await nursery.start(ScriptedReceiver(HANG, default=Reply(200)).run)
    dropping = await nursery.start(ScriptedReceiver(CLOSE, default=Reply(200)).run)
    async with world() as w:
        slow = await w.hook(hanging.url())
        rude = await w.hook(dropping.url())
        with refused_port() as port:
            nobody = await w.hook(f"http://127.0.0.1:{port}/in")
            await w.publish(rfi())
            [timed_out] = await w.settle(slow)
            attempts = await w.attempts(timed_out)
            assert attempts[0].error.startswith("no response within 5")
            assert [(a.end_time - a.start_time).total_seconds() for a in attempts] == [5.0, 0.0]
            assert [r.time - hanging.requests[0].time for r in hanging.requests] == [0, 6]
            [dropped] = await w.settle(rude)
            assert [a.response_status for a in await w.attempts(dropped)] == [None, 200]
            assert w.elapsed() < 60
            refused = (await w.deliveries(nobody))[0]
            assert refused.status is DeliveryStatus.RETRYING
            assert "refused" in refused.last_error


async def test_huge_response_bodies_are_cut_at_the_bound(autojump_clock: MockClock, nursery: trio.Nursery) -> None:
    receiver = await nursery.start(ScriptedReceiver(default=Reply(200, filler=10_000_000)).run)
    async with world() as w:
        hook = await w.hook(receiver.url())
        await w.publish(rfi())
        [delivery] = await w.settle(hook)
        [attempt] = await w.attempts(delivery)
        assert delivery.status is DeliveryStatus.DELIVERED
        assert len(attempt.response_body) == 8192


async def test_per_resource_order_holds_while_attempts_fail(autojump_clock: MockClock, nursery: trio.Nursery) -> None:
    failed_once: set[int] = set()

    def fail_first_try_of_each_event(request: Received) -> Reply:
        serial = json.loads(request.body)["id"]
        if serial not in failed_once:
            failed_once.add(serial)
            return Reply(500)
        return Reply(200)

    receiver = await nursery.start(ScriptedReceiver(default=fail_first_try_of_each_event).run)
    async with world() as w:
        hook = await w.hook(receiver.url(), ordering=Ordering.PER_RESOURCE, payload_format="procore.v2")
        a = [rfi(100, idempotency_key=f"a{i}") for i in range(4)]
        b = rfi(200)
        published = await w.publish(a[0], a[1], b, a[2], a[3])
        await w.settle(hook, 5)
        delivered = [json.loads(r.body) for r in receiver.requests]
        order_a = [e["ulid"] for e in delivered if e["resource_id"] == 100]
        ids_a = [published[i].event_id for i in (0, 1, 3, 4)]
        # Each A event is tried twice (fail, then success) and never before the previous A is done.
        assert order_a == [x for x in ids_a for _ in range(2)]
        # B is not held back by A: both of its tries happen before A's second event is first tried.
        b_times = [r.time for r, e in zip(receiver.requests, delivered, strict=True) if e["resource_id"] == 200]
        a1_first = min(r.time for r, e in zip(receiver.requests, delivered, strict=True) if e["ulid"] == ids_a[1])
        assert max(b_times) <= a1_first


async def test_a_finished_attempt_frees_its_slot_before_its_record_is_written(
    autojump_clock: MockClock, nursery: trio.Nursery
) -> None:
    receiver = await nursery.start(ScriptedReceiver(default=Reply(200, delay=1.0)).run)
    async with world() as w:
        hook = await w.hook(receiver.url(), max_concurrency=1)
        record, written = w.store.record_attempts, trio.Event()

        async def slow_record(records: Sequence[AttemptRecord]) -> None:
            await written.wait()
            await record(records)

        w.store.record_attempts = slow_record  # type: ignore[method-assign]
        try:
            await w.publish(rfi(1), rfi(2), rfi(3))
            await trio.sleep(5)
            # All three went out one at a time (each answered in 1 s) while no record could be
            # written: a slot is taken again when its request ends, though its lease is held.
            assert [json.loads(r.body)["resource_id"] for r in receiver.requests] == ["1", "2", "3"]
            assert [r.time - receiver.requests[0].time for r in receiver.requests] == [0, 1, 2]
            assert [d.status for d in await w.deliveries(hook)] == [DeliveryStatus.QUEUED] * 3
        finally:
            written.set()  # a record under way is never cancelled: let it finish either way
        assert {d.status for d in await w.settle(hook, 3)} == {DeliveryStatus.DELIVERED}
        assert len(receiver.requests) == 3


async def test_a_hanging_endpoint_does_not_delay_a_healthy_hook(
    autojump_clock: MockClock, nursery: trio.Nursery
) -> None:
    stuck = await nursery.start(ScriptedReceiver(default=HANG).run)
    healthy = await nursery.start(ScriptedReceiver(default=Reply(200)).run)
    async with world(EngineConfig(max_in_flight=16)) as w:
        slow = await w.hook(stuck.url(), max_concurrency=4)
        fast = await w.hook(healthy.url())
        await w.publish(*[rfi(i) for i in range(1, 41)])
        await w.settle(fast, 40)
        assert w.elapsed() < 0.5  # all 40 delivered while the stuck hook's first attempts still hang
        assert len(stuck.requests) == 4  # its own concurrency, no more
        assert all(d.status is DeliveryStatus.QUEUED for d in await w.deliveries(slow))


async def test_paused_hooks_hold_deliveries_until_resumed(autojump_clock: MockClock, nursery: trio.Nursery) -> None:
    receiver = await nursery.start(ScriptedReceiver(default=Reply(200)).run)
    async with world() as w:
        hook = await w.hook(receiver.url())
        await w.hooks.update_hook(hook.name, HookInput(status=HookStatus.PAUSED), ["status"])
        await w.publish(rfi())
        await trio.sleep(3600)
        assert receiver.requests == []
        assert [d.status for d in await w.deliveries(hook)] == [DeliveryStatus.QUEUED]
        await w.hooks.update_hook(hook.name, HookInput(status=HookStatus.ACTIVE), ["status"])
        resumed = trio.current_time()
        [delivery] = await w.settle(hook)
        assert delivery.status is DeliveryStatus.DELIVERED
        assert receiver.requests[0].time == resumed


async def test_disabling_or_deleting_a_hook_discards_its_pending_deliveries(
    autojump_clock: MockClock, nursery: trio.Nursery
) -> None:
    receiver = await nursery.start(ScriptedReceiver(default=Reply(500)).run)
    async with world() as w:
        disabled = await w.hook(receiver.url())
        deleted = await w.hook(receiver.url())
        await w.publish(rfi())
        await trio.sleep(10)
        await w.hooks.update_hook(disabled.name, HookInput(status=HookStatus.DISABLED), ["status"])
        await w.hooks.delete_hook(deleted.name)
        for hook in (disabled, deleted):
            [delivery] = await w.deliveries(hook)
            assert delivery.status is DeliveryStatus.DISCARDED
        requests = len(receiver.requests)
        await trio.sleep(3600)
        assert len(receiver.requests) == requests


async def test_company_hooks_get_company_events_only(autojump_clock: MockClock, nursery: trio.Nursery) -> None:
    receiver = await nursery.start(ScriptedReceiver(default=Reply(200)).run)
    async with world() as w:
        company = await w.hook(receiver.url(), parent="companies/8", triggers=(("Projects", "create"),))
        project = await w.hook(receiver.url(), parent=PROJECT, triggers=(("RFIs", "update"),))
        await w.publish(
            rfi(),
            rfi(event_type="create"),  # no trigger
            rfi(project_id=9999),  # another project
        )
        from tidings_server.domain.events import EventDraft

        await w.publish(EventDraft(8, 0, "Projects", 6778, "create", 5447))
        [c] = await w.settle(company)
        [p] = await w.settle(project)
        assert (c.status, p.status) == (DeliveryStatus.DELIVERED, DeliveryStatus.DELIVERED)
        assert len(receiver.requests) == 2


async def test_retention_purges_old_history(autojump_clock: MockClock, nursery: trio.Nursery) -> None:
    receiver = await nursery.start(ScriptedReceiver(default=Reply(200)).run)
    # Fewer wake-ups over 28 virtual days: purges and heartbeats hourly, no polls.
    config = EngineConfig(retention=timedelta(days=28), purge_every=3600, lease=timedelta(hours=3), poll=None)
    async with world(config) as w:
        hook = await w.hook(receiver.url())
        await w.publish(rfi(1))
        await w.settle(hook)
        await trio.sleep(27 * 86400)
        await w.publish(rfi(2))
        await w.settle(hook, 2)
        await trio.sleep(86400 + 3600)
        remaining = await w.deliveries(hook)
        assert len(remaining) == 1
        assert remaining[0].create_time - w.clock.now() > -timedelta(days=28)


async def test_drain_lets_short_attempts_finish_and_releases_the_rest(
    autojump_clock: MockClock, nursery: trio.Nursery
) -> None:
    quick = await nursery.start(ScriptedReceiver(default=Reply(200, delay=2)).run)
    stuck = await nursery.start(ScriptedReceiver(default=HANG).run)
    async with world() as w:
        finishing = await w.hook(quick.url())
        hanging = await w.hook(stuck.url(), policy=RetryPolicyInput(timeout=timedelta(seconds=60)))
        await w.publish(rfi())
        await trio.sleep(1)
        assert w.engine.in_flight == 2
        await w.engine.drain(5)
        [done] = await w.deliveries(finishing)
        [pending] = await w.deliveries(hanging)
        assert done.status is DeliveryStatus.DELIVERED
        assert pending.status is DeliveryStatus.QUEUED
        claims = await w.store.claim_due(
            w.clock.now(), limit=10, lease_until=w.clock.now() + timedelta(seconds=30), owner="another-node"
        )
        assert [c.delivery.name for c in claims] == [pending.name]  # its lease was released


async def test_a_hostile_retry_after_is_capped_not_fatal(autojump_clock: MockClock, nursery: trio.Nursery) -> None:
    script = ScriptedReceiver(Reply(503, headers=(("Retry-After", "100000000000000"),)), default=Reply(200))
    receiver = await nursery.start(script.run)
    async with world() as w:
        hook = await w.hook(receiver.url())
        await w.publish(rfi())
        [delivery] = await w.settle(hook)
        assert delivery.status is DeliveryStatus.DELIVERED
        assert [r.time - receiver.requests[0].time for r in receiver.requests] == [0, 3600]  # the 1 h cap
