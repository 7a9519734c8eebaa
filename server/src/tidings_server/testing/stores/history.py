"""The Store contract for delivery history (lists, overviews, redelivery, the change log), run
against every backend in conftest.BACKENDS."""

from __future__ import annotations

import dataclasses
from datetime import datetime, timedelta
from typing import Any

import pytest

from tidings_server.domain import filtering
from tidings_server.domain.errors import NotFound
from tidings_server.domain.model import Attempt, DeliveryStatus, HookStatus, RenderedBody
from tidings_server.domain.ports import DELIVERY_FILTER_SCHEMA, AttemptRecord, DeliveryQuery, Store
from tidings_server.testing.stores.samples import MICROSECOND, T0, T1, T2, event_id, make_event, make_hook, make_trigger

QUEUED, RETRYING, DELIVERED, FAILED, DISCARDED = (
    DeliveryStatus.QUEUED,
    DeliveryStatus.RETRYING,
    DeliveryStatus.DELIVERED,
    DeliveryStatus.FAILED,
    DeliveryStatus.DISCARDED,
)
HOOK = "companies/1/projects/2/hooks/h"
SIBLING = "companies/1/projects/2/hooks/s"  # the same project
ELSEWHERE = "companies/1/projects/3/hooks/e"  # another project of the company
COMPANY_HOOK = "companies/1/hooks/c"
FOREIGN = "companies/9/projects/2/hooks/f"  # another company
PAIRS = (("Projects", "create"), ("Projects", "update"), ("RFIs", "create"), ("RFIs", "update"))
LATER = T2 + timedelta(hours=1)
MAX_PAGES = 50  # no test pages further: more means a page that does not move on


async def _hook(store: Store, name: str = HOOK, *, at: datetime = T0, **changes: Any) -> None:
    await store.create_hook(make_hook(name, at=at, **changes))
    await store.add_triggers(name, [make_trigger(name, r, e, at=at) for r, e in PAIRS])


def _name(hook: str, n: int) -> str:
    return f"{hook}/deliveries/{event_id(n)}"


def _attempt(number: int, start: datetime, status: int | None, error: str = "", millis: int = 250) -> Attempt:
    return Attempt(number, start, start + timedelta(milliseconds=millis), (), status, (), b"", error)


def _record(
    name: str,
    attempt: Attempt,
    status: DeliveryStatus,
    next_attempt_time: datetime | None = None,
    rendered: RenderedBody | None = None,
) -> AttemptRecord:
    return AttemptRecord(name, attempt, status, next_attempt_time, attempt.error, rendered)


async def _names(
    store: Store, query: DeliveryQuery, *, after: str | None = None, limit: int = 100, scan_limit: int = 1000
) -> list[str]:
    page = await store.query_deliveries(query, after=after, limit=limit, scan_limit=scan_limit)
    return [d.name for d, _ in page.deliveries]


async def _every_page(store: Store, query: DeliveryQuery, *, limit: int, scan_limit: int) -> list[list[str]]:
    pages: list[list[str]] = []
    after: str | None = None
    while len(pages) < MAX_PAGES:
        page = await store.query_deliveries(query, after=after, limit=limit, scan_limit=scan_limit)
        pages.append([d.name for d, _ in page.deliveries])
        if page.next_after is None:
            return pages
        after = page.next_after
    raise AssertionError(f"still paging after {MAX_PAGES} pages: {pages[-3:]}")


# A hook's history with one delivery per kind: event n of the table below, published at its time.
#   n  resource  id   type    created  ends as                       last response
#   1  Projects  100  create  T0       delivered                     200
#   2  RFIs      7    update  T0       failed                        404
#   3  RFIs      8    update  T1       retrying                      503
#   4  Projects  100  update  T1       discarded (window exhausted)  none (connect error)
#   5  RFIs      7    create  T2       queued                        -
#   6  Projects  101  create  T2       delivered, second attempt     204
SAMPLE = {
    1: ("Projects", 100, "create", T0),
    2: ("RFIs", 7, "update", T0),
    3: ("RFIs", 8, "update", T1),
    4: ("Projects", 100, "update", T1),
    5: ("RFIs", 7, "create", T2),
    6: ("Projects", 101, "create", T2),
}


async def _sample(store: Store, hook: str = HOOK) -> None:
    await _hook(store, hook)
    for n, (resource, resource_id, event_type, at) in SAMPLE.items():
        await store.publish_events([make_event(n, resource=resource, resource_id=resource_id, event=event_type)], at)
    start = T2 + timedelta(seconds=1)
    await store.record_attempts(
        [
            _record(_name(hook, 1), _attempt(1, start, 200), DELIVERED),
            _record(_name(hook, 2), _attempt(1, start, 404, "HTTP 404"), FAILED),
            _record(_name(hook, 3), _attempt(1, start, 503, "HTTP 503"), RETRYING, LATER),
            _record(_name(hook, 4), _attempt(1, start, None, "connect: refused"), DISCARDED),
            _record(_name(hook, 6), _attempt(1, start, 500, "HTTP 500"), RETRYING, start),
            _record(_name(hook, 6), _attempt(2, start + timedelta(seconds=1), 204), DELIVERED),
        ]
    )


