"""Delivery history: the rules of ListDeliveries … SendTestEvent, independent of the wire.

The store answers bounded questions (one page, one scan budget, one batch of changes); this
module decides what the questions are: which parent, which filter, the 28-day window, what a
token means. History is read-mostly and never blocks delivery: every read is one short query.
"""

from __future__ import annotations

import math
import re
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Final

import trio
from ulid import ULID

from tidings_server.domain import filtering, names, paging, states
from tidings_server.domain.errors import FailedPrecondition, InvalidArgument, NotFound, OutOfRange, ResourceExhausted
from tidings_server.domain.hooks import without_expired_secret
from tidings_server.domain.model import (
    Attempt,
    Delivery,
    DeliveryStatus,
    Event,
    EventMetadata,
    Hook,
    HookStatus,
    RenderedBody,
)
from tidings_server.domain.ports import (
    DELIVERY_FILTER_SCHEMA,
    Change,
    DeliveryPage,
    DeliveryQuery,
    Store,
)
from tidings_server.domain.pulse import Pulse
from tidings_server.domain.quoting import quote
from tidings_server.domain.ratelimit import RateLimit

RETENTION: Final = timedelta(days=28)
SCAN_LIMIT: Final = 2000  # deliveries one List call examines at most: keeps a rare filter under 50 ms at 1M rows
LATENCY_SAMPLE: Final = 1000
DEFAULT_REDELIVER_LIMIT: Final = 100
MAX_REDELIVER_LIMIT: Final = 1000
MAX_REDELIVER_PAGES: Final = 10  # pages of SCAN_LIMIT one RedeliverDeliveries call walks at most
WATCH_BATCH: Final = 100
WATCH_SCAN: Final = 2000
WATCH_EVENT_CACHE: Final = 4096  # events kept for watchers: a delivery changes several times, many watch alike
WATCH_SHARED_READS: Final = 256  # recent watch reads kept for the other watchers of the same parent
EXCERPT: Final = 1024
TEST_APPLICATION_ID: Final = "tidings-test"  # metadata.source_application_id of a test send
# Test sends per hook: enough to try an endpoint by hand, too few to aim a flood with.
TEST_SENDS_PER_SECOND: Final = 1.0
TEST_SEND_BURST: Final = 5

_EVENT_ID = r"[0-9A-HJKMNP-TV-Z]{26}"
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_DELIVERY_RE = re.compile(rf"(?P<hook>.+)/deliveries/(?P<event>{_EVENT_ID})")
_HOOK_NAME = re.compile(r"companies/[^/]+(/projects/[^/]+)?/hooks/[^/]+")
_EVENT_TYPE = re.compile(r"[a-z][a-z0-9_]{0,63}")
PARENT_FORMS: Final = (
    f"a hook ({names.HOOK_FORMS}), companies/{{company}}/projects/{{project}} or companies/{{company}}"
)

Renderer = Callable[[Hook, Event], Awaitable[RenderedBody]]
Prober = Callable[[Hook, Event], Awaitable[tuple[Attempt, bytes]]]


@dataclass(frozen=True, slots=True)
class Criteria:
    """What ListDeliveries (and a bulk redeliver) asks for, as the adapter decoded it; empty
    values mean "any"."""

    parent: str
    statuses: frozenset[DeliveryStatus] = frozenset()
    resource_name: str = ""
    resource_id: int = 0
    event_type: str = ""
    start_time: datetime | None = None
    end_time: datetime | None = None
    filter: str = ""

    def fingerprint(self) -> tuple[str, ...]:
        """The request fields a page token is bound to."""
        return (
            self.parent,
            ",".join(sorted(s.value for s in self.statuses)),
            self.resource_name,
            str(self.resource_id),
            self.event_type,
            self.start_time.isoformat() if self.start_time else "",
            self.end_time.isoformat() if self.end_time else "",
            self.filter,
        )


@dataclass(frozen=True, slots=True)
class Detail:
    """One delivery with everything GetDelivery shows."""

    delivery: Delivery
    event: Event
    rendered: RenderedBody | None
    attempts: Sequence[Attempt]


