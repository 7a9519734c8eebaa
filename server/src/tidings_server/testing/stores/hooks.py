"""The Store contract for hooks and triggers, run against every backend in conftest.BACKENDS."""

from __future__ import annotations

import dataclasses
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
import trio

from tidings_server.domain.errors import AlreadyExists, NotFound
from tidings_server.domain.model import Event, Hook, HookStatus, Ordering, RetryPolicy, Trigger
from tidings_server.domain.names import Parent
from tidings_server.domain.ports import Store
from tidings_server.testing.stores.samples import T0, T1, T2, make_hook, make_trigger

HOOK = "companies/1/hooks/h"
OTHER_HOOK = "companies/1/hooks/other"


async def _all_pages(fetch: Callable[[str | None], Awaitable[list[str]]]) -> list[str]:
    """Every name, fetched page by page, each page resuming after the last name of the one before."""
    names: list[str] = []
    after: str | None = None
    while page := await fetch(after):
        names += page
        after = page[-1]
    return names


async def _hook_names(store: Store, parent: Parent, limit: int = 100) -> list[str]:
    async def fetch(after: str | None) -> list[str]:
        return [h.name for h in await store.list_hooks(parent, after=after, limit=limit)]

    return await _all_pages(fetch)


async def _triggers(store: Store, hook: str = HOOK) -> list[Trigger]:
    return await store.list_triggers(hook, after=None, limit=1000)


# Hooks


class _Refused(Exception):
    pass


# Triggers


# Times


# Concurrency