def _filter(text: str) -> filtering.Expr:
    expr = filtering.parse(text, DELIVERY_FILTER_SCHEMA)
    assert expr is not None
    return expr


def _rfc3339(at: datetime) -> str:
    return at.isoformat().replace("+00:00", "Z")


# Listing: what a query selects


CRITERIA: list[tuple[str, dict[str, Any], list[int]]] = [
    ("nothing", {}, [6, 5, 4, 3, 2, 1]),
    ("one status", {"statuses": frozenset({DELIVERED})}, [6, 1]),
    ("statuses", {"statuses": frozenset({FAILED, DISCARDED})}, [4, 2]),
    ("pending statuses", {"statuses": frozenset({QUEUED, RETRYING})}, [5, 3]),
    ("every status", {"statuses": frozenset(DeliveryStatus)}, [6, 5, 4, 3, 2, 1]),
    ("resource name", {"resource_name": "RFIs"}, [5, 3, 2]),
    ("resource id", {"resource_id": 100}, [4, 1]),
    ("resource name and id", {"resource_name": "RFIs", "resource_id": 7}, [5, 2]),
    ("another resource's id", {"resource_name": "RFIs", "resource_id": 100}, []),
    ("event type", {"event_type": "update"}, [4, 3, 2]),
    ("start time", {"start_time": T1}, [6, 5, 4, 3]),
    ("start time just after", {"start_time": T1 + MICROSECOND}, [6, 5]),
    ("end time", {"end_time": T1}, [2, 1]),
    ("start and end time", {"start_time": T1, "end_time": T2}, [4, 3]),
    ("filter on status", {"filter": 'status = "failed" OR status = retrying'}, [3, 2]),
    ("filter on response status", {"filter": "response_status >= 500"}, [3]),
    ("filter on 2xx", {"filter": "response_status >= 200 AND response_status < 300"}, [6, 1]),
    # No answer (4) and no attempt (5) have no response status: neither = nor NOT = holds.
    ("filter, NOT on response status", {"filter": "NOT response_status = 200"}, [6, 3, 2]),
    ("filter, != on response status", {"filter": "response_status != 200"}, [6, 3, 2]),
    ("filter on attempts", {"filter": "attempt_count = 0 OR attempt_count > 1"}, [6, 5]),
    (
        "filter on create time",
        {"filter": f'create_time >= "{_rfc3339(T1)}" AND create_time < "{_rfc3339(T2)}"'},
        [4, 3],
    ),
    ("filter on update time", {"filter": f'update_time < "{_rfc3339(T2 + timedelta(seconds=1))}"'}, [5]),
    ("filter on resource", {"filter": 'resource_name = "Projects" AND resource_id = 100'}, [4, 1]),
    ("filter on event type", {"filter": "event_type = create"}, [6, 5, 1]),
    ("filter on hook", {"filter": f'hook = "{HOOK}"'}, [6, 5, 4, 3, 2, 1]),
    ("filter on project", {"filter": "project_id = 3"}, []),
    (
        "statuses, resource and filter",
        {"statuses": frozenset({DELIVERED, DISCARDED}), "resource_name": "Projects", "filter": "attempt_count = 1"},
        [4, 1],
    ),
    (
        "resource id, status and time",
        {"resource_id": 7, "statuses": frozenset({QUEUED, FAILED}), "start_time": T1},
        [5],
    ),
    ("status and event type", {"statuses": frozenset({RETRYING, FAILED}), "event_type": "update"}, [3, 2]),
    ("status and NOT filter", {"statuses": frozenset({DELIVERED}), "filter": "NOT response_status = 204"}, [1]),
]


# Listing: parents


async def _scoped(store: Store) -> None:
    """Event 1 reaches every hook of company 1's project 2 and the foreign one; event 2, of
    project 3, reaches ELSEWHERE; event 3, company-level, reaches the company hook."""
    for name in (HOOK, SIBLING, ELSEWHERE, FOREIGN):
        await _hook(store, name)
    await store.create_hook(make_hook(COMPANY_HOOK))
    await store.add_triggers(COMPANY_HOOK, [make_trigger(COMPANY_HOOK, "Users", "create")])
    await store.publish_events([make_event(1)], T0)
    await store.publish_events([make_event(1, company=9, id=event_id(11))], T0)
    await store.publish_events([make_event(2, project=3)], T0)
    await store.publish_events([make_event(3, project=None, resource="Users")], T0)
    await store.publish_events([make_event(4)], T0)


# Listing: paging while deliveries arrive, and the scan budget


# Bodies


# Redelivering


# The change log


