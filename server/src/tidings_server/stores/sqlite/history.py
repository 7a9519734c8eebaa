"""The SQLite store's history SQL: lists, overviews, redelivery and the change log.

Each function is the body of one transaction, run by SqliteStore in its worker thread. Lists
are walks along one index, newest first, with ``LIMIT`` as the scan budget: the criteria the
index does not cover are computed per row as a 0/1 column (never in WHERE, so that a row that
fails them still counts as examined), and Python stops reading as soon as the page is full.
``stores.history.plan`` picks the walk, so the memory store examines the same deliveries.
"""

from __future__ import annotations

import heapq
import json
import sqlite3
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any, Final

from tidings_server.domain import filtering
from tidings_server.domain.errors import NotFound
from tidings_server.domain.model import DeliveryStatus, RenderedBody
from tidings_server.domain.ports import Change, ChangePage, DeliveryPage, DeliveryQuery, HookStats
from tidings_server.domain.states import Cause, sources, transition
from tidings_server.stores import history
from tidings_server.stores.history import Access, Walk
from tidings_server.stores.sqlite import rows

# -- the change log and the counters, written by every path that moves a delivery ------------

# Written by the store's own statements rather than by triggers: a trigger makes SQLite keep a
# statement journal for every row, which made publishing 3 times slower than these.
_LOG_CHANGE: Final = """
    INSERT INTO changes (time, name, hook_name, event_id, status, attempt_count, create_time, update_time,
                         next_attempt_time, first_attempt_time, last_error, company_id, project_id,
                         resource_name, resource_id, event_type, last_response_status)
    SELECT update_time, name, hook_name, event_id, status, attempt_count, create_time, update_time,
           next_attempt_time, first_attempt_time, last_error, company_id, project_id, resource_name,
           resource_id, event_type, last_response_status
    FROM deliveries WHERE name = ?
"""
# The same, from values: what publish knows it has just inserted.
LOG_NEW_DELIVERY: Final = """
    INSERT INTO changes (time, name, hook_name, event_id, status, attempt_count, create_time, update_time,
                         next_attempt_time, first_attempt_time, last_error, company_id, project_id,
                         resource_name, resource_id, event_type, last_response_status)
    VALUES (?7, ?1, ?2, ?3, 'queued', 0, ?7, ?7, ?7, NULL, '', ?8, ?9, ?5, ?6, ?10, NULL)
"""
# The same, from values: what record knows each delivery is right after its update.
LOG_CHANGE_VALUES: Final = """
    INSERT INTO changes (time, name, hook_name, event_id, status, attempt_count, create_time, update_time,
                         next_attempt_time, first_attempt_time, last_error, company_id, project_id,
                         resource_name, resource_id, event_type, last_response_status)
    VALUES (?8, ?1, ?2, ?3, ?4, ?5, ?6, ?8, ?7, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16)
"""
_COUNT: Final = """
    INSERT INTO delivery_counts (hook_name, status, total) VALUES (?, ?, ?)
    ON CONFLICT (hook_name, status) DO UPDATE SET total = total + excluded.total
"""


def log_changes(conn: sqlite3.Connection, names: Sequence[str]) -> None:
    """Append each delivery, as it is now, to the change log."""
    conn.executemany(_LOG_CHANGE, [(name,) for name in names])


def count(conn: sqlite3.Connection, deltas: Mapping[tuple[str, str], int]) -> None:
    """Add ``deltas`` (by hook name and status value) to the per-hook counters."""
    conn.executemany(_COUNT, [(hook, status, delta) for (hook, status), delta in deltas.items() if delta])


# -- listing deliveries ----------------------------------------------------------------------

# Each field of DELIVERY_FILTER_SCHEMA as a column of the deliveries table (alias d).
FILTER_COLUMNS: Final = {
    "status": "d.status",
    "resource_name": "d.resource_name",
    "resource_id": "d.resource_id",
    "event_type": "d.event_type",
    "response_status": "d.last_response_status",
    "attempt_count": "d.attempt_count",
    "create_time": "d.create_time",
    "update_time": "d.update_time",
    "hook": "d.hook_name",
    "project_id": "d.project_id",
}


def _filter_value(field: str, value: object) -> object:
    return rows.to_micros(field, value) if isinstance(value, datetime) else value


