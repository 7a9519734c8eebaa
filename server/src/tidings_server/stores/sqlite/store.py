"""The SQLite store: hooks and triggers in one local file, through the stdlib sqlite3 module.

One connection serves the whole server. sqlite3 blocks, so every operation runs in a worker
thread, and a CapacityLimiter of 1 lets only one of them use the connection at a time: there
is a single writer and the trio loop never waits on disk. Each method is one transaction
(BEGIN IMMEDIATE when it writes, so it holds the write lock from its first read and never has
to be retried half-way), which is what makes every method atomic.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any, TypeVar

import trio

from tidings_server.domain.errors import AlreadyExists, NotFound
from tidings_server.domain.model import Hook, HookStatus, Trigger
from tidings_server.domain.names import Parent

T = TypeVar("T")

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)

# The SQL is spelled out in full, one constant per statement, so that none is assembled at run
# time. Keyset pages compare ``name > ?`` with "" for the first page: every name is non-empty.
_INSERT_HOOK = """
    INSERT INTO hooks (name, company_id, project_id, display_name, destination_url, authorization_header,
                       payload_format, status, create_time, update_time, parent)
    VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
"""
_SELECT_HOOK = """
    SELECT name, company_id, project_id, display_name, destination_url, authorization_header,
           payload_format, status, create_time, update_time
    FROM hooks WHERE name = ?
"""
_LIST_HOOKS = """
    SELECT name, company_id, project_id, display_name, destination_url, authorization_header,
           payload_format, status, create_time, update_time
    FROM hooks WHERE parent = ? AND name > ? ORDER BY name LIMIT ?
"""
_LIST_PROJECT_HOOKS = """
    SELECT name, company_id, project_id, display_name, destination_url, authorization_header,
           payload_format, status, create_time, update_time
    FROM hooks WHERE company_id = ? AND project_id IS NOT NULL AND name > ? ORDER BY name LIMIT ?
"""
_UPDATE_HOOK = """
    UPDATE hooks SET display_name = ?, destination_url = ?, authorization_header = ?, payload_format = ?,
                     status = ?, create_time = ?, update_time = ?
    WHERE name = ?
"""
_INSERT_TRIGGER = """
    INSERT INTO triggers (hook_name, name, resource_name, event_type, create_time) VALUES (?, ?, ?, ?, ?)
    ON CONFLICT (hook_name, name) DO NOTHING
"""
_SELECT_TRIGGER = """
    SELECT name, resource_name, event_type, create_time FROM triggers WHERE hook_name = ? AND name = ?
"""
_LIST_TRIGGERS = """
    SELECT name, resource_name, event_type, create_time FROM triggers
    WHERE hook_name = ? AND name > ? ORDER BY name LIMIT ?
"""


def to_micros(what: str, value: datetime) -> int:
    """An aware datetime as integer microseconds since the Unix epoch: exact, and orders like time."""
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"{what} must be timezone-aware, got {value!r}")
    return (value - _EPOCH) // _MICROSECOND


def from_micros(value: int) -> datetime:
    return _EPOCH + timedelta(microseconds=value)


def _check_limit(limit: int) -> None:
    if limit < 1:
        raise ValueError(f"limit must be at least 1, got {limit}")


def _hook_row(hook: Hook) -> tuple[object, ...]:
    """The row for ``hook``, in _INSERT_HOOK's column order."""
    return (
        hook.name,
        hook.company_id,
        hook.project_id,
        hook.display_name,
        hook.destination_url,
        hook.authorization_header,
        hook.payload_format,
        hook.status.value,
        to_micros("create_time", hook.create_time),
        to_micros("update_time", hook.update_time),
        str(Parent(hook.company_id, hook.project_id)),
    )


