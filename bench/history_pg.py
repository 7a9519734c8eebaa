"""Delivery history on PostgreSQL (``python -m bench history --store postgresql://…``).

The database (made on the server the URL names, called after the shape of its data, kept for
later runs unless ``--drop``) is loaded in SQL: generate_series and hash functions write the
events, deliveries (two per event), attempts (about three per delivery), one change per
delivery, the counters and the health rows, day by day, with the history indexes built after
the load; the data has the shape of the SQLite build (bench/history.py) over the 28 days before
the hour the build starts. Then:

* first page of every kind, through the Store API, warm, p50/p99 over ``--runs``;
* a partition drop under delivery: a tidings-server on the database (its history hooks are
  paused, so it claims none of their pending rows) delivers events at a fixed rate to a new
  hook and a receiver of its own (publish -> received p50/p99), in windows without and with the
  oldest day being dropped as retention drops it (the store's purge), interleaved.
"""

from __future__ import annotations

import argparse
import dataclasses
import re
import statistics
import threading
import time
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import grpc
import psycopg
import trio
from psycopg import sql

from bench import e2e
from tidings_postgresql import deliveries as pg_deliveries
from tidings_postgresql import history as pg_history
from tidings_postgresql import partitions, rows
from tidings_postgresql.backend import PostgresBackend
from tidings_postgresql.migrate import latest_version, migrate
from tidings_server.domain.model import Hook, HookStatus