def residual(query: DeliveryQuery, walk: Walk) -> tuple[str, list[object]]:
    """The criteria the walk does not guarantee, as one SQL condition and its parameters."""
    terms: list[str] = []
    params: list[object] = []
    statuses = history.effective_statuses(query)
    if statuses and walk.access is not Access.HOOK_STATUS:
        terms.append(f"d.status IN ({', '.join('?' * len(statuses))})")
        params += sorted(s.value for s in statuses)
    if query.resource_id is not None and walk.access is not Access.HOOK_RESOURCE_ID:
        terms.append("d.resource_id = ?")
        params.append(query.resource_id)
    if query.resource_name is not None:
        terms.append("d.resource_name = ?")
        params.append(query.resource_name)
    if query.event_type is not None:
        terms.append("d.event_type = ?")
        params.append(query.event_type)
    if query.start_time is not None:
        terms.append("d.create_time >= ?")
        params.append(rows.to_micros("start_time", query.start_time))
    if query.end_time is not None:
        terms.append("d.create_time < ?")
        params.append(rows.to_micros("end_time", query.end_time))
    if query.filter is not None:
        sql, filter_params = filtering.to_sql(query.filter, FILTER_COLUMNS, _filter_value)
        terms.append(sql)
        params += filter_params
    return (" AND ".join(terms) if terms else "1"), params


# The walks, one per Access. Each yields (event_id, name, rowid, hit) newest first, at most
# LIMIT rows; {hit} is the residual condition, {after} the keyset condition (or nothing).
# Event ids are unique within a hook, so a hook's walks order by event_id alone.
_WALKS: Final = {
    Access.HOOK: """
        SELECT d.event_id, d.name, d.rowid, CASE WHEN {hit} THEN 1 ELSE 0 END
        FROM deliveries AS d
        WHERE d.name > ? AND d.name < ?
        ORDER BY d.name DESC LIMIT ?
    """,
    Access.HOOK_RESOURCE_ID: """
        SELECT d.event_id, d.name, d.rowid, CASE WHEN {hit} THEN 1 ELSE 0 END
        FROM deliveries AS d INDEXED BY deliveries_history_by_resource_id
        WHERE d.hook_name = ? AND d.resource_id = ? {after}
        ORDER BY d.event_id DESC LIMIT ?
    """,
    Access.HOOK_STATUS: """
        SELECT d.event_id, d.name, d.rowid, CASE WHEN {hit} THEN 1 ELSE 0 END
        FROM deliveries AS d INDEXED BY deliveries_history_by_status
        WHERE d.hook_name = ? AND d.status = ? {after}
        ORDER BY d.event_id DESC LIMIT ?
    """,
    Access.PROJECT: """
        SELECT d.event_id, d.name, d.rowid, CASE WHEN {hit} THEN 1 ELSE 0 END
        FROM deliveries AS d INDEXED BY deliveries_history_by_project
        WHERE d.company_id = ? AND d.project_id = ? {after}
        ORDER BY d.event_id DESC, d.name DESC LIMIT ?
    """,
    Access.COMPANY: """
        SELECT d.event_id, d.name, d.rowid, CASE WHEN {hit} THEN 1 ELSE 0 END
        FROM deliveries AS d INDEXED BY deliveries_history_by_company
        WHERE d.company_id = ? {after}
        ORDER BY d.event_id DESC, d.name DESC LIMIT ?
    """,
}
_AFTER_IN_HOOK: Final = "AND d.event_id < ?"
_AFTER_IN_SCOPE: Final = "AND (d.event_id, d.name) < (?, ?)"

_SELECT_FOUND: Final = """
    SELECT d.rowid, d.name, d.hook_name, d.event_id, d.status, d.attempt_count, d.create_time, d.update_time,
           d.next_attempt_time, d.first_attempt_time, d.last_error, d.company_id, d.project_id,
           d.resource_name, d.resource_id, d.event_type, d.last_response_status,
           e.serial, e.id, e.publish_time, e.timestamp, e.company_id, e.project_id, e.user_id, e.resource_name,
           e.resource_id, e.event_type, e.source_user_id, e.source_project_id, e.source_operation_id,
           e.source_company_id, e.source_application_id, e.related_resources, e.idempotency_key, e.traceparent,
           e.idempotency_fingerprint
    FROM deliveries AS d JOIN events AS e ON e.serial = d.event_serial
    WHERE d.rowid IN (SELECT value FROM json_each(?))
"""


