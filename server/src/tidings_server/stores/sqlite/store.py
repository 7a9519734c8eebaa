"""The SQLite store: hooks, triggers, events and deliveries in one local file, through sqlite3.

One connection serves the whole server. sqlite3 blocks, so every operation runs in a worker
thread, and a CapacityLimiter of 1 lets only one of them use the connection at a time: there
is a single writer and the trio loop never waits on disk. Each method is one transaction
(BEGIN IMMEDIATE when it writes, so it holds the write lock from its first read and never has
to be retried half-way), which is what makes every method atomic. The hook and trigger SQL is
here; the event and delivery SQL is in ``deliveries``.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from functools import partial
from typing import Any, TypeVar

import trio

from tidings_server.domain.errors import AlreadyExists, NotFound, Unavailable
from tidings_server.domain.model import Attempt, Delivery, Event, Hook, RenderedBody, SendRate, Template, Trigger
from tidings_server.domain.names import Parent
from tidings_server.domain.ports import (
    Activity,
    AttemptRecord,
    ChangePage,
    Claim,
    DeliveryPage,
    DeliveryQuery,
    FailingHook,
    HookStats,
    NodeInfo,
    Notice,
    Published,
    QueueDepth,
)
from tidings_server.domain.sendrate import SendGrant
from tidings_server.domain.tokens import Token
from tidings_server.stores import history as plans
from tidings_server.stores import templates as template_text
from tidings_server.stores.sqlite import deliveries, history, nodes, protection, tokens
from tidings_server.stores.sqlite import status as status_reads
from tidings_server.stores.sqlite.rows import (
    from_micros,
    hook,
    hook_row,
    optional_micros,
    to_micros,
    trigger,
)

__all__ = ["SqliteStore", "to_micros"]

T = TypeVar("T")

# The SQL is spelled out in full, one constant per statement, so that none is assembled at run
# time. Keyset pages compare ``name > ?`` with "" for the first page: every name is non-empty.
# Hook columns are selected in the order rows.hook() reads them.
_INSERT_HOOK = """
    INSERT INTO hooks (name, company_id, project_id, display_name, destination_url, authorization_header,
                       payload_format, status, create_time, update_time, timeout_us, retry_window_us,
                       initial_backoff_us, max_backoff_us, retryable_statuses, ordering, max_concurrency,
                       signing_disabled, signing_secret, previous_signing_secret, previous_secret_expire_time,
                       rate_limit_per_second, rate_limit_burst, disabled_reason, disable_time, parent,
                       template, template_revision)
    VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
"""
_SELECT_HOOK = """
    SELECT name, company_id, project_id, display_name, destination_url, authorization_header,
           payload_format, status, create_time, update_time, timeout_us, retry_window_us,
           initial_backoff_us, max_backoff_us, retryable_statuses, ordering, max_concurrency,
           signing_disabled, signing_secret, previous_signing_secret, previous_secret_expire_time,
           rate_limit_per_second, rate_limit_burst, disabled_reason, disable_time,
           (SELECT group_concat(project_id) FROM hook_projects WHERE hook_name = hooks.name),
           template, template_revision
    FROM hooks WHERE name = ?
"""
_LIST_HOOKS = """
    SELECT name, company_id, project_id, display_name, destination_url, authorization_header,
           payload_format, status, create_time, update_time, timeout_us, retry_window_us,
           initial_backoff_us, max_backoff_us, retryable_statuses, ordering, max_concurrency,
           signing_disabled, signing_secret, previous_signing_secret, previous_secret_expire_time,
           rate_limit_per_second, rate_limit_burst, disabled_reason, disable_time,
           (SELECT group_concat(project_id) FROM hook_projects WHERE hook_name = hooks.name),
           template, template_revision
    FROM hooks WHERE parent = ? AND name > ? ORDER BY name LIMIT ?
"""
_LIST_PROJECT_HOOKS = """
    SELECT name, company_id, project_id, display_name, destination_url, authorization_header,
           payload_format, status, create_time, update_time, timeout_us, retry_window_us,
           initial_backoff_us, max_backoff_us, retryable_statuses, ordering, max_concurrency,
           signing_disabled, signing_secret, previous_signing_secret, previous_secret_expire_time,
           rate_limit_per_second, rate_limit_burst, disabled_reason, disable_time,
           (SELECT group_concat(project_id) FROM hook_projects WHERE hook_name = hooks.name),
           template, template_revision
    FROM hooks WHERE company_id = ? AND project_id IS NOT NULL AND name > ? ORDER BY name LIMIT ?