SHAPE = "v1"  # bump when the generated data changes, so a kept database is rebuilt
RETENTION = timedelta(days=28)
# Each event's scope, from its hash mod 50: company 1's four projects (10 each), company-level
# (4), company 2's project (6); each scope has two hooks, as in the SQLite build.
_SCOPES = """
    CREATE TEMP TABLE bench_hooks (name text COLLATE "C", company bigint, project bigint, idx int);
"""
_ULID = """
    CREATE FUNCTION pg_temp.ulid(ms bigint, n bigint) RETURNS text LANGUAGE sql IMMUTABLE AS $$
        SELECT string_agg(substr('0123456789ABCDEFGHJKMNPQRSTVWXYZ',
                                 ((CASE WHEN i < 10 THEN ms >> (5 * (9 - i)) WHEN i < 13 THEN 0
                                        ELSE n >> (5 * (25 - i)) END) & 31)::int + 1,
                                 1), '' ORDER BY i)
        FROM generate_series(0, 25) AS i
    $$
"""
_EVENTS = """
    INSERT INTO events (serial, id, publish_time, timestamp, company_id, project_id, user_id, resource_name,
                        resource_id, event_type, related_resources, idempotency_key)
    SELECT g, pg_temp.ulid((extract(epoch FROM t) * 1000)::bigint, g), t, t, s.company, s.project, 7,
           CASE WHEN s.project IS NULL THEN 'Users'
                ELSE (ARRAY['RFIs', 'Submittals', 'Observations', 'Projects'])[1 + abs(hashint8extended(g, 2)) %% 4]
           END,
           1 + abs(hashint8extended(g, 3)) %% 49999,
           (ARRAY['create', 'update', 'update', 'delete'])[1 + abs(hashint8extended(g, 4)) %% 4], '[]', ''
    FROM generate_series(%(first)s::bigint, %(last)s::bigint) AS g
    CROSS JOIN LATERAL (SELECT %(start)s::timestamptz + g * %(step)s::interval AS t,
                               abs(hashint8extended(g, 1)) %% 50 AS r) AS x
    CROSS JOIN LATERAL (
        SELECT CASE WHEN x.r < 44 THEN 1 ELSE 2 END AS company,
               CASE WHEN x.r < 40 THEN 11 + x.r / 10 WHEN x.r < 44 THEN NULL ELSE 21 END AS project) AS s
"""
# Status by weight (delivered 90, failed 4, discarded 3, retrying 2, queued 1) and attempts
# (delivered: 1, 2, 4 or 12 by 50/20/20/10; failed 1; discarded 12; retrying 6; queued 0).
_DELIVERIES = """
    INSERT INTO deliveries (name, hook_name, event_id, event_serial, resource_name, resource_id, status,
                            attempt_count, create_time, update_time, next_attempt_time, first_attempt_time,
                            last_error, company_id, project_id, event_type, last_response_status)
    SELECT h.name || '/deliveries/' || e.id, h.name, e.id, e.serial, e.resource_name, e.resource_id, st.status,
           st.tries, e.publish_time, e.publish_time + st.tries * interval '1.5 s',
           CASE WHEN st.status IN ('queued', 'retrying') THEN e.publish_time + st.tries * interval '1.5 s'
                + interval '60 s' END,
           CASE WHEN st.tries > 0 THEN e.publish_time END,
           CASE WHEN st.status IN ('delivered', 'queued') THEN '' ELSE 'HTTP ' || st.response END,
           e.company_id, e.project_id, e.event_type, CASE WHEN st.tries > 0 THEN st.response END
    FROM events AS e
    JOIN bench_hooks AS h ON h.company = e.company_id AND h.project IS NOT DISTINCT FROM e.project_id
    CROSS JOIN LATERAL (SELECT abs(hashint8extended(e.serial * 2 + h.idx, 5)) %% 100 AS r,
                               abs(hashint8extended(e.serial * 2 + h.idx, 6)) %% 100 AS r2) AS x
    CROSS JOIN LATERAL (SELECT
        CASE WHEN x.r < 90 THEN 'delivered' WHEN x.r < 94 THEN 'failed' WHEN x.r < 97 THEN 'discarded'
             WHEN x.r < 99 THEN 'retrying' ELSE 'queued' END AS status,
        CASE WHEN x.r < 90 THEN (CASE WHEN x.r2 < 50 THEN 1 WHEN x.r2 < 70 THEN 2 WHEN x.r2 < 90 THEN 4 ELSE 12 END)
             WHEN x.r < 94 THEN 1 WHEN x.r < 97 THEN 12 WHEN x.r < 99 THEN 6 ELSE 0 END AS tries,
        CASE WHEN x.r < 90 THEN 200 WHEN x.r < 94 THEN 400 WHEN x.r < 97 THEN 503 WHEN x.r < 99 THEN 502 END
            AS response) AS st
    WHERE e.publish_time >= %(day)s AND e.publish_time < %(next)s
"""
_ATTEMPTS = """
    INSERT INTO attempts (delivery_name, delivery_create_time, number, start_time, end_time, request_headers,
                          response_status, response_headers, response_body, error)
    SELECT d.name, d.create_time, n, d.create_time + (n - 1) * interval '1.5 s',
           d.create_time + (n - 1) * interval '1.5 s'
               + (20 + abs(hashint8extended(d.event_serial * 16 + n, 7)) %% 380) * interval '1 ms',
           '[]', a.answer, '[]', ''::bytea, CASE WHEN a.answer = 200 THEN '' ELSE 'HTTP' END
    FROM deliveries AS d CROSS JOIN generate_series(1, d.attempt_count) AS n
    CROSS JOIN LATERAL (SELECT CASE WHEN n = d.attempt_count THEN d.last_response_status ELSE 503 END AS answer) AS a
    WHERE d.create_time >= %(day)s AND d.create_time < %(next)s
"""
_CHANGES = """
    INSERT INTO changes (seq, time, name, hook_name, event_id, status, attempt_count, create_time, update_time,
                         next_attempt_time, first_attempt_time, last_error, company_id, project_id, resource_name,
                         resource_id, event_type, last_response_status)
    SELECT row_number() OVER (ORDER BY update_time, name), update_time, name, hook_name, event_id, status,
           attempt_count, create_time, update_time, next_attempt_time, first_attempt_time, last_error, company_id,
           project_id, resource_name, resource_id, event_type, last_response_status
    FROM deliveries
"""
_SECONDARY_INDEXES = """
    SELECT i.indexname, i.indexdef FROM pg_indexes AS i
    WHERE i.schemaname = current_schema() AND i.tablename IN ('events', 'deliveries', 'attempts', 'changes')
      AND NOT EXISTS (SELECT 1 FROM pg_constraint AS c WHERE c.conname = i.indexname)
"""


def database_name(deliveries: int) -> str:
    return f"tidings_history_s{latest_version()}_{SHAPE}_{deliveries}"


def _url(admin: str, database: str) -> str:
    return admin.rsplit("/", 1)[0] + "/" + database


def _exists(admin: str, database: str) -> bool:
    with psycopg.connect(admin, autocommit=True) as conn:
        return conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (database,)).fetchone() is not None