def _hook(row: Any) -> Hook:
    name, company_id, project_id, display_name, url, authorization, payload_format, status, created, updated = row
    return Hook(
        name=name,
        company_id=company_id,
        project_id=project_id,
        display_name=display_name,
        destination_url=url,
        authorization_header=authorization,
        payload_format=payload_format,
        status=HookStatus(status),
        create_time=from_micros(created),
        update_time=from_micros(updated),
    )


def _trigger(row: Any) -> Trigger:
    name, resource_name, event_type, created = row
    return Trigger(name=name, resource_name=resource_name, event_type=event_type, create_time=from_micros(created))


def _require_hook(conn: sqlite3.Connection, name: str) -> None:
    if conn.execute("SELECT 1 FROM hooks WHERE name = ?", (name,)).fetchone() is None:
        raise NotFound(f"hook {name} does not exist")


class SqliteStore:
    """A Store on one sqlite3 connection, opened and closed by SqliteBackend.

    ``conn`` must be in autocommit mode (``isolation_level=None``): transactions are begun and
    ended here, explicitly, not by the sqlite3 module's implicit rules.
    """

    def __init__(self, conn: sqlite3.Connection, limiter: trio.CapacityLimiter) -> None:
        self._conn = conn
        self._limiter = limiter

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

    async def create_hook(self, hook: Hook) -> None:
        row = _hook_row(hook)

        def run(conn: sqlite3.Connection) -> None:
            if conn.execute("SELECT 1 FROM hooks WHERE name = ?", (hook.name,)).fetchone() is not None:
                raise AlreadyExists(f"hook {hook.name} already exists")
            conn.execute(_INSERT_HOOK, row)

        await self._run(run, write=True)

    def _get(self, conn: sqlite3.Connection, name: str) -> Hook:
        row = conn.execute(_SELECT_HOOK, (name,)).fetchone()
        if row is None:
            raise NotFound(f"hook {name} does not exist")
        return _hook(row)

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
            return [_hook(row) for row in conn.execute(sql, args)]

        return await self._run(run, write=False)

    async def update_hook(self, name: str, change: Callable[[Hook], Hook]) -> Hook:
        def run(conn: sqlite3.Connection) -> Hook:
            current = self._get(conn, name)
            new = change(current)
            if (new.name, new.company_id, new.project_id) != (current.name, current.company_id, current.project_id):
                raise ValueError(f"change() must not rename hook {name} or move it to another parent")
            row = _hook_row(new)
            conn.execute(_UPDATE_HOOK, (*row[3:10], name))  # display_name … update_time
            return new

        return await self._run(run, write=True)

    async def delete_hook(self, name: str) -> None:
        def run(conn: sqlite3.Connection) -> None:
            # The triggers go with it: ON DELETE CASCADE, with foreign_keys on for the connection.
            if conn.execute("DELETE FROM hooks WHERE name = ?", (name,)).rowcount == 0:
                raise NotFound(f"hook {name} does not exist")

        await self._run(run, write=True)

    async def add_triggers(self, hook_name: str, triggers: Sequence[Trigger]) -> list[Trigger]:
        rows: list[tuple[str, str, str, str, int]] = []
        for trigger in triggers:
            if trigger.hook_name != hook_name:
                raise ValueError(f"trigger {trigger.name} does not belong to hook {hook_name}")
            rows.append(
                (
                    hook_name,
                    trigger.name,
                    trigger.resource_name,
                    trigger.event_type,
                    to_micros("create_time", trigger.create_time),
                )
            )

        def run(conn: sqlite3.Connection) -> list[Trigger]:
            _require_hook(conn, hook_name)
            conn.executemany(_INSERT_TRIGGER, rows)
            stored: dict[str, Trigger] = {}
            for trigger in triggers:
                if trigger.name not in stored:
                    row = conn.execute(_SELECT_TRIGGER, (hook_name, trigger.name)).fetchone()
                    stored[trigger.name] = _trigger(row)
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
            return [_trigger(row) for row in conn.execute(_LIST_TRIGGERS, (hook_name, after or "", limit))]

        return await self._run(run, write=False)
