"""The PostgreSQL store: every tidings-server of a cluster shares one database through it.

psycopg 3's async API runs on asyncio only, so its sync API runs in trio worker threads: each
operation is one transaction on a pooled connection (psycopg_pool), in a thread admitted by a
CapacityLimiter as large as the pool, so a thread never waits for a connection and the trio
loop never waits on the network. Connection loss surfaces as the domain's ``Unavailable``, and
the pool replaces the broken connections by itself. The hook and trigger SQL is here; the
event and delivery SQL is in ``deliveries``, the history SQL in ``history``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Collection, Mapping, Sequence
from datetime import date, datetime
from functools import partial
from typing import Any, Final, TypeVar

import psycopg
import psycopg_pool
import trio

from tidings_postgresql import changelog, cluster, deliveries, history, partitions, protection, rows, status, tokens
from tidings_postgresql.rows import HOOK_COLUMNS
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

T = TypeVar("T")
log = logging.getLogger(__name__)

_INSERT_HOOK: Final = f"""
    INSERT INTO hooks ({HOOK_COLUMNS}, parent) VALUES ({", ".join(["%s"] * 29)}) ON CONFLICT (name) DO NOTHING
"""
_SELECT_HOOK: Final = f"SELECT {HOOK_COLUMNS} FROM hooks WHERE name = %s"
_LIST_HOOKS: Final = f"SELECT {HOOK_COLUMNS} FROM hooks WHERE parent = %s AND name > %s ORDER BY name LIMIT %s"
_LIST_ALL_HOOKS: Final = f"SELECT {HOOK_COLUMNS} FROM hooks WHERE name > %s ORDER BY name LIMIT %s"
_LIST_PROJECT_HOOKS: Final = f"""
    SELECT {HOOK_COLUMNS} FROM hooks WHERE company_id = %s AND project_id IS NOT NULL AND name > %s
    ORDER BY name LIMIT %s
"""
_UPDATE_HOOK: Final = """
    UPDATE hooks SET display_name = %s, destination_url = %s, authorization_header = %s, payload_format = %s,
                     status = %s, create_time = %s, update_time = %s, timeout_us = %s, retry_window_us = %s,
                     initial_backoff_us = %s, max_backoff_us = %s, retryable_statuses = %s, ordering = %s,
                     max_concurrency = %s, signing_disabled = %s, signing_secret = %s,
                     previous_signing_secret = %s, previous_secret_expire_time = %s,
                     rate_limit_per_second = %s, rate_limit_burst = %s, disabled_reason = %s, disable_time = %s,
                     projects = %s, template = %s, template_revision = %s
    WHERE name = %s
"""
_INSERT_TRIGGER: Final = """
    INSERT INTO triggers (hook_name, name, company_id, project_id, resource_name, event_type, create_time,
                          all_projects)
    SELECT name, %s, company_id, project_id, %s, %s, %s, cardinality(projects) = 0 FROM hooks WHERE name = %s
    ON CONFLICT (hook_name, name) DO NOTHING
"""
_SELECT_TRIGGERS: Final = """
    SELECT name, resource_name, event_type, create_time FROM triggers WHERE hook_name = %s AND name = ANY(%b)
"""
_LIST_TRIGGERS: Final = """
    SELECT name, resource_name, event_type, create_time FROM triggers
    WHERE hook_name = %s AND name > %s ORDER BY name LIMIT %s
"""
_INSERT_TEMPLATE: Final = """
    INSERT INTO templates (name, company_id, display_name, hooks, revision, create_time, update_time)
    VALUES (%s, %s, %s, %s, %s, %s, %s) ON CONFLICT (name) DO NOTHING
"""
_SELECT_TEMPLATE: Final = """
    SELECT name, company_id, display_name, hooks, revision, create_time, update_time FROM templates WHERE name = %s
"""
_LIST_TEMPLATES: Final = """
    SELECT name, company_id, display_name, hooks, revision, create_time, update_time FROM templates
    WHERE company_id = %s AND name > %s ORDER BY name LIMIT %s