def walk_statements(query: DeliveryQuery, walk: Walk, after: str | None, scan: int) -> list[tuple[str, list[object]]]:
    """The SQL of each range the walk merges, with its parameters; each reads at most ``scan`` rows."""
    hit, hit_params = residual(query, walk)
    template = _WALKS[walk.access]
    key = None if after is None else history.order_key(after)
    statements: list[tuple[str, list[object]]] = []
    if walk.access is Access.HOOK:
        prefix = f"{query.hook_name}/deliveries/"
        # "0" follows "/": "{hook}/deliveries0" ends the hook's range of the primary key.
        high = f"{query.hook_name}/deliveries0" if key is None else prefix + key[0]
        statements.append((template.format(hit=hit), [*hit_params, prefix, high, scan]))
        return statements
    if walk.access in (Access.PROJECT, Access.COMPANY):
        scope: list[object] = [query.company_id]
        if walk.access is Access.PROJECT:
            scope.append(query.project_id)
        sql = template.format(hit=hit, after="" if key is None else _AFTER_IN_SCOPE)
        statements.append((sql, [*hit_params, *scope, *(key or ()), scan]))
        return statements
    narrowed: list[object] = [query.resource_id]
    if walk.access is Access.HOOK_STATUS:
        narrowed = [s.value for s in walk.statuses]
    sql = template.format(hit=hit, after="" if key is None else _AFTER_IN_HOOK)
    for value in narrowed:
        statements.append((sql, [*hit_params, query.hook_name, value, *(key[:1] if key else ()), scan]))
    return statements


def _merged(conn: sqlite3.Connection, statements: list[tuple[str, list[object]]]) -> Iterator[Any]:
    cursors = [conn.execute(sql, params) for sql, params in statements]
    if len(cursors) == 1:
        return iter(cursors[0])
    return heapq.merge(*cursors, key=lambda row: (row[0], row[1]), reverse=True)


def query_deliveries(
    conn: sqlite3.Connection, *, query: DeliveryQuery, after: str | None, limit: int, scan_limit: int
) -> DeliveryPage:
    walk = history.plan(query)
    # One row more than the budget: whether it exists says if anything is left after the page.
    found: list[int] = []
    last: str | None = None
    more = False
    for examined, (_event_id, name, rowid, hit) in enumerate(
        _merged(conn, walk_statements(query, walk, after, scan_limit + 1))
    ):
        if examined == scan_limit or len(found) == limit:
            more = True
            break
        last = name
        if hit:
            found.append(rowid)
    by_rowid = {row[0]: row for row in conn.execute(_SELECT_FOUND, (json.dumps(found),))} if found else {}
    page = [(rows.delivery(by_rowid[r][1:17]), rows.event(by_rowid[r][17:])) for r in found]
    return DeliveryPage(page, last if more else None)


# -- one delivery's body ---------------------------------------------------------------------


def get_rendered(conn: sqlite3.Connection, *, delivery_name: str) -> RenderedBody | None:
    if conn.execute("SELECT 1 FROM deliveries WHERE name = ?", (delivery_name,)).fetchone() is None:
        raise NotFound(f"delivery {delivery_name} does not exist")
    row = conn.execute(
        "SELECT body, content_type FROM delivery_bodies WHERE delivery_name = ?", (delivery_name,)
    ).fetchone()
    return None if row is None else RenderedBody(bytes(row[0]), row[1])


# -- a hook's overview -----------------------------------------------------------------------

_COUNTS: Final = "SELECT status, total FROM delivery_counts WHERE hook_name = ?"
# The attempts primary key (delivery_name, number) read backwards from the end of the hook's
# range: the newest deliveries' attempts, latest first, without touching older ones.
_LATENCIES: Final = """
    SELECT end_time - start_time FROM attempts
    WHERE delivery_name > ? AND delivery_name < ?
    ORDER BY delivery_name DESC, number DESC LIMIT ?
"""
_HEALTH: Final = """
    SELECT last_success_time, last_failure_time, last_failure_reason, consecutive_failures
    FROM hook_health WHERE hook_name = ?
"""
_RATE_LIMITED: Final = "SELECT limited_time FROM send_buckets WHERE hook_name = ?"
# min() over the leading columns of deliveries_due_by_hook is one index probe.
_NEXT_ATTEMPT: Final = """
    SELECT min(next_attempt_time) FROM deliveries INDEXED BY deliveries_due_by_hook
    WHERE hook_name = ? AND status IN ('queued', 'retrying')
"""


