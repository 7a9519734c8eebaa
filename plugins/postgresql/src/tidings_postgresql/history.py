"""The PostgreSQL store's history SQL: lists, overviews, redelivery and the change log.

The walks are those of ``stores.history.plan``, each along one index, newest first, with
``LIMIT`` as the scan budget: the criteria the index does not cover are a boolean column (never
in WHERE, so a row that fails them still counts as examined), so every backend examines the
same deliveries and returns the same pages.

Where a walk stops is decided in the statement itself (``_DECIDED``): a window numbers the rows
and counts the hits as the walk goes, and an outer ``LIMIT`` stops the scan one row after the
page is decided, returning only the hits and the rows that say where it stopped. A first page
whose hits are common reads a page of rows, not the whole scan budget, and a rare filter sends
its few hits, not every row it examined.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any, Final

import psycopg

from tidings_postgresql import changelog, rows
from tidings_postgresql.deliveries import CHANGES, DUE, PENDING, UNLEASE
from tidings_postgresql.rows import DELIVERY_COLUMNS, EVENT_COLUMNS, prefixed
from tidings_server.domain import filtering
from tidings_server.domain.errors import NotFound
from tidings_server.domain.model import DeliveryStatus, RenderedBody
from tidings_server.domain.ports import Change, ChangePage, DeliveryPage, DeliveryQuery, HookStats
from tidings_server.domain.states import Cause, sources, transition
from tidings_server.stores import history
from tidings_server.stores.history import Access, Walk

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


def _placeholders(fragment: str) -> str:
    """``filtering.to_sql`` writes ``?``; psycopg takes ``%s``. Values only ever travel as
    parameters and the column texts are ours, so every ``?`` is a placeholder."""
    return fragment.replace("?", "%s")


def residual(query: DeliveryQuery, walk: Walk) -> tuple[str, list[object]]:
    """The criteria the walk does not guarantee, as one SQL condition and its parameters."""
    terms: list[str] = []
    params: list[object] = []
    statuses = history.effective_statuses(query)
    if statuses and walk.access is not Access.HOOK_STATUS:
        terms.append("d.status = ANY(%b)")
        params.append(sorted(s.value for s in statuses))
    if query.resource_id is not None and walk.access is not Access.HOOK_RESOURCE_ID:
        terms.append("d.resource_id = %s")
        params.append(query.resource_id)
    if query.resource_name is not None:
        terms.append("d.resource_name = %s")
        params.append(query.resource_name)
    if query.event_type is not None:
        terms.append("d.event_type = %s")
        params.append(query.event_type)
    if query.start_time is not None:
        terms.append("d.create_time >= %s")
        params.append(rows.aware("start_time", query.start_time))
    if query.end_time is not None:
        terms.append("d.create_time < %s")
        params.append(rows.aware("end_time", query.end_time))
    if query.filter is not None:
        sql, filter_params = filtering.to_sql(query.filter, FILTER_COLUMNS)
        terms.append(_placeholders(sql))
        params += filter_params
    return (" AND ".join(f"coalesce({t}, false)" for t in terms) if terms else "true"), params


_WALKS: Final = {
    Access.HOOK: """
        SELECT d.event_id, d.name, d.create_time, {hit} AS hit
        FROM deliveries AS d WHERE d.name > %s AND d.name < %s
        ORDER BY d.name DESC LIMIT %s
    """,
    Access.HOOK_RESOURCE_ID: """
        SELECT d.event_id, d.name, d.create_time, {hit} AS hit
        FROM deliveries AS d WHERE d.hook_name = %s AND d.resource_id = %s {after}
        ORDER BY d.event_id DESC LIMIT %s
    """,
    Access.HOOK_STATUS: """
        SELECT d.event_id, d.name, d.create_time, {hit} AS hit
        FROM deliveries AS d WHERE d.hook_name = %s AND d.status = %s {after}
        ORDER BY d.event_id DESC LIMIT %s
    """,
    Access.PROJECT: """
        SELECT d.event_id, d.name, d.create_time, {hit} AS hit
        FROM deliveries AS d WHERE d.company_id = %s AND d.project_id = %s {after}
        ORDER BY d.event_id DESC, d.name DESC LIMIT %s
    """,
    Access.COMPANY: """
        SELECT d.event_id, d.name, d.create_time, {hit} AS hit
        FROM deliveries AS d WHERE d.company_id = %s {after}
        ORDER BY d.event_id DESC, d.name DESC LIMIT %s
    """,
}
_ORDER: Final = {
    Access.HOOK: "w.name DESC",
    Access.HOOK_RESOURCE_ID: "w.event_id DESC",
    Access.HOOK_STATUS: "w.event_id DESC",
    Access.PROJECT: "w.event_id DESC, w.name DESC",
    Access.COMPANY: "w.event_id DESC, w.name DESC",
}
"""The walk's order, as the window over it names it (the walk's own ORDER BY, so no sort)."""
_AFTER_IN_HOOK: Final = "AND d.event_id < %s"
_AFTER_IN_SCOPE: Final = "AND (d.event_id, d.name) < (%s, %s)"
# Several statuses: one range per status, merged by PostgreSQL (a hook has one delivery per
# event, so the event id orders them whole).
_MERGED: Final = "SELECT * FROM ({branches}) AS m ORDER BY m.event_id DESC LIMIT %s"
# The walk's rows numbered (n) with the hits so far (hits, this row's included). Returned: the
# hits up to the page's limit, the rows from the scan budget's last on, the rows after the
# limit-th hit, and the walk's final row; the LIMIT stops the walk one row after the first
# row past the limit-th hit, which none of the others follow (at most limit + 2 come before it).
_DECIDED: Final = """
    SELECT * FROM (
        SELECT w.*, row_number() OVER o AS n, count(*) FILTER (WHERE w.hit) OVER o AS hits,
               lead(true, 1, false) OVER o AS followed
        FROM ({walk}) AS w
        WINDOW o AS (ORDER BY {order} ROWS UNBOUNDED PRECEDING)
    ) AS x
    WHERE (x.hit AND x.hits <= %s) OR x.n >= %s OR x.hits - x.hit::int >= %s OR NOT x.followed
    LIMIT %s
