"""The in-memory store (``memory:``): dictionaries that vanish with the process, for tests and trials.

It keeps the Store contract exactly as the persistent backends do, so code tested against it
behaves the same on SQLite: every method checks everything before it changes anything, and
every method is a trio checkpoint, so cancellation lands before a change, never inside one.
It never blocks and starts no threads, so the delivery engine can run on it in virtual time.

Next to the records it keeps the indexes the SQLite schema has, so that fan-out looks only at
the triggers of one (company, project, resource, event type), a company hook's filed under
each project it takes events from too, and claiming walks pending
deliveries in due order, stopping at the first not yet due. History lists and the change log
are plain scans, planned like SQLite's walks (``stores.history``) so that they examine the same
deliveries and changes and return the same pages; per-hook counters and health are kept as
deliveries move, as SQLite's are.
"""

from __future__ import annotations

import heapq
from bisect import bisect_left, insort
from collections.abc import AsyncIterator, Callable, Collection, Iterable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import TypeVar
from urllib.parse import urlsplit

import trio

from tidings_server.domain import failing, sendrate
from tidings_server.domain.errors import AlreadyExists, NotFound
from tidings_server.domain.model import (
    PENDING_STATUSES,
    Attempt,
    Delivery,
    DeliveryStatus,
    Event,
    Hook,
    HookStatus,
    Ordering,
    RenderedBody,
    SendRate,
    Template,
    Trigger,
)
from tidings_server.domain.names import Parent
from tidings_server.domain.ports import (
    Activity,
    AttemptRecord,
    Change,
    ChangePage,
    Claim,
    DeliveryPage,
    DeliveryQuery,
    FailingHook,
    HookStats,
    IdempotencyConflict,
    NodeInfo,
    Notice,
    Published,
    QueueDepth,
    same_event,
)
from tidings_server.domain.sendrate import Bucket, SendGrant
from tidings_server.domain.states import Cause, sources, transition
from tidings_server.domain.tokens import Token
from tidings_server.plugins.spec import StorageBackend, hookimpl
from tidings_server.stores import history

_Named = TypeVar("_Named", Hook, Trigger, Template)
_MatchKey = tuple[int, int | None, str, str]  # company, project, resource name, event type
_DueKey = tuple[datetime, int, str]  # next attempt time, event serial, delivery name
_ResourceKey = tuple[str, str, int]  # hook name, resource name, resource id


def _check_time(what: str, value: datetime) -> None:
    # A naive datetime has no instant; SQLite could only guess one, so no backend accepts it.
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"{what} must be timezone-aware, got {value!r}")


def _check_limit(limit: int) -> None:
    if limit < 1:
        raise ValueError(f"limit must be at least 1, got {limit}")


def _page(items: Iterable[_Named], after: str | None, limit: int) -> list[_Named]:
    chosen = sorted((i for i in items if after is None or i.name > after), key=lambda i: i.name)
    return chosen[:limit]


def _in_parent(hook: Hook, parent: Parent) -> bool:
    if hook.company_id != parent.company_id:
        return False
    if parent.any_project:
        return hook.project_id is not None
    return hook.project_id == parent.project_id


_EVERY_PROJECT = 0  # the project of the match keys of company hooks without a project list


def _match_keys(hook: Hook, trigger: Trigger) -> list[_MatchKey]:
    """Where fan-out finds the trigger: under its hook's parent and, for a company hook, under
    every project it takes events from (``_EVERY_PROJECT`` when it has no list)."""
    pair = (trigger.resource_name, trigger.event_type)
    keys = [(hook.company_id, hook.project_id, *pair)]
    if hook.project_id is None:
        keys += [(hook.company_id, p, *pair) for p in hook.projects or (_EVERY_PROJECT,)]
    return keys


def _in_scope(query: DeliveryQuery, delivery: Delivery) -> bool:
    """Whether ``delivery`` is under the query's parent (a hook, a project or a company)."""
    if query.hook_name is not None:
        return delivery.hook_name == query.hook_name
    if delivery.company_id != query.company_id:
        return False
    return query.project_id is None or delivery.project_id == query.project_id


@dataclass(slots=True)
class _Health:
    """A hook's last success and failure, moved on by every attempt recorded."""

    last_success_time: datetime | None = None
    last_failure_time: datetime | None = None
    last_failure_reason: str = ""
    consecutive_failures: int = 0


@dataclass(slots=True)
class _StoredEvent:
    event: Event
    publish_time: datetime
    deliveries: int  # how many deliveries refer to it; it may be purged at 0


@dataclass(slots=True)
class _StoredDelivery:
    delivery: Delivery
    serial: int
    resource: _ResourceKey
    lease_until: datetime | None = None
    lease_owner: str = ""
    claims_since_attempt: int = 0  # Claim.interrupted is this before the claim

    @property
    def due_key(self) -> _DueKey:
        due = self.delivery.next_attempt_time
        assert due is not None, "a pending delivery always has a due time"
        return (due, self.serial, self.delivery.name)