_PROJECT_COUNTS: Final = """
    SELECT status, count(*) FROM deliveries WHERE hook_name = ? AND project_id = ? GROUP BY status
"""
_PROJECT_NEXT_ATTEMPT: Final = """
    SELECT min(next_attempt_time) FROM deliveries
    WHERE hook_name = ? AND project_id = ? AND status IN ('queued', 'retrying')
"""


def hook_project_stats(conn: sqlite3.Connection, *, hook_name: str, project_id: int) -> HookStats:
    counts = dict.fromkeys(DeliveryStatus, 0)
    for status, total in conn.execute(_PROJECT_COUNTS, (hook_name, project_id)):
        counts[DeliveryStatus(status)] = total
    (next_attempt,) = conn.execute(_PROJECT_NEXT_ATTEMPT, (hook_name, project_id)).fetchone()
    return HookStats(counts, [], next_attempt_time=rows.optional_time(next_attempt))


def hook_stats(conn: sqlite3.Connection, *, hook_name: str, latency_sample: int) -> HookStats:
    counts = dict.fromkeys(DeliveryStatus, 0)
    for status, total in conn.execute(_COUNTS, (hook_name,)):
        counts[DeliveryStatus(status)] = total
    latencies: list[timedelta] = []
    if latency_sample > 0:
        bounds = (f"{hook_name}/deliveries/", f"{hook_name}/deliveries0", latency_sample)
        latencies = [timedelta(microseconds=us) for (us,) in conn.execute(_LATENCIES, bounds)]
    (next_attempt,) = conn.execute(_NEXT_ATTEMPT, (hook_name,)).fetchone()
    health = conn.execute(_HEALTH, (hook_name,)).fetchone()
    limited = conn.execute(_RATE_LIMITED, (hook_name,)).fetchone()
    limited_time = None if limited is None else rows.optional_time(limited[0])
    if health is None:
        return HookStats(
            counts, latencies, next_attempt_time=rows.optional_time(next_attempt), rate_limited_time=limited_time
        )
    success, failure, reason, failures = health
    return HookStats(
        counts,
        latencies,
        last_success_time=rows.optional_time(success),
        last_failure_time=rows.optional_time(failure),
        last_failure_reason=reason,
        consecutive_failures=failures,
        next_attempt_time=rows.optional_time(next_attempt),
        rate_limited_time=limited_time,
    )


# -- redelivering ----------------------------------------------------------------------------

REDELIVERABLE: Final = tuple(sorted(s.value for s in sources(Cause.REDELIVER)))
_TARGETS: Final = {transition(DeliveryStatus(s), Cause.REDELIVER) for s in REDELIVERABLE}
assert len(_TARGETS) == 1, "redelivering leads every status it applies to into one status"
REDELIVERED: Final = _TARGETS.pop()
_REDELIVERABLE_JSON: Final = json.dumps(REDELIVERABLE)
# The statuses it applies to travel as one JSON array parameter, from the state machine's table.
_REDELIVER: Final = """
    UPDATE deliveries
    SET status = ?, next_attempt_time = ?, first_attempt_time = NULL, last_error = '', update_time = ?,
        lease_until = NULL, lease_owner = NULL, claims_since_attempt = 0
    WHERE name = ? AND status IN (SELECT value FROM json_each(?))
      AND EXISTS (SELECT 1 FROM hooks AS h
                  WHERE h.name = deliveries.hook_name AND h.status != 'disabled'
                    AND h.create_time <= deliveries.create_time)
"""


def redeliver(conn: sqlite3.Connection, *, names: Sequence[str], now: int) -> list[str]:
    moved: list[str] = []
    deltas: Counter[tuple[str, str]] = Counter()
    for name in names:
        current = conn.execute("SELECT hook_name, status FROM deliveries WHERE name = ?", (name,)).fetchone()
        if current is None:
            continue
        args = (REDELIVERED.value, now, now, name, _REDELIVERABLE_JSON)
        if conn.execute(_REDELIVER, args).rowcount:
            moved.append(name)
            hook, status = current
            deltas[hook, status] -= 1
            deltas[hook, REDELIVERED.value] += 1
            log_changes(conn, [name])
    count(conn, deltas)
    return moved