@dataclass(frozen=True, slots=True)
class Overview:
    """A hook at a glance (what the Overview screen shows)."""

    hook: Hook
    counts: Mapping[DeliveryStatus, int]
    success_rate: float
    latency_p50: timedelta | None
    latency_p95: timedelta | None
    last_success_time: datetime | None
    last_failure_time: datetime | None
    last_failure_reason: str
    consecutive_failures: int
    next_retry_time: datetime | None
    # The last time the hook's rate limit held a delivery back (it is being hit when recent).
    rate_limited_time: datetime | None = None
    # This server's circuit breaker for the hook (breakers are per server): when it opened and
    # when its next probe goes; both None while closed.
    circuit_open_time: datetime | None = None
    next_probe_time: datetime | None = None
    project_id: int | None = None  # the project the counts are narrowed to


@dataclass(frozen=True, slots=True)
class Redelivered:
    names: list[str]
    more: bool


@dataclass(frozen=True, slots=True)
class TestResult:
    """What the endpoint made of a test event."""

    attempt: Attempt
    body: bytes

    @property
    def excerpt(self) -> bytes:
        return self.attempt.response_body[:EXCERPT]


@dataclass(frozen=True, slots=True)
class WatchCursor:
    """Where a watch stands: the query it follows and the last change it has passed on."""

    query: DeliveryQuery
    fingerprint: tuple[str, ...]
    after: int

    def resume_token(self, seq: int) -> str:
        return paging.encode_token(str(seq), *self.fingerprint)


@dataclass(frozen=True, slots=True)
class WatchBatch:
    """Changes with the events of their deliveries (None for an event already purged)."""

    changes: list[tuple[Change, Event | None]]
    cursor: WatchCursor


class _SharedRead:
    """One read of the change log after a position, for every watcher of the same question.

    Watchers of one parent wake on the same pulse at the same position, so the first asks the
    store and the others wait for its answer. An answer that moved the cursor stays true (the
    changes after a seq never change), so a watcher arriving later may take it and read on
    from where it ends; an answer that found nothing is only good until the next pulse.
    """

    __slots__ = ("done", "found", "last_seq", "token")

    def __init__(self, token: trio.Event) -> None:
        self.token = token  # the pulse generation the read began in
        self.done = trio.Event()
        self.found: list[tuple[Change, Event | None]] | None = None  # None: not (or not successfully) read
        self.last_seq = 0