async def _watch(store: Store, query: DeliveryQuery, after: int = 0) -> list[tuple[int, str, DeliveryStatus, int]]:
    page = await store.list_changes(query, after=after, limit=100, scan_limit=100)
    return [(c.seq, c.delivery.name, c.delivery.status, c.delivery.attempt_count) for c in page.changes]


# Retention


# Overview


class HistoryStoreContract:
    """What every store must answer about delivery history: lists, stats, redelivery and the change log."""

    @pytest.fixture
    def store(self) -> Store:
        raise NotImplementedError("define a store fixture yielding an opened, empty store")

    @pytest.mark.parametrize(("criteria", "expected"), [pytest.param(c, e, id=i) for i, c, e in CRITERIA])
    @pytest.mark.parametrize("parent", ["hook", "project", "company"])
    async def test_query_selects_what_every_criterion_says(
        self, store: Store, parent: str, criteria: dict[str, Any], expected: list[int]
    ) -> None:
        await _sample(store)
        if "filter" in criteria:
            criteria = {**criteria, "filter": _filter(criteria["filter"])}
        scopes: dict[str, dict[str, Any]] = {
            "hook": {"hook_name": HOOK},
            "project": {"company_id": 1, "project_id": 2},
            "company": {"company_id": 1},
        }
        scope = scopes[parent]
        query = DeliveryQuery(**scope, **criteria)
        assert await _names(store, query) == [_name(HOOK, n) for n in expected]
        # One at a time, each page resuming after the one before, the same deliveries come back.
        pages = await _every_page(store, query, limit=1, scan_limit=1000)
        assert [name for page in pages for name in page] == [_name(HOOK, n) for n in expected]

    async def test_query_returns_each_delivery_with_its_event_as_stored(self, store: Store) -> None:
        await _sample(store)
        page = await store.query_deliveries(DeliveryQuery(hook_name=HOOK), after=None, limit=2, scan_limit=10)
        assert [d for d, _ in page.deliveries] == [await store.get_delivery(_name(HOOK, n)) for n in (6, 5)]
        assert [e for _, e in page.deliveries] == [await store.get_event(event_id(n)) for n in (6, 5)]
        delivery, event = page.deliveries[1]
        assert (delivery.company_id, delivery.project_id, delivery.resource_name, delivery.resource_id) == (
            1,
            2,
            "RFIs",
            7,
        )
        assert (delivery.event_type, delivery.last_response_status, event.serial) == ("create", None, 5)
        assert page.next_after == _name(HOOK, 5)

    async def test_query_keeps_the_last_response_status_of_the_last_attempt(self, store: Store) -> None:
        await _sample(store)
        statuses = {n: (await store.get_delivery(_name(HOOK, n))).last_response_status for n in SAMPLE}
        assert statuses == {1: 200, 2: 404, 3: 503, 4: None, 5: None, 6: 204}

    async def test_query_orders_by_event_id_not_by_publish_order(self, store: Store) -> None:
        await _hook(store)
        await store.publish_events([make_event(n) for n in (3, 1, 4, 2, 5)], T0)
        expected = [_name(HOOK, n) for n in (5, 4, 3, 2, 1)]
        assert await _names(store, DeliveryQuery(hook_name=HOOK)) == expected
        assert await _names(store, DeliveryQuery(company_id=1, project_id=2)) == expected

    async def test_query_needs_a_parent_and_positive_limits(self, store: Store) -> None:
        with pytest.raises(ValueError, match="hook_name or a company_id"):
            await store.query_deliveries(DeliveryQuery(project_id=2), after=None, limit=1, scan_limit=1)
        with pytest.raises(ValueError, match="limit"):
            await store.query_deliveries(DeliveryQuery(hook_name=HOOK), after=None, limit=0, scan_limit=1)
        with pytest.raises(ValueError, match="limit"):
            await store.query_deliveries(DeliveryQuery(hook_name=HOOK), after=None, limit=1, scan_limit=0)

    async def test_query_of_an_unknown_hook_is_empty(self, store: Store) -> None:
        page = await store.query_deliveries(DeliveryQuery(hook_name=HOOK), after=None, limit=5, scan_limit=5)
        assert (page.deliveries, page.next_after) == ([], None)

    async def test_a_project_lists_every_hook_of_it_including_deleted_ones(self, store: Store) -> None:
        await _scoped(store)
        await store.delete_hook(SIBLING)
        # One event's deliveries follow each other by name, descending.
        expected = [_name(SIBLING, 4), _name(HOOK, 4), _name(SIBLING, 1), _name(HOOK, 1)]
        assert await _names(store, DeliveryQuery(company_id=1, project_id=2)) == expected
        assert await _names(store, DeliveryQuery(company_id=1, project_id=3)) == [_name(ELSEWHERE, 2)]
        assert await _names(store, DeliveryQuery(company_id=9, project_id=2)) == [_name(FOREIGN, 11)]
        assert await _names(store, DeliveryQuery(hook_name=SIBLING)) == [_name(SIBLING, 4), _name(SIBLING, 1)]

    async def test_a_company_lists_its_company_and_project_hooks(self, store: Store) -> None:
        await _scoped(store)
        expected = [
            _name(SIBLING, 4),
            _name(HOOK, 4),
            _name(COMPANY_HOOK, 3),
            _name(ELSEWHERE, 2),
            _name(SIBLING, 1),
            _name(HOOK, 1),
        ]
        assert await _names(store, DeliveryQuery(company_id=1)) == expected
        # A page boundary between two deliveries of one event resumes at the second.
        pages = await _every_page(store, DeliveryQuery(company_id=1), limit=1, scan_limit=1)
        assert pages == [[name] for name in expected]
        assert await _names(store, DeliveryQuery(company_id=1), after=_name(HOOK, 4)) == expected[2:]
        # A project filter under a company finds the project's deliveries; company hooks have none.
        only_two = DeliveryQuery(company_id=1, filter=_filter("project_id = 2"))
        assert await _names(store, only_two) == [expected[0], expected[1], expected[4], expected[5]]
        assert await _names(store, DeliveryQuery(company_id=1, filter=_filter("NOT project_id = 2"))) == [
            _name(ELSEWHERE, 2)
        ]

    @pytest.mark.parametrize(
        "query",
        [
            pytest.param(DeliveryQuery(hook_name=HOOK), id="hook"),
            pytest.param(DeliveryQuery(hook_name=HOOK, statuses=frozenset({QUEUED})), id="hook-status"),
            pytest.param(DeliveryQuery(hook_name=HOOK, resource_id=100), id="hook-resource"),
            pytest.param(DeliveryQuery(company_id=1, project_id=2), id="project"),
            pytest.param(DeliveryQuery(company_id=1), id="company"),
        ],
    )
    async def test_paging_neither_skips_nor_repeats_while_newer_deliveries_arrive(
        self, store: Store, query: DeliveryQuery
    ) -> None:
        await _hook(store)
        await store.publish_events([make_event(n) for n in range(1, 8)], T0)
        seen: list[str] = []
        after: str | None = None
        newer = 100
        for _ in range(MAX_PAGES):
            page = await store.query_deliveries(query, after=after, limit=2, scan_limit=2)
            seen += [d.name for d, _ in page.deliveries]
            if page.next_after is None:
                break
            after = page.next_after
            # Newer events (higher ids: ULIDs follow publish time) arrive between pages.
            await store.publish_events([make_event(newer), make_event(newer + 1)], T1)
            newer += 2
        assert seen == [_name(HOOK, n) for n in range(7, 0, -1)]

    async def test_the_scan_budget_bounds_each_page_and_continuing_finds_the_rest(self, store: Store) -> None:
        await _hook(store)
        await store.publish_events(
            [make_event(n, event="update" if n in (2, 9) else "create") for n in range(1, 11)], T0
        )
        query = DeliveryQuery(hook_name=HOOK, event_type="update")
        calls = []
        after: str | None = None
        for _ in range(MAX_PAGES):
            page = await store.query_deliveries(query, after=after, limit=5, scan_limit=3)
            calls.append(([d.name for d, _ in page.deliveries], page.next_after))
            if page.next_after is None:
                break
            after = page.next_after
        assert calls == [
            ([_name(HOOK, 9)], _name(HOOK, 8)),  # 10, 9, 8 examined
            ([], _name(HOOK, 5)),  # 7, 6, 5: nothing, but not the end
            ([_name(HOOK, 2)], _name(HOOK, 2)),  # 4, 3, 2
            ([], None),  # 1: the end
        ]

    async def test_a_full_page_says_where_to_go_on_and_the_last_one_says_nothing_is_left(self, store: Store) -> None:
        await _hook(store)
        await store.publish_events([make_event(n) for n in range(1, 5)], T0)
        query = DeliveryQuery(hook_name=HOOK)
        first = await store.query_deliveries(query, after=None, limit=2, scan_limit=10)
        assert ([d.name for d, _ in first.deliveries], first.next_after) == (
            [_name(HOOK, 4), _name(HOOK, 3)],
            _name(HOOK, 3),
        )
        last = await store.query_deliveries(query, after=first.next_after, limit=2, scan_limit=10)
        assert ([d.name for d, _ in last.deliveries], last.next_after) == ([_name(HOOK, 2), _name(HOOK, 1)], None)
        # A budget spent exactly on the last delivery leaves nothing either.
        exact = await store.query_deliveries(query, after=None, limit=10, scan_limit=4)
        assert (len(exact.deliveries), exact.next_after) == (4, None)

    @pytest.mark.parametrize(
        ("criteria", "expected"),
        [
            # A hook's walk by status or resource id skips what they exclude without spending the budget.
            pytest.param({"statuses": frozenset({FAILED})}, [[2]], id="status"),
            pytest.param({"statuses": frozenset({FAILED, QUEUED})}, [[5], [2]], id="statuses"),
            pytest.param({"resource_id": 7, "resource_name": "RFIs"}, [[5], [2]], id="resource"),
            # Other criteria are checked on every delivery the walk examines.
            pytest.param({"resource_name": "RFIs"}, [[], [5], [], [3], [2], []], id="resource-name"),
            pytest.param({"event_type": "update"}, [[], [], [4], [3], [2], []], id="event-type"),
        ],
    )
    async def test_the_budget_counts_what_the_walk_examines(
        self, store: Store, criteria: dict[str, Any], expected: list[list[int]]
    ) -> None:
        await _sample(store)
        pages = await _every_page(store, DeliveryQuery(hook_name=HOOK, **criteria), limit=5, scan_limit=1)
        assert pages == [[_name(HOOK, n) for n in page] for page in expected]

    async def test_a_filter_matching_nothing_walks_the_budget_then_stops(self, store: Store) -> None:
        await _hook(store)
        await store.publish_events([make_event(n) for n in range(1, 8)], T0)
        query = DeliveryQuery(hook_name=HOOK, filter=_filter("response_status = 999"))
        pages = await _every_page(store, query, limit=10, scan_limit=3)
        assert pages == [[], [], []]

    async def test_the_first_rendered_body_is_kept(self, store: Store) -> None:
        await _hook(store)
        await store.publish_events([make_event(1), make_event(2)], T0)
        name = _name(HOOK, 1)
        assert await store.get_rendered(name) is None
        first = RenderedBody(b'{"id": 1}\x00\xff', "application/json")
        await store.record_attempts([_record(name, _attempt(1, T0, 503), RETRYING, T1, first)])
        second = RenderedBody(b"<other/>", "application/xml")
        await store.record_attempts([_record(name, _attempt(2, T1, 200), DELIVERED, None, second)])
        got = await store.get_rendered(name)
        assert got == first
        assert got is not None
        assert type(got.body) is bytes
        # A delivery no longer pending (discarded meanwhile) keeps its status and takes no body.
        await store.discard_pending(HOOK, T1, "hook disabled")
        await store.record_attempts([_record(_name(HOOK, 2), _attempt(1, T1, 200), DELIVERED, None, first)])
        assert await store.get_rendered(_name(HOOK, 2)) is None
        with pytest.raises(NotFound, match="deliveries/"):
            await store.get_rendered(_name(HOOK, 9))

    async def test_redeliver_queues_finished_deliveries_again_keeping_their_attempts(self, store: Store) -> None:
        await _sample(store)
        names = [_name(HOOK, n) for n in (6, 5, 4, 3, 2, 1)] + [_name(HOOK, 99)]
        before = {n: await store.get_delivery(n) for n in names[:-1]}
        moved = await store.redeliver(names, LATER)
        # Delivered (6, 1), discarded (4) and failed (2) move; queued (5) and retrying (3) do not.
        assert moved == [_name(HOOK, n) for n in (6, 4, 2, 1)]
        for name in moved:
            assert await store.get_delivery(name) == dataclasses.replace(
                before[name],
                status=QUEUED,
                next_attempt_time=LATER,
                first_attempt_time=None,
                last_error="",
                update_time=LATER,
            )
        for n in (5, 3):
            assert await store.get_delivery(_name(HOOK, n)) == before[_name(HOOK, n)]
        # Attempts stay, and the next one continues their numbering.
        assert [a.number for a in await store.list_attempts(_name(HOOK, 6))] == [1, 2]
        claims = await store.claim_due(LATER, limit=10, lease_until=LATER + timedelta(minutes=2), owner="node-a")
        # Claimable again, with 5 (queued) and 3 (retrying, due at LATER).
        assert sorted(c.delivery.name for c in claims) == sorted([*moved, _name(HOOK, 5), _name(HOOK, 3)])
        await store.record_attempts([_record(_name(HOOK, 6), _attempt(3, LATER, 200), DELIVERED)])
        assert [a.number for a in await store.list_attempts(_name(HOOK, 6))] == [1, 2, 3]
        again = await store.get_delivery(_name(HOOK, 6))
        assert (again.status, again.attempt_count, again.first_attempt_time) == (DELIVERED, 3, LATER)
        # Redelivering twice in one call, or a queued delivery, moves nothing more.
        assert await store.redeliver([_name(HOOK, 1), _name(HOOK, 1)], LATER) == []

    async def test_redeliver_skips_deliveries_of_disabled_deleted_and_recreated_hooks(self, store: Store) -> None:
        for name in (HOOK, SIBLING, ELSEWHERE):
            await _hook(store, name)
        await store.publish_events([make_event(1), make_event(2, project=3)], T0)
        finished = [_name(HOOK, 1), _name(SIBLING, 1), _name(ELSEWHERE, 2)]
        await store.record_attempts([_record(n, _attempt(1, T0, 410, "HTTP 410"), FAILED) for n in finished])
        await store.update_hook(HOOK, lambda h: dataclasses.replace(h, status=HookStatus.PAUSED))
        await store.update_hook(SIBLING, lambda h: dataclasses.replace(h, status=HookStatus.DISABLED))
        await store.delete_hook(ELSEWHERE)
        assert await store.redeliver(finished, T1) == [_name(HOOK, 1)]  # paused hooks may redeliver
        await _hook(store, ELSEWHERE, at=T1)  # a new hook of the same name does not inherit
        assert await store.redeliver(finished, T2) == []
        assert (await store.get_delivery(_name(SIBLING, 1))).status is FAILED
        assert (await store.get_delivery(_name(ELSEWHERE, 2))).status is FAILED

    async def test_every_path_that_moves_a_delivery_logs_a_change_in_seq_order(self, store: Store) -> None:
        assert await store.change_bounds() == (1, 0)
        await _hook(store)
        await store.publish_events([make_event(1), make_event(2)], T0)
        one, two = _name(HOOK, 1), _name(HOOK, 2)
        await store.record_attempts([_record(one, _attempt(1, T0, 503), RETRYING, T1)])
        await store.release([one])  # a lease is not a change
        await store.record_attempts([_record(one, _attempt(2, T1, 200), DELIVERED)])
        assert await store.redeliver([one], T2) == [one]
        assert await store.discard_pending(HOOK, LATER, "hook disabled") == 2
        await store.record_attempts([_record(two, _attempt(1, LATER, 200), DELIVERED)])  # too late: no change
        assert await _watch(store, DeliveryQuery(hook_name=HOOK)) == [
            (1, one, QUEUED, 0),
            (2, two, QUEUED, 0),
            (3, one, RETRYING, 1),
            (4, one, DELIVERED, 2),
            (5, one, QUEUED, 2),
            (6, one, DISCARDED, 2),
            (7, two, DISCARDED, 0),
        ]
        page = await store.list_changes(DeliveryQuery(hook_name=HOOK), after=3, limit=1, scan_limit=10)
        [change] = page.changes
        assert (change.seq, page.last_seq) == (4, 4)
        # A change holds the delivery as it was right after it, and its time is its update time.
        assert change.time == T1 + timedelta(milliseconds=250)
        assert change.delivery == dataclasses.replace(
            await store.get_delivery(one),
            status=DELIVERED,
            next_attempt_time=None,
            first_attempt_time=T0,
            last_error="",
            update_time=change.time,
        )
        assert change.delivery.last_response_status == 200
        assert await store.change_bounds() == (1, 7)

    async def test_a_batch_that_moves_a_delivery_twice_logs_both_changes(self, store: Store) -> None:
        await _hook(store)
        await store.publish_events([make_event(n) for n in (1, 2, 3, 4)], T0)
        one, two, three, four = (_name(HOOK, n) for n in (1, 2, 3, 4))
        await store.record_attempts(
            [_record(three, _attempt(1, T0, 503), RETRYING, T1), _record(four, _attempt(1, T0, 400), FAILED)]
        )
        await store.record_attempts(
            [
                _record(one, _attempt(1, T0, 503), RETRYING, T1),
                _record(two, _attempt(1, T0, 200), DELIVERED),
                _record(one, _attempt(2, T1, 200), DELIVERED),
                _record(two, _attempt(2, T1, 200), DELIVERED),  # no longer pending: no change
            ]
        )
        assert await _watch(store, DeliveryQuery(hook_name=HOOK), after=4) == [
            (5, three, RETRYING, 1),
            (6, four, FAILED, 1),
            (7, one, RETRYING, 1),
            (8, two, DELIVERED, 1),
            (9, one, DELIVERED, 2),
        ]
        stats = await store.hook_stats(HOOK, latency_sample=10)
        assert stats.counts == {**dict.fromkeys(DeliveryStatus, 0), DELIVERED: 2, RETRYING: 1, FAILED: 1}
        # Every stored attempt counts for the hook's health, the late one of 2 included.
        assert (stats.consecutive_failures, stats.last_success_time) == (0, T1 + timedelta(milliseconds=250))
        assert [a.number for a in await store.list_attempts(two)] == [1, 2]

    async def test_changes_are_listed_by_parent_and_status(self, store: Store) -> None:
        await _scoped(store)
        await store.record_attempts([_record(_name(HOOK, 1), _attempt(1, T0, 500), FAILED)])
        company = [name for _, name, _, _ in await _watch(store, DeliveryQuery(company_id=1))]
        assert company == [
            _name(HOOK, 1),
            _name(SIBLING, 1),
            _name(ELSEWHERE, 2),
            _name(COMPANY_HOOK, 3),
            _name(HOOK, 4),
            _name(SIBLING, 4),
            _name(HOOK, 1),
        ]
        project = [name for _, name, _, _ in await _watch(store, DeliveryQuery(company_id=1, project_id=2))]
        assert project == [_name(HOOK, 1), _name(SIBLING, 1), _name(HOOK, 4), _name(SIBLING, 4), _name(HOOK, 1)]
        hook = await _watch(store, DeliveryQuery(hook_name=HOOK))
        assert [(name, status) for _, name, status, _ in hook] == [
            (_name(HOOK, 1), QUEUED),
            (_name(HOOK, 4), QUEUED),
            (_name(HOOK, 1), FAILED),
        ]
        failed = await _watch(store, DeliveryQuery(company_id=1, statuses=frozenset({FAILED, DISCARDED})))
        assert [(name, status) for _, name, status, _ in failed] == [(_name(HOOK, 1), FAILED)]
        assert await _watch(store, DeliveryQuery(company_id=9)) == [(3, _name(FOREIGN, 11), QUEUED, 0)]
        # Criteria other than the parent and the statuses do not apply to changes.
        assert await _watch(store, DeliveryQuery(company_id=9, resource_name="RFIs", event_type="update")) == [
            (3, _name(FOREIGN, 11), QUEUED, 0)
        ]

    async def test_list_changes_examines_at_most_its_budget_and_says_where_to_go_on(self, store: Store) -> None:
        await _hook(store)
        await _hook(store, SIBLING)
        await store.publish_events([make_event(n) for n in range(1, 5)], T0)  # seqs 1–8, alternating hooks
        await store.record_attempts([_record(_name(HOOK, 4), _attempt(1, T0, 200), DELIVERED)])  # seq 9
        delivered = DeliveryQuery(hook_name=HOOK, statuses=frozenset({DELIVERED}))
        page = await store.list_changes(delivered, after=0, limit=10, scan_limit=2)  # HOOK's seqs 1, 3
        assert (page.changes, page.last_seq) == ([], 3)
        page = await store.list_changes(delivered, after=3, limit=10, scan_limit=2)  # 5, 7
        assert (page.changes, page.last_seq) == ([], 7)
        page = await store.list_changes(delivered, after=7, limit=10, scan_limit=2)  # 9, then the end
        assert ([c.seq for c in page.changes], page.last_seq) == ([9], 9)
        # A walk that reaches the end of the parent's changes continues after the newest change of all.
        page = await store.list_changes(DeliveryQuery(hook_name=SIBLING), after=8, limit=10, scan_limit=10)
        assert (page.changes, page.last_seq) == ([], 9)
        page = await store.list_changes(DeliveryQuery(hook_name=SIBLING), after=0, limit=1, scan_limit=10)
        assert ([c.seq for c in page.changes], page.last_seq) == ([2], 2)
        with pytest.raises(ValueError, match="limit"):
            await store.list_changes(delivered, after=0, limit=1, scan_limit=0)

    async def test_purge_at_the_retention_boundary_takes_deliveries_their_bodies_and_changes(
        self, store: Store
    ) -> None:
        now = T0 + timedelta(days=60)
        cut = now - timedelta(days=28)
        await _hook(store)
        await store.publish_events([make_event(1)], cut - MICROSECOND)
        await store.publish_events([make_event(2)], cut)
        await store.publish_events([make_event(3)], cut + MICROSECOND)
        body = RenderedBody(b"{}", "application/json")
        await store.record_attempts(
            [_record(_name(HOOK, 1), _attempt(1, cut - MICROSECOND, 200, millis=0), DELIVERED, None, body)]
        )
        # Deliveries 1, 2, 3 created (seqs 1–3), delivery 1 delivered (seq 4, at cut - 1 µs).
        assert (await store.hook_stats(HOOK, latency_sample=10)).counts[DELIVERED] == 1
        while await store.purge(cut, 1):
            pass
        with pytest.raises(NotFound):
            await store.get_delivery(_name(HOOK, 1))
        with pytest.raises(NotFound):
            await store.get_rendered(_name(HOOK, 1))
        with pytest.raises(NotFound):
            await store.get_event(event_id(1))
        assert [d.name for d in await store.list_deliveries(HOOK, after=None, limit=10)] == [
            _name(HOOK, 2),
            _name(HOOK, 3),
        ]
        # Seq 1 (cut - 1 µs) is gone; seq 2 (at the cut) stops the purge of changes.
        assert await store.change_bounds() == (2, 4)
        stats = await store.hook_stats(HOOK, latency_sample=10)
        assert (stats.counts[DELIVERED], stats.counts[QUEUED]) == (0, 2)
        while await store.purge(now, 100):
            pass
        assert await store.change_bounds() == (5, 4)
        assert await store.list_changes(DeliveryQuery(hook_name=HOOK), after=0, limit=10, scan_limit=10) == (
            await store.list_changes(DeliveryQuery(hook_name=HOOK), after=4, limit=10, scan_limit=10)
        )
        await store.publish_events([make_event(4)], now)
        assert await store.change_bounds() == (5, 5)  # seqs are never handed out twice

    async def test_hook_stats_count_every_status_through_every_path(self, store: Store) -> None:
        empty = await store.hook_stats(HOOK, latency_sample=10)
        assert empty.counts == dict.fromkeys(DeliveryStatus, 0)
        assert (empty.recent_latencies, empty.last_success_time, empty.next_attempt_time) == ([], None, None)
        await _sample(store)
        await _hook(store, SIBLING)
        await store.publish_events([make_event(7)], T2)  # reaches SIBLING too
        counts = {QUEUED: 2, RETRYING: 1, DELIVERED: 2, FAILED: 1, DISCARDED: 1}
        assert (await store.hook_stats(HOOK, latency_sample=10)).counts == counts
        assert (await store.hook_stats(SIBLING, latency_sample=10)).counts == {
            **dict.fromkeys(DeliveryStatus, 0),
            QUEUED: 1,
        }
        await store.redeliver([_name(HOOK, 2), _name(HOOK, 4)], LATER)
        counts = {**counts, QUEUED: 4, FAILED: 0, DISCARDED: 0}
        assert (await store.hook_stats(HOOK, latency_sample=10)).counts == counts
        await store.discard_pending(HOOK, LATER, "hook disabled")
        counts = {QUEUED: 0, RETRYING: 0, DELIVERED: 2, FAILED: 0, DISCARDED: 5}
        assert (await store.hook_stats(HOOK, latency_sample=10)).counts == counts
        while await store.purge(T1, 2):  # events 1 and 2, created at T0
            pass
        counts = {**counts, DELIVERED: 1, DISCARDED: 4}
        assert (await store.hook_stats(HOOK, latency_sample=10)).counts == counts

    async def test_hook_stats_sample_the_newest_deliveries_attempts_and_the_next_due_time(self, store: Store) -> None:
        await _sample(store)
        stats = await store.hook_stats(HOOK, latency_sample=10)
        # Newest delivery first (6: its attempts 2 then 1), then 4, 3, 2, 1; 5 has none.
        assert stats.recent_latencies == [timedelta(milliseconds=250)] * 6
        await store.record_attempts(
            [
                _record(
                    _name(HOOK, 5), _attempt(1, LATER, 503, "HTTP 503", millis=40), RETRYING, LATER + timedelta(hours=1)
                )
            ]
        )
        stats = await store.hook_stats(HOOK, latency_sample=3)
        millis = [250, 250, 40]  # 6's two attempts, then 5's
        assert stats.recent_latencies == [timedelta(milliseconds=m) for m in millis]
        # The earliest due time of a pending delivery: 3 retries at LATER, 5 at LATER + 1 h.
        assert stats.next_attempt_time == LATER
        assert (await store.hook_stats(HOOK, latency_sample=0)).recent_latencies == []

    async def test_hook_stats_follow_the_last_success_and_the_failures_since(self, store: Store) -> None:
        await _hook(store)
        await store.publish_events([make_event(n) for n in range(1, 5)], T0)
        times = [T0 + timedelta(seconds=s) for s in range(10)]
        await store.record_attempts(
            [
                _record(_name(HOOK, 1), _attempt(1, times[0], 503, "HTTP 503"), RETRYING, T2),
                _record(_name(HOOK, 1), _attempt(2, times[1], 200), DELIVERED),
                _record(_name(HOOK, 2), _attempt(1, times[2], None, "timeout"), RETRYING, T2),
                _record(_name(HOOK, 3), _attempt(1, times[3], 400, "HTTP 400"), FAILED),
            ]
        )
        stats = await store.hook_stats(HOOK, latency_sample=10)
        assert stats.last_success_time == times[1] + timedelta(milliseconds=250)
        assert (stats.last_failure_time, stats.last_failure_reason) == (
            times[3] + timedelta(milliseconds=250),
            "HTTP 400",
        )
        assert stats.consecutive_failures == 2
        # A 2xx other than 200 is a success; it ends the streak, and the last failure stays.
        await store.record_attempts([_record(_name(HOOK, 2), _attempt(2, times[4], 202), DELIVERED)])
        stats = await store.hook_stats(HOOK, latency_sample=10)
        assert (stats.last_success_time, stats.consecutive_failures) == (times[4] + timedelta(milliseconds=250), 0)
        assert stats.last_failure_reason == "HTTP 400"
        # An attempt of a delivery no longer pending still counts for the hook; a purged one does not.
        await store.discard_pending(HOOK, times[5], "hook disabled")
        await store.record_attempts(
            [
                _record(_name(HOOK, 4), _attempt(1, times[6], 500, "HTTP 500"), RETRYING, T2),
                _record(_name(HOOK, 9), _attempt(1, times[7], 500, "HTTP 500"), RETRYING, T2),
            ]
        )
        stats = await store.hook_stats(HOOK, latency_sample=10)
        assert (stats.last_failure_reason, stats.consecutive_failures) == ("HTTP 500", 1)
        assert stats.last_failure_time == times[6] + timedelta(milliseconds=250)