def build(admin: str, database: str, deliveries: int, hooks: Sequence[Hook], now: datetime) -> None:
    """Make ``database`` and load ``deliveries`` deliveries into it (see the module's notes)."""
    building = database + "_building"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(building)))
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(building)))
    with psycopg.connect(_url(admin, building), autocommit=True) as conn:
        migrate(conn)
        conn.execute("SET synchronous_commit = off")
        conn.execute("SET maintenance_work_mem = '256MB'")
        start = now - RETENTION + timedelta(hours=1)
        days = []
        day = start.replace(hour=0)
        while day <= now:
            days.append(day)
            day += timedelta(days=1)
        for family in partitions.FAMILIES:
            partitions.ensure(conn, family, [partitions.day_of(d) for d in days])
        indexes = conn.execute(_SECONDARY_INDEXES).fetchall()
        for name, _ in indexes:
            conn.execute(sql.SQL("DROP INDEX {}").format(sql.Identifier(name)))
        with conn.transaction():
            conn.execute(_SCOPES)
            for i, history_hook in enumerate(hooks):
                # Paused, so that a server started on this database never claims their pending rows.
                hook = dataclasses.replace(
                    history_hook, status=HookStatus.PAUSED, destination_url="http://127.0.0.1:9/"
                )
                row = rows.hook_row(hook)
                conn.execute(
                    f"INSERT INTO hooks ({rows.HOOK_COLUMNS}, parent) VALUES ({', '.join(['%s'] * len(row))})", row
                )
                conn.execute(
                    "INSERT INTO bench_hooks VALUES (%s, %s, %s, %s)",
                    (hook.name, hook.company_id, hook.project_id, i % 2),
                )
            conn.execute(_ULID)
            events = deliveries // 2
            step = (now - start) / events
            batch = 250_000
            for first in range(1, events + 1, batch):
                last = min(first + batch - 1, events)
                conn.execute(_EVENTS, {"first": first, "last": last, "start": start, "step": step})
                print(f"   events {last:,}", flush=True)
            conn.execute("SELECT setval('event_serials', %s)", (events,))
            for day in days:
                bounds = {"day": day, "next": day + timedelta(days=1)}
                conn.execute(_DELIVERIES, bounds)
                conn.execute(_ATTEMPTS, bounds)
                print(f"   deliveries and attempts of {day:%Y-%m-%d}", flush=True)
            conn.execute(_CHANGES)
            conn.execute("UPDATE change_log_head SET seq = (SELECT count(*) FROM changes)")
            conn.execute(
                "INSERT INTO delivery_counts (hook_name, status, total)"
                " SELECT hook_name, status, count(*) FROM deliveries GROUP BY hook_name, status"
            )
            conn.execute(
                "INSERT INTO hook_health (hook_name, last_success_time, last_failure_time, last_failure_reason,"
                " consecutive_failures) SELECT name, %s, %s, 'HTTP 503', 0 FROM hooks",
                (now - timedelta(seconds=5), now - timedelta(minutes=3)),
            )
        for name, definition in indexes:
            print(f"   indexing {name}", flush=True)
            conn.execute(definition.replace(" ON ONLY ", " ON ", 1))  # pg_indexes spells a parent's own
        conn.execute("VACUUM ANALYZE")
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(
            sql.SQL("ALTER DATABASE {} RENAME TO {}").format(sql.Identifier(building), sql.Identifier(database))
        )


# -- first pages ------------------------------------------------------------------------------


def _plan(url: str, query: Any, limit: int, scan_limit: int) -> str:
    """The walk's plan, in one line, as the store runs it (prepared, its generic plan): the
    nodes under the window that decides the page."""
    statement, params = pg_history.page_statement(query, None, limit, scan_limit)
    numbered = iter(range(1, len(params) + 1))
    prepared = re.sub("%[sb]", lambda _: f"${next(numbered)}", statement)
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("SET plan_cache_mode = force_generic_plan")
        conn.execute(f"PREPARE walk AS {prepared}")
        explain = f"EXPLAIN (COSTS OFF) EXECUTE walk({', '.join(['%s'] * len(params))})"
        lines = [r[0] for r in psycopg.ClientCursor(conn).execute(explain, params).fetchall()]
    nodes = [line.strip().removeprefix("-> ").strip() for line in lines if "Filter" not in line and "Cond" not in line]
    walk = nodes[next(i for i, node in enumerate(nodes) if node.startswith("WindowAgg")) + 1 :]
    return "; ".join(node for node in walk if not node.startswith("Subquery Scan"))[:160]


