"""History in virtual time: the retention window to the second, watch waits and change times
exactly as the engine made them."""

from __future__ import annotations

import json
from datetime import datetime, timedelta

import pytest
import trio
from trio.testing import MockClock

from tests.delivery.world import ORIGIN, PROJECT, rfi, world
from tests.receivers import Reply, ScriptedReceiver
from tidings_server.delivery.engine import EngineConfig
from tidings_server.domain import history
from tidings_server.domain.errors import NotFound, Unavailable
from tidings_server.domain.history import Criteria
from tidings_server.domain.hooks import HookInput
from tidings_server.domain.model import DeliveryStatus, HookStatus

RETENTION = timedelta(days=28)
# Fewer wake-ups over 28 virtual days: purges and heartbeats hourly, no polls.
SLOW_PURGE = EngineConfig(purge_every=3600.0, lease=timedelta(hours=3), poll=None)


async def test_a_delivery_stays_listed_for_exactly_28_days(autojump_clock: MockClock, nursery: trio.Nursery) -> None:
    receiver = await nursery.start(ScriptedReceiver(default=Reply(200)).run)
    async with world(SLOW_PURGE) as w:
        hook = await w.hook(receiver.url())
        [published] = await w.publish(rfi(7))
        await w.settle(hook)
        name = f"{hook.name}/deliveries/{published.event_id}"
        await trio.sleep_until(w.t0 + (RETENTION - timedelta(seconds=1)).total_seconds())
        assert w.clock.now() == ORIGIN + RETENTION - timedelta(seconds=1)
        page = await w.history.list_deliveries(Criteria(hook.name), 50, "")
        assert [d.name for d, _ in page.items] == [name]
        assert (await w.history.get_delivery(name)).delivery.status is DeliveryStatus.DELIVERED
        await trio.sleep_until(w.t0 + (RETENTION + timedelta(seconds=1)).total_seconds())
        assert w.clock.now() == ORIGIN + RETENTION + timedelta(seconds=1)
        assert (await w.history.list_deliveries(Criteria(hook.name), 50, "")).items == []
        assert (await w.history.list_deliveries(Criteria(PROJECT), 50, "")).items == []
        with pytest.raises(NotFound):
            await w.history.get_delivery(name)


async def test_watch_sees_queued_retrying_delivered_at_the_engines_times(
    autojump_clock: MockClock, nursery: trio.Nursery
) -> None:
    receiver = await nursery.start(ScriptedReceiver(Reply(503), Reply(503), default=Reply(200)).run)
    async with world() as w:
        hook = await w.hook(receiver.url())
        cursor = await w.history.watch_start(hook.name, frozenset(), "")
        t0 = trio.current_time()
        await w.publish(rfi(7))
        seen: list[tuple[DeliveryStatus, int, timedelta]] = []
        while len(seen) < 4:
            batch = await w.history.watch_next(cursor, 60.0)
            cursor = batch.cursor
            seen += [(c.delivery.status, c.delivery.attempt_count, c.time - ORIGIN) for c, _ in batch.changes]
            # Each change comes with its delivery's whole event, as published.
            assert all(e is not None and (e.id, e.user_id) == (c.delivery.event_id, 5447) for c, e in batch.changes)
        assert trio.current_time() - t0 == 3.0  # woken by the last change, not by the 60 s poll
        # Backoff 1 s, then 2 s (no jitter in this world): attempts at 0 s, 1 s and 3 s.
        assert seen == [
            (DeliveryStatus.QUEUED, 0, timedelta(0)),
            (DeliveryStatus.RETRYING, 1, timedelta(0)),
            (DeliveryStatus.RETRYING, 2, timedelta(seconds=1)),
            (DeliveryStatus.DELIVERED, 3, timedelta(seconds=3)),
        ]


async def test_a_quiet_watch_returns_empty_after_its_poll_and_ends_at_shutdown(
    autojump_clock: MockClock, nursery: trio.Nursery
) -> None:
    async with world() as w:
        cursor = await w.history.watch_start(PROJECT, frozenset(), "")
        t0 = trio.current_time()
        batch = await w.history.watch_next(cursor, 15.0)
        assert batch.changes == []
        assert trio.current_time() - t0 == 15.0
        pulse = w.history._pulse  # the server closes it when it stops

        async def close_later() -> None:
            await trio.sleep(2)
            pulse.close()

        nursery.start_soon(close_later)
        with pytest.raises(Unavailable):
            await w.history.watch_next(batch.cursor, 15.0)
        assert trio.current_time() - t0 == 17.0