class HookStoreContract:
    """What every store must do with hooks and triggers."""

    @pytest.fixture
    def store(self) -> Store:
        raise NotImplementedError("define a store fixture yielding an opened, empty store")

    async def test_create_then_get_returns_an_equal_hook(self, store: Store) -> None:
        hook = make_hook(HOOK, status=HookStatus.PAUSED)
        await store.create_hook(hook)
        assert await store.get_hook(HOOK) == hook

    @pytest.mark.parametrize(
        "policy",
        [
            RetryPolicy(),
            RetryPolicy(
                timeout=timedelta(seconds=2, microseconds=500),
                retry_window=timedelta(hours=72),
                initial_backoff=timedelta(milliseconds=100),
                max_backoff=timedelta(hours=24, microseconds=1),
                retryable_statuses=frozenset({503, 429, 500}),
            ),
            RetryPolicy(retryable_statuses=frozenset()),
        ],
        ids=["default", "custom", "no-retryable-statuses"],
    )
    async def test_delivery_settings_round_trip(self, store: Store, policy: RetryPolicy) -> None:
        hook = make_hook(HOOK, retry_policy=policy, ordering=Ordering.PER_RESOURCE, max_concurrency=3)
        await store.create_hook(hook)
        assert await store.get_hook(HOOK) == hook
        assert await store.list_hooks(Parent(1), after=None, limit=10) == [hook]
        changed = dataclasses.replace(hook, retry_policy=RetryPolicy(), ordering=Ordering.UNORDERED, max_concurrency=64)
        assert await store.update_hook(HOOK, lambda h: changed) == changed
        assert await store.get_hook(HOOK) == changed
        back = await store.update_hook(HOOK, lambda h: hook)
        assert await store.get_hook(HOOK) == back == hook

    async def test_project_hook_round_trips(self, store: Store) -> None:
        hook = make_hook("companies/1/projects/2/hooks/h")
        await store.create_hook(hook)
        got = await store.get_hook(hook.name)
        assert got == hook
        assert (got.company_id, got.project_id) == (1, 2)

    async def test_a_company_hooks_project_list_round_trips(self, store: Store) -> None:
        hook = make_hook(HOOK, projects=(1, 3, 2**63 - 1))
        await store.create_hook(hook)
        assert await store.get_hook(HOOK) == hook
        assert await store.list_hooks(Parent(1), after=None, limit=10) == [hook]
        assert await store.list_all_hooks(after=None, limit=10) == [hook]
        narrowed = await store.update_hook(HOOK, lambda h: dataclasses.replace(h, projects=(7,)))
        assert narrowed.projects == (7,)
        assert await store.get_hook(HOOK) == narrowed
        widened = await store.update_hook(HOOK, lambda h: dataclasses.replace(h, projects=()))
        assert await store.get_hook(HOOK) == widened == dataclasses.replace(hook, projects=())

    async def test_create_existing_name_raises_already_exists_and_keeps_the_first(self, store: Store) -> None:
        first = make_hook(HOOK)
        await store.create_hook(first)
        with pytest.raises(AlreadyExists, match=HOOK):
            await store.create_hook(make_hook(HOOK, display_name="second"))
        assert await store.get_hook(HOOK) == first

    async def test_get_missing_hook_raises_not_found(self, store: Store) -> None:
        with pytest.raises(NotFound, match=HOOK):
            await store.get_hook(HOOK)

    async def test_every_status_round_trips(self, store: Store) -> None:
        for status in HookStatus:
            hook = make_hook(f"companies/1/hooks/{status.value}", status=status)
            await store.create_hook(hook)
            assert (await store.get_hook(hook.name)).status is status

    async def test_list_hooks_orders_by_name_in_plain_string_order(self, store: Store) -> None:
        names = [f"companies/1/hooks/{i}" for i in ("b", "a-b", "a0", "a", "9", "a-a", "z")]
        for name in names:
            await store.create_hook(make_hook(name))
        listed = await store.list_hooks(Parent(1), after=None, limit=100)
        assert [h.name for h in listed] == sorted(names)
        assert listed[0] == make_hook(sorted(names)[0])

    async def test_list_hooks_pages_resume_strictly_after(self, store: Store) -> None:
        names = sorted(f"companies/1/hooks/h{i:02d}" for i in range(7))
        for name in reversed(names):
            await store.create_hook(make_hook(name))
        first = await store.list_hooks(Parent(1), after=None, limit=3)
        assert [h.name for h in first] == names[:3]
        second = await store.list_hooks(Parent(1), after=names[2], limit=3)
        assert [h.name for h in second] == names[3:6]
        assert await _hook_names(store, Parent(1), limit=2) == names
        # ``after`` need not be an existing name.
        between = await store.list_hooks(Parent(1), after="companies/1/hooks/h03x", limit=10)
        assert [h.name for h in between] == names[4:]
        assert await store.list_hooks(Parent(1), after=names[-1], limit=10) == []

    async def test_list_hooks_returns_only_hooks_directly_under_the_parent(self, store: Store) -> None:
        names = [
            "companies/1/hooks/c",
            "companies/1/projects/2/hooks/p2",
            "companies/1/projects/10/hooks/p10",
            "companies/1/projects/2/hooks/another",
            "companies/11/hooks/c",
            "companies/2/projects/2/hooks/elsewhere",
        ]
        for name in names:
            await store.create_hook(make_hook(name))
        assert await _hook_names(store, Parent(1)) == ["companies/1/hooks/c"]
        assert await _hook_names(store, Parent(11)) == ["companies/11/hooks/c"]
        assert await _hook_names(store, Parent(1, 2)) == [
            "companies/1/projects/2/hooks/another",
            "companies/1/projects/2/hooks/p2",
        ]
        assert await _hook_names(store, Parent(1, 10)) == ["companies/1/projects/10/hooks/p10"]
        assert await _hook_names(store, Parent(1, 3)) == []
        assert await _hook_names(store, Parent(3)) == []

    async def test_list_hooks_any_project_returns_project_hooks_of_every_project(self, store: Store) -> None:
        names = [
            "companies/1/hooks/company-level",
            "companies/1/projects/2/hooks/b",
            "companies/1/projects/10/hooks/a",
            "companies/1/projects/2/hooks/a",
            "companies/1/projects/3/hooks/a",
            "companies/2/projects/2/hooks/a",
        ]
        for name in names:
            await store.create_hook(make_hook(name))
        everywhere = Parent(1, None, any_project=True)
        expected = [
            "companies/1/projects/10/hooks/a",
            "companies/1/projects/2/hooks/a",
            "companies/1/projects/2/hooks/b",
            "companies/1/projects/3/hooks/a",
        ]
        assert await _hook_names(store, everywhere) == expected
        assert await _hook_names(store, everywhere, limit=1) == expected
        assert await _hook_names(store, Parent(2, None, any_project=True)) == ["companies/2/projects/2/hooks/a"]
        assert await _hook_names(store, Parent(3, None, any_project=True)) == []

    @pytest.mark.parametrize("limit", [0, -1])
    async def test_list_hooks_rejects_a_limit_below_one(self, store: Store, limit: int) -> None:
        with pytest.raises(ValueError, match="limit"):
            await store.list_hooks(Parent(1), after=None, limit=limit)

    async def test_list_all_hooks_walks_every_parent_in_name_order_page_by_page(self, store: Store) -> None:
        names = [
            "companies/1/hooks/c",
            "companies/1/projects/2/hooks/p2",
            "companies/1/projects/10/hooks/p10",
            "companies/11/hooks/c",
            "companies/2/projects/2/hooks/elsewhere",
            "companies/2/hooks/a",
        ]
        for name in reversed(names):
            await store.create_hook(make_hook(name))
        listed = await store.list_all_hooks(after=None, limit=100)
        assert [h.name for h in listed] == sorted(names)
        assert listed[0] == make_hook(sorted(names)[0])

        async def fetch(after: str | None) -> list[str]:
            return [h.name for h in await store.list_all_hooks(after=after, limit=2)]

        assert await _all_pages(fetch) == sorted(names)
        between = await store.list_all_hooks(after="companies/11", limit=10)  # need not be a name
        assert [h.name for h in between] == sorted(names)[sorted(names).index("companies/11/hooks/c") :]
        await store.delete_hook("companies/11/hooks/c")
        assert "companies/11/hooks/c" not in await _all_pages(fetch)

    @pytest.mark.parametrize("limit", [0, -1])
    async def test_list_all_hooks_rejects_a_limit_below_one(self, store: Store, limit: int) -> None:
        with pytest.raises(ValueError, match="limit"):
            await store.list_all_hooks(after=None, limit=limit)

    async def test_update_hook_stores_and_returns_the_changed_hook(self, store: Store) -> None:
        await store.create_hook(make_hook(HOOK))

        def change(current: Hook) -> Hook:
            return dataclasses.replace(current, display_name="renamed", status=HookStatus.DISABLED, update_time=T1)

        new = await store.update_hook(HOOK, change)
        assert new == make_hook(HOOK, display_name="renamed", status=HookStatus.DISABLED, update_time=T1)
        assert await store.get_hook(HOOK) == new

    async def test_update_hook_passes_the_current_hook_to_change(self, store: Store) -> None:
        await store.create_hook(make_hook(HOOK))
        await store.update_hook(HOOK, lambda h: dataclasses.replace(h, display_name="one"))
        seen: list[Hook] = []

        def change(current: Hook) -> Hook:
            seen.append(current)
            return dataclasses.replace(current, display_name=current.display_name + "+two")

        assert (await store.update_hook(HOOK, change)).display_name == "one+two"
        assert seen == [make_hook(HOOK, display_name="one")]

    async def test_update_missing_hook_raises_not_found_without_calling_change(self, store: Store) -> None:
        def change(current: Hook) -> Hook:
            raise AssertionError("change() called for a missing hook")

        with pytest.raises(NotFound, match=HOOK):
            await store.update_hook(HOOK, change)

    async def test_update_hook_whose_change_raises_leaves_the_hook_unchanged(self, store: Store) -> None:
        hook = make_hook(HOOK)
        await store.create_hook(hook)

        def change(current: Hook) -> Hook:
            raise _Refused("no")

        with pytest.raises(_Refused):
            await store.update_hook(HOOK, change)
        assert await store.get_hook(HOOK) == hook

    @pytest.mark.parametrize(
        "changes",
        [
            {"name": "companies/1/hooks/moved"},
            {"project_id": 5},
            {"company_id": 2},
        ],
    )
    async def test_update_hook_refuses_to_rename_or_move_and_changes_nothing(
        self, store: Store, changes: dict[str, Any]
    ) -> None:
        hook = make_hook(HOOK)
        await store.create_hook(hook)
        with pytest.raises(ValueError, match="must not rename"):
            await store.update_hook(HOOK, lambda h: dataclasses.replace(h, display_name="x", **changes))
        assert await store.get_hook(HOOK) == hook
        with pytest.raises(NotFound):
            await store.get_hook("companies/1/hooks/moved")

    async def test_delete_hook_removes_it(self, store: Store) -> None:
        await store.create_hook(make_hook(HOOK))
        await store.create_hook(make_hook(OTHER_HOOK))
        await store.delete_hook(HOOK)
        with pytest.raises(NotFound):
            await store.get_hook(HOOK)
        assert await _hook_names(store, Parent(1)) == [OTHER_HOOK]

    async def test_delete_missing_hook_raises_not_found(self, store: Store) -> None:
        with pytest.raises(NotFound, match=HOOK):
            await store.delete_hook(HOOK)

    async def test_delete_hook_deletes_its_triggers(self, store: Store) -> None:
        await store.create_hook(make_hook(HOOK))
        await store.create_hook(make_hook(OTHER_HOOK))
        await store.add_triggers(HOOK, [make_trigger(HOOK, at=T0), make_trigger(HOOK, event="update")])
        kept = await store.add_triggers(OTHER_HOOK, [make_trigger(OTHER_HOOK)])
        await store.delete_hook(HOOK)
        with pytest.raises(NotFound):
            await store.list_triggers(HOOK, after=None, limit=10)
        # A new hook of the same name starts without triggers; the old create_time is gone too.
        await store.create_hook(make_hook(HOOK, at=T2))
        assert await _triggers(store) == []
        assert await store.add_triggers(HOOK, [make_trigger(HOOK, at=T2)]) == [make_trigger(HOOK, at=T2)]
        assert await _triggers(store, OTHER_HOOK) == kept

    async def test_add_triggers_returns_them_in_input_order(self, store: Store) -> None:
        await store.create_hook(make_hook(HOOK))
        batch = [make_trigger(HOOK, "Projects", "update"), make_trigger(HOOK, "Budget Line Items", "create")]
        assert await store.add_triggers(HOOK, batch) == batch
        assert await _triggers(store) == sorted(batch, key=lambda t: t.name)

    async def test_add_triggers_keeps_existing_ones_with_their_original_create_time(self, store: Store) -> None:
        await store.create_hook(make_hook(HOOK))
        first = make_trigger(HOOK, at=T0)
        assert await store.add_triggers(HOOK, [first]) == [first]
        again = await store.add_triggers(
            HOOK, [make_trigger(HOOK, "Users", "create", at=T1), make_trigger(HOOK, at=T1)]
        )
        assert again == [make_trigger(HOOK, "Users", "create", at=T1), first]
        assert again[1].create_time == T0
        assert await _triggers(store) == [first, make_trigger(HOOK, "Users", "create", at=T1)]

    async def test_add_triggers_allows_duplicates_within_one_batch(self, store: Store) -> None:
        await store.create_hook(make_hook(HOOK))
        added = await store.add_triggers(HOOK, [make_trigger(HOOK, at=T1), make_trigger(HOOK, at=T2)])
        assert added == [make_trigger(HOOK, at=T1), make_trigger(HOOK, at=T1)]
        assert await _triggers(store) == [make_trigger(HOOK, at=T1)]

    async def test_add_no_triggers_returns_an_empty_list(self, store: Store) -> None:
        await store.create_hook(make_hook(HOOK))
        assert await store.add_triggers(HOOK, []) == []

    async def test_add_triggers_to_missing_hook_raises_not_found(self, store: Store) -> None:
        with pytest.raises(NotFound, match=HOOK):
            await store.add_triggers(HOOK, [make_trigger(HOOK)])

    async def test_add_triggers_batch_with_a_foreign_trigger_changes_nothing(self, store: Store) -> None:
        await store.create_hook(make_hook(HOOK))
        await store.create_hook(make_hook(OTHER_HOOK))
        existing = await store.add_triggers(HOOK, [make_trigger(HOOK)])
        batch = [make_trigger(HOOK, "Users", "create"), make_trigger(OTHER_HOOK, "Users", "update")]
        with pytest.raises(ValueError, match="does not belong"):
            await store.add_triggers(HOOK, batch)
        assert await _triggers(store) == existing
        assert await _triggers(store, OTHER_HOOK) == []

    async def test_add_triggers_batch_with_a_naive_time_changes_nothing(self, store: Store) -> None:
        await store.create_hook(make_hook(HOOK))
        naive = make_trigger(HOOK, "Users", "update", at=T1.replace(tzinfo=None))
        with pytest.raises(ValueError, match="timezone-aware"):
            await store.add_triggers(HOOK, [make_trigger(HOOK), naive])
        assert await _triggers(store) == []

    async def test_delete_triggers_removes_the_named_ones(self, store: Store) -> None:
        await store.create_hook(make_hook(HOOK))
        a, b, c = (make_trigger(HOOK, "Projects", e) for e in ("create", "delete", "update"))
        await store.add_triggers(HOOK, [a, b, c])
        await store.delete_triggers(HOOK, [c.name, a.name], allow_missing=False)
        assert await _triggers(store) == [b]
        await store.delete_triggers(HOOK, [], allow_missing=False)
        assert await _triggers(store) == [b]

    async def test_delete_triggers_of_missing_hook_raises_not_found(self, store: Store) -> None:
        trigger = make_trigger(HOOK).name
        for allow_missing in (False, True):
            with pytest.raises(NotFound, match=HOOK):
                await store.delete_triggers(HOOK, [trigger], allow_missing=allow_missing)

    async def test_delete_triggers_with_a_missing_name_names_the_first_and_deletes_nothing(self, store: Store) -> None:
        await store.create_hook(make_hook(HOOK))
        a, b = make_trigger(HOOK, "Projects", "create"), make_trigger(HOOK, "Projects", "update")
        await store.add_triggers(HOOK, [a, b])
        first_missing = make_trigger(HOOK, "Users", "create").name
        second_missing = make_trigger(HOOK, "Users", "delete").name
        with pytest.raises(NotFound, match=first_missing) as raised:
            await store.delete_triggers(HOOK, [a.name, first_missing, b.name, second_missing], allow_missing=False)
        assert second_missing not in str(raised.value)
        assert await _triggers(store) == [a, b]

    async def test_delete_triggers_allow_missing_deletes_those_that_exist(self, store: Store) -> None:
        await store.create_hook(make_hook(HOOK))
        a, b = make_trigger(HOOK, "Projects", "create"), make_trigger(HOOK, "Projects", "update")
        await store.add_triggers(HOOK, [a, b])
        missing = make_trigger(HOOK, "Users", "create").name
        await store.delete_triggers(HOOK, [missing, a.name, a.name], allow_missing=True)
        assert await _triggers(store) == [b]

    async def test_delete_triggers_leaves_other_hooks_alone(self, store: Store) -> None:
        await store.create_hook(make_hook(HOOK))
        await store.create_hook(make_hook(OTHER_HOOK))
        await store.add_triggers(HOOK, [make_trigger(HOOK)])
        other = await store.add_triggers(OTHER_HOOK, [make_trigger(OTHER_HOOK)])
        with pytest.raises(NotFound):
            await store.delete_triggers(HOOK, [make_trigger(OTHER_HOOK).name], allow_missing=False)
        await store.delete_triggers(HOOK, [make_trigger(HOOK).name], allow_missing=False)
        assert await _triggers(store, OTHER_HOOK) == other

    async def test_list_triggers_orders_and_pages_by_name(self, store: Store) -> None:
        await store.create_hook(make_hook(HOOK))
        await store.create_hook(make_hook(OTHER_HOOK))
        pairs = [("Projects", "update"), ("Budget Line Items", "create"), ("Projects", "create"), ("RFIs", "delete")]
        await store.add_triggers(HOOK, [make_trigger(HOOK, r, e) for r, e in pairs])
        await store.add_triggers(OTHER_HOOK, [make_trigger(OTHER_HOOK, "Users", "create")])
        names = sorted(make_trigger(HOOK, r, e).name for r, e in pairs)

        async def fetch(after: str | None) -> list[str]:
            return [t.name for t in await store.list_triggers(HOOK, after=after, limit=3)]

        assert await _all_pages(fetch) == names
        assert [t.name for t in await store.list_triggers(HOOK, after=names[1], limit=1)] == [names[2]]
        assert await store.list_triggers(HOOK, after=names[-1], limit=5) == []

    async def test_list_triggers_of_missing_hook_raises_not_found(self, store: Store) -> None:
        with pytest.raises(NotFound, match=HOOK):
            await store.list_triggers(HOOK, after=None, limit=10)

    async def test_list_triggers_rejects_a_limit_below_one(self, store: Store) -> None:
        await store.create_hook(make_hook(HOOK))
        with pytest.raises(ValueError, match="limit"):
            await store.list_triggers(HOOK, after=None, limit=0)

    @pytest.mark.parametrize(
        "moment",
        [
            T0,
            datetime(2024, 2, 29, 23, 59, 59, 999999, tzinfo=timezone(timedelta(hours=5, minutes=30))),
            datetime(1969, 12, 31, 23, 59, 59, 999999, tzinfo=UTC),
            datetime(2262, 4, 11, 23, 47, 16, 854775, tzinfo=timezone(timedelta(hours=-7))),
            datetime(1, 1, 1, tzinfo=UTC),
            datetime(9999, 12, 31, 23, 59, 59, 999998, tzinfo=UTC),
        ],
        ids=["utc", "plus-0530", "before-epoch", "minus-0700", "earliest", "latest"],
    )
    async def test_times_round_trip_exactly_and_timezone_aware(self, store: Store, moment: datetime) -> None:
        hook = make_hook(HOOK, create_time=moment, update_time=moment + timedelta(microseconds=1))
        await store.create_hook(hook)
        got = await store.get_hook(HOOK)
        assert (got.create_time, got.update_time) == (hook.create_time, hook.update_time)
        assert got.create_time.utcoffset() is not None
        assert got.update_time.utcoffset() is not None
        assert got.create_time.astimezone(UTC).microsecond == moment.astimezone(UTC).microsecond
        updated = await store.update_hook(HOOK, lambda h: dataclasses.replace(h, update_time=moment))
        assert (await store.get_hook(HOOK)).update_time == updated.update_time == moment
        await store.add_triggers(HOOK, [make_trigger(HOOK, at=moment)])
        [trigger] = await _triggers(store)
        assert trigger.create_time == moment
        assert trigger.create_time.utcoffset() is not None

    async def test_naive_times_are_refused(self, store: Store) -> None:
        naive = T0.replace(tzinfo=None)
        with pytest.raises(ValueError, match="timezone-aware"):
            await store.create_hook(make_hook(HOOK, create_time=naive))
        with pytest.raises(NotFound):
            await store.get_hook(HOOK)
        hook = make_hook(HOOK)
        await store.create_hook(hook)
        with pytest.raises(ValueError, match="timezone-aware"):
            await store.update_hook(HOOK, lambda h: dataclasses.replace(h, update_time=naive))
        assert await store.get_hook(HOOK) == hook

    async def test_concurrent_operations_all_apply(self, store: Store) -> None:
        names = [f"companies/1/hooks/h{i:02d}" for i in range(20)]

        async def create_and_trigger(name: str) -> None:
            await store.create_hook(make_hook(name))
            await store.add_triggers(name, [make_trigger(name)])
            await store.update_hook(name, lambda h: dataclasses.replace(h, display_name=h.name))

        async with trio.open_nursery() as nursery:
            for name in names:
                nursery.start_soon(create_and_trigger, name)
        hooks = await store.list_hooks(Parent(1), after=None, limit=100)
        assert [h.display_name for h in hooks] == names
        for name in names:
            assert await _triggers(store, name) == [make_trigger(name)]

    # -- signing and the start-up check -------------------------------------------------------

    async def test_signing_fields_round_trip_through_update_and_claim(self, store: Store) -> None:
        name = "companies/8/projects/6778/hooks/signed"
        created = make_hook(name, signing_disabled=True, signing_secret="whsec_" + "A" * 43 + "=")
        await store.create_hook(created)
        assert await store.get_hook(name) == created
        rotated = dataclasses.replace(
            created,
            signing_disabled=False,
            signing_secret="whsec_" + "B" * 43 + "=",
            previous_signing_secret=created.signing_secret,
            previous_secret_expire_time=T0 + timedelta(hours=24, microseconds=1),
        )
        assert await store.update_hook(name, lambda _: rotated) == rotated
        assert await store.get_hook(name) == rotated
        await store.add_triggers(name, [make_trigger(name, "RFIs", "update")])
        event = Event("01JKG7HB7V8X0A3R2B4C5D6E7F", 0, T0, 8, 6778, 1, "RFIs", 5, "update")
        await store.publish_events([event], T0)
        [claim] = await store.claim_due(T0, limit=10, lease_until=T0 + timedelta(minutes=1), owner="node-a")
        assert claim.hook == rotated  # what the engine signs with

    async def test_payload_formats_in_use_counts_hooks_per_format(self, store: Store) -> None:
        assert await store.payload_formats_in_use() == {}
        for hook_id, payload_format in (("b", "procore.v4"), ("a", "procore.v4"), ("c", "slack.v1")):
            await store.create_hook(make_hook(f"companies/8/hooks/{hook_id}", payload_format=payload_format))
        assert await store.payload_formats_in_use() == {
            "procore.v4": (2, "companies/8/hooks/a"),
            "slack.v1": (1, "companies/8/hooks/c"),
        }
        await store.delete_hook("companies/8/hooks/c")
        assert await store.payload_formats_in_use() == {"procore.v4": (2, "companies/8/hooks/a")}