"""
_LIST_ALL_TEMPLATES: Final = """
    SELECT name, company_id, display_name, hooks, revision, create_time, update_time FROM templates
    WHERE name > %s ORDER BY name LIMIT %s
"""
_UPDATE_TEMPLATE: Final = """
    UPDATE templates SET display_name = %s, hooks = %s, revision = %s, create_time = %s, update_time = %s
    WHERE name = %s
"""
_FORMATS_IN_USE: Final = "SELECT payload_format, count(*), min(name) FROM hooks GROUP BY payload_format"
_KEY_RACE_RETRIES: Final = 3

# Raised by psycopg and its pool when the server cannot be reached or the connection broke.
_CONNECTION_ERRORS: Final = (psycopg.OperationalError, psycopg.InterfaceError, psycopg_pool.PoolTimeout)


def _check_limit(limit: int) -> None:
    if limit < 1:
        raise ValueError(f"limit must be at least 1, got {limit}")


def _require_hook(conn: psycopg.Connection[Any], name: str) -> None:
    if conn.execute("SELECT 1 FROM hooks WHERE name = %s", (name,)).fetchone() is None:
        raise NotFound(f"hook {name} does not exist")


class PostgresStore:
    """A Store on a psycopg connection pool, opened and closed by PostgresBackend.

    ``where`` names the database (without its password) in errors.
    """

    def __init__(self, pool: psycopg_pool.ConnectionPool[Any], limiter: trio.CapacityLimiter, where: str) -> None:
        self._pool = pool
        self._limiter = limiter
        self._where = where
        self._days: dict[str, set[date]] = {family: set() for family in partitions.FAMILIES}
        self._conninfo = str(pool.conninfo)  # the listener opens its own connection with it

    # -- plumbing --------------------------------------------------------------------------

    def _unavailable(self, exc: BaseException) -> Unavailable:
        # The idle connections that broke with this one are dropped now, not one call at a time.
        self._pool.check()
        return Unavailable(
            f"the PostgreSQL store at {self._where} is unavailable: {str(exc).strip() or type(exc).__name__}"
        )

    def _transaction(self, fn: Callable[[psycopg.Connection[Any]], T], days: Mapping[str, set[date]]) -> T:
        try:
            with self._pool.connection() as conn:
                self._ensure_days(conn, days)
                try:
                    with conn.transaction():
                        return fn(conn)
                except psycopg.errors.CheckViolation as exc:
                    if not days or "no partition" not in str(exc):
                        raise
                # A day this process knew was dropped meanwhile (retention on another server, or
                # a write to a day already past it): create it again and retry once.
                for family in days:
                    self._days[family] -= days[family]
                self._ensure_days(conn, days)
                with conn.transaction():
                    return fn(conn)
        except _CONNECTION_ERRORS as exc:
            raise self._unavailable(exc) from exc

    def _ensure_days(self, conn: psycopg.Connection[Any], days: Mapping[str, set[date]]) -> None:
        for family, wanted in days.items():
            missing = wanted - self._days[family]
            if missing:
                partitions.ensure(conn, family, missing)
                self._days[family] |= missing

    def _autocommit(self, fn: Callable[[psycopg.Connection[Any]], T]) -> T:
        try:
            with self._pool.connection() as conn:
                conn.autocommit = True
                try:
                    return fn(conn)
                finally:
                    conn.autocommit = False
        except _CONNECTION_ERRORS as exc:
            raise self._unavailable(exc) from exc

    async def _run_outside(self, fn: Callable[[psycopg.Connection[Any]], T]) -> T:
        """``fn`` on a pooled connection in autocommit mode, for DDL that runs no transaction block."""
        return await trio.to_thread.run_sync(partial(self._autocommit, fn), limiter=self._limiter)

    async def _run(self, fn: Callable[[psycopg.Connection[Any]], T], **days: set[date]) -> T:
        # Not abandoned on cancellation: the transaction commits or rolls back before the
        # thread's place in the limiter is given back.
        return await trio.to_thread.run_sync(partial(self._transaction, fn, days), limiter=self._limiter)

    # -- hooks and triggers ----------------------------------------------------------------

    async def create_hook(self, hook: Hook) -> None:
        row = rows.hook_row(hook)

        def run(conn: psycopg.Connection[Any]) -> None:
            with conn.cursor() as cur:
                cur.execute(_INSERT_HOOK, row)
                if cur.rowcount == 0:
                    raise AlreadyExists(f"hook {hook.name} already exists")
            changelog.notify(conn, deliveries.DUE)

        await self._run(run)

    async def create_hooks(self, hooks: Sequence[tuple[Hook, Sequence[Trigger]]]) -> None:
        hook_rows = [rows.hook_row(h) for h, _ in hooks]
        values: list[tuple[Any, ...]] = []
        for h, triggers in hooks:
            for t in triggers:
                if t.hook_name != h.name:
                    raise ValueError(f"trigger {t.name} does not belong to hook {h.name}")
                values.append((t.name, t.resource_name, t.event_type, rows.aware("create_time", t.create_time), h.name))

        def run(conn: psycopg.Connection[Any]) -> None:
            with conn.cursor() as cur:
                for h, row in zip((h for h, _ in hooks), hook_rows, strict=True):
                    cur.execute(_INSERT_HOOK, row)
                    if cur.rowcount == 0:
                        raise AlreadyExists(f"hook {h.name} already exists")  # rolls the others back
                if values:
                    cur.executemany(_INSERT_TRIGGER, values)
            changelog.notify(conn, deliveries.DUE)

        await self._run(run)

    # -- templates -------------------------------------------------------------------------

    async def create_template(self, template: Template) -> None:
        row = _template_row(template)

        def run(conn: psycopg.Connection[Any]) -> None:
            with conn.cursor() as cur:
                cur.execute(_INSERT_TEMPLATE, row)
                if cur.rowcount == 0:
                    raise AlreadyExists(f"template {template.name} already exists")

        await self._run(run)

    @staticmethod
    def _get_template(conn: psycopg.Connection[Any], name: str, *, lock: bool = False) -> Template:
        row = conn.execute(_SELECT_TEMPLATE + (" FOR UPDATE" if lock else ""), (name,)).fetchone()
        if row is None:
            raise NotFound(f"template {name} does not exist")
        return _template(row)

    async def get_template(self, name: str) -> Template:
        return await self._run(partial(self._get_template, name=name))

    async def list_templates(self, company_id: int, *, after: str | None, limit: int) -> list[Template]:
        _check_limit(limit)

        def run(conn: psycopg.Connection[Any]) -> list[Template]:
            found = conn.execute(_LIST_TEMPLATES, (company_id, after or "", limit)).fetchall()
            return [_template(r) for r in found]

        return await self._run(run)

    async def list_all_templates(self, *, after: str | None, limit: int) -> list[Template]:
        _check_limit(limit)

        def run(conn: psycopg.Connection[Any]) -> list[Template]:
            return [_template(r) for r in conn.execute(_LIST_ALL_TEMPLATES, (after or "", limit)).fetchall()]

        return await self._run(run)

    async def update_template(self, name: str, change: Callable[[Template], Template]) -> Template:
        def run(conn: psycopg.Connection[Any]) -> Template:
            current = self._get_template(conn, name, lock=True)
            new = change(current)
            if (new.name, new.company_id) != (current.name, current.company_id):
                raise ValueError(f"change() must not rename template {name}")
            conn.execute(_UPDATE_TEMPLATE, (*_template_row(new)[2:], name))
            return new

        return await self._run(run)

    async def delete_template(self, name: str) -> None:
        def run(conn: psycopg.Connection[Any]) -> None:
            with conn.cursor() as cur:
                cur.execute("DELETE FROM templates WHERE name = %s", (name,))
                if cur.rowcount == 0:
                    raise NotFound(f"template {name} does not exist")

        await self._run(run)

    @staticmethod
    def _get(conn: psycopg.Connection[Any], name: str, *, lock: bool = False) -> Hook:
        row = conn.execute(_SELECT_HOOK + (" FOR UPDATE" if lock else ""), (name,)).fetchone()
        if row is None:
            raise NotFound(f"hook {name} does not exist")
        return rows.hook(row)

    async def get_hook(self, name: str) -> Hook:
        return await self._run(partial(self._get, name=name))

    async def list_hooks(self, parent: Parent, *, after: str | None, limit: int) -> list[Hook]:
        _check_limit(limit)
        args: tuple[object, ...]
        if parent.any_project:
            sql, args = _LIST_PROJECT_HOOKS, (parent.company_id, after or "", limit)
        else:
            sql, args = _LIST_HOOKS, (str(parent), after or "", limit)

        def run(conn: psycopg.Connection[Any]) -> list[Hook]:
            return [rows.hook(row) for row in conn.execute(sql, args).fetchall()]

        return await self._run(run)

    async def list_all_hooks(self, *, after: str | None, limit: int) -> list[Hook]:
        _check_limit(limit)

        def run(conn: psycopg.Connection[Any]) -> list[Hook]:
            return [rows.hook(row) for row in conn.execute(_LIST_ALL_HOOKS, (after or "", limit)).fetchall()]

        return await self._run(run)

    async def payload_formats_in_use(self) -> dict[str, tuple[int, str]]:
        def run(conn: psycopg.Connection[Any]) -> dict[str, tuple[int, str]]:
            found = conn.execute(_FORMATS_IN_USE).fetchall()
            return {payload_format: (int(n), first) for payload_format, n, first in found}

        return await self._run(run)

    async def update_hook(self, name: str, change: Callable[[Hook], Hook]) -> Hook:
        def run(conn: psycopg.Connection[Any]) -> Hook:
            current = self._get(conn, name, lock=True)
            new = change(current)
            if (new.name, new.company_id, new.project_id) != (current.name, current.company_id, current.project_id):
                raise ValueError(f"change() must not rename hook {name} or move it to another parent")
            row = rows.hook_row(new)
            conn.execute(_UPDATE_HOOK, (*row[3:28], name))
            if new.projects != current.projects:
                conn.execute("UPDATE triggers SET all_projects = %s WHERE hook_name = %s", (not new.projects, name))
            changelog.notify(conn, deliveries.DUE)
            return new

        return await self._run(run)

    async def delete_hook(self, name: str) -> None:
        def run(conn: psycopg.Connection[Any]) -> None:
            with conn.cursor() as cur:
                cur.execute("DELETE FROM hooks WHERE name = %s", (name,))
                if cur.rowcount == 0:
                    raise NotFound(f"hook {name} does not exist")
            changelog.notify(conn, deliveries.DUE)

        await self._run(run)

    async def add_triggers(self, hook_name: str, triggers: Sequence[Trigger]) -> list[Trigger]:
        values: list[tuple[Any, ...]] = []
        for t in triggers:
            if t.hook_name != hook_name:
                raise ValueError(f"trigger {t.name} does not belong to hook {hook_name}")
            values.append((t.name, t.resource_name, t.event_type, rows.aware("create_time", t.create_time), hook_name))

        def run(conn: psycopg.Connection[Any]) -> list[Trigger]:
            self._get(conn, hook_name, lock=True)
            with conn.cursor() as cur:
                if values:
                    cur.executemany(_INSERT_TRIGGER, values)
            names = sorted({t.name for t in triggers})
            stored = {row[0]: rows.trigger(row) for row in conn.execute(_SELECT_TRIGGERS, (hook_name, names))}
            return [stored[t.name] for t in triggers]

        return await self._run(run)

    async def delete_triggers(self, hook_name: str, names: Sequence[str], *, allow_missing: bool) -> None:
        def run(conn: psycopg.Connection[Any]) -> None:
            _require_hook(conn, hook_name)
            with conn.cursor() as cur:
                cur.execute(
                    "DELETE FROM triggers WHERE hook_name = %s AND name = ANY(%b) RETURNING name",
                    (hook_name, list(names)),
                )
                gone = {row[0] for row in cur.fetchall()}
            if not allow_missing:
                for name in names:
                    if name not in gone:
                        raise NotFound(f"trigger {name} does not exist")  # rolls the deletes back

        await self._run(run)

    async def list_triggers(self, hook_name: str, *, after: str | None, limit: int) -> list[Trigger]:
        _check_limit(limit)

        def run(conn: psycopg.Connection[Any]) -> list[Trigger]:
            _require_hook(conn, hook_name)
            return [rows.trigger(row) for row in conn.execute(_LIST_TRIGGERS, (hook_name, after or "", limit))]

        return await self._run(run)

    # -- events and deliveries -------------------------------------------------------------

    async def publish_events(self, events: Sequence[Event], now: datetime) -> list[Published]:
        rows.aware("now", now)
        day = {partitions.day_of(now)}
        for _ in range(_KEY_RACE_RETRIES):
            try:
                return await self._run(
                    partial(deliveries.publish, events=events, now=now), events=day, deliveries=day, changes=day
                )
            except deliveries.KeyRace:
                continue  # another server stored one of the keys meanwhile: this run finds it
        raise Unavailable("publishing kept racing other servers for the same idempotency keys; try again")

    async def claim_due(
        self, now: datetime, *, limit: int, lease_until: datetime, owner: str, finished: Collection[str] = ()
    ) -> list[Claim]:
        _check_limit(limit)
        rows.aware("now", now)
        rows.aware("lease_until", lease_until)
        run = partial(
            deliveries.claim, now=now, limit=limit, lease_until=lease_until, owner=owner, finished=sorted(finished)
        )
        return await self._run(run)

    async def queue_depth(self, now: datetime, *, limit: int) -> QueueDepth:
        _check_limit(limit)
        rows.aware("now", now)
        return await self._run(partial(deliveries.queue_depth, now=now, limit=limit))

    async def next_due_time(self, *, after: datetime | None = None) -> datetime | None:
        return await self._run(partial(deliveries.next_due_time, after=after))

    async def record_attempts(self, records: Sequence[AttemptRecord]) -> None:
        recording = deliveries.recording(records)
        days = {partitions.day_of(t) for t in recording.change_times}
        await self._run(partial(deliveries.record, recording=recording), changes=days)

    async def release(self, delivery_names: Sequence[str]) -> None:
        await self._run(partial(deliveries.release, names=list(delivery_names)))

    async def take_sends(self, hook_name: str, rate: SendRate, now: datetime, wanted: int) -> SendGrant:
        rows.aware("now", now)
        return await self._run(partial(deliveries.take_sends, hook_name=hook_name, rate=rate, now=now, wanted=wanted))

    async def mark_failing(self, hook_name: str, since: datetime, *, last_success: datetime | None) -> datetime:
        rows.aware("since", since)
        if last_success is not None:
            rows.aware("last_success", last_success)
        mark = partial(protection.mark_failing, hook_name=hook_name, since=since, last_success=last_success)
        return await self._run(mark)

    async def clear_failing(self, hook_name: str) -> None:
        await self._run(partial(protection.clear_failing, hook_name=hook_name))

    async def postpone(self, delivery_names: Sequence[str], until: datetime) -> None:
        rows.aware("until", until)
        await self._run(partial(deliveries.postpone, names=list(delivery_names), until=until))

    async def hasten(self, hook_name: str, now: datetime) -> int:
        rows.aware("now", now)
        return await self._run(partial(deliveries.hasten, hook_name=hook_name, now=now))

    async def discard_pending(self, hook_name: str, now: datetime, reason: str) -> int:
        rows.aware("now", now)
        run = partial(deliveries.discard_pending, hook_name=hook_name, now=now, reason=reason)
        return await self._run(run, changes={partitions.day_of(now)})

    async def get_delivery(self, name: str) -> Delivery:
        return await self._run(partial(deliveries.get_delivery, name=name))

    async def list_attempts(self, delivery_name: str) -> list[Attempt]:
        return await self._run(partial(deliveries.list_attempts, delivery_name=delivery_name))

    async def list_deliveries(self, hook_name: str, *, after: str | None, limit: int) -> list[Delivery]:
        _check_limit(limit)
        return await self._run(partial(deliveries.list_deliveries, hook_name=hook_name, after=after or "", limit=limit))

    # -- history ---------------------------------------------------------------------------

    async def query_deliveries(
        self, query: DeliveryQuery, *, after: str | None, limit: int, scan_limit: int
    ) -> DeliveryPage:
        _check_limit(limit)
        _check_limit(scan_limit)
        plans.check(query)
        run = partial(history.query_deliveries, query=query, after=after, limit=limit, scan_limit=scan_limit)
        return await self._run(run)

    async def get_rendered(self, delivery_name: str) -> RenderedBody | None:
        return await self._run(partial(history.get_rendered, delivery_name=delivery_name))

    async def hook_project_stats(self, hook_name: str, project_id: int) -> HookStats:
        return await self._run(partial(history.hook_project_stats, hook_name=hook_name, project_id=project_id))

    async def hook_stats(self, hook_name: str, *, latency_sample: int) -> HookStats:
        return await self._run(partial(history.hook_stats, hook_name=hook_name, latency_sample=latency_sample))

    async def redeliver(self, names: Sequence[str], now: datetime) -> list[str]:
        rows.aware("now", now)
        run = partial(history.redeliver, names=list(names), now=now)
        return await self._run(run, changes={partitions.day_of(now)})

    async def list_changes(self, query: DeliveryQuery, *, after: int, limit: int, scan_limit: int) -> ChangePage:
        _check_limit(limit)
        _check_limit(scan_limit)
        plans.check(query)
        run = partial(history.list_changes, query=query, after=after, limit=limit, scan_limit=scan_limit)
        return await self._run(run)

    async def change_bounds(self) -> tuple[int, int]:
        return await self._run(history.change_bounds)

    async def get_event(self, event_id: str) -> Event:
        return await self._run(partial(deliveries.get_event, event_id=event_id))

    async def purge(self, before: datetime, limit: int) -> int:
        _check_limit(limit)
        rows.aware("before", before)
        await self._run_outside(partial(deliveries.detach_expired, before=before))
        return await self._run(partial(deliveries.purge, before=before, limit=limit))

    # -- what operators check first ----------------------------------------------------------

    async def activity(self, since: datetime, *, scan_limit: int) -> Activity:
        return await self._run(partial(status.activity, since=since, scan_limit=scan_limit))

    async def failing_hooks(self, *, limit: int) -> list[FailingHook]:
        return await self._run(partial(status.failing_hooks, limit=limit))

    # -- the cluster -----------------------------------------------------------------------

    async def heartbeat(self, node_id: str, now: datetime, *, lease_until: datetime, in_flight: int) -> int:
        run = partial(cluster.heartbeat, node_id=node_id, now=now, lease_until=lease_until, in_flight=in_flight)
        return await self._run(run)

    async def register_node(self, node: NodeInfo) -> None:
        await self._run(partial(cluster.register_node, node=node))

    async def list_nodes(self) -> list[NodeInfo]:
        return await self._run(cluster.list_nodes)

    async def remove_node(self, node_id: str) -> None:
        await self._run(partial(cluster.remove_node, node_id=node_id))

    # -- principals -------------------------------------------------------------------------

    async def create_token(self, token: Token) -> None:
        await self._run(partial(tokens.create, token=token))

    async def get_token(self, token_id: str) -> Token:
        return await self._run(partial(tokens.get, token_id=token_id))

    async def find_token(self, secret_hash: str) -> Token | None:
        return await self._run(partial(tokens.find, secret_hash=secret_hash))

    async def list_tokens(self, *, after: str | None, limit: int) -> list[Token]:
        _check_limit(limit)
        return await self._run(partial(tokens.page, after=after, limit=limit))

    async def revoke_token(self, token_id: str, now: datetime) -> Token:
        return await self._run(partial(tokens.revoke, token_id=token_id, now=now))

    async def touch_token(self, token_id: str, now: datetime) -> None:
        await self._run(partial(tokens.touch, token_id=token_id, now=now))

    async def listen(
        self,
        on_notice: Callable[[Notice], None],
        *,
        task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        await cluster.listen(self._conninfo, on_notice, task_status=task_status)


def _template_row(template: Template) -> tuple[Any, ...]:
    return template_text.template_row(template, rows.aware)


def _template(row: Sequence[Any]) -> Template:
    return template_text.template(row, lambda value: value)  # psycopg reads timestamptz as aware datetimes