async def test_test_event_uses_the_hooks_first_trigger_and_records_nothing(
    autojump_clock: MockClock, nursery: trio.Nursery
) -> None:
    receiver = await nursery.start(ScriptedReceiver(default=Reply(202, body=b"x" * 5000, delay=0.25)).run)
    async with world() as w:
        hook = await w.hook(receiver.url("/t"), triggers=(("Submittals", "create"),))
        result = await w.history.send_test(hook.name)
        assert result.attempt.response_status == 202
        assert result.attempt.error == ""
        assert result.attempt.duration == timedelta(seconds=0.25)
        assert result.excerpt == b"x" * 1024
        [request] = receiver.requests
        assert request.body == result.body
        assert b"Submittals" in request.body
        assert await w.deliveries(hook) == []
        # Recognisable as a test: the header, and ids no real user or resource has.
        assert request.header("Tidings-Test") == "true"
        body = json.loads(request.body)
        assert (body["resource_id"], body["user_id"]) == ("0", "0")


async def test_a_time_range_bounds_the_walk_not_only_the_rows(
    autojump_clock: MockClock, nursery: trio.Nursery, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(history, "SCAN_LIMIT", 2)  # two deliveries examined per call
    async with world() as w:
        hook = await w.hook("http://127.0.0.1:9/never", triggers=(("RFIs", "update"),))
        await w.hooks.update_hook(hook.name, HookInput(status=HookStatus.PAUSED), ["status"])
        ids = []
        for second in (0, 10, 20, 30, 40):
            await trio.sleep_until(w.t0 + second)
            [published] = await w.publish(rfi(second + 1))
            ids.append(published.event_id)

        async def page(token: str = "", **times: datetime) -> tuple[list[str], str]:
            found = await w.history.list_deliveries(Criteria(hook.name, **times), 50, token)  # type: ignore[arg-type]
            return [d.event_id for d, _ in found.items], found.next_page_token

        # Ending at +15 s: the walk starts there instead of spending its budget on +40 and +30.
        assert await page(end_time=ORIGIN + timedelta(seconds=15)) == ([ids[1], ids[0]], "")
        # Starting at +25 s: the second call passes +25 s and ends the listing there.
        first, token = await page(start_time=ORIGIN + timedelta(seconds=25))
        assert first == [ids[4], ids[3]]
        assert token
        assert await page(token, start_time=ORIGIN + timedelta(seconds=25)) == ([], "")
        # Without a range, the same budget pages on through everything.
        unbounded = await page()
        assert unbounded[0] == [ids[4], ids[3]]
        assert unbounded[1]


async def test_watchers_of_one_parent_share_each_read_of_the_change_log(
    autojump_clock: MockClock, nursery: trio.Nursery, monkeypatch: pytest.MonkeyPatch
) -> None:
    receiver = await nursery.start(ScriptedReceiver(Reply(503), default=Reply(200)).run)
    async with world() as w:
        await w.hook(receiver.url())
        reads = 0
        list_changes = w.store.list_changes

        async def counted(*args: object, **kwargs: object) -> object:
            nonlocal reads
            reads += 1
            return await list_changes(*args, **kwargs)  # type: ignore[arg-type]

        monkeypatch.setattr(w.store, "list_changes", counted)
        start = await w.history.watch_start(PROJECT, frozenset(), "")
        seen: list[list[tuple[int, DeliveryStatus]]] = [[] for _ in range(5)]
        rounds = [0] * 5

        async def watch(i: int) -> None:
            cursor = start
            # Queued for both, retrying for the first (its 503), then delivered for both.
            while [status for _, status in seen[i]].count(DeliveryStatus.DELIVERED) < 2:
                batch = await w.history.watch_next(cursor, 60.0)
                rounds[i] += 1
                cursor = batch.cursor
                seen[i] += [(c.seq, c.delivery.status) for c, _ in batch.changes]

        async with trio.open_nursery() as watchers:
            for i in range(5):
                watchers.start_soon(watch, i)
            await trio.sleep(1)  # virtual: all five now wait at the same position for the next pulse
            await w.publish(rfi(7), rfi(8))
        assert len(seen[0]) == 5
        assert all(s == seen[0] for s in seen)  # every watcher saw every change, in order
        assert rounds == [rounds[0]] * 5
        # Shared: about one read a round for all five (a pulse with nothing new costs one more
        # shared read), where reading apart would cost five a round.
        assert rounds[0] <= reads < 2 * rounds[0], (reads, rounds)