"""
_LIST_ALL_HOOKS = """
    SELECT name, company_id, project_id, display_name, destination_url, authorization_header,
           payload_format, status, create_time, update_time, timeout_us, retry_window_us,
           initial_backoff_us, max_backoff_us, retryable_statuses, ordering, max_concurrency,
           signing_disabled, signing_secret, previous_signing_secret, previous_secret_expire_time,
           rate_limit_per_second, rate_limit_burst, disabled_reason, disable_time,
           (SELECT group_concat(project_id) FROM hook_projects WHERE hook_name = hooks.name),
           template, template_revision
    FROM hooks WHERE name > ? ORDER BY name LIMIT ?
"""
_UPDATE_HOOK = """
    UPDATE hooks SET display_name = ?, destination_url = ?, authorization_header = ?, payload_format = ?,
                     status = ?, create_time = ?, update_time = ?, timeout_us = ?, retry_window_us = ?,
                     initial_backoff_us = ?, max_backoff_us = ?, retryable_statuses = ?, ordering = ?,
                     max_concurrency = ?, signing_disabled = ?, signing_secret = ?, previous_signing_secret = ?,
                     previous_secret_expire_time = ?, rate_limit_per_second = ?, rate_limit_burst = ?,
                     disabled_reason = ?, disable_time = ?, template = ?, template_revision = ?
    WHERE name = ?
"""
# A trigger copies its hook's company and project (fixed for the hook's life) for fan-out.
_INSERT_TRIGGER = """
    INSERT INTO triggers (hook_name, name, company_id, project_id, resource_name, event_type, create_time,
                          all_projects)
    SELECT name, ?, company_id, project_id, ?, ?, ?, NOT EXISTS (SELECT 1 FROM hook_projects WHERE hook_name = ?5)
    FROM hooks WHERE name = ?5
    ON CONFLICT (hook_name, name) DO NOTHING
"""
_SELECT_TRIGGER = """
    SELECT name, resource_name, event_type, create_time FROM triggers WHERE hook_name = ? AND name = ?
"""
_DELETE_PROJECTS = "DELETE FROM hook_projects WHERE hook_name = ?"
_INSERT_PROJECT = """
    INSERT INTO hook_projects (hook_name, company_id, project_id) SELECT name, company_id, ? FROM hooks WHERE name = ?
"""
_ALL_PROJECTS = "UPDATE triggers SET all_projects = ? WHERE hook_name = ?"
_INSERT_TEMPLATE = """
    INSERT INTO templates (name, company_id, display_name, hooks, revision, create_time, update_time)
    VALUES (?, ?, ?, ?, ?, ?, ?)
"""
_SELECT_TEMPLATE = """
    SELECT name, company_id, display_name, hooks, revision, create_time, update_time FROM templates WHERE name = ?
"""
_LIST_TEMPLATES = """
    SELECT name, company_id, display_name, hooks, revision, create_time, update_time FROM templates
    WHERE company_id = ? AND name > ? ORDER BY name LIMIT ?
"""
_LIST_ALL_TEMPLATES = """
    SELECT name, company_id, display_name, hooks, revision, create_time, update_time FROM templates
    WHERE name > ? ORDER BY name LIMIT ?
"""
_UPDATE_TEMPLATE = """
    UPDATE templates SET display_name = ?, hooks = ?, revision = ?, create_time = ?, update_time = ? WHERE name = ?
"""
_FORMATS_IN_USE = "SELECT payload_format, count(*), min(name) FROM hooks GROUP BY payload_format"
_LIST_TRIGGERS = """
    SELECT name, resource_name, event_type, create_time FROM triggers
    WHERE hook_name = ? AND name > ? ORDER BY name LIMIT ?