# -- the change log --------------------------------------------------------------------------

# Each walks the changes under one kind of parent in seq order; {hit} is the statuses test.
_CHANGES: Final = {
    Access.HOOK: """
        SELECT seq, time, name, hook_name, event_id, status, attempt_count, create_time, update_time, next_attempt_time,
           first_attempt_time, last_error, company_id, project_id, resource_name, resource_id, event_type,
           last_response_status, {hit}
        FROM changes INDEXED BY changes_by_hook WHERE hook_name = ? AND seq > ? ORDER BY seq LIMIT ?
    """,
    Access.PROJECT: """
        SELECT seq, time, name, hook_name, event_id, status, attempt_count, create_time, update_time, next_attempt_time,
           first_attempt_time, last_error, company_id, project_id, resource_name, resource_id, event_type,
           last_response_status, {hit}
        FROM changes INDEXED BY changes_by_project WHERE company_id = ? AND project_id = ? AND seq > ?
        ORDER BY seq LIMIT ?
    """,
    Access.COMPANY: """
        SELECT seq, time, name, hook_name, event_id, status, attempt_count, create_time, update_time, next_attempt_time,
           first_attempt_time, last_error, company_id, project_id, resource_name, resource_id, event_type,
           last_response_status, {hit}
        FROM changes INDEXED BY changes_by_company WHERE company_id = ? AND seq > ? ORDER BY seq LIMIT ?
    """,
}
_LAST_SEQ: Final = "SELECT coalesce((SELECT seq FROM sqlite_sequence WHERE name = 'changes'), 0)"


def change_statement(query: DeliveryQuery, after: int, scan: int) -> tuple[str, list[object]]:
    """The walk over the changes under the query's parent, with a 0/1 column for its statuses."""
    history.check(query)
    statuses = sorted(s.value for s in history.effective_statuses(query))
    hit = f"status IN ({', '.join('?' * len(statuses))})" if statuses else "1"
    scope: list[object]
    if query.hook_name is not None:
        access, scope = Access.HOOK, [query.hook_name]
    elif query.project_id is not None:
        access, scope = Access.PROJECT, [query.company_id, query.project_id]
    else:
        access, scope = Access.COMPANY, [query.company_id]
    return _CHANGES[access].format(hit=hit), [*statuses, *scope, after, scan]


def list_changes(
    conn: sqlite3.Connection, *, query: DeliveryQuery, after: int, limit: int, scan_limit: int
) -> ChangePage:
    sql, params = change_statement(query, after, scan_limit + 1)
    found: list[Change] = []
    last = after
    more = False
    for examined, row in enumerate(conn.execute(sql, params)):
        if examined == scan_limit or len(found) == limit:
            more = True
            break
        last = row[0]
        if row[-1]:
            found.append(Change(row[0], rows.from_micros(row[1]), rows.delivery(row[2:-1])))
    if not more:
        # Every change under the parent up to the newest was examined: nothing before it is left.
        last = max(last, conn.execute(_LAST_SEQ).fetchone()[0])
    return ChangePage(found, last)


def change_bounds(conn: sqlite3.Connection) -> tuple[int, int]:
    newest: int = conn.execute(_LAST_SEQ).fetchone()[0]
    (oldest,) = conn.execute("SELECT min(seq) FROM changes").fetchone()
    return (newest + 1 if oldest is None else oldest), newest


# Oldest first, up to the first change that is not older than the cut: a change's time is its
# delivery's update time, which follows seq but for the moments an attempt takes to be
# recorded, so the walk never has to look past what it deletes.
_OLDEST_CHANGES: Final = "SELECT seq, time FROM changes ORDER BY seq LIMIT ?"


def purge_changes(conn: sqlite3.Connection, *, before: int, limit: int) -> int:
    last: int | None = None
    deleted = 0
    for seq, time in conn.execute(_OLDEST_CHANGES, (limit,)).fetchall():
        if time >= before:
            break
        last = seq
        deleted += 1
    if last is not None:
        conn.execute("DELETE FROM changes WHERE seq <= ?", (last,))
    return deleted