async def _measure(url: str, kinds: Sequence[Any], runs: int, warm_up: int) -> list[tuple[str, float, float, int]]:
    results = []
    async with PostgresBackend().open(url) as store:
        for kind in kinds:
            for i in range(warm_up):
                await kind.call(store, i)
            times = []
            found = 0
            for i in range(runs):
                start = time.perf_counter()
                got = await kind.call(store, i)
                times.append((time.perf_counter() - start) * 1000)
                found += len(getattr(got, "deliveries", getattr(got, "changes", ())))
            times.sort()
            p99 = times[min(len(times) - 1, round(0.99 * (len(times) - 1)))]
            results.append((kind.label, statistics.median(times), p99, found // runs))
    return results


# -- a partition drop under delivery ------------------------------------------------------------


def _drop_oldest_day(url: str, done: threading.Event, took: list[float]) -> None:
    """Drop the oldest day as retention does (the store's purge, one transaction), once."""
    with psycopg.connect(url) as conn:
        conn.execute("SET TIME ZONE 'UTC'")
        conn.commit()
        oldest = partitions.days(conn, "deliveries")[0]
        before = partitions.start_of(oldest + timedelta(days=1))
        start = time.perf_counter()
        with conn.transaction():
            pg_deliveries.purge(conn, before=before, limit=500)
        took.append(time.perf_counter() - start)
    done.set()


def drop_stall(url: str, rounds: int, rate: int, seconds: float) -> dict[str, list[tuple[float, float]]]:
    """(p50, p99) ms of publish -> received, in windows without and with a day being dropped."""
    results: dict[str, list[tuple[float, float]]] = {"without a drop": [], "during a drop": []}
    dropped: list[float] = []
    receiver = e2e.ReceiverProcess()
    try:
        where = e2e.Store(url, database=url.rsplit("/", 1)[1])
        with e2e.server(where) as srv:
            with grpc.insecure_channel(f"127.0.0.1:{srv.port}") as channel:
                e2e.make_hooks(channel, f"http://127.0.0.1:{receiver.port}/in", 1, 32)
            e2e.latency(srv.port, receiver, rate, 1.0)  # warm up
            for _ in range(rounds):
                p50, p99, _n = e2e.latency(srv.port, receiver, rate, seconds)
                results["without a drop"].append((p50, p99))
                done = threading.Event()
                # The drop starts a fifth into the window, so the window holds it whole.
                timer = threading.Timer(seconds / 5, _drop_oldest_day, (url, done, dropped))
                timer.start()
                p50, p99, _n = e2e.latency(srv.port, receiver, rate, seconds)
                results["during a drop"].append((p50, p99))
                done.wait(120)
    finally:
        receiver.close()
    print(f"   each drop took {', '.join(f'{t * 1000:,.0f} ms' for t in dropped)}")
    return results


# -- command line -------------------------------------------------------------------------------


def run(args: argparse.Namespace, hooks: Sequence[Hook], kinds: Sequence[Any], warm_up: int) -> int:
    database = args.database or database_name(args.deliveries)
    url = _url(args.store, database)
    if not _exists(args.store, database):
        start = time.perf_counter()
        build(args.store, database, args.deliveries, hooks, datetime.now(UTC).replace(minute=0, second=0))
        print(f"   built {database}: {time.perf_counter() - start:.0f} s", flush=True)
    try:
        with psycopg.connect(url) as conn:
            counted = [conn.execute(f"SELECT count(*) FROM {t}").fetchone() for t in ("deliveries", "attempts")]
            size = conn.execute("SELECT pg_database_size(current_database())").fetchone()
        assert counted[0] is not None and counted[1] is not None and size is not None  # noqa: PT018
        print(f"{database}: {counted[0][0]:,} deliveries, {counted[1][0]:,} attempts, {size[0] / 2**20:,.0f} MiB")
        print(f"first page: limit {args.limit}, scan_limit {args.scan_limit}, {args.runs} runs per kind (ms)")
        results = trio.run(_measure, url, kinds, args.runs, warm_up)
        plan_of = {k.label: k.plan_query for k in kinds}
        print(f"| {'request':<40} | {'p50':>7} | {'p99':>7} | found | plan of the walk")
        for label, p50, p99, found in results:
            query = plan_of[label]
            plan = _plan(url, query, args.limit, args.scan_limit) if query is not None and not args.no_plans else ""
            print(f"| {label:<40} | {p50:7.2f} | {p99:7.2f} | {found:5} | {plan}")
        if args.drop_rounds:
            got = drop_stall(url, args.drop_rounds, args.drop_rate, args.drop_seconds)
            print(f"delivery at {args.drop_rate} events/s, windows of {args.drop_seconds:g} s, interleaved (ms):")
            for label, values in got.items():
                p50s = ", ".join(f"{v[0]:.1f}" for v in values)
                p99s = ", ".join(f"{v[1]:.1f}" for v in values)
                print(
                    f"   {label:<16} p50 median {statistics.median(v[0] for v in values):7.1f} ({p50s})"
                    f"   p99 median {statistics.median(v[1] for v in values):7.1f} ({p99s})"
                )
    finally:
        if args.drop:
            with psycopg.connect(args.store, autocommit=True) as conn:
                conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(database)))
            print(f"   dropped {database}")
    return 0
