"""The Store contract for events, deliveries and attempts, run against every backend in conftest.BACKENDS."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from tidings_server.domain.errors import NotFound
from tidings_server.domain.model import (
    Attempt,
    Delivery,
    DeliveryStatus,
    EventMetadata,
    Hook,
    HookStatus,
    Ordering,
    RelatedResource,
)
from tidings_server.domain.ports import AttemptRecord, Claim, IdempotencyConflict, Published, QueueDepth, Store
from tidings_server.testing.stores.samples import MICROSECOND, T0, T1, T2, event_id, make_event, make_hook, make_trigger

HOOK = "companies/1/projects/2/hooks/h"
LATER = T0 + timedelta(hours=1)
LEASE = T0 + timedelta(minutes=2)
NODE = "node-a"


async def _hook(
    store: Store, name: str = HOOK, pairs: Sequence[tuple[str, str]] = (("Projects", "create"),), **changes: Any
) -> Hook:
    """Create a hook with triggers for each (resource, event type) of ``pairs``."""
    hook = make_hook(name, **changes)
    await store.create_hook(hook)
    await store.add_triggers(name, [make_trigger(name, resource, event) for resource, event in pairs])
    return hook


def _delivery_name(hook: str, n: int) -> str:
    return f"{hook}/deliveries/{event_id(n)}"


async def _claim(
    store: Store,
    now: datetime = T0,
    *,
    limit: int = 100,
    lease_until: datetime = LEASE,
    owner: str = NODE,
) -> list[str]:
    claims = await store.claim_due(now, limit=limit, lease_until=lease_until, owner=owner)
    return [c.delivery.name for c in claims]


async def _delivered_to(store: Store, hook: str) -> list[str]:
    """The event ids the hook has deliveries for, in delivery name order."""
    return [d.event_id for d in await store.list_deliveries(hook, after=None, limit=1000)]


def _attempt(number: int, start: datetime, *, status: int | None = 200, body: bytes = b"ok") -> Attempt:
    return Attempt(
        number=number,
        start_time=start,
        end_time=start + timedelta(milliseconds=250, microseconds=3),
        request_headers=(("Authorization", "Bearer ••••oken"), ("Content-Type", "application/json")),
        response_status=status,
        response_headers=(("Retry-After", "5"), ("X-Seen", "a"), ("X-Seen", "b")),
        response_body=body,
        error="" if status == 200 else f"HTTP {status}",
    )


def _record(
    name: str,
    attempt: Attempt,
    status: DeliveryStatus = DeliveryStatus.DELIVERED,
    next_attempt_time: datetime | None = None,
) -> AttemptRecord:
    return AttemptRecord(name, attempt, status, next_attempt_time, attempt.error)


# Publishing: fan-out


# Publishing: events, serials, idempotency


# Claiming


# When the next delivery is due


# Recording attempts


# Discarding


# Reading deliveries


# Purging


async def _purge_all(store: Store, before: datetime, limit: int) -> list[int]:
    counts = [await store.purge(before, limit)]
    while counts[-1]:
        assert counts[-1] <= limit
        counts.append(await store.purge(before, limit))
    return counts


class DeliveryStoreContract:
    """What every store must do with events, deliveries, claims, attempts and purging."""

    @pytest.fixture
    def store(self) -> Store:
        raise NotImplementedError("define a store fixture yielding an opened, empty store")

    async def test_publish_fans_out_to_project_hooks_of_the_same_company_and_project_only(self, store: Store) -> None:
        for name in (
            "companies/1/projects/2/hooks/a",
            "companies/1/projects/2/hooks/b",
            "companies/1/projects/3/hooks/a",
            "companies/2/projects/2/hooks/a",
        ):
            await _hook(store, name)
        await _hook(store, "companies/1/hooks/company", [("Projects", "update")])
        [published] = await store.publish_events([make_event(1, company=1, project=2)], T0)
        assert published == Published(event_id(1), 1, 2, False)
        assert await _delivered_to(store, "companies/1/projects/2/hooks/a") == [event_id(1)]
        assert await _delivered_to(store, "companies/1/projects/2/hooks/b") == [event_id(1)]
        for other in ("companies/1/projects/3/hooks/a", "companies/2/projects/2/hooks/a", "companies/1/hooks/company"):
            assert await _delivered_to(store, other) == []

    async def test_a_project_event_reaches_the_company_hooks_with_a_trigger_for_it(self, store: Store) -> None:
        await _hook(store, "companies/1/hooks/rfis", [("RFIs", "create")])
        await _hook(store, "companies/1/hooks/other", [("RFIs", "update"), ("Submittals", "create")])
        await _hook(store, "companies/2/hooks/rfis", [("RFIs", "create")])
        await _hook(store, "companies/1/projects/2/hooks/p", [("RFIs", "create")])
        events = [make_event(n, project=n, resource="RFIs") for n in (1, 2, 3)]
        results = await store.publish_events(events, T0)
        assert [r.deliveries for r in results] == [1, 2, 1]
        assert await _delivered_to(store, "companies/1/hooks/rfis") == [event_id(1), event_id(2), event_id(3)]
        assert await _delivered_to(store, "companies/1/projects/2/hooks/p") == [event_id(2)]
        for other in ("companies/1/hooks/other", "companies/2/hooks/rfis"):
            assert await _delivered_to(store, other) == []
        delivery = await store.get_delivery(_delivery_name("companies/1/hooks/rfis", 2))
        assert (delivery.company_id, delivery.project_id) == (1, 2)  # history under project 2 lists it

    async def test_a_company_hook_listing_projects_receives_theirs_only(self, store: Store) -> None:
        hook = "companies/1/hooks/some"
        await _hook(store, hook, [("RFIs", "create"), ("Users", "create")], projects=(1, 3))
        await _hook(store, "companies/1/hooks/all", [("RFIs", "create")])
        events = [make_event(n, project=n, resource="RFIs") for n in (1, 2, 3)]
        results = await store.publish_events(events, T0)
        assert [r.deliveries for r in results] == [2, 1, 2]
        assert await _delivered_to(store, hook) == [event_id(1), event_id(3)]
        # The list narrows project events only: the company's own events still arrive.
        [company_event] = await store.publish_events([make_event(4, project=None, resource="Users")], T0)
        assert company_event.deliveries == 1
        assert await _delivered_to(store, hook) == [event_id(1), event_id(3), event_id(4)]

    async def test_a_company_hooks_stats_narrow_to_one_project(self, store: Store) -> None:
        hook = "companies/1/hooks/rfis"
        await _hook(store, hook, [("RFIs", "create")])
        events = [make_event(n, project=p, resource="RFIs") for n, p in ((1, 1), (2, 1), (3, 2))]
        await store.publish_events(events, T0)
        await store.discard_pending(hook, T1, "gone")
        await store.publish_events([make_event(4, project=1, resource="RFIs")], T2)
        one = await store.hook_project_stats(hook, 1)
        assert one.counts == {**dict.fromkeys(DeliveryStatus, 0), DeliveryStatus.QUEUED: 1, DeliveryStatus.DISCARDED: 2}
        assert one.next_attempt_time == T2
        two = await store.hook_project_stats(hook, 2)
        assert two.counts == {**dict.fromkeys(DeliveryStatus, 0), DeliveryStatus.DISCARDED: 1}
        assert two.next_attempt_time is None
        none = await store.hook_project_stats(hook, 3)
        assert none.counts == dict.fromkeys(DeliveryStatus, 0)

    async def test_fan_out_follows_a_company_hooks_project_list(self, store: Store) -> None:
        hook = "companies/1/hooks/some"
        await _hook(store, hook, [("RFIs", "create")], projects=(1,))
        await store.update_hook(hook, lambda h: dataclasses.replace(h, projects=(2, 5)))
        events = [make_event(n, project=n, resource="RFIs") for n in (1, 2, 3, 5)]
        assert [r.deliveries for r in await store.publish_events(events, T0)] == [0, 1, 0, 1]
        await store.update_hook(hook, lambda h: dataclasses.replace(h, projects=()))
        events = [make_event(n, project=n - 10, resource="RFIs") for n in (11, 12, 13)]
        assert [r.deliveries for r in await store.publish_events(events, T0)] == [1, 1, 1]
        assert await _delivered_to(store, hook) == [event_id(n) for n in (2, 5, 11, 12, 13)]

    async def test_company_level_events_reach_company_hooks_only(self, store: Store) -> None:
        await _hook(store, "companies/1/hooks/c", [("Users", "create")])
        await _hook(store, "companies/2/hooks/c", [("Users", "create")])
        await _hook(store, "companies/1/projects/2/hooks/p", [("Users", "create")])
        [published] = await store.publish_events([make_event(1, project=None, resource="Users")], T0)
        assert published.deliveries == 1
        assert await _delivered_to(store, "companies/1/hooks/c") == [event_id(1)]
        assert await _delivered_to(store, "companies/2/hooks/c") == []
        assert await _delivered_to(store, "companies/1/projects/2/hooks/p") == []

    async def test_active_and_paused_hooks_get_deliveries_but_disabled_ones_do_not(self, store: Store) -> None:
        for status in HookStatus:
            await _hook(store, f"companies/1/projects/2/hooks/{status.value}", status=status)
        [published] = await store.publish_events([make_event(1)], T0)
        assert published.deliveries == 2
        assert await _delivered_to(store, "companies/1/projects/2/hooks/active") == [event_id(1)]
        assert await _delivered_to(store, "companies/1/projects/2/hooks/paused") == [event_id(1)]
        assert await _delivered_to(store, "companies/1/projects/2/hooks/disabled") == []

    async def test_only_hooks_with_a_trigger_for_the_resource_and_event_type_get_deliveries(self, store: Store) -> None:
        await _hook(store, "companies/1/projects/2/hooks/update", [("Projects", "update")])
        await _hook(store, "companies/1/projects/2/hooks/rfis", [("RFIs", "create")])
        await _hook(store, "companies/1/projects/2/hooks/none", [])
        await _hook(store, "companies/1/projects/2/hooks/both", [("RFIs", "create"), ("Projects", "create")])
        results = await store.publish_events([make_event(1), make_event(2, resource="RFIs", event="update")], T0)
        assert [r.deliveries for r in results] == [1, 0]
        assert await _delivered_to(store, "companies/1/projects/2/hooks/both") == [event_id(1)]
        for name in ("update", "rfis", "none"):
            assert await _delivered_to(store, f"companies/1/projects/2/hooks/{name}") == []

    async def test_fan_out_follows_trigger_and_hook_changes(self, store: Store) -> None:
        await _hook(store, HOOK, [("Projects", "create"), ("Projects", "update")])
        await store.publish_events([make_event(1)], T0)
        await store.delete_triggers(HOOK, [make_trigger(HOOK).name], allow_missing=False)
        assert (await store.publish_events([make_event(2)], T0))[0].deliveries == 0
        await store.add_triggers(HOOK, [make_trigger(HOOK)])
        assert (await store.publish_events([make_event(3)], T0))[0].deliveries == 1
        await store.update_hook(HOOK, lambda h: dataclasses.replace(h, status=HookStatus.DISABLED))
        assert (await store.publish_events([make_event(4)], T0))[0].deliveries == 0
        await store.delete_hook(HOOK)
        await store.create_hook(make_hook(HOOK))  # same name, no triggers yet
        assert (await store.publish_events([make_event(5, event="update")], T0))[0].deliveries == 0
        assert await _delivered_to(store, HOOK) == [event_id(1), event_id(3)]

    async def test_a_new_delivery_is_queued_and_due_at_publish_time(self, store: Store) -> None:
        await _hook(store)
        await store.publish_events([make_event(1)], T1)
        name = _delivery_name(HOOK, 1)
        assert await store.get_delivery(name) == Delivery(
            name=name,
            hook_name=HOOK,
            event_id=event_id(1),
            status=DeliveryStatus.QUEUED,
            attempt_count=0,
            create_time=T1,
            update_time=T1,
            next_attempt_time=T1,
            first_attempt_time=None,
            last_error="",
            company_id=1,
            project_id=2,
            resource_name="Projects",
            resource_id=100,
            event_type="create",
            last_response_status=None,
        )

    async def test_publishing_nothing_returns_nothing(self, store: Store) -> None:
        assert await store.publish_events([], T0) == []

    async def test_serials_increase_in_publish_order_whatever_event_serial_says(self, store: Store) -> None:
        first = await store.publish_events([make_event(3, serial=99), make_event(1, serial=5)], T0)
        second = await store.publish_events([make_event(2, serial=1)], T0)
        assert [(p.event_id, p.serial) for p in first + second] == [
            (event_id(3), 1),
            (event_id(1), 2),
            (event_id(2), 3),
        ]
        assert [(await store.get_event(event_id(n))).serial for n in (3, 1, 2)] == [1, 2, 3]

    async def test_serials_are_never_handed_out_twice_even_after_a_purge(self, store: Store) -> None:
        await store.publish_events([make_event(1), make_event(2)], T0)
        while await store.purge(T1, 100):
            pass
        with pytest.raises(NotFound):
            await store.get_event(event_id(2))
        assert [p.serial for p in await store.publish_events([make_event(3)], T1)] == [3]

    async def test_every_event_field_round_trips(self, store: Store) -> None:
        full = make_event(
            1,
            timestamp=datetime(2024, 2, 29, 23, 59, 59, 999999, tzinfo=timezone(timedelta(hours=-7))),
            metadata=EventMetadata(
                source_user_id=11,
                source_project_id=12,
                source_operation_id=2**63 - 1,
                source_company_id=14,
                source_application_id="app-ü",
            ),
            related_resources=(RelatedResource(5, "Drawings"), RelatedResource(2**63 - 1, 'Spec "Section" ü')),
            idempotency_key="order-17",
            idempotency_fingerprint="0f9a" * 8,
            traceparent="00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            user_id=2**63 - 1,
            resource_id=2**62,
        )
        bare = make_event(2, project=None, resource="Users")
        await store.publish_events([full, bare], T0)
        got = await store.get_event(full.id)
        assert got == dataclasses.replace(full, serial=1)
        assert got.timestamp.utcoffset() is not None
        assert await store.get_event(bare.id) == dataclasses.replace(bare, serial=2)
        assert (await store.get_event(bare.id)).metadata == EventMetadata()

    async def test_get_missing_event_raises_not_found(self, store: Store) -> None:
        with pytest.raises(NotFound, match=event_id(1)):
            await store.get_event(event_id(1))

    async def test_a_repeated_idempotency_key_within_a_batch_is_not_stored(self, store: Store) -> None:
        await _hook(store)
        results = await store.publish_events(
            [make_event(1, idempotency_key="k"), make_event(2), make_event(3, idempotency_key="k")], T0
        )
        assert results == [
            Published(event_id(1), 1, 1, False),
            Published(event_id(2), 2, 1, False),
            Published(event_id(1), 1, 0, True),
        ]
        with pytest.raises(NotFound):
            await store.get_event(event_id(3))
        assert await _delivered_to(store, HOOK) == [event_id(1), event_id(2)]

    async def test_a_repeated_idempotency_key_across_batches_is_not_stored(self, store: Store) -> None:
        await _hook(store)
        await store.publish_events([make_event(1, idempotency_key="k")], T0)
        again = await store.publish_events([make_event(2, idempotency_key="k"), make_event(3)], T1)
        assert again == [Published(event_id(1), 1, 0, True), Published(event_id(3), 2, 1, False)]
        with pytest.raises(NotFound):
            await store.get_event(event_id(2))
        assert await _delivered_to(store, HOOK) == [event_id(1), event_id(3)]

    async def test_idempotency_keys_are_per_company(self, store: Store) -> None:
        await _hook(store)
        await _hook(store, "companies/3/projects/2/hooks/h")
        results = await store.publish_events(
            [make_event(1, idempotency_key="k"), make_event(2, company=3, idempotency_key="k")], T0
        )
        assert results == [Published(event_id(1), 1, 1, False), Published(event_id(2), 2, 1, False)]
        [third] = await store.publish_events([make_event(3, company=3, idempotency_key="k")], T0)
        assert third == Published(event_id(2), 2, 0, True)

    async def test_a_key_reused_for_a_different_event_refuses_the_batch(self, store: Store) -> None:
        await _hook(store)
        await store.publish_events([make_event(1, idempotency_key="k", idempotency_fingerprint="a")], T0)
        batch = [make_event(2), make_event(3, idempotency_key="k", idempotency_fingerprint="b")]
        with pytest.raises(IdempotencyConflict) as conflict:
            await store.publish_events(batch, T1)
        assert (conflict.value.index, conflict.value.key, conflict.value.first_id) == (1, "k", event_id(1))
        for n in (2, 3):
            with pytest.raises(NotFound):
                await store.get_event(event_id(n))
        assert await _delivered_to(store, HOOK) == [event_id(1)]
        # The same event again is a retry: the original id, nothing new.
        [again] = await store.publish_events([make_event(4, idempotency_key="k", idempotency_fingerprint="a")], T1)
        assert again == Published(event_id(1), 1, 0, True)
        assert (await store.get_event(event_id(1))).idempotency_fingerprint == "a"

    async def test_a_key_reused_in_one_batch_for_a_different_event_refuses_it(self, store: Store) -> None:
        await _hook(store)
        batch = [
            make_event(1, idempotency_key="k", idempotency_fingerprint="a"),
            make_event(2, idempotency_key="k", idempotency_fingerprint="a"),
            make_event(3, idempotency_key="k", idempotency_fingerprint="b"),
        ]
        with pytest.raises(IdempotencyConflict) as conflict:
            await store.publish_events(batch, T0)
        assert (conflict.value.index, conflict.value.first_id) == (2, event_id(1))
        assert await _delivered_to(store, HOOK) == []
        [first, repeat] = await store.publish_events(batch[:2], T0)
        assert (first, repeat) == (Published(event_id(1), 1, 1, False), Published(event_id(1), 1, 0, True))

    async def test_a_key_without_a_fingerprint_on_either_side_is_a_retry(self, store: Store) -> None:
        await store.publish_events([make_event(1, idempotency_key="old")], T0)  # stored before fingerprints
        await store.publish_events([make_event(2, idempotency_key="new", idempotency_fingerprint="a")], T0)
        results = await store.publish_events(
            [
                make_event(3, idempotency_key="old", idempotency_fingerprint="x"),
                make_event(4, idempotency_key="new"),
            ],
            T1,
        )
        assert results == [Published(event_id(1), 1, 0, True), Published(event_id(2), 2, 0, True)]

    async def test_events_without_an_idempotency_key_are_never_duplicates(self, store: Store) -> None:
        results = await store.publish_events([make_event(1), make_event(2)], T0)
        assert [r.duplicate for r in results] == [False, False]

    async def test_a_taken_event_id_refuses_the_whole_batch(self, store: Store) -> None:
        await _hook(store)
        await store.publish_events([make_event(1)], T0)
        for batch in ([make_event(2), make_event(1)], [make_event(3), make_event(3)]):
            with pytest.raises(ValueError, match="already taken"):
                await store.publish_events(batch, T0)
        for n in (2, 3):
            with pytest.raises(NotFound):
                await store.get_event(event_id(n))
        assert await _delivered_to(store, HOOK) == [event_id(1)]
        assert [p.serial for p in await store.publish_events([make_event(4)], T0)] == [2]

    async def test_naive_times_are_refused_when_publishing(self, store: Store) -> None:
        with pytest.raises(ValueError, match="timezone-aware"):
            await store.publish_events([make_event(1)], T0.replace(tzinfo=None))
        with pytest.raises(ValueError, match="timezone-aware"):
            await store.publish_events([make_event(2), make_event(3, timestamp=T0.replace(tzinfo=None))], T0)
        with pytest.raises(NotFound):
            await store.get_event(event_id(2))

    async def test_claim_returns_the_delivery_its_event_and_its_hook(self, store: Store) -> None:
        hook = await _hook(store, max_concurrency=3, ordering=Ordering.UNORDERED)
        event = make_event(1, related_resources=(RelatedResource(4, "Drawings"),))
        await store.publish_events([event], T0)
        [claim] = await store.claim_due(T0, limit=10, lease_until=LEASE, owner=NODE)
        assert claim == Claim(
            await store.get_delivery(_delivery_name(HOOK, 1)), dataclasses.replace(event, serial=1), hook
        )

    async def test_claim_takes_only_deliveries_that_are_due(self, store: Store) -> None:
        await _hook(store)
        await store.publish_events([make_event(1)], T0)
        await store.publish_events([make_event(2)], T1)
        assert await _claim(store, T0 - MICROSECOND) == []
        assert await _claim(store, T0) == [_delivery_name(HOOK, 1)]
        assert await _claim(store, T1) == [_delivery_name(HOOK, 2)]

    async def test_claim_leases_until_the_lease_ends(self, store: Store) -> None:
        await _hook(store)
        await store.publish_events([make_event(1)], T0)
        assert await _claim(store, T0, lease_until=T1) == [_delivery_name(HOOK, 1)]
        assert await _claim(store, T0) == []
        assert await _claim(store, T1 - MICROSECOND) == []
        assert await _claim(store, T1, lease_until=T2) == [_delivery_name(HOOK, 1)]
        assert await _claim(store, T1) == []

    async def test_claim_takes_the_earliest_due_first_then_the_lowest_serial(self, store: Store) -> None:
        await _hook(store)
        await store.publish_events([make_event(1)], T1)
        await store.publish_events([make_event(2), make_event(3)], T0)
        order = [_delivery_name(HOOK, n) for n in (2, 3, 1)]
        assert await _claim(store, T2, limit=2, lease_until=LATER) == order[:2]
        assert await _claim(store, T2, limit=2, lease_until=LATER) == order[2:]

    async def test_claim_breaks_ties_of_one_event_by_delivery_name(self, store: Store) -> None:
        hooks = ["companies/1/projects/2/hooks/b", "companies/1/projects/2/hooks/a", "companies/1/projects/2/hooks/c"]
        for name in hooks:
            await _hook(store, name)
        await store.publish_events([make_event(1)], T0)
        assert await _claim(store) == sorted(_delivery_name(h, 1) for h in hooks)

    async def test_claim_respects_the_limit(self, store: Store) -> None:
        await _hook(store)
        await store.publish_events([make_event(n) for n in range(1, 6)], T0)
        assert await _claim(store, limit=3) == [_delivery_name(HOOK, n) for n in (1, 2, 3)]
        assert await _claim(store, limit=3) == [_delivery_name(HOOK, n) for n in (4, 5)]
        with pytest.raises(ValueError, match="limit"):
            await _claim(store, limit=0)

    async def test_claim_takes_deliveries_of_active_hooks_only(self, store: Store) -> None:
        await _hook(store, status=HookStatus.PAUSED)
        await _hook(store, "companies/1/projects/2/hooks/gone")
        await store.publish_events([make_event(1)], T0)
        await store.delete_hook("companies/1/projects/2/hooks/gone")
        assert await _claim(store) == []
        await store.update_hook(HOOK, lambda h: dataclasses.replace(h, status=HookStatus.DISABLED))
        assert await _claim(store) == []
        await store.update_hook(HOOK, lambda h: dataclasses.replace(h, status=HookStatus.ACTIVE))
        assert await _claim(store) == [_delivery_name(HOOK, 1)]

    async def test_claim_keeps_each_hook_within_its_free_concurrency(self, store: Store) -> None:
        narrow = "companies/1/projects/2/hooks/a"
        wide = "companies/1/projects/2/hooks/b"
        await _hook(store, narrow, max_concurrency=3)
        await _hook(store, wide)  # max_concurrency 8
        await store.publish_events([make_event(n) for n in range(1, 11)], T0)
        assert await _claim(store, limit=1) == [_delivery_name(narrow, 1)]
        # narrow has 2 slots left, and the limit is shared earliest first.
        assert await _claim(store, limit=6) == [
            _delivery_name(wide, 1),
            _delivery_name(narrow, 2),
            _delivery_name(wide, 2),
            _delivery_name(narrow, 3),
            _delivery_name(wide, 3),
            _delivery_name(wide, 4),
        ]
        assert await _claim(store) == [_delivery_name(wide, n) for n in range(5, 9)]
        assert await _claim(store) == []  # both hooks at their concurrency
        await store.release([_delivery_name(narrow, 2), _delivery_name(wide, 1)])
        assert await _claim(store) == [_delivery_name(wide, 1), _delivery_name(narrow, 2)]
        # Leases that ended no longer count.
        assert await _claim(store, LEASE, lease_until=LATER) == [
            *(_delivery_name(h, n) for n in (1, 2, 3) for h in (narrow, wide)),
            *(_delivery_name(wide, n) for n in range(4, 9)),
        ]

    async def test_per_resource_hooks_get_only_the_head_of_each_resource(self, store: Store) -> None:
        pairs = [("Projects", "update"), ("RFIs", "update")]
        ordered = "companies/1/projects/2/hooks/ordered"
        unordered = "companies/1/projects/2/hooks/unordered"
        await _hook(store, ordered, pairs, ordering=Ordering.PER_RESOURCE)
        await _hook(store, unordered, pairs)
        await store.publish_events(
            [
                make_event(1, event="update", resource_id=100),
                make_event(2, event="update", resource_id=100),
                make_event(3, event="update", resource_id=101),
                make_event(4, event="update", resource="RFIs", resource_id=100),
                make_event(5, event="update", resource_id=100),
            ],
            T0,
        )

        def of(hook: str, *numbers: int) -> list[str]:
            return [_delivery_name(hook, n) for n in numbers]

        first = await _claim(store, T0, lease_until=LATER)
        assert sorted(first) == sorted(of(ordered, 1, 3, 4) + of(unordered, 1, 2, 3, 4, 5))
        assert await _claim(store, T0, lease_until=LATER) == []  # 2 and 5 wait behind 1, which is leased
        attempt = _attempt(1, T0)
        await store.record_attempts([_record(_delivery_name(ordered, 1), attempt)])
        assert await _claim(store, T0, lease_until=LATER) == of(ordered, 2)
        failed = _attempt(1, T0, status=503)
        await store.record_attempts([_record(_delivery_name(ordered, 2), failed, DeliveryStatus.RETRYING, T2)])
        assert await _claim(store, T1, lease_until=LATER) == []  # 5 waits behind 2, which is not due again yet
        assert await _claim(store, T2, lease_until=LATER) == of(ordered, 2)
        await store.discard_pending(ordered, T2, "gone")
        assert await _claim(store, T2, lease_until=LATER) == []

    async def test_changing_a_hook_to_per_resource_orders_its_pending_deliveries(self, store: Store) -> None:
        await _hook(store)
        await store.publish_events([make_event(1), make_event(2), make_event(3, resource_id=7)], T0)
        await store.update_hook(HOOK, lambda h: dataclasses.replace(h, ordering=Ordering.PER_RESOURCE))
        assert await _claim(store) == [_delivery_name(HOOK, 1), _delivery_name(HOOK, 3)]

    async def test_release_makes_deliveries_claimable_at_once(self, store: Store) -> None:
        await _hook(store)
        await store.publish_events([make_event(1), make_event(2)], T0)
        assert await _claim(store, lease_until=LATER) == [_delivery_name(HOOK, 1), _delivery_name(HOOK, 2)]
        await store.release([_delivery_name(HOOK, 2), _delivery_name(HOOK, 9), "companies/1/hooks/x/deliveries/y"])
        assert await _claim(store) == [_delivery_name(HOOK, 2)]
        await store.release([])

    async def test_claims_are_counted_until_an_attempt_is_recorded(self, store: Store) -> None:
        await _hook(store)
        await store.publish_events([make_event(1)], T0)
        name = _delivery_name(HOOK, 1)
        interrupted = []
        for n in range(3):  # each lease runs out with no attempt: its server died mid-attempt
            now = T0 + n * (LEASE - T0)
            [claim] = await store.claim_due(now, limit=10, lease_until=now + (LEASE - T0), owner=NODE)
            interrupted.append(claim.interrupted)
        assert interrupted == [0, 1, 2]
        retry = T0 + timedelta(hours=2)
        await store.record_attempts([_record(name, _attempt(1, LATER, status=503), DeliveryStatus.RETRYING, retry)])
        [claim] = await store.claim_due(retry, limit=10, lease_until=retry + timedelta(minutes=2), owner=NODE)
        assert claim.interrupted == 0

    async def test_a_released_claim_is_not_counted_as_interrupted(self, store: Store) -> None:
        await _hook(store)
        await store.publish_events([make_event(1)], T0)
        await store.claim_due(T0, limit=10, lease_until=LEASE, owner=NODE)
        await store.release([_delivery_name(HOOK, 1)])
        [claim] = await store.claim_due(T0, limit=10, lease_until=LEASE, owner=NODE)
        assert claim.interrupted == 0
        await store.release([_delivery_name(HOOK, 1)])
        await store.release([_delivery_name(HOOK, 1)])  # never below none
        [claim] = await store.claim_due(T0, limit=10, lease_until=LEASE, owner=NODE)
        assert claim.interrupted == 0

    async def test_redelivering_forgets_interrupted_claims(self, store: Store) -> None:
        await _hook(store)
        await store.publish_events([make_event(1)], T0)
        name = _delivery_name(HOOK, 1)
        await store.claim_due(T0, limit=10, lease_until=LEASE, owner=NODE)
        await store.claim_due(LEASE, limit=10, lease_until=LATER, owner=NODE)
        await store.record_attempts([_record(name, _attempt(1, LATER, status=404), DeliveryStatus.FAILED)])
        later = LATER + timedelta(minutes=1)
        assert await store.redeliver([name], later) == [name]
        [claim] = await store.claim_due(later, limit=10, lease_until=later + timedelta(minutes=2), owner=NODE)
        assert claim.interrupted == 0

    async def test_queue_depth_counts_due_unleased_pending_deliveries_and_the_oldest(self, store: Store) -> None:
        assert await store.queue_depth(T2, limit=100) == QueueDepth(0, None)
        await _hook(store)
        await store.publish_events([make_event(1)], T0)
        await store.publish_events([make_event(2), make_event(3)], T1)
        await store.publish_events([make_event(4)], T2)
        assert await store.queue_depth(T0 - MICROSECOND, limit=100) == QueueDepth(0, None)
        assert await store.queue_depth(T1, limit=100) == QueueDepth(3, T0)
        assert await store.queue_depth(T2, limit=2) == QueueDepth(2, T0), "the count stops at the limit"
        assert await _claim(store, T1, limit=1, lease_until=T2) == [_delivery_name(HOOK, 1)]
        assert await store.queue_depth(T1, limit=100) == QueueDepth(2, T1), "a leased delivery is in flight"
        assert await store.queue_depth(T2, limit=100) == QueueDepth(4, T0), "an ended lease is due again"
        await store.record_attempts([_record(_delivery_name(HOOK, 1), _attempt(1, T1))])
        assert await store.queue_depth(T2, limit=100) == QueueDepth(3, T1), "a delivered one is not pending"

    async def test_queue_depth_counts_paused_hooks_backlog_too(self, store: Store) -> None:
        await _hook(store, status=HookStatus.PAUSED)
        await store.publish_events([make_event(1)], T0)
        assert await store.queue_depth(T1, limit=100) == QueueDepth(1, T0)

    async def test_next_due_time_is_none_without_pending_deliveries(self, store: Store) -> None:
        assert await store.next_due_time() is None
        await _hook(store)
        await store.publish_events([make_event(1)], T0)
        await store.record_attempts([_record(_delivery_name(HOOK, 1), _attempt(1, T0))])
        assert await store.next_due_time() is None

    async def test_next_due_time_is_the_earliest_due_time(self, store: Store) -> None:
        await _hook(store)
        await store.publish_events([make_event(1)], T1)
        await store.publish_events([make_event(2)], T2)
        assert await store.next_due_time() == T1
        await store.publish_events([make_event(3)], T0)
        assert await store.next_due_time() == T0

    async def test_next_due_time_of_a_leased_delivery_is_its_lease_end(self, store: Store) -> None:
        await _hook(store)
        await store.publish_events([make_event(1)], T0)
        await _claim(store, T0, lease_until=T2)
        assert await store.next_due_time() == T2
        await store.publish_events([make_event(2)], T1)
        assert await store.next_due_time() == T1
        await _claim(store, T1, lease_until=LATER)
        assert await store.next_due_time() == T2
        await store.release([_delivery_name(HOOK, 1)])
        assert await store.next_due_time() == T0

    async def test_next_due_time_ignores_hooks_that_are_not_active(self, store: Store) -> None:
        paused = "companies/1/projects/2/hooks/paused"
        gone = "companies/1/projects/2/hooks/gone"
        await _hook(store, paused, status=HookStatus.PAUSED)
        await _hook(store, gone)
        await _hook(store)
        await store.publish_events([make_event(1)], T0)
        await store.publish_events([make_event(2, resource="RFIs")], T1)
        await store.add_triggers(HOOK, [make_trigger(HOOK, "RFIs")])
        await store.publish_events([make_event(3, resource="RFIs")], T2)
        await store.delete_hook(gone)
        await store.update_hook(HOOK, lambda h: dataclasses.replace(h, status=HookStatus.DISABLED))
        assert await store.next_due_time() is None
        await store.update_hook(HOOK, lambda h: dataclasses.replace(h, status=HookStatus.ACTIVE))
        assert await store.next_due_time() == T0
        await store.record_attempts([_record(_delivery_name(HOOK, 1), _attempt(1, T0))])
        assert await store.next_due_time() == T2

    async def test_next_due_time_after_counts_only_later_times(self, store: Store) -> None:
        await _hook(store)
        await store.publish_events([make_event(1)], T0)
        await store.publish_events([make_event(2)], T2)
        assert await store.next_due_time(after=T0 - MICROSECOND) == T0
        assert await store.next_due_time(after=T0) == T2
        assert await store.next_due_time(after=T2) is None
        await _claim(store, T0, lease_until=T1)
        assert await store.next_due_time(after=T0) == T1
        assert await store.next_due_time(after=T1) == T2

    async def test_next_due_time_after_a_claim_sees_what_changed_since(self, store: Store) -> None:
        """The dispatcher asks right after a claim that found fewer than it could take, with the
        claim's ``now``, and may postpone or release some of what it claimed in between."""
        await _hook(store)
        await store.publish_events([make_event(1), make_event(2)], T0)
        assert await _claim(store, T0, lease_until=LATER) == [_delivery_name(HOOK, 1), _delivery_name(HOOK, 2)]
        assert await store.next_due_time(after=T0) == LATER
        await _claim(store, T0, lease_until=LATER)  # nothing left: the leases stand
        await store.postpone([_delivery_name(HOOK, 1)], T2)
        assert await store.next_due_time(after=T0) == T2
        await _claim(store, T0, lease_until=LATER)
        await store.release([_delivery_name(HOOK, 2)])
        assert await store.next_due_time(after=T0) == T2  # released: due at T0 again, not after it
        assert await store.next_due_time() == T0

    async def test_next_due_time_after_a_short_claim_skips_what_the_claim_could_not_take(self, store: Store) -> None:
        """A dispatcher waits for what frees these (an attempt finishing), not for their due time."""
        ordered = "companies/1/projects/2/hooks/ordered"
        full = "companies/1/projects/2/hooks/full"
        await _hook(store, ordered, ordering=Ordering.PER_RESOURCE)
        await _hook(store, full, max_concurrency=1)
        await store.publish_events([make_event(1), make_event(2)], T0)
        assert await _claim(store, T0, lease_until=LATER) == [_delivery_name(full, 1), _delivery_name(ordered, 1)]
        assert await store.next_due_time() == T0  # 2 is due for both hooks, but neither may take it now
        assert await store.next_due_time(after=T0) == LATER
        await store.publish_events([make_event(3, resource_id=5)], T1)
        assert await store.next_due_time(after=T0) == T1

    async def test_record_attempts_moves_the_delivery_on_and_stores_the_attempt(self, store: Store) -> None:
        await _hook(store)
        await store.publish_events([make_event(1)], T0)
        name = _delivery_name(HOOK, 1)
        await _claim(store, T0, lease_until=LATER)
        first = _attempt(1, T0 + timedelta(seconds=1), status=503, body=b"\x00\xff busy \xfe")
        await store.record_attempts([_record(name, first, DeliveryStatus.RETRYING, T2)])
        assert await store.get_delivery(name) == Delivery(
            name=name,
            hook_name=HOOK,
            event_id=event_id(1),
            status=DeliveryStatus.RETRYING,
            attempt_count=1,
            create_time=T0,
            update_time=first.end_time,
            next_attempt_time=T2,
            first_attempt_time=first.start_time,
            last_error="HTTP 503",
            company_id=1,
            project_id=2,
            resource_name="Projects",
            resource_id=100,
            event_type="create",
            last_response_status=503,
        )
        assert await _claim(store, T2) == [name]  # the lease was cleared
        second = dataclasses.replace(
            _attempt(2, T2, status=None, body=b""), error="connect: refused", response_headers=()
        )
        await store.record_attempts([AttemptRecord(name, second, DeliveryStatus.FAILED, None, "gave up")])
        delivery = await store.get_delivery(name)
        assert (delivery.status, delivery.attempt_count, delivery.next_attempt_time) == (DeliveryStatus.FAILED, 2, None)
        assert (delivery.first_attempt_time, delivery.update_time, delivery.last_error) == (
            first.start_time,
            second.end_time,
            "gave up",
        )
        attempts = await store.list_attempts(name)
        assert attempts == [first, second]
        assert attempts[0].request_headers == (
            ("Authorization", "Bearer ••••oken"),
            ("Content-Type", "application/json"),
        )
        assert type(attempts[0].response_body) is bytes
        assert await store.next_due_time() is None

    async def test_record_attempts_applies_a_batch_in_order(self, store: Store) -> None:
        await _hook(store)
        await store.publish_events([make_event(1), make_event(2)], T0)
        one, two = _delivery_name(HOOK, 1), _delivery_name(HOOK, 2)
        await store.record_attempts(
            [
                _record(one, _attempt(1, T0, status=500), DeliveryStatus.RETRYING, T1),
                _record(two, _attempt(1, T0)),
                _record(one, _attempt(2, T1)),
            ]
        )
        assert [(await store.get_delivery(n)).status for n in (one, two)] == [DeliveryStatus.DELIVERED] * 2
        assert [a.number for a in await store.list_attempts(one)] == [1, 2]
        assert (await store.get_delivery(one)).first_attempt_time == T0

    async def test_record_attempts_keeps_the_status_of_a_delivery_no_longer_pending(self, store: Store) -> None:
        await _hook(store)
        await store.publish_events([make_event(1)], T0)
        name = _delivery_name(HOOK, 1)
        await _claim(store)
        await store.discard_pending(HOOK, T1, "hook disabled")
        discarded = await store.get_delivery(name)
        late = _attempt(1, T0)
        await store.record_attempts([_record(name, late)])
        assert await store.get_delivery(name) == discarded
        assert await store.list_attempts(name) == [late]

    async def test_record_attempts_skips_deliveries_that_no_longer_exist(self, store: Store) -> None:
        await _hook(store)
        await store.publish_events([make_event(1)], T0)
        purged = _delivery_name(HOOK, 9)
        await store.record_attempts(
            [_record(purged, _attempt(1, T0)), _record(_delivery_name(HOOK, 1), _attempt(1, T0))]
        )
        assert (await store.get_delivery(_delivery_name(HOOK, 1))).status is DeliveryStatus.DELIVERED
        with pytest.raises(NotFound, match=purged):
            await store.list_attempts(purged)

    async def test_record_attempts_refuses_a_pending_status_without_a_due_time(self, store: Store) -> None:
        await _hook(store)
        await store.publish_events([make_event(1)], T0)
        name = _delivery_name(HOOK, 1)
        good = _record(name, _attempt(1, T0))
        bad = _record(name, _attempt(2, T0), DeliveryStatus.RETRYING, None)
        with pytest.raises(ValueError, match="next_attempt_time"):
            await store.record_attempts([good, bad])
        assert (await store.get_delivery(name)).status is DeliveryStatus.QUEUED
        assert await store.list_attempts(name) == []

    async def test_discard_pending_discards_queued_and_retrying_deliveries_only(self, store: Store) -> None:
        other = "companies/1/projects/2/hooks/other"
        await _hook(store)
        await _hook(store, other)
        await store.publish_events([make_event(n) for n in (1, 2, 3)], T0)
        await store.record_attempts([_record(_delivery_name(HOOK, 1), _attempt(1, T0))])
        retrying = _attempt(1, T0, status=500)
        await store.record_attempts([_record(_delivery_name(HOOK, 2), retrying, DeliveryStatus.RETRYING, T2)])
        await _claim(store, T0, lease_until=LATER)  # 3 is leased
        delivered = await store.get_delivery(_delivery_name(HOOK, 1))
        assert await store.discard_pending(HOOK, T1, "the hook was disabled") == 2
        assert await store.get_delivery(_delivery_name(HOOK, 1)) == delivered
        for n, attempts in ((2, 1), (3, 0)):
            got = await store.get_delivery(_delivery_name(HOOK, n))
            assert (got.status, got.next_attempt_time, got.last_error, got.update_time, got.attempt_count) == (
                DeliveryStatus.DISCARDED,
                None,
                "the hook was disabled",
                T1,
                attempts,
            )
        assert [(await store.get_delivery(_delivery_name(other, n))).status for n in (1, 2, 3)] == [
            DeliveryStatus.QUEUED
        ] * 3
        assert await store.discard_pending(HOOK, T2, "again") == 0
        assert await store.discard_pending("companies/1/hooks/unknown", T2, "none") == 0
        await store.release([_delivery_name(other, n) for n in (1, 2, 3)])
        assert await _claim(store, LATER) == [_delivery_name(other, n) for n in (1, 2, 3)]

    async def test_discard_pending_works_for_a_deleted_hook(self, store: Store) -> None:
        await _hook(store)
        await store.publish_events([make_event(1)], T0)
        await store.delete_hook(HOOK)
        assert await store.discard_pending(HOOK, T1, "the hook was deleted") == 1
        assert (await store.get_delivery(_delivery_name(HOOK, 1))).status is DeliveryStatus.DISCARDED

    async def test_get_missing_delivery_raises_not_found(self, store: Store) -> None:
        name = _delivery_name(HOOK, 1)
        with pytest.raises(NotFound, match=name):
            await store.get_delivery(name)
        with pytest.raises(NotFound, match=name):
            await store.list_attempts(name)

    async def test_list_attempts_of_a_delivery_without_attempts_is_empty(self, store: Store) -> None:
        await _hook(store)
        await store.publish_events([make_event(1)], T0)
        assert await store.list_attempts(_delivery_name(HOOK, 1)) == []

    async def test_list_deliveries_pages_by_name_and_outlives_the_hook(self, store: Store) -> None:
        # "h-x" and "h0" sort right before and after "h/…": neither's deliveries may leak into h's.
        neighbours = ["companies/1/projects/2/hooks/h-x", "companies/1/projects/2/hooks/h0"]
        for name in [HOOK, *neighbours]:
            await _hook(store, name)
        await store.publish_events([make_event(n) for n in (3, 1, 4, 2, 5)], T0)
        names = [_delivery_name(HOOK, n) for n in range(1, 6)]
        await store.delete_hook(HOOK)
        pages: list[list[str]] = []
        after: str | None = None
        while page := [d.name for d in await store.list_deliveries(HOOK, after=after, limit=2)]:
            pages.append(page)
            after = page[-1]
        assert pages == [names[:2], names[2:4], names[4:]]
        assert [d.name for d in await store.list_deliveries(HOOK, after="a", limit=1)] == names[:1]
        assert await store.list_deliveries(HOOK, after=names[-1] + "~", limit=5) == []
        assert await store.list_deliveries("companies/1/projects/2/hooks/unknown", after=None, limit=5) == []
        for name in neighbours:
            assert len(await store.list_deliveries(name, after=None, limit=10)) == 5
        with pytest.raises(ValueError, match="limit"):
            await store.list_deliveries(HOOK, after=None, limit=0)

    async def test_purge_deletes_old_deliveries_attempts_and_events_in_batches(self, store: Store) -> None:
        await _hook(store)
        old = [make_event(n) for n in (1, 2, 3)] + [make_event(4, resource="Users")]  # 4 reaches no hook
        await store.publish_events(old, T0)
        await store.publish_events([make_event(5)], T1)
        await store.record_attempts([_record(_delivery_name(HOOK, 1), _attempt(1, T0))])
        counts = await _purge_all(store, T1, 2)
        # Three deliveries, four events, and the three changes that created the deliveries: changes
        # go in seq order up to the first not older than T1 (event 5's), so the record's change,
        # made after it, stays until that one goes.
        assert sum(counts) == 3 + 4 + 3
        assert counts[-1] == 0
        assert len(counts) == 6  # 2 + 2 + 2 + 2 + 2 + 0: the limit holds for every kind together
        assert await store.change_bounds() == (4, 5)
        for n in (1, 2, 3, 4):
            with pytest.raises(NotFound):
                await store.get_event(event_id(n))
        with pytest.raises(NotFound):
            await store.list_attempts(_delivery_name(HOOK, 1))
        assert await _delivered_to(store, HOOK) == [event_id(5)]
        assert (await store.get_event(event_id(5))).serial == 5
        assert await store.purge(T1, 100) == 0

    async def test_purge_keeps_events_that_deliveries_still_refer_to(self, store: Store) -> None:
        for name in ("a", "b", "c"):
            await _hook(store, f"companies/1/projects/2/hooks/{name}")
        await store.publish_events([make_event(1)], T0)
        assert await store.purge(T1, 2) == 2
        assert (await store.get_event(event_id(1))).serial == 1
        assert await store.purge(T1, 2) == 2  # the last delivery, then the event
        with pytest.raises(NotFound):
            await store.get_event(event_id(1))
        assert await store.purge(T1, 2) == 2  # then the changes that created the deliveries
        assert await store.purge(T1, 2) == 1
        assert await store.purge(T1, 2) == 0

    async def test_purge_deletes_pending_deliveries_too_and_they_are_no_longer_due(self, store: Store) -> None:
        await _hook(store)
        await store.publish_events([make_event(1)], T0)
        await _claim(store, T0)
        assert await store.purge(T1, 10) == 3  # the delivery, its event and the change that created it
        assert await store.next_due_time() is None
        assert await _claim(store, LATER) == []
        await store.record_attempts([_record(_delivery_name(HOOK, 1), _attempt(1, T0))])  # skipped: gone

    async def test_purge_spares_what_is_not_older_than_before(self, store: Store) -> None:
        await _hook(store)
        await store.publish_events([make_event(1)], T0)
        assert await store.purge(T0, 10) == 0
        assert await _delivered_to(store, HOOK) == [event_id(1)]
        with pytest.raises(ValueError, match="limit"):
            await store.purge(T1, 0)

    async def test_a_recreated_hook_never_gets_its_predecessors_deliveries(self, store: Store) -> None:
        """A deleted hook's pending deliveries (left behind, say, by a crash before they were
        discarded) are never claimed for a new hook of the same name."""
        await _hook(store, at=T0)
        await store.publish_events([make_event(1)], T0)
        await store.delete_hook(HOOK)
        await _hook(store, at=T1)
        assert await _claim(store, LATER) == []
        await store.publish_events([make_event(2)], T1)
        assert await _claim(store, LATER) == [_delivery_name(HOOK, 2)]