"""
# The page's rows by key; the bounds on the partition keys let the days it does not touch be
# pruned when the statement starts, instead of probing every day's primary key for each row.
_SELECT_FOUND: Final = f"""
    SELECT {prefixed(DELIVERY_COLUMNS, "d")}, {prefixed(EVENT_COLUMNS, "e")}
    FROM unnest(%b::text[], %b::timestamptz[]) WITH ORDINALITY AS u(name, created, ord)
    JOIN deliveries AS d ON d.name = u.name AND d.create_time = u.created
    JOIN events AS e ON e.serial = d.event_serial AND e.publish_time = d.create_time
    WHERE d.create_time BETWEEN %s AND %s AND e.publish_time BETWEEN %s AND %s
    ORDER BY u.ord
"""
_GENERIC: Final = "SET LOCAL plan_cache_mode = force_generic_plan"
"""Planned once per connection, not per call: a statement over the partitioned tables costs more
to plan (every day's partition and its indexes considered) than to run (1-20 ms against
0.2-1 ms for a first page, bench/history_pg.py), and nothing in these statements prunes days at
plan time, so a generic plan is the custom one. Only for the transaction it is set in."""


def _execute(conn: psycopg.Connection[Any], statement: tuple[str, Sequence[object]]) -> list[Any]:
    """A history statement, prepared on the connection (run with its generic plan after _GENERIC)."""
    return conn.execute(*statement, prepare=True).fetchall()


def walk_statement(query: DeliveryQuery, walk: Walk, after: str | None, scan: int) -> tuple[str, list[object]]:
    """The walk as one statement: at most ``scan`` rows (event_id, name, create_time, hit), in order."""
    hit, hit_params = residual(query, walk)
    template = _WALKS[walk.access]
    key = None if after is None else history.order_key(after)
    if walk.access is Access.HOOK:
        prefix = f"{query.hook_name}/deliveries/"
        high = f"{query.hook_name}/deliveries0" if key is None else prefix + key[0]
        return template.format(hit=hit), [*hit_params, prefix, high, scan]
    if walk.access in (Access.PROJECT, Access.COMPANY):
        scope: list[object] = [query.company_id]
        if walk.access is Access.PROJECT:
            scope.append(query.project_id)
        sql = template.format(hit=hit, after="" if key is None else _AFTER_IN_SCOPE)
        return sql, [*hit_params, *scope, *(key or ()), scan]
    narrowed: list[object] = [query.resource_id]
    if walk.access is Access.HOOK_STATUS:
        narrowed = [s.value for s in walk.statuses]
    sql = template.format(hit=hit, after="" if key is None else _AFTER_IN_HOOK)
    branches = [(sql, [*hit_params, query.hook_name, value, *(key[:1] if key else ()), scan]) for value in narrowed]
    if len(branches) == 1:
        return branches[0]
    union = " UNION ALL ".join(f"({branch})" for branch, _ in branches)
    return _MERGED.format(branches=union), [p for _, params in branches for p in params] + [scan]


def decided(walk: str, order: str, params: list[object], limit: int, scan_limit: int) -> tuple[str, list[object]]:
    """A walk of at most ``scan_limit + 1`` rows whose last column is ``hit``, ordered by
    ``order``, as the statement that reads it only as far as a page of ``limit`` hits within
    ``scan_limit`` rows needs (see ``_DECIDED``)."""
    return _DECIDED.format(walk=walk, order=order), [*params, limit, scan_limit, limit, limit + 3]


def _page(
    conn: psycopg.Connection[Any], statement: tuple[str, list[object]], limit: int, scan_limit: int
) -> tuple[list[Any], Any | None, Any | None]:
    """Run a ``decided`` statement: (the page's hits, the last row it examined if more follow
    else None, the walk's final row if none follow else None)."""
    got = _execute(conn, statement)
    # Each row ends with hit, n, hits, followed; n numbers the walk from 1.
    by_n = {row[-3]: row for row in got}
    examined = next((n for n, row in by_n.items() if row[-4] and row[-2] == limit and n <= scan_limit), scan_limit)
    found = [row for n, row in sorted(by_n.items()) if row[-4] and n <= examined]
    if examined + 1 in by_n:
        return found, by_n[examined], None
    final = next((row for row in got if not row[-1]), None)
    return found, None, final


def page_statement(query: DeliveryQuery, after: str | None, limit: int, scan_limit: int) -> tuple[str, list[object]]:
    """The one statement that finds a page of ``query``'s deliveries after ``after``."""
    walk = history.plan(query)
    sql, params = walk_statement(query, walk, after, scan_limit + 1)
    return decided(sql, _ORDER[walk.access], params, limit, scan_limit)


def query_deliveries(
    conn: psycopg.Connection[Any], *, query: DeliveryQuery, after: str | None, limit: int, scan_limit: int
) -> DeliveryPage:
    conn.execute(_GENERIC)
    found, last, _final = _page(conn, page_statement(query, after, limit, scan_limit), limit, scan_limit)
    page: list[Any] = []
    if found:
        names, created = [row[1] for row in found], [row[2] for row in found]
        first, last_created = min(created), max(created)
        selected = _execute(conn, (_SELECT_FOUND, (names, created, first, last_created, first, last_created)))
        page = [(rows.delivery(row[:16]), rows.event(row[16:])) for row in selected]
    return DeliveryPage(page, None if last is None else last[1])


def get_rendered(conn: psycopg.Connection[Any], *, delivery_name: str) -> RenderedBody | None:
    if conn.execute("SELECT 1 FROM deliveries WHERE name = %s", (delivery_name,)).fetchone() is None:
        raise NotFound(f"delivery {delivery_name} does not exist")
    row = conn.execute(
        "SELECT body, content_type FROM delivery_bodies WHERE delivery_name = %s", (delivery_name,)
    ).fetchone()
    return None if row is None else RenderedBody(bytes(row[0]), row[1])


_COUNTS: Final = "SELECT status, total FROM delivery_counts WHERE hook_name = %s"
_LATENCIES: Final = """
    SELECT end_time - start_time FROM attempts
    WHERE delivery_name > %s AND delivery_name < %s
    ORDER BY delivery_name DESC, number DESC LIMIT %s
"""
_HEALTH: Final = """
    SELECT last_success_time, last_failure_time, last_failure_reason, consecutive_failures
    FROM hook_health WHERE hook_name = %s
"""
_NEXT_ATTEMPT: Final = f"SELECT min(next_attempt_time) FROM deliveries WHERE hook_name = %s AND {PENDING}"


_PROJECT_COUNTS: Final = """
    SELECT status, count(*) FROM deliveries WHERE hook_name = %s AND project_id = %s GROUP BY status
"""
_PROJECT_NEXT_ATTEMPT: Final = f"""
    SELECT min(next_attempt_time) FROM deliveries WHERE hook_name = %s AND project_id = %s AND {PENDING}
"""


def hook_project_stats(conn: psycopg.Connection[Any], *, hook_name: str, project_id: int) -> HookStats:
    counts = dict.fromkeys(DeliveryStatus, 0)
    for status, total in conn.execute(_PROJECT_COUNTS, (hook_name, project_id)).fetchall():
        counts[DeliveryStatus(status)] = int(total)
    row = conn.execute(_PROJECT_NEXT_ATTEMPT, (hook_name, project_id)).fetchone()
    return HookStats(counts, [], next_attempt_time=None if row is None else row[0])


def hook_stats(conn: psycopg.Connection[Any], *, hook_name: str, latency_sample: int) -> HookStats:
    counts = dict.fromkeys(DeliveryStatus, 0)
    for status, total in conn.execute(_COUNTS, (hook_name,)).fetchall():
        counts[DeliveryStatus(status)] = int(total)
    conn.execute(_GENERIC)
    latencies: list[timedelta] = []
    if latency_sample > 0:
        bounds = (f"{hook_name}/deliveries/", f"{hook_name}/deliveries0", latency_sample)
        latencies = [d for (d,) in _execute(conn, (_LATENCIES, bounds))]
    (next_attempt,) = _execute(conn, (_NEXT_ATTEMPT, (hook_name,)))[0]
    health = conn.execute(_HEALTH, (hook_name,)).fetchone()
    limited = conn.execute("SELECT limited_time FROM send_buckets WHERE hook_name = %s", (hook_name,)).fetchone()
    limited_time = None if limited is None else limited[0]
    if health is None:
        return HookStats(counts, latencies, next_attempt_time=next_attempt, rate_limited_time=limited_time)
    success, failure, reason, failures = health
    return HookStats(
        counts,
        latencies,
        last_success_time=success,
        last_failure_time=failure,
        last_failure_reason=reason,
        consecutive_failures=failures,
        next_attempt_time=next_attempt,
        rate_limited_time=limited_time,
    )


REDELIVERABLE: Final = sorted(s.value for s in sources(Cause.REDELIVER))
_TARGETS: Final = {transition(DeliveryStatus(s), Cause.REDELIVER) for s in REDELIVERABLE}
assert len(_TARGETS) == 1, "redelivering leads every status it applies to into one status"
REDELIVERED: Final = _TARGETS.pop()
_REDELIVER: Final = """
    UPDATE deliveries AS d
    SET status = %s, next_attempt_time = %s, first_attempt_time = NULL, last_error = '', update_time = %s
    WHERE d.name = %s AND d.create_time = %s AND d.status = ANY(%b)
      AND EXISTS (SELECT 1 FROM hooks AS h
                  WHERE h.name = d.hook_name AND h.status <> 'disabled' AND h.create_time <= d.create_time)
"""


def redeliver(conn: psycopg.Connection[Any], *, names: Sequence[str], now: datetime) -> list[str]:
    lock = "SELECT name, create_time, hook_name, status FROM deliveries WHERE name = ANY(%b) ORDER BY name FOR UPDATE"
    found = conn.execute(lock, (list(names),)).fetchall()
    current = {name: (created, hook, status) for name, created, hook, status in found}
    moved: list[str] = []
    keys: list[tuple[str, datetime]] = []
    deltas: Counter[tuple[str, str]] = Counter()
    with conn.cursor() as cur:
        for name in names:
            if name not in current or name in moved:
                continue
            created, hook, status = current[name]
            cur.execute(_REDELIVER, (REDELIVERED.value, now, now, name, created, REDELIVERABLE))
            if cur.rowcount:
                moved.append(name)
                keys.append((name, created))
                deltas[hook, status] -= 1
                deltas[hook, REDELIVERED.value] += 1
                current[name] = (created, hook, REDELIVERED.value)
    if moved:  # back to pending with no claim counted (a finished delivery holds no lease row anyway)
        conn.execute(UNLEASE, (moved,))
    changelog.count(conn, deltas)
    changelog.log_deliveries(conn, keys)
    if moved:
        changelog.notify(conn, DUE, CHANGES)
    return moved


_CHANGES: Final = {
    Access.HOOK: f"""
        SELECT seq, time, {DELIVERY_COLUMNS}, {{hit}} AS hit
        FROM changes WHERE hook_name = %s AND seq > %s ORDER BY seq LIMIT %s
    """,
    Access.PROJECT: f"""
        SELECT seq, time, {DELIVERY_COLUMNS}, {{hit}} AS hit
        FROM changes WHERE company_id = %s AND project_id = %s AND seq > %s ORDER BY seq LIMIT %s
    """,
    Access.COMPANY: f"""
        SELECT seq, time, {DELIVERY_COLUMNS}, {{hit}} AS hit
        FROM changes WHERE company_id = %s AND seq > %s ORDER BY seq LIMIT %s
    """,
}
_LAST_SEQ: Final = "SELECT seq FROM change_log_head"


def change_statement(query: DeliveryQuery, after: int, scan: int) -> tuple[str, list[object]]:
    history.check(query)
    statuses = sorted(s.value for s in history.effective_statuses(query))
    hit = "status = ANY(%b)" if statuses else "true"
    scope: list[object]
    if query.hook_name is not None:
        access, scope = Access.HOOK, [query.hook_name]
    elif query.project_id is not None:
        access, scope = Access.PROJECT, [query.company_id, query.project_id]
    else:
        access, scope = Access.COMPANY, [query.company_id]
    return _CHANGES[access].format(hit=hit), [*([statuses] if statuses else []), *scope, after, scan]


def _head(conn: psycopg.Connection[Any]) -> int:
    row = conn.execute(_LAST_SEQ).fetchone()
    assert row is not None
    return int(row[0])


def list_changes(
    conn: psycopg.Connection[Any], *, query: DeliveryQuery, after: int, limit: int, scan_limit: int
) -> ChangePage:
    sql, params = change_statement(query, after, scan_limit + 1)
    # The head first: read before the changes, it never names a seq this walk could not see.
    head = _head(conn)
    conn.execute(_GENERIC)
    hits, last, final = _page(conn, decided(sql, "w.seq", params, limit, scan_limit), limit, scan_limit)
    found = [Change(row[0], row[1], rows.delivery(row[2:18])) for row in hits]
    if last is not None:
        return ChangePage(found, last[0])
    return ChangePage(found, max(after if final is None else final[0], head))


def change_bounds(conn: psycopg.Connection[Any]) -> tuple[int, int]:
    newest = _head(conn)
    row = conn.execute("SELECT min(seq) FROM changes").fetchone()
    oldest = None if row is None else row[0]
    return (newest + 1 if oldest is None else int(oldest)), newest