"""


_BEFORE_ANY = -(2**63)  # microseconds before every time a datetime can hold


def _check_limit(limit: int) -> None:
    if limit < 1:
        raise ValueError(f"limit must be at least 1, got {limit}")


def _template_row(template: Template) -> tuple[object, ...]:
    return template_text.template_row(template, to_micros)


def _template(row: Sequence[Any]) -> Template:
    return template_text.template(row, from_micros)


def _require_hook(conn: sqlite3.Connection, name: str) -> None:
    if conn.execute("SELECT 1 FROM hooks WHERE name = ?", (name,)).fetchone() is None:
        raise NotFound(f"hook {name} does not exist")


@dataclass(slots=True)
class _PendingPublish:
    events: Sequence[Event]
    now: int
    done: trio.Event = field(default_factory=trio.Event)
    result: list[Published] = field(default_factory=list)
    error: Exception | None = None


def _publish_group(group: list[_PendingPublish], conn: sqlite3.Connection) -> None:
    """Publish each call of a group under its own savepoint, inside one transaction."""
    for member in group:
        conn.execute("SAVEPOINT publish")
        try:
            member.result = deliveries.publish(conn, events=member.events, now=member.now)
        except Exception as exc:  # this call's failure is reported to it alone
            conn.execute("ROLLBACK TO publish")
            member.error = exc
        conn.execute("RELEASE publish")


class SqliteStore:
    """A Store on one sqlite3 connection, opened and closed by SqliteBackend.

    ``conn`` must be in autocommit mode (``isolation_level=None``): transactions are begun and
    ended here, explicitly, not by the sqlite3 module's implicit rules.
    """

    def __init__(self, conn: sqlite3.Connection, limiter: trio.CapacityLimiter) -> None:
        self._conn = conn
        self._limiter = limiter
        self._publish_queue: list[_PendingPublish] = []
        self._publishing = False
        self.publish_commits = 0  # how many group commits publishing took (for tests and benchmarks)

    def _transaction(self, fn: Callable[[sqlite3.Connection], T], write: bool) -> T:
        conn = self._conn
        conn.execute("BEGIN IMMEDIATE" if write else "BEGIN")
        try:
            result = fn(conn)
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
        return result

    async def _run(self, fn: Callable[[sqlite3.Connection], T], *, write: bool) -> T:
        # Not abandoned on cancellation: the transaction finishes (or rolls back) before the
        # limiter lets the next operation use the connection.
        return await trio.to_thread.run_sync(partial(self._transaction, fn, write), limiter=self._limiter)

    async def checkpoint(self) -> bool:
        """Copy the WAL into the database file and empty the WAL (TRUNCATE); False when a
        reader kept it from finishing. After a rotation sealed plaintext from before encryption
        at rest, the old pages would otherwise stay in the file, and WAL frames written midway
        would hold rows not re-sealed yet, until checkpoints much later. Waits for readers up to
        the busy timeout, and holds the connection meanwhile: for a rare occasion only."""

        def run() -> bool:
            busy, _, _ = self._conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
            return not busy

        return await trio.to_thread.run_sync(run, limiter=self._limiter)

    # -- hooks and triggers ----------------------------------------------------------------

    async def create_hook(self, hook: Hook) -> None:
        row = hook_row(hook)

        def run(conn: sqlite3.Connection) -> None:
            if conn.execute("SELECT 1 FROM hooks WHERE name = ?", (hook.name,)).fetchone() is not None:
                raise AlreadyExists(f"hook {hook.name} already exists")
            conn.execute(_INSERT_HOOK, row)
            conn.executemany(_INSERT_PROJECT, [(p, hook.name) for p in hook.projects])

        await self._run(run, write=True)

    async def create_hooks(self, hooks: Sequence[tuple[Hook, Sequence[Trigger]]]) -> None:
        hook_rows = [hook_row(h) for h, _ in hooks]
        trigger_rows: list[tuple[str, str, str, int, str]] = []
        for h, triggers in hooks:
            for t in triggers:
                if t.hook_name != h.name:
                    raise ValueError(f"trigger {t.name} does not belong to hook {h.name}")
                trigger_rows.append(
                    (t.name, t.resource_name, t.event_type, to_micros("create_time", t.create_time), h.name)
                )

        def run(conn: sqlite3.Connection) -> None:
            seen: set[str] = set()
            for h, _ in hooks:
                taken = conn.execute("SELECT 1 FROM hooks WHERE name = ?", (h.name,)).fetchone() is not None
                if taken or h.name in seen:
                    raise AlreadyExists(f"hook {h.name} already exists")
                seen.add(h.name)
            conn.executemany(_INSERT_HOOK, hook_rows)
            conn.executemany(_INSERT_PROJECT, [(p, h.name) for h, _ in hooks for p in h.projects])
            conn.executemany(_INSERT_TRIGGER, trigger_rows)

        await self._run(run, write=True)

    # -- templates -------------------------------------------------------------------------

    async def create_template(self, template: Template) -> None:
        row = _template_row(template)

        def run(conn: sqlite3.Connection) -> None:
            if conn.execute("SELECT 1 FROM templates WHERE name = ?", (template.name,)).fetchone() is not None:
                raise AlreadyExists(f"template {template.name} already exists")
            conn.execute(_INSERT_TEMPLATE, row)

        await self._run(run, write=True)

    @staticmethod
    def _get_template(conn: sqlite3.Connection, name: str) -> Template:
        row = conn.execute(_SELECT_TEMPLATE, (name,)).fetchone()
        if row is None:
            raise NotFound(f"template {name} does not exist")
        return _template(row)

    async def get_template(self, name: str) -> Template:
        return await self._run(partial(self._get_template, name=name), write=False)

    async def list_templates(self, company_id: int, *, after: str | None, limit: int) -> list[Template]:
        _check_limit(limit)

        def run(conn: sqlite3.Connection) -> list[Template]:
            return [_template(r) for r in conn.execute(_LIST_TEMPLATES, (company_id, after or "", limit))]

        return await self._run(run, write=False)

    async def list_all_templates(self, *, after: str | None, limit: int) -> list[Template]:
        _check_limit(limit)

        def run(conn: sqlite3.Connection) -> list[Template]:
            return [_template(r) for r in conn.execute(_LIST_ALL_TEMPLATES, (after or "", limit))]

        return await self._run(run, write=False)

    async def update_template(self, name: str, change: Callable[[Template], Template]) -> Template:
        def run(conn: sqlite3.Connection) -> Template:
            current = self._get_template(conn, name)
            new = change(current)
            if (new.name, new.company_id) != (current.name, current.company_id):
                raise ValueError(f"change() must not rename template {name}")
            row = _template_row(new)
            conn.execute(_UPDATE_TEMPLATE, (*row[2:], name))
            return new

        return await self._run(run, write=True)

    async def delete_template(self, name: str) -> None:
        def run(conn: sqlite3.Connection) -> None:
            if conn.execute("DELETE FROM templates WHERE name = ?", (name,)).rowcount == 0:
                raise NotFound(f"template {name} does not exist")

        await self._run(run, write=True)

    def _get(self, conn: sqlite3.Connection, name: str) -> Hook:
        row = conn.execute(_SELECT_HOOK, (name,)).fetchone()
        if row is None:
            raise NotFound(f"hook {name} does not exist")
        return hook(row)

    async def get_hook(self, name: str) -> Hook:
        return await self._run(partial(self._get, name=name), write=False)

    async def list_hooks(self, parent: Parent, *, after: str | None, limit: int) -> list[Hook]:
        _check_limit(limit)
        args: tuple[object, ...]
        if parent.any_project:
            sql, args = _LIST_PROJECT_HOOKS, (parent.company_id, after or "", limit)
        else:
            sql, args = _LIST_HOOKS, (str(parent), after or "", limit)

        def run(conn: sqlite3.Connection) -> list[Hook]:
            return [hook(row) for row in conn.execute(sql, args)]

        return await self._run(run, write=False)

    async def list_all_hooks(self, *, after: str | None, limit: int) -> list[Hook]:
        _check_limit(limit)

        def run(conn: sqlite3.Connection) -> list[Hook]:
            return [hook(row) for row in conn.execute(_LIST_ALL_HOOKS, (after or "", limit))]

        return await self._run(run, write=False)

    async def payload_formats_in_use(self) -> dict[str, tuple[int, str]]:
        def run(conn: sqlite3.Connection) -> dict[str, tuple[int, str]]:
            rows = conn.execute(_FORMATS_IN_USE).fetchall()
            return {payload_format: (count, first) for payload_format, count, first in rows}

        return await self._run(run, write=False)

    async def update_hook(self, name: str, change: Callable[[Hook], Hook]) -> Hook:
        def run(conn: sqlite3.Connection) -> Hook:
            current = self._get(conn, name)
            new = change(current)
            if (new.name, new.company_id, new.project_id) != (current.name, current.company_id, current.project_id):
                raise ValueError(f"change() must not rename hook {name} or move it to another parent")
            row = hook_row(new)
            # display_name … disable_time, then template and template_revision (not parent)
            conn.execute(_UPDATE_HOOK, (*row[3:25], *row[26:28], name))
            if new.projects != current.projects:
                conn.execute(_DELETE_PROJECTS, (name,))
                conn.executemany(_INSERT_PROJECT, [(p, name) for p in new.projects])
                conn.execute(_ALL_PROJECTS, (int(not new.projects), name))
            return new

        return await self._run(run, write=True)

    async def delete_hook(self, name: str) -> None:
        def run(conn: sqlite3.Connection) -> None:
            # The triggers go with it: ON DELETE CASCADE, with foreign_keys on for the connection.
            # Its deliveries stay: they are history, listed and purged on their own.
            if conn.execute("DELETE FROM hooks WHERE name = ?", (name,)).rowcount == 0:
                raise NotFound(f"hook {name} does not exist")
            conn.execute("DELETE FROM send_buckets WHERE hook_name = ?", (name,))
            protection.clear_failing(conn, hook_name=name)

        await self._run(run, write=True)

    async def add_triggers(self, hook_name: str, triggers: Sequence[Trigger]) -> list[Trigger]:
        rows: list[tuple[str, str, str, int, str]] = []
        for t in triggers:
            if t.hook_name != hook_name:
                raise ValueError(f"trigger {t.name} does not belong to hook {hook_name}")
            rows.append((t.name, t.resource_name, t.event_type, to_micros("create_time", t.create_time), hook_name))

        def run(conn: sqlite3.Connection) -> list[Trigger]:
            _require_hook(conn, hook_name)
            conn.executemany(_INSERT_TRIGGER, rows)
            stored: dict[str, Trigger] = {}
            for t in triggers:
                if t.name not in stored:
                    stored[t.name] = trigger(conn.execute(_SELECT_TRIGGER, (hook_name, t.name)).fetchone())
            return [stored[t.name] for t in triggers]

        return await self._run(run, write=True)

    async def delete_triggers(self, hook_name: str, names: Sequence[str], *, allow_missing: bool) -> None:
        def run(conn: sqlite3.Connection) -> None:
            _require_hook(conn, hook_name)
            if not allow_missing:
                for name in names:
                    query = "SELECT 1 FROM triggers WHERE hook_name = ? AND name = ?"
                    if conn.execute(query, (hook_name, name)).fetchone() is None:
                        raise NotFound(f"trigger {name} does not exist")
            conn.executemany(
                "DELETE FROM triggers WHERE hook_name = ? AND name = ?", [(hook_name, name) for name in names]
            )

        await self._run(run, write=True)

    async def list_triggers(self, hook_name: str, *, after: str | None, limit: int) -> list[Trigger]:
        _check_limit(limit)

        def run(conn: sqlite3.Connection) -> list[Trigger]:
            _require_hook(conn, hook_name)
            return [trigger(row) for row in conn.execute(_LIST_TRIGGERS, (hook_name, after or "", limit))]

        return await self._run(run, write=False)

    # -- events and deliveries -------------------------------------------------------------

    async def publish_events(self, events: Sequence[Event], now: datetime) -> list[Published]:
        """Group commit: calls that arrive while a commit is running share the next one.

        The first caller leads: it commits everything queued, then what queued meanwhile, until
        the queue is empty; the others wait for their result. Each call keeps its own
        all-or-nothing semantics through a savepoint, so one failing batch never takes the
        rest of its group with it. One fsync then covers many calls.
        """
        pending = _PendingPublish(events, to_micros("now", now))
        self._publish_queue.append(pending)
        if self._publishing:
            await pending.done.wait()
        else:
            self._publishing = True
            group: list[_PendingPublish] = []
            try:
                while self._publish_queue:
                    group, self._publish_queue = self._publish_queue, []
                    self.publish_commits += 1
                    try:
                        await self._run(partial(_publish_group, group), write=True)
                    except Exception as exc:  # the whole commit failed: every call of it did
                        for member in group:
                            member.error = member.error or exc
                    for member in group:
                        member.done.set()
            finally:
                self._publishing = False
                # Cancelled while leading: nobody else will commit what is queued, so fail it
                # (it was not stored); its callers may publish again.
                for member in [*group, *self._publish_queue]:
                    if not member.done.is_set():
                        member.error = member.error or Unavailable("the store stopped before committing")
                        member.done.set()
                self._publish_queue = []
        if pending.error is not None:
            raise pending.error
        return pending.result

    async def claim_due(
        self, now: datetime, *, limit: int, lease_until: datetime, owner: str, finished: Collection[str] = ()
    ) -> list[Claim]:
        _check_limit(limit)
        claim = partial(
            deliveries.claim,
            now=to_micros("now", now),
            limit=limit,
            lease_until=to_micros("lease_until", lease_until),
            owner=owner,
            finished=sorted(finished),
        )
        return await self._run(claim, write=True)

    async def next_due_time(self, *, after: datetime | None = None) -> datetime | None:
        """As the protocol says, counting only times later than ``after``.

        After a claim at ``now`` came back short, ``after=now`` leaves out what it could not
        take (behind a resource's head, or a hook at its concurrency): an attempt finishing
        frees those and wakes the dispatcher anyway, so counting them would only make it spin.
        """
        bound = _BEFORE_ANY if after is None else to_micros("after", after)
        return await self._run(partial(deliveries.next_due_time, after=bound), write=False)

    async def queue_depth(self, now: datetime, *, limit: int) -> QueueDepth:
        bound = to_micros("now", now)
        return await self._run(partial(deliveries.queue_depth, now=bound, limit=limit), write=False)

    async def record_attempts(self, records: Sequence[AttemptRecord]) -> None:
        recording = deliveries.recording(records)
        await self._run(partial(deliveries.record, recording=recording), write=True)

    async def release(self, delivery_names: Sequence[str]) -> None:
        await self._run(partial(deliveries.release, names=list(delivery_names)), write=True)

    async def take_sends(self, hook_name: str, rate: SendRate, now: datetime, wanted: int) -> SendGrant:
        take = partial(deliveries.take_sends, hook_name=hook_name, rate=rate, now=to_micros("now", now), wanted=wanted)
        return await self._run(take, write=True)

    async def mark_failing(self, hook_name: str, since: datetime, *, last_success: datetime | None) -> datetime:
        mark = partial(
            protection.mark_failing,
            hook_name=hook_name,
            since=to_micros("since", since),
            last_success=optional_micros("last_success", last_success),
        )
        return await self._run(mark, write=True)

    async def clear_failing(self, hook_name: str) -> None:
        await self._run(partial(protection.clear_failing, hook_name=hook_name), write=True)

    async def postpone(self, delivery_names: Sequence[str], until: datetime) -> None:
        postpone = partial(deliveries.postpone, names=list(delivery_names), until=to_micros("until", until))
        await self._run(postpone, write=True)

    async def hasten(self, hook_name: str, now: datetime) -> int:
        hasten = partial(deliveries.hasten, hook_name=hook_name, now=to_micros("now", now))
        return await self._run(hasten, write=True)

    async def discard_pending(self, hook_name: str, now: datetime, reason: str) -> int:
        discard = partial(deliveries.discard_pending, hook_name=hook_name, now=to_micros("now", now), reason=reason)
        return await self._run(discard, write=True)

    async def get_delivery(self, name: str) -> Delivery:
        return await self._run(partial(deliveries.get_delivery, name=name), write=False)

    async def list_attempts(self, delivery_name: str) -> list[Attempt]:
        return await self._run(partial(deliveries.list_attempts, delivery_name=delivery_name), write=False)

    async def list_deliveries(self, hook_name: str, *, after: str | None, limit: int) -> list[Delivery]:
        _check_limit(limit)
        page = partial(deliveries.list_deliveries, hook_name=hook_name, after=after or "", limit=limit)
        return await self._run(page, write=False)

    # -- history ---------------------------------------------------------------------------

    async def query_deliveries(
        self, query: DeliveryQuery, *, after: str | None, limit: int, scan_limit: int
    ) -> DeliveryPage:
        _check_limit(limit)
        _check_limit(scan_limit)
        plans.check(query)
        run = partial(history.query_deliveries, query=query, after=after, limit=limit, scan_limit=scan_limit)
        return await self._run(run, write=False)

    async def get_rendered(self, delivery_name: str) -> RenderedBody | None:
        return await self._run(partial(history.get_rendered, delivery_name=delivery_name), write=False)

    async def hook_project_stats(self, hook_name: str, project_id: int) -> HookStats:
        run = partial(history.hook_project_stats, hook_name=hook_name, project_id=project_id)
        return await self._run(run, write=False)

    async def hook_stats(self, hook_name: str, *, latency_sample: int) -> HookStats:
        run = partial(history.hook_stats, hook_name=hook_name, latency_sample=latency_sample)
        return await self._run(run, write=False)

    async def redeliver(self, names: Sequence[str], now: datetime) -> list[str]:
        run = partial(history.redeliver, names=list(names), now=to_micros("now", now))
        return await self._run(run, write=True)

    async def list_changes(self, query: DeliveryQuery, *, after: int, limit: int, scan_limit: int) -> ChangePage:
        _check_limit(limit)
        _check_limit(scan_limit)
        plans.check(query)
        run = partial(history.list_changes, query=query, after=after, limit=limit, scan_limit=scan_limit)
        return await self._run(run, write=False)

    async def change_bounds(self) -> tuple[int, int]:
        return await self._run(history.change_bounds, write=False)

    async def get_event(self, event_id: str) -> Event:
        return await self._run(partial(deliveries.get_event, event_id=event_id), write=False)

    async def purge(self, before: datetime, limit: int) -> int:
        _check_limit(limit)
        return await self._run(partial(deliveries.purge, before=to_micros("before", before), limit=limit), write=True)

    # -- a cluster of one --------------------------------------------------------------------

    async def heartbeat(self, node_id: str, now: datetime, *, lease_until: datetime, in_flight: int) -> int:
        beat = partial(
            nodes.heartbeat,
            node_id=node_id,
            now=to_micros("now", now),
            lease_until=to_micros("lease_until", lease_until),
            in_flight=in_flight,
        )
        return await self._run(beat, write=True)

    async def activity(self, since: datetime, *, scan_limit: int) -> Activity:
        run = partial(status_reads.activity, since=to_micros("since", since), scan_limit=scan_limit)
        return await self._run(run, write=False)

    async def failing_hooks(self, *, limit: int) -> list[FailingHook]:
        return await self._run(partial(status_reads.failing_hooks, limit=limit), write=False)

    async def register_node(self, node: NodeInfo) -> None:
        await self._run(partial(nodes.register, row=nodes.node_row(node)), write=True)

    async def list_nodes(self) -> list[NodeInfo]:
        return await self._run(nodes.list_nodes, write=False)

    async def remove_node(self, node_id: str) -> None:
        await self._run(partial(nodes.remove, node_id=node_id), write=True)

    # -- principals -------------------------------------------------------------------------

    async def create_token(self, token: Token) -> None:
        await self._run(partial(tokens.create, row=tokens.token_row(token)), write=True)

    async def get_token(self, token_id: str) -> Token:
        return await self._run(partial(tokens.get, token_id=token_id), write=False)

    async def find_token(self, secret_hash: str) -> Token | None:
        return await self._run(partial(tokens.find, secret_hash=secret_hash), write=False)

    async def list_tokens(self, *, after: str | None, limit: int) -> list[Token]:
        _check_limit(limit)
        return await self._run(partial(tokens.page, after=after, limit=limit), write=False)

    async def revoke_token(self, token_id: str, now: datetime) -> Token:
        at = to_micros("now", now)
        return await self._run(partial(tokens.revoke, token_id=token_id, now=at), write=True)

    async def touch_token(self, token_id: str, now: datetime) -> None:
        at = to_micros("now", now)
        await self._run(partial(tokens.touch, token_id=token_id, now=at), write=True)

    async def listen(
        self, on_notice: Callable[[Notice], None], *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
    ) -> None:
        """A SQLite file has one server (the backend's lock sees to it), which wakes itself in
        memory: no other process ever sends a notice."""
        task_status.started()
        await trio.sleep_forever()