class HistoryService:
    """Answers history questions from the store; redelivers and tests through the engine."""

    def __init__(
        self,
        store: Store,
        now: Callable[[], datetime],
        pulse: Pulse,
        render: Renderer,
        probe: Prober,
        *,
        retention: timedelta = RETENTION,
        on_change: Callable[[], None] = lambda: None,
        circuit: Callable[[str], tuple[datetime | None, datetime | None]] = lambda name: (None, None),
    ) -> None:
        """``circuit`` says when the engine's breaker of a hook opened and when it probes next."""
        self._store = store
        self._circuit = circuit
        self._now = now
        self._pulse = pulse
        self._render = render
        self._probe = probe
        self._retention = retention
        self._on_change = on_change
        # Events never change once published, so the watchers of one server share their lookups.
        self._watch_events: OrderedDict[str, Event] = OrderedDict()
        self._watch_reads: OrderedDict[tuple[tuple[str, ...], int], _SharedRead] = OrderedDict()
        self._test_sends = RateLimit(TEST_SENDS_PER_SECOND, TEST_SEND_BURST)

    # -- reading ---------------------------------------------------------------------------

    async def list_deliveries(self, criteria: Criteria, size: int, token: str) -> paging.Page[tuple[Delivery, Event]]:
        limit = paging.page_size(size)
        query = self._query(criteria)
        after = paging.decode_token(token, *criteria.fingerprint())
        if after is not None and not after.startswith("companies/"):
            raise InvalidArgument("page_token: not a token this server issued")
        hook = await self._check_parent("parent", query)
        if hook is not None and query.start_time is not None and hook.create_time > query.start_time:
            # A hook re-created under an old name does not show its predecessor's deliveries.
            query = replace(query, start_time=hook.create_time)
        page = await self._walk(query, criteria.parent, after, limit)
        next_token = paging.encode_token(page.next_after, *criteria.fingerprint()) if page.next_after else ""
        return paging.Page(page.deliveries, next_token)

    async def get_delivery(self, name: str) -> Detail:
        hook_name, event_id = parse_delivery_name("name", name)
        delivery = await self._store.get_delivery(name)
        if delivery.create_time < self._window_start():
            raise NotFound(f"delivery {quote(name)} not found")
        event = await self._store.get_event(event_id)
        attempts = await self._store.list_attempts(name)
        rendered = await self._store.get_rendered(name)
        if rendered is None:
            rendered = await self._render_now(hook_name, event)
        return Detail(delivery, event, rendered, attempts)

    async def overview(self, name: str, project_id: int | None = None) -> Overview:
        """The hook at a glance; for a company hook, ``project_id`` narrows the counts, the
        success rate and the next retry to that project's deliveries."""
        parent, _ = names.parse_hook_name("name", name)
        if project_id is not None:
            if parent.project_id is not None:
                raise InvalidArgument(
                    f"project_id: {name} is a project hook; only a company hook's overview is narrowed to a project"
                )
            if not 1 <= project_id <= names.MAX_ID:
                raise InvalidArgument(f"project_id: {project_id} is not a project id (1 to {names.MAX_ID})")
        hook = without_expired_secret(await self._store.get_hook(name), self._now())
        stats = await self._store.hook_stats(name, latency_sample=LATENCY_SAMPLE)
        if project_id is not None:
            narrowed = await self._store.hook_project_stats(name, project_id)
            stats = replace(stats, counts=narrowed.counts, next_attempt_time=narrowed.next_attempt_time)
        counts = {status: stats.counts.get(status, 0) for status in DeliveryStatus}
        done = counts[DeliveryStatus.DELIVERED] + counts[DeliveryStatus.FAILED] + counts[DeliveryStatus.DISCARDED]
        latencies = sorted(stats.recent_latencies)
        circuit = self._circuit(name)
        return Overview(
            hook=hook,
            counts=counts,
            success_rate=counts[DeliveryStatus.DELIVERED] / done if done else 0.0,
            latency_p50=percentile(latencies, 0.50),
            latency_p95=percentile(latencies, 0.95),
            last_success_time=stats.last_success_time,
            last_failure_time=stats.last_failure_time,
            last_failure_reason=stats.last_failure_reason,
            consecutive_failures=stats.consecutive_failures,
            next_retry_time=stats.next_attempt_time,
            rate_limited_time=stats.rate_limited_time,
            circuit_open_time=circuit[0],
            next_probe_time=circuit[1],
            project_id=project_id,
        )

    # -- watching --------------------------------------------------------------------------

    async def watch_start(self, parent: str, statuses: frozenset[DeliveryStatus], resume_token: str) -> WatchCursor:
        query = replace(parse_parent("parent", parent), statuses=statuses)
        fingerprint = ("watch", parent, ",".join(sorted(s.value for s in statuses)))
        await self._check_parent("parent", query)
        oldest, newest = await self._store.change_bounds()
        if not resume_token:
            return WatchCursor(query, fingerprint, newest)
        position = paging.decode_token(resume_token.strip(), *fingerprint, field="resume_token")
        if position is None or not position.isdigit():
            raise InvalidArgument("resume_token: not a token this server issued")
        seq = int(position)
        if seq > newest:
            raise InvalidArgument(
                f"resume_token: change #{seq} has not happened; was the token issued by another server?"
            )
        if seq < oldest - 1:
            raise OutOfRange(
                f"resume_token: the changes after #{seq} have left the {self._retention.days}-day retention window;"
                " list the deliveries to catch up, then watch without a token"
            )
        return WatchCursor(query, fingerprint, seq)

    async def watch_next(self, cursor: WatchCursor, wait: float) -> WatchBatch:
        """The next changes after the cursor; waits up to ``wait`` seconds when there are none
        (returning an empty batch), and raises ``Unavailable`` once the server shuts down."""
        token = self._pulse.token()
        read = await self._shared_read(cursor, token)
        if read.found or read.last_seq > cursor.after:
            assert read.found is not None
            return WatchBatch(read.found, replace(cursor, after=read.last_seq))
        with trio.move_on_after(wait):
            await self._pulse.wait(token)
        return WatchBatch([], cursor)

    async def _shared_read(self, cursor: WatchCursor, token: trio.Event) -> _SharedRead:
        """The changes after the cursor, read once for all the watchers asking the same."""
        key = (cursor.fingerprint, cursor.after)
        while True:
            read = self._watch_reads.get(key)
            # A read begun before this watcher's pulse token may have missed a change it must see.
            if read is not None and (read.token is token or (read.done.is_set() and read.last_seq > cursor.after)):
                await read.done.wait()
                if read.found is not None:
                    return read
                continue  # the reader failed or was cancelled: ask again, as this watcher
            read = self._watch_reads[key] = _SharedRead(token)
            self._watch_reads.move_to_end(key)
            while len(self._watch_reads) > WATCH_SHARED_READS:
                self._watch_reads.popitem(last=False)
            try:
                page = await self._store.list_changes(
                    cursor.query, after=cursor.after, limit=WATCH_BATCH, scan_limit=WATCH_SCAN
                )
                read.found = [(c, await self._watched_event(c.delivery.event_id)) for c in page.changes]
                read.last_seq = page.last_seq
                return read
            finally:
                if read.found is None and self._watch_reads.get(key) is read:
                    del self._watch_reads[key]
                read.done.set()

    async def _watched_event(self, event_id: str) -> Event | None:
        """A change carries only its delivery; watchers are shown the whole event, as lists are."""
        event = self._watch_events.get(event_id)
        if event is not None:
            self._watch_events.move_to_end(event_id)
            return event
        try:
            event = await self._store.get_event(event_id)
        except NotFound:  # purged since the change: the delivery's own summary is what is left
            return None
        self._watch_events[event_id] = event
        if len(self._watch_events) > WATCH_EVENT_CACHE:
            self._watch_events.popitem(last=False)
        return event

    # -- acting ----------------------------------------------------------------------------

    async def redeliver_one(self, name: str) -> Redelivered:
        hook_name, _ = parse_delivery_name("name", name)
        delivery = await self._store.get_delivery(name)
        if delivery.create_time < self._window_start():
            raise NotFound(f"delivery {quote(name)} not found")
        if delivery.status not in states.sources(states.Cause.REDELIVER):
            raise FailedPrecondition(
                f"name: {name} is {delivery.status.value}; it is sent anyway, so there is nothing to redeliver"
            )
        hook = await self._live_hook(hook_name, delivery)
        if hook is None:
            raise FailedPrecondition(f"name: the hook of {name} has been deleted; its deliveries cannot be sent again")
        if hook.status is HookStatus.DISABLED:
            raise FailedPrecondition(f"name: hook {hook_name} is disabled; set it active, then redeliver")
        moved = await self._store.redeliver([name], self._now())
        if moved:
            self._changed()
        return Redelivered(moved, more=False)

    async def redeliver_matching(self, parent: str, filter_text: str, limit: int) -> Redelivered:
        if limit < 0 or limit > MAX_REDELIVER_LIMIT:
            raise InvalidArgument(
                f"limit: must be 0 (for {DEFAULT_REDELIVER_LIMIT}) to {MAX_REDELIVER_LIMIT}, got {limit}"
            )
        limit = limit or DEFAULT_REDELIVER_LIMIT
        query = replace(
            self._query(Criteria(parent, filter=filter_text)), statuses=states.sources(states.Cause.REDELIVER)
        )
        await self._check_parent("parent", query)
        # Matches whose hook is disabled or deleted are skipped by the store and do not count,
        # so walk on until ``limit`` deliveries have really moved; a bounded number of pages
        # keeps one call from holding the store for a whole company's history.
        moved: list[str] = []
        after: str | None = None
        for _ in range(MAX_REDELIVER_PAGES):
            page = await self._walk(query, parent, after, limit - len(moved))
            if page.deliveries:
                moved += await self._store.redeliver([d.name for d, _ in page.deliveries], self._now())
            after = page.next_after
            if after is None or len(moved) >= limit:
                break
        if moved:
            self._changed()
        if after is not None and len(moved) >= limit:
            # A full page says nothing of what follows it: look for one more match, so ``more``
            # is not set for a caller whose last batch took exactly the last deliveries.
            peek = await self._walk(query, parent, after, 1)
            after = after if peek.deliveries else peek.next_after
        return Redelivered(moved, more=after is not None)

    async def send_test(self, name: str) -> TestResult:
        names.parse_hook_name("name", name)
        hook = await self._store.get_hook(name)
        if hook.status is HookStatus.DISABLED:
            raise FailedPrecondition(f"name: hook {name} is disabled; set it active or paused to test it")
        wait = self._test_sends.take(name, self._now())
        if wait:
            raise ResourceExhausted(
                f"name: test sends to {name} are limited to {TEST_SEND_BURST} at once and"
                f" {TEST_SENDS_PER_SECOND:g} per second; retry in {math.ceil(wait * 100 - 1e-9) / 100:.2f} s"
            )
        triggers = await self._store.list_triggers(name, after=None, limit=1)
        resource, event_type = (triggers[0].resource_name, triggers[0].event_type) if triggers else ("Test", "test")
        now = self._now()
        event = Event(
            id=str(ULID.from_datetime(now)),
            serial=0,
            timestamp=now,
            company_id=hook.company_id,
            project_id=hook.project_id,
            # Ids no real user or resource has, and a source naming the test: a receiver that
            # looks the resource up finds nothing to change (docs/cli.md, "hooks test").
            user_id=0,
            resource_name=resource,
            resource_id=0,
            event_type=event_type,
            metadata=EventMetadata(source_application_id=TEST_APPLICATION_ID),
        )
        attempt, body = await self._probe(hook, event)
        return TestResult(attempt, body)

    # -- helpers ---------------------------------------------------------------------------

    async def _walk(self, query: DeliveryQuery, parent: str, after: str | None, limit: int) -> DeliveryPage:
        """One page, with the time range used as bounds of the walk, not only as a check.

        Event ids are ULIDs stamped with the publish time, which is also the delivery's
        ``create_time``, and the walk goes newest first by event id: a first page of a range
        that ends in the past starts at the first id that can be in it, and the walk stops
        (no next page) once it has passed the range's start, instead of paging on through
        older history page by empty page.
        """
        if after is None and query.end_time is not None:
            after = f"{parent}/deliveries/{_ulid_floor(query.end_time, plus_ms=1)}"
        page = await self._store.query_deliveries(query, after=after, limit=limit, scan_limit=SCAN_LIMIT)
        start = query.start_time
        if page.next_after and start is not None and page.next_after.rsplit("/", 1)[-1] < _ulid_floor(start):
            return DeliveryPage(page.deliveries, None)
        return page

    def _changed(self) -> None:
        self._on_change()
        self._pulse.fire()

    def _window_start(self) -> datetime:
        return self._now() - self._retention

    def _query(self, criteria: Criteria) -> DeliveryQuery:
        base = parse_parent("parent", criteria.parent)
        if criteria.resource_id < 0:
            raise InvalidArgument(f"resource_id: must be positive (0 for any), got {criteria.resource_id}")
        if len(criteria.resource_name) > 200:
            raise InvalidArgument("resource_name: longer than the 200 characters a resource name may have")
        if criteria.event_type and not _EVENT_TYPE.fullmatch(criteria.event_type):
            raise InvalidArgument(
                f"event_type: {quote(criteria.event_type)} is not an event type; expected lowercase letters, digits"
                " and underscores, e.g. 'update'"
            )
        if criteria.start_time and criteria.end_time and criteria.end_time <= criteria.start_time:
            raise InvalidArgument("end_time: must be later than start_time")
        expr = filtering.parse(criteria.filter, DELIVERY_FILTER_SCHEMA)
        _check_hook_comparisons(expr, criteria.parent)
        window = self._window_start()
        return replace(
            base,
            statuses=criteria.statuses,
            resource_name=criteria.resource_name or None,
            resource_id=criteria.resource_id or None,
            event_type=criteria.event_type or None,
            start_time=max(criteria.start_time, window) if criteria.start_time else window,
            end_time=criteria.end_time,
            filter=expr,
        )

    async def _check_parent(self, field: str, query: DeliveryQuery) -> Hook | None:
        """A hook parent must exist (it is returned), or have history left from before it was
        deleted (None)."""
        if query.hook_name is None:
            return None
        try:
            return await self._store.get_hook(query.hook_name)
        except NotFound:
            probe = await self._store.query_deliveries(
                DeliveryQuery(hook_name=query.hook_name, start_time=self._window_start()),
                after=None,
                limit=1,
                scan_limit=1,
            )
            if not probe.deliveries:
                raise NotFound(
                    f"{field}: hook {quote(query.hook_name)} not found and has no delivery history"
                ) from None
            return None

    async def _live_hook(self, hook_name: str, delivery: Delivery) -> Hook | None:
        """The hook a delivery belongs to, unless it was deleted (perhaps re-created since)."""
        try:
            hook = await self._store.get_hook(hook_name)
        except NotFound:
            return None
        return hook if hook.create_time <= delivery.create_time else None

    async def _render_now(self, hook_name: str, event: Event) -> RenderedBody | None:
        try:
            hook = await self._store.get_hook(hook_name)
        except NotFound:
            return None
        return await self._try_render(hook, event)

    async def _try_render(self, hook: Hook, event: Event) -> RenderedBody | None:
        try:
            return await self._render(hook, event)
        except Exception:  # a broken format shows as "no body"; the delivery itself reports why
            return None