class MemoryStore:
    """A Store held in dictionaries, with the secondary indexes its queries need."""

    def __init__(self) -> None:
        self._hooks: dict[str, Hook] = {}
        self._templates: dict[str, Template] = {}
        self._triggers: dict[str, dict[str, Trigger]] = {}
        # Fan-out: (hook name, trigger name) of every trigger matching a key.
        self._matching: dict[_MatchKey, set[tuple[str, str]]] = {}
        self._events: dict[str, _StoredEvent] = {}
        self._keys: dict[tuple[int, str], str] = {}  # (company, idempotency key) → event id
        self._last_serial = 0
        self._events_by_time: list[tuple[datetime, int, str]] = []  # sorted (publish time, serial, id)
        self._deliveries: dict[str, _StoredDelivery] = {}
        self._attempts: dict[str, dict[int, Attempt]] = {}
        self._hook_deliveries: dict[str, set[str]] = {}
        self._by_create_time: list[tuple[datetime, str]] = []  # sorted (create time, name)
        # Pending deliveries only: in due order, per hook, and each resource's serials in order.
        self._due: list[_DueKey] = []
        self._pending_by_hook: dict[str, set[str]] = {}
        self._heads: dict[_ResourceKey, list[int]] = {}
        # History: first bodies, the change log (in seq order), per-hook counts and health.
        self._bodies: dict[str, RenderedBody] = {}
        self._changes: list[Change] = []
        self._last_seq = 0
        self._counts: dict[str, dict[DeliveryStatus, int]] = {}
        self._project_counts: dict[tuple[str, int], dict[DeliveryStatus, int]] = {}  # (hook, project)
        self._health: dict[str, _Health] = {}
        # A cluster of one: the nodes registered, and each hook's leased deliveries (as many
        # as it has attempts in flight, plus leases that ended and were not cleared).
        self._nodes: dict[str, NodeInfo] = {}
        self._leased: dict[str, set[str]] = {}
        self._tokens: dict[str, Token] = {}
        self._token_hashes: dict[str, str] = {}  # secret hash → token id
        # Each rate-limited hook's token bucket, and the last time it held a send back.
        self._buckets: dict[str, tuple[Bucket, datetime | None]] = {}
        self._failing: dict[str, datetime] = {}  # since when each hook fails (Store.mark_failing)

    def _hook(self, name: str) -> Hook:
        hook = self._hooks.get(name)
        if hook is None:
            raise NotFound(f"hook {name} does not exist")
        return hook

    # -- hooks and triggers ----------------------------------------------------------------

    async def create_hook(self, hook: Hook) -> None:
        await trio.lowlevel.checkpoint()
        _check_time("create_time", hook.create_time)
        _check_time("update_time", hook.update_time)
        if hook.name in self._hooks:
            raise AlreadyExists(f"hook {hook.name} already exists")
        self._hooks[hook.name] = hook
        self._triggers[hook.name] = {}

    async def get_hook(self, name: str) -> Hook:
        await trio.lowlevel.checkpoint()
        return self._hook(name)

    async def create_hooks(self, hooks: Sequence[tuple[Hook, Sequence[Trigger]]]) -> None:
        await trio.lowlevel.checkpoint()
        names: set[str] = set()
        for hook, triggers in hooks:
            _check_time("create_time", hook.create_time)
            _check_time("update_time", hook.update_time)
            if hook.name in self._hooks or hook.name in names:
                raise AlreadyExists(f"hook {hook.name} already exists")
            names.add(hook.name)
            for trigger in triggers:
                if trigger.hook_name != hook.name:
                    raise ValueError(f"trigger {trigger.name} does not belong to hook {hook.name}")
                _check_time("create_time", trigger.create_time)
        for hook, triggers in hooks:
            self._hooks[hook.name] = hook
            stored = self._triggers[hook.name] = {}
            for trigger in triggers:
                if trigger.name not in stored:
                    stored[trigger.name] = trigger
                    self._index(hook, trigger)

    # -- templates -------------------------------------------------------------------------

    def _template(self, name: str) -> Template:
        template = self._templates.get(name)
        if template is None:
            raise NotFound(f"template {name} does not exist")
        return template

    async def create_template(self, template: Template) -> None:
        await trio.lowlevel.checkpoint()
        _check_time("create_time", template.create_time)
        _check_time("update_time", template.update_time)
        if template.name in self._templates:
            raise AlreadyExists(f"template {template.name} already exists")
        self._templates[template.name] = template

    async def get_template(self, name: str) -> Template:
        await trio.lowlevel.checkpoint()
        return self._template(name)

    async def list_templates(self, company_id: int, *, after: str | None, limit: int) -> list[Template]:
        await trio.lowlevel.checkpoint()
        _check_limit(limit)
        return _page((t for t in self._templates.values() if t.company_id == company_id), after, limit)

    async def list_all_templates(self, *, after: str | None, limit: int) -> list[Template]:
        await trio.lowlevel.checkpoint()
        _check_limit(limit)
        return _page(self._templates.values(), after, limit)

    async def update_template(self, name: str, change: Callable[[Template], Template]) -> Template:
        await trio.lowlevel.checkpoint()
        current = self._template(name)
        new = change(current)
        if (new.name, new.company_id) != (current.name, current.company_id):
            raise ValueError(f"change() must not rename template {name}")
        _check_time("update_time", new.update_time)
        self._templates[name] = new
        return new

    async def delete_template(self, name: str) -> None:
        await trio.lowlevel.checkpoint()
        self._template(name)
        del self._templates[name]

    async def list_hooks(self, parent: Parent, *, after: str | None, limit: int) -> list[Hook]:
        await trio.lowlevel.checkpoint()
        _check_limit(limit)
        return _page((h for h in self._hooks.values() if _in_parent(h, parent)), after, limit)

    async def list_all_hooks(self, *, after: str | None, limit: int) -> list[Hook]:
        await trio.lowlevel.checkpoint()
        _check_limit(limit)
        return _page(self._hooks.values(), after, limit)

    async def payload_formats_in_use(self) -> dict[str, tuple[int, str]]:
        await trio.lowlevel.checkpoint()
        found: dict[str, tuple[int, str]] = {}
        for hook in self._hooks.values():
            count, first = found.get(hook.payload_format, (0, hook.name))
            found[hook.payload_format] = (count + 1, min(first, hook.name))
        return found

    async def update_hook(self, name: str, change: Callable[[Hook], Hook]) -> Hook:
        await trio.lowlevel.checkpoint()
        current = self._hook(name)
        new = change(current)
        if (new.name, new.company_id, new.project_id) != (current.name, current.company_id, current.project_id):
            raise ValueError(f"change() must not rename hook {name} or move it to another parent")
        _check_time("create_time", new.create_time)
        _check_time("update_time", new.update_time)
        if new.projects != current.projects:
            for trigger in self._triggers[name].values():
                self._unindex(current, trigger)
                self._index(new, trigger)
        self._hooks[name] = new
        return new

    async def delete_hook(self, name: str) -> None:
        await trio.lowlevel.checkpoint()
        hook = self._hook(name)
        for trigger in self._triggers[name].values():
            self._unindex(hook, trigger)
        del self._hooks[name]
        del self._triggers[name]
        self._buckets.pop(name, None)
        self._failing.pop(name, None)

    def _index(self, hook: Hook, trigger: Trigger) -> None:
        for key in _match_keys(hook, trigger):
            self._matching.setdefault(key, set()).add((hook.name, trigger.name))

    def _unindex(self, hook: Hook, trigger: Trigger) -> None:
        for key in _match_keys(hook, trigger):
            matching = self._matching[key]
            matching.discard((hook.name, trigger.name))
            if not matching:
                del self._matching[key]

    async def add_triggers(self, hook_name: str, triggers: Sequence[Trigger]) -> list[Trigger]:
        await trio.lowlevel.checkpoint()
        hook = self._hook(hook_name)
        for trigger in triggers:
            if trigger.hook_name != hook_name:
                raise ValueError(f"trigger {trigger.name} does not belong to hook {hook_name}")
            _check_time("create_time", trigger.create_time)
        stored = self._triggers[hook_name]
        added: list[Trigger] = []
        for trigger in triggers:
            kept = stored.get(trigger.name)
            if kept is None:
                kept = stored[trigger.name] = trigger
                self._index(hook, trigger)
            added.append(kept)
        return added

    async def delete_triggers(self, hook_name: str, names: Sequence[str], *, allow_missing: bool) -> None:
        await trio.lowlevel.checkpoint()
        hook = self._hook(hook_name)
        stored = self._triggers[hook_name]
        if not allow_missing:
            for name in names:
                if name not in stored:
                    raise NotFound(f"trigger {name} does not exist")
        for name in names:
            trigger = stored.pop(name, None)
            if trigger is not None:
                self._unindex(hook, trigger)

    async def list_triggers(self, hook_name: str, *, after: str | None, limit: int) -> list[Trigger]:
        await trio.lowlevel.checkpoint()
        _check_limit(limit)
        self._hook(hook_name)
        return _page(self._triggers[hook_name].values(), after, limit)

    # -- events and deliveries -------------------------------------------------------------

    def _fan_out(self, event: Event) -> list[str]:
        """The ACTIVE or PAUSED hooks with a trigger for ``event``, by name.

        A project's event also reaches the company hooks with a trigger for it whose project
        list allows the project: one more index entry, that of the company's own hooks.
        """
        key = (event.company_id, event.project_id, event.resource_name, event.event_type)
        found = {hook for hook, _ in self._matching.get(key, ())}
        if event.project_id is not None:
            every = (event.company_id, _EVERY_PROJECT, event.resource_name, event.event_type)
            found |= {hook for hook, _ in self._matching.get(every, ())}
        return [name for name in sorted(found) if self._hooks[name].status is not HookStatus.DISABLED]

    async def publish_events(self, events: Sequence[Event], now: datetime) -> list[Published]:
        await trio.lowlevel.checkpoint()
        _check_time("now", now)
        # First decide everything (and refuse the batch if anything is wrong), then store it.
        results: list[Published] = []
        planned: list[tuple[Event, list[str]]] = []
        first_use: dict[tuple[int, str], tuple[str, int, str]] = {}
        new_ids: set[str] = set()
        serial = self._last_serial
        for index, event in enumerate(events):
            key = event.idempotency_key
            if key:
                company_key = (event.company_id, key)
                first = first_use.get(company_key)
                if first is None and company_key in self._keys:
                    stored = self._events[self._keys[company_key]].event
                    first = (stored.id, stored.serial, stored.idempotency_fingerprint)
                if first is not None:
                    if not same_event(first[2], event.idempotency_fingerprint):
                        raise IdempotencyConflict(index, key, first[0])
                    first_use[company_key] = first
                    results.append(Published(first[0], first[1], 0, True))
                    continue
            _check_time("timestamp", event.timestamp)  # only stored events: a repeat's is never read
            if event.id in self._events or event.id in new_ids:
                raise ValueError(f"event id {event.id} is already taken")
            new_ids.add(event.id)
            serial += 1
            if key:
                first_use[(event.company_id, key)] = (event.id, serial, event.idempotency_fingerprint)
            hooks = self._fan_out(event)
            planned.append((replace(event, serial=serial), hooks))
            results.append(Published(event.id, serial, len(hooks), False))
        self._last_serial = serial
        for event, hooks in planned:
            self._events[event.id] = _StoredEvent(event, now, len(hooks))
            insort(self._events_by_time, (now, event.serial, event.id))
            if event.idempotency_key:
                self._keys[(event.company_id, event.idempotency_key)] = event.id
            for hook in hooks:
                name = f"{hook}/deliveries/{event.id}"
                delivery = Delivery(
                    name,
                    hook,
                    event.id,
                    DeliveryStatus.QUEUED,
                    0,
                    now,
                    now,
                    now,
                    company_id=event.company_id,
                    project_id=event.project_id,
                    resource_name=event.resource_name,
                    resource_id=event.resource_id,
                    event_type=event.event_type,
                )
                row = _StoredDelivery(delivery, event.serial, (hook, event.resource_name, event.resource_id))
                self._deliveries[name] = row
                self._hook_deliveries.setdefault(hook, set()).add(name)
                insort(self._by_create_time, (now, name))
                self._enter_pending(row)
                self._count(delivery, 1)
                self._log(delivery)
        return results

    def _count(self, delivery: Delivery, delta: int) -> None:
        counts = self._counts.setdefault(delivery.hook_name, dict.fromkeys(DeliveryStatus, 0))
        counts[delivery.status] += delta
        if delivery.project_id is not None:
            key = (delivery.hook_name, delivery.project_id)
            by_project = self._project_counts.setdefault(key, dict.fromkeys(DeliveryStatus, 0))
            by_project[delivery.status] += delta

    def _log(self, delivery: Delivery) -> None:
        self._last_seq += 1
        self._changes.append(Change(self._last_seq, delivery.update_time, delivery))

    def _enter_pending(self, row: _StoredDelivery) -> None:
        insort(self._due, row.due_key)
        self._pending_by_hook.setdefault(row.delivery.hook_name, set()).add(row.delivery.name)
        insort(self._heads.setdefault(row.resource, []), row.serial)

    def _leave_pending(self, row: _StoredDelivery) -> None:
        key = row.due_key
        del self._due[bisect_left(self._due, key)]
        pending = self._pending_by_hook[row.delivery.hook_name]
        pending.discard(row.delivery.name)
        if not pending:
            del self._pending_by_hook[row.delivery.hook_name]
        serials = self._heads[row.resource]
        del serials[bisect_left(serials, row.serial)]
        if not serials:
            del self._heads[row.resource]

    def _change(self, row: _StoredDelivery, new: Delivery) -> None:
        """Replace a delivery, keeping the pending indexes, the counts and the change log in step."""
        old = row.delivery
        if old.status in PENDING_STATUSES:
            self._leave_pending(row)
        row.delivery = new
        if new.status in PENDING_STATUSES:
            self._enter_pending(row)
        if new.status is not old.status:
            self._count(old, -1)
            self._count(new, 1)
        if new.status is not old.status or new.attempt_count != old.attempt_count:
            self._log(new)

    def _lease(self, row: _StoredDelivery, until: datetime, owner: str) -> None:
        row.lease_until, row.lease_owner = until, owner
        self._leased.setdefault(row.delivery.hook_name, set()).add(row.delivery.name)

    def _unlease(self, row: _StoredDelivery) -> None:
        if row.lease_until is None:
            return
        row.lease_until, row.lease_owner = None, ""
        leased = self._leased[row.delivery.hook_name]
        leased.discard(row.delivery.name)
        if not leased:
            del self._leased[row.delivery.hook_name]

    def _leases_held(self, hook_name: str, now: datetime, owner: str, finished: frozenset[str]) -> int:
        """How many of the hook's deliveries are leased at ``now``, by any owner, leaving out
        ``owner``'s ``finished`` ones (their attempts are over)."""
        held = 0
        for name in self._leased.get(hook_name, ()):
            row = self._deliveries[name]
            if row.lease_until is None or row.lease_until <= now:
                continue
            if row.lease_owner == owner and name in finished:
                continue
            held += 1
        return held

    async def claim_due(
        self, now: datetime, *, limit: int, lease_until: datetime, owner: str, finished: Collection[str] = ()
    ) -> list[Claim]:
        await trio.lowlevel.checkpoint()
        _check_time("now", now)
        _check_time("lease_until", lease_until)
        _check_limit(limit)
        done = frozenset(finished)
        chosen: list[tuple[_StoredDelivery, Hook]] = []
        room: dict[str, int] = {}  # how many more of each hook this claim may take
        for due, serial, name in self._due:
            if due > now or len(chosen) == limit:
                break
            row = self._deliveries[name]
            if row.lease_until is not None and row.lease_until > now:
                continue
            hook = self._hooks.get(row.delivery.hook_name)
            if hook is None or hook.status is not HookStatus.ACTIVE:
                continue
            if row.delivery.create_time < hook.create_time:  # an earlier hook of the same name's
                continue
            if hook.ordering is Ordering.PER_RESOURCE and self._heads[row.resource][0] != serial:
                continue
            left = room.get(hook.name)
            if left is None:
                left = hook.max_concurrency - self._leases_held(hook.name, now, owner, done)
            if left <= 0:
                continue
            room[hook.name] = left - 1
            chosen.append((row, hook))
        claims: list[Claim] = []
        for row, hook in chosen:
            claims.append(
                Claim(row.delivery, self._events[row.delivery.event_id].event, hook, row.claims_since_attempt)
            )
            self._lease(row, lease_until, owner)
            row.claims_since_attempt += 1
        return claims

    async def next_due_time(self, *, after: datetime | None = None) -> datetime | None:
        """As the protocol says, counting only times later than ``after``.

        A dispatcher whose claim at ``now`` came back short passes ``after=now``: what was due
        then but not claimable (behind a resource's head, or a hook at its concurrency) is
        freed by an attempt finishing, which wakes it anyway; counting it would only make it
        wake at once, again and again, and never let a virtual clock advance.
        """
        await trio.lowlevel.checkpoint()
        if after is not None:
            _check_time("after", after)
        best: datetime | None = None
        for due, _, name in self._due:
            if best is not None and due >= best:
                break  # every later row counts from its due time at least
            row = self._deliveries[name]
            hook = self._hooks.get(row.delivery.hook_name)
            if hook is None or hook.status is not HookStatus.ACTIVE:
                continue
            start = due if row.lease_until is None else max(due, row.lease_until)
            if (after is None or start > after) and (best is None or start < best):
                best = start
        return best

    async def queue_depth(self, now: datetime, *, limit: int) -> QueueDepth:
        await trio.lowlevel.checkpoint()
        _check_time("now", now)
        due = 0
        oldest: datetime | None = None
        for when, _, name in self._due:
            if when > now:
                break
            lease = self._deliveries[name].lease_until
            if lease is not None and lease > now:
                continue
            oldest = when if oldest is None else oldest
            due += 1
            if due >= limit:
                break
        return QueueDepth(due, oldest)

    async def record_attempts(self, records: Sequence[AttemptRecord]) -> None:
        await trio.lowlevel.checkpoint()
        for record in records:
            _check_time("start_time", record.attempt.start_time)
            _check_time("end_time", record.attempt.end_time)
            if record.next_attempt_time is not None:
                _check_time("next_attempt_time", record.next_attempt_time)
            elif record.status in PENDING_STATUSES:
                raise ValueError(f"{record.delivery_name}: a {record.status.value} delivery needs a next_attempt_time")
        for record in records:
            row = self._deliveries.get(record.delivery_name)
            if row is None:
                continue  # purged meanwhile
            attempt = record.attempt
            self._attempts.setdefault(record.delivery_name, {}).setdefault(attempt.number, attempt)
            self._record_health(row.delivery.hook_name, attempt)
            current = row.delivery
            if current.status not in PENDING_STATUSES:
                continue  # discarded meanwhile: the attempt is history, the status stands
            if record.rendered is not None:
                self._bodies.setdefault(record.delivery_name, record.rendered)
            new = replace(
                current,
                status=record.status,
                next_attempt_time=record.next_attempt_time,
                last_error=record.error,
                attempt_count=attempt.number,
                first_attempt_time=current.first_attempt_time or attempt.start_time,
                update_time=attempt.end_time,
                last_response_status=attempt.response_status,
            )
            self._change(row, new)
            self._unlease(row)
            row.claims_since_attempt = 0

    def _record_health(self, hook_name: str, attempt: Attempt) -> None:
        """In record order: a success resets the failure streak; last times only move forward."""
        health = self._health.setdefault(hook_name, _Health())
        end = attempt.end_time
        if history.succeeded(attempt.response_status):
            if health.last_success_time is None or health.last_success_time < end:
                health.last_success_time = end
            health.consecutive_failures = 0
        else:
            if health.last_failure_time is None or health.last_failure_time <= end:
                health.last_failure_time = end
                health.last_failure_reason = attempt.error
            health.consecutive_failures += 1

    async def release(self, delivery_names: Sequence[str]) -> None:
        await trio.lowlevel.checkpoint()
        for name in delivery_names:
            row = self._deliveries.get(name)
            if row is not None:
                self._unlease(row)
                row.claims_since_attempt = max(row.claims_since_attempt - 1, 0)

    async def take_sends(self, hook_name: str, rate: SendRate, now: datetime, wanted: int) -> SendGrant:
        await trio.lowlevel.checkpoint()
        _check_time("now", now)
        bucket, limited = self._buckets.get(hook_name, (None, None))
        grant, bucket = sendrate.take(bucket, rate, now, wanted)
        self._buckets[hook_name] = (bucket, now if grant.granted < wanted else limited)
        return grant

    async def mark_failing(self, hook_name: str, since: datetime, *, last_success: datetime | None) -> datetime:
        await trio.lowlevel.checkpoint()
        _check_time("since", since)
        health = self._health.get(hook_name, _Health())
        held = failing.holding(self._failing.get(hook_name), (health.last_success_time, last_success), since)
        self._failing[hook_name] = held
        return held

    async def clear_failing(self, hook_name: str) -> None:
        await trio.lowlevel.checkpoint()
        self._failing.pop(hook_name, None)

    async def postpone(self, delivery_names: Sequence[str], until: datetime) -> None:
        await trio.lowlevel.checkpoint()
        _check_time("until", until)
        for name in delivery_names:
            row = self._deliveries.get(name)
            if row is None:
                continue
            self._unlease(row)
            row.claims_since_attempt = max(row.claims_since_attempt - 1, 0)
            if row.delivery.status in PENDING_STATUSES:
                self._change(row, replace(row.delivery, next_attempt_time=until))

    async def hasten(self, hook_name: str, now: datetime) -> int:
        await trio.lowlevel.checkpoint()
        _check_time("now", now)
        moved = 0
        for name in sorted(self._pending_by_hook.get(hook_name, ())):
            row = self._deliveries[name]
            due = row.delivery.next_attempt_time
            if due is not None and due > now:
                self._change(row, replace(row.delivery, next_attempt_time=now))
                moved += 1
        return moved

    async def discard_pending(self, hook_name: str, now: datetime, reason: str) -> int:
        await trio.lowlevel.checkpoint()
        _check_time("now", now)
        names = sorted(self._pending_by_hook.get(hook_name, ()))
        for name in names:
            row = self._deliveries[name]
            discarded = replace(
                row.delivery,
                status=DeliveryStatus.DISCARDED,
                next_attempt_time=None,
                last_error=reason,
                update_time=now,
            )
            self._change(row, discarded)
            self._unlease(row)
        return len(names)

    def _delivery(self, name: str) -> _StoredDelivery:
        row = self._deliveries.get(name)
        if row is None:
            raise NotFound(f"delivery {name} does not exist")
        return row

    async def get_delivery(self, name: str) -> Delivery:
        await trio.lowlevel.checkpoint()
        return self._delivery(name).delivery

    async def list_attempts(self, delivery_name: str) -> list[Attempt]:
        await trio.lowlevel.checkpoint()
        self._delivery(delivery_name)
        attempts = self._attempts.get(delivery_name, {})
        return [attempts[number] for number in sorted(attempts)]

    async def list_deliveries(self, hook_name: str, *, after: str | None, limit: int) -> list[Delivery]:
        await trio.lowlevel.checkpoint()
        _check_limit(limit)
        names = self._hook_deliveries.get(hook_name, set())
        page = heapq.nsmallest(limit, (n for n in names if after is None or n > after))
        return [self._deliveries[name].delivery for name in page]

    # -- history ---------------------------------------------------------------------------

    async def query_deliveries(
        self, query: DeliveryQuery, *, after: str | None, limit: int, scan_limit: int
    ) -> DeliveryPage:
        await trio.lowlevel.checkpoint()
        _check_limit(limit)
        _check_limit(scan_limit)
        walk = history.plan(query)
        if query.hook_name is not None:
            rows: Iterable[_StoredDelivery] = (
                self._deliveries[n] for n in self._hook_deliveries.get(query.hook_name, ())
            )
        else:
            rows = self._deliveries.values()
        key = None if after is None else history.order_key(after)
        walked = sorted(
            (
                row.delivery
                for row in rows
                if history.in_walk(query, walk, row.delivery)
                and (key is None or (row.delivery.event_id, row.delivery.name) < key)
            ),
            key=lambda d: (d.event_id, d.name),
            reverse=True,
        )
        found: list[tuple[Delivery, Event]] = []
        last: str | None = None
        more = False
        for examined, delivery in enumerate(walked):
            if examined == scan_limit or len(found) == limit:
                more = True
                break
            last = delivery.name
            if history.matches(query, delivery):
                found.append((delivery, self._events[delivery.event_id].event))
        return DeliveryPage(found, last if more else None)

    async def get_rendered(self, delivery_name: str) -> RenderedBody | None:
        await trio.lowlevel.checkpoint()
        self._delivery(delivery_name)
        return self._bodies.get(delivery_name)

    async def hook_project_stats(self, hook_name: str, project_id: int) -> HookStats:
        await trio.lowlevel.checkpoint()
        counts = dict(self._project_counts.get((hook_name, project_id), dict.fromkeys(DeliveryStatus, 0)))
        pending = (self._deliveries[n].delivery for n in self._pending_by_hook.get(hook_name, ()))
        due = [d.next_attempt_time for d in pending if d.project_id == project_id]
        return HookStats(counts, [], next_attempt_time=min((t for t in due if t is not None), default=None))

    async def hook_stats(self, hook_name: str, *, latency_sample: int) -> HookStats:
        await trio.lowlevel.checkpoint()
        counts = dict(self._counts.get(hook_name, dict.fromkeys(DeliveryStatus, 0)))
        latencies: list[timedelta] = []
        for name in sorted(self._hook_deliveries.get(hook_name, ()), reverse=True):
            if len(latencies) >= latency_sample:
                break
            attempts = self._attempts.get(name, {})
            latencies += [attempts[n].duration for n in sorted(attempts, reverse=True)]
        due = [self._deliveries[n].delivery.next_attempt_time for n in self._pending_by_hook.get(hook_name, ())]
        next_attempt = min((t for t in due if t is not None), default=None)
        health = self._health.get(hook_name, _Health())
        return HookStats(
            counts,
            latencies[: max(latency_sample, 0)],
            last_success_time=health.last_success_time,
            last_failure_time=health.last_failure_time,
            last_failure_reason=health.last_failure_reason,
            consecutive_failures=health.consecutive_failures,
            next_attempt_time=next_attempt,
            rate_limited_time=self._buckets.get(hook_name, (None, None))[1],
        )

    async def redeliver(self, names: Sequence[str], now: datetime) -> list[str]:
        await trio.lowlevel.checkpoint()
        _check_time("now", now)
        redeliverable = sources(Cause.REDELIVER)
        moved: list[str] = []
        for name in names:
            row = self._deliveries.get(name)
            if row is None or row.delivery.status not in redeliverable:
                continue
            hook = self._hooks.get(row.delivery.hook_name)
            if hook is None or hook.status is HookStatus.DISABLED or hook.create_time > row.delivery.create_time:
                continue
            queued = replace(
                row.delivery,
                status=transition(row.delivery.status, Cause.REDELIVER),
                next_attempt_time=now,
                first_attempt_time=None,
                last_error="",
                update_time=now,
            )
            self._change(row, queued)
            self._unlease(row)
            row.claims_since_attempt = 0
            moved.append(name)
        return moved

    async def list_changes(self, query: DeliveryQuery, *, after: int, limit: int, scan_limit: int) -> ChangePage:
        await trio.lowlevel.checkpoint()
        _check_limit(limit)
        _check_limit(scan_limit)
        history.check(query)
        statuses = history.effective_statuses(query)
        start = bisect_left(self._changes, after + 1, key=lambda c: c.seq)
        walked = (c for c in self._changes[start:] if _in_scope(query, c.delivery))
        found: list[Change] = []
        last = after
        more = False
        for examined, change in enumerate(walked):
            if examined == scan_limit or len(found) == limit:
                more = True
                break
            last = change.seq
            if not statuses or change.delivery.status in statuses:
                found.append(change)
        if not more:
            last = max(last, self._last_seq)
        return ChangePage(found, last)

    async def change_bounds(self) -> tuple[int, int]:
        await trio.lowlevel.checkpoint()
        oldest = self._changes[0].seq if self._changes else self._last_seq + 1
        return oldest, self._last_seq

    async def get_event(self, event_id: str) -> Event:
        await trio.lowlevel.checkpoint()
        stored = self._events.get(event_id)
        if stored is None:
            raise NotFound(f"event {event_id} does not exist")
        return stored.event

    async def purge(self, before: datetime, limit: int) -> int:
        await trio.lowlevel.checkpoint()
        _check_time("before", before)
        _check_limit(limit)
        # Deliveries first, oldest first; then, with what is left of the batch, the old events
        # that no delivery refers to any more.
        cut = min(bisect_left(self._by_create_time, (before,)), limit)
        doomed = self._by_create_time[:cut]
        del self._by_create_time[:cut]
        for _, name in doomed:
            self._forget_delivery(name)
        budget = limit - cut
        end = bisect_left(self._events_by_time, (before,))
        gone: set[int] = set()
        for i in range(end):
            if len(gone) == budget:
                break
            stored = self._events[self._events_by_time[i][2]]
            if stored.deliveries == 0:
                gone.add(i)
                self._forget_event(stored.event)
        if gone:
            old = self._events_by_time
            self._events_by_time = [entry for i, entry in enumerate(old[:end]) if i not in gone] + old[end:]
        # Then the oldest changes, up to the first one not older than ``before``.
        budget -= len(gone)
        changes = 0
        while changes < budget and changes < len(self._changes) and self._changes[changes].time < before:
            changes += 1
        del self._changes[:changes]
        return cut + len(gone) + changes

    def _forget_delivery(self, name: str) -> None:
        self._unlease(self._deliveries[name])
        row = self._deliveries.pop(name)
        if row.delivery.status in PENDING_STATUSES:
            self._leave_pending(row)
        hook_deliveries = self._hook_deliveries[row.delivery.hook_name]
        hook_deliveries.discard(name)
        if not hook_deliveries:
            del self._hook_deliveries[row.delivery.hook_name]
        self._attempts.pop(name, None)
        self._bodies.pop(name, None)
        self._count(row.delivery, -1)
        self._events[row.delivery.event_id].deliveries -= 1

    def _forget_event(self, event: Event) -> None:
        del self._events[event.id]
        if event.idempotency_key:
            del self._keys[(event.company_id, event.idempotency_key)]

    # -- a cluster of one --------------------------------------------------------------------

    async def heartbeat(self, node_id: str, now: datetime, *, lease_until: datetime, in_flight: int) -> int:
        await trio.lowlevel.checkpoint()
        _check_time("now", now)
        _check_time("lease_until", lease_until)
        known = self._nodes.get(node_id)
        if known is None:
            known = NodeInfo(node_id, "all", "", 0, now, now, in_flight)
        self._nodes[node_id] = replace(known, last_seen=now, in_flight=in_flight)
        extended = 0
        for names in self._leased.values():
            for name in names:
                row = self._deliveries[name]
                held = row.lease_owner == node_id and row.lease_until is not None and row.lease_until > now
                if held and row.delivery.status in PENDING_STATUSES:
                    row.lease_until = lease_until
                    extended += 1
        return extended

    async def activity(self, since: datetime, *, scan_limit: int) -> Activity:
        await trio.lowlevel.checkpoint()
        _check_time("since", since)
        examined = self._changes[-scan_limit:] if scan_limit > 0 else []
        counts = dict.fromkeys(DeliveryStatus, 0)
        recent = 0
        for change in examined:
            if change.time >= since:
                counts[change.delivery.status] += 1
                recent += 1
        return Activity(counts, complete=recent < scan_limit)

    async def failing_hooks(self, *, limit: int) -> list[FailingHook]:
        await trio.lowlevel.checkpoint()
        failing = [
            FailingHook(name, h.consecutive_failures, h.last_failure_time, h.last_failure_reason, h.last_success_time)
            for name, h in self._health.items()
            if h.consecutive_failures > 0 and name in self._hooks
        ]
        failing.sort(key=lambda f: (-f.consecutive_failures, f.hook_name))
        return failing[: max(limit, 0)]

    async def register_node(self, node: NodeInfo) -> None:
        await trio.lowlevel.checkpoint()
        _check_time("start_time", node.start_time)
        _check_time("last_seen", node.last_seen)
        self._nodes[node.node_id] = node

    async def list_nodes(self) -> list[NodeInfo]:
        await trio.lowlevel.checkpoint()
        return [self._nodes[node_id] for node_id in sorted(self._nodes)]

    async def remove_node(self, node_id: str) -> None:
        await trio.lowlevel.checkpoint()
        self._nodes.pop(node_id, None)
        held = [
            row
            for names in self._leased.values()
            for name in names
            if (row := self._deliveries[name]).lease_owner == node_id
        ]
        for row in held:
            self._unlease(row)

    # -- principals -------------------------------------------------------------------------

    async def create_token(self, token: Token) -> None:
        await trio.lowlevel.checkpoint()
        _check_time("create_time", token.create_time)
        if token.token_id in self._tokens or token.secret_hash in self._token_hashes:
            raise AlreadyExists(f"token {token.token_id} already exists")
        self._tokens[token.token_id] = token
        self._token_hashes[token.secret_hash] = token.token_id

    def _token(self, token_id: str) -> Token:
        token = self._tokens.get(token_id)
        if token is None:
            raise NotFound(f"token tokens/{token_id} does not exist")
        return token

    async def get_token(self, token_id: str) -> Token:
        await trio.lowlevel.checkpoint()
        return self._token(token_id)

    async def find_token(self, secret_hash: str) -> Token | None:
        await trio.lowlevel.checkpoint()
        token_id = self._token_hashes.get(secret_hash)
        return None if token_id is None else self._tokens[token_id]

    async def list_tokens(self, *, after: str | None, limit: int) -> list[Token]:
        await trio.lowlevel.checkpoint()
        _check_limit(limit)
        return [self._tokens[i] for i in sorted(self._tokens) if after is None or i > after][:limit]

    async def revoke_token(self, token_id: str, now: datetime) -> Token:
        await trio.lowlevel.checkpoint()
        _check_time("now", now)
        token = self._token(token_id)
        if token.revoke_time is None:
            token = self._tokens[token_id] = replace(token, revoke_time=now)
        return token

    async def touch_token(self, token_id: str, now: datetime) -> None:
        await trio.lowlevel.checkpoint()
        _check_time("now", now)
        token = self._tokens.get(token_id)
        if token is not None and (token.last_used_time is None or token.last_used_time < now):
            self._tokens[token_id] = replace(token, last_used_time=now)

    async def listen(
        self, on_notice: Callable[[Notice], None], *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
    ) -> None:
        """One process holds the store: it wakes itself in memory, so nothing ever comes here."""
        task_status.started()
        await trio.sleep_forever()


class MemoryBackend:
    """Opens an empty MemoryStore for the URL ``memory:``; each open starts from nothing."""

    scheme = "memory"
    description = "in-process dictionaries; everything is lost when the server stops (memory:)"

    @asynccontextmanager
    async def open(self, url: str) -> AsyncIterator[MemoryStore]:
        parts = urlsplit(url)
        if parts.scheme.lower() != self.scheme or url[len(parts.scheme) :] != ":":
            raise ValueError(f"invalid memory store URL {url!r}; expected 'memory:'")
        yield MemoryStore()


@hookimpl
def tidings_storage_backends() -> list[StorageBackend]:
    return [MemoryBackend()]