def _check_hook_comparisons(expr: filtering.Expr | None, parent: str) -> None:
    """``hook`` is compared with full hook names: a bare id would match nothing, silently.

    Refused rather than resolved against the parent: under a company the same id can name
    the company's hook and a hook of each of its projects, and a filter must mean one thing.
    """
    if expr is None:
        return
    if isinstance(expr, filtering.Compare):
        value = expr.value
        if expr.field == "hook" and isinstance(value, str) and not _HOOK_NAME.fullmatch(value):
            example = f"{parent.split('/hooks/', 1)[0]}/hooks/{value}" if "/" not in value else names.HOOK_FORMS
            raise InvalidArgument(
                f"filter: hook {expr.op} {quote(value)}: hook is compared with a hook's full name,"
                f" e.g. {quote(example)}"
            )
    elif isinstance(expr, filtering.Not):
        _check_hook_comparisons(expr.operand, parent)
    else:
        for operand in expr.operands:
            _check_hook_comparisons(operand, parent)


def parse_parent(field: str, value: str) -> DeliveryQuery:
    """A history parent: a hook, a project or a company."""
    if "/hooks/" in value:
        names.parse_hook_name(field, value)
        return DeliveryQuery(hook_name=value)
    if value.endswith("/projects/-"):
        raise InvalidArgument(f"{field}: the wildcard project '-' is not needed here; use companies/{{company}}")
    try:
        parent = names.parse_parent(field, value)
    except InvalidArgument:
        raise InvalidArgument(f"{field}: {quote(value)} is not a valid parent; expected {PARENT_FORMS}") from None
    return DeliveryQuery(company_id=parent.company_id, project_id=parent.project_id)


def parse_delivery_name(field: str, value: str) -> tuple[str, str]:
    """Split ``{hook}/deliveries/{event id}`` into the hook name and the event id."""
    m = _DELIVERY_RE.fullmatch(value)
    if m is None:
        raise InvalidArgument(
            f"{field}: {quote(value)} is not a valid delivery name; expected {{hook}}/deliveries/{{event id}}"
        )
    names.parse_hook_name(field, m["hook"])
    return m["hook"], m["event"]


def _ulid_floor(when: datetime, plus_ms: int = 0) -> str:
    """The smallest event id of the millisecond ``when`` falls in (plus ``plus_ms``)."""
    ms = (when - _EPOCH) // timedelta(milliseconds=1) + plus_ms  # exact: no float rounding
    return str(ULID.from_int(ms << 80))


def percentile(ordered: Sequence[timedelta], fraction: float) -> timedelta | None:
    """Nearest-rank percentile of sorted values: always one of them, None for none."""
    if not ordered:
        return None
    return ordered[max(0, math.ceil(fraction * len(ordered)) - 1)]
