"""Delivery history on SQLite (or PostgreSQL, ``--store``): first-page latency of each list kind
and of a hook's overview over 1,000,000 deliveries and about 3,000,000 attempts, and what the
history indexes cost publishing.

The database is built once, straight into the current schema (bulk inserts in big transactions,
the history indexes created after the load), and cached in var/ keyed by the schema version and
the shape of the data, so later runs start at once. Every query goes through the Store API, as
the gRPC layer calls it, with a warm cache: each kind runs RUNS times, rotating through hooks,
projects and resource ids, and p50/p99 are shown with the query plan of its first range.

Publishing is measured in the same process on fresh files, interleaved: the store as it is,
then the same store with the history indexes dropped (deliveries by project, company, status,
resource id; changes by hook, project, company), so the ratio is what those indexes cost.

With ``--store postgresql://…`` the same kinds run on PostgreSQL instead (bench/history_pg.py:
the rows loaded in SQL, and delivery measured while a day's partition is dropped).
"""

from __future__ import annotations

import argparse
import contextlib
import random
import sqlite3
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import trio
from ulid import ULID

from tidings_server.domain import filtering
from tidings_server.domain.model import DeliveryStatus, Event, Hook, HookStatus, Trigger
from tidings_server.domain.names import trigger_name
from tidings_server.domain.ports import DELIVERY_FILTER_SCHEMA, DeliveryQuery, Store
from tidings_server.stores import history as plans
from tidings_server.stores.sqlite import SqliteBackend
from tidings_server.stores.sqlite import history as sqlite_history
from tidings_server.stores.sqlite.migrate import latest_version, migrate
from tidings_server.stores.sqlite.rows import to_micros

SHAPE = "v1"  # bump when the generated data changes, so a cached file is rebuilt
NOW = datetime(2026, 11, 27, tzinfo=UTC)
RETENTION = timedelta(days=28)
COMPANY, OTHER_COMPANY = 1, 2
PROJECTS = (11, 12, 13, 14)  # company 1; each has two hooks
OTHER_PROJECT = 21  # company 2, two hooks
RESOURCES = ("RFIs", "Submittals", "Observations", "Projects")
RESOURCE_IDS = 50_000
# Final statuses and how often they occur; attempts per delivery of each, and their weights.
STATUS_WEIGHTS = {"delivered": 90, "failed": 4, "discarded": 3, "retrying": 2, "queued": 1}
ATTEMPTS = {
    "delivered": ((1, 2, 4, 12), (50, 20, 20, 10)),
    "failed": ((1,), (1,)),
    "discarded": ((12,), (1,)),
    "retrying": ((6,), (1,)),
    "queued": ((0,), (1,)),
}
WARM_UP = 8
HISTORY_INDEXES = (
    "deliveries_history_by_project",
    "deliveries_history_by_company",
    "deliveries_history_by_status",
    "deliveries_history_by_resource_id",
    "changes_by_hook",
    "changes_by_project",
    "changes_by_company",
)


def _hooks() -> list[Hook]:
    hooks = []
    for company, project in [(COMPANY, p) for p in PROJECTS] + [(OTHER_COMPANY, OTHER_PROJECT)]:
        for h in ("a", "b"):
            name = f"companies/{company}/projects/{project}/hooks/{h}"
            hooks.append(_hook(name, company, project))
    hooks += [_hook(f"companies/{COMPANY}/hooks/{h}", COMPANY, None) for h in ("c", "d")]
    return hooks


def _hook(name: str, company: int, project: int | None) -> Hook:
    start = NOW - RETENTION
    return Hook(
        name, company, project, name, "https://receiver.example.com/", "", "procore.v4", HookStatus.ACTIVE, start, start
    )


# -- building the database ---------------------------------------------------------------------


def _cached_path(directory: Path, deliveries: int) -> Path:
    return directory / f"history-bench-s{latest_version()}-{SHAPE}-{deliveries}.sqlite3"


def build(path: Path, deliveries: int, seed: int = 7) -> None:
    """Write ``deliveries`` deliveries (two per event) with their events and attempts to ``path``."""
    rng = random.Random(seed)
    tmp = path.with_suffix(".building")
    tmp.unlink(missing_ok=True)
    conn = sqlite3.connect(tmp, isolation_level=None)
    try:
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute("PRAGMA synchronous = OFF")
        conn.execute("PRAGMA cache_size = -262144")
        migrate(conn)
        # Loading into bare tables and indexing afterwards is several times faster.
        indexes = conn.execute(
            "SELECT name, sql FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL"
            " AND tbl_name IN ('deliveries', 'attempts', 'events', 'changes')"
        ).fetchall()
        for name, _ in indexes:
            conn.execute(f"DROP INDEX {name}")
        hooks = _hooks()
        conn.execute("BEGIN")
        for hook in hooks:
            conn.execute(
                "INSERT INTO hooks (name, parent, company_id, project_id, display_name, destination_url,"
                " authorization_header, payload_format, status, create_time, update_time)"
                " VALUES (?, ?, ?, ?, ?, ?, '', 'procore.v4', 'active', ?, ?)",
                (
                    hook.name,
                    hook.name.rsplit("/hooks/", 1)[0],
                    hook.company_id,
                    hook.project_id,
                    hook.display_name,
                    hook.destination_url,
                    to_micros("t", hook.create_time),
                    to_micros("t", hook.update_time),
                ),
            )
        conn.execute("COMMIT")
        by_scope: dict[tuple[int, int | None], list[str]] = {}
        for hook in hooks:
            by_scope.setdefault((hook.company_id, hook.project_id), []).append(hook.name)
        scopes = list(by_scope)
        # Company 1's projects carry most of the traffic; company-level events are rarer.
        scope_weights = [10 if s[1] is not None and s[0] == COMPANY else 4 if s[1] is None else 6 for s in scopes]
        events = deliveries // 2
        start = to_micros("start", NOW - RETENTION + timedelta(hours=1))
        step = (to_micros("now", NOW) - start) // events
        statuses = list(STATUS_WEIGHTS)
        status_weights = list(STATUS_WEIGHTS.values())
        batch = 50_000
        for first in range(0, events, batch):
            event_rows, delivery_rows, attempt_rows = [], [], []
            for serial in range(first + 1, min(first + batch, events) + 1):
                created = start + serial * step
                event = str(ULID.from_timestamp(created / 1_000_000))
                company, project = rng.choices(scopes, scope_weights)[0]
                resource = "Users" if project is None else rng.choice(RESOURCES)
                resource_id = rng.randrange(1, RESOURCE_IDS)
                event_type = rng.choice(("create", "update", "update", "delete"))
                event_rows.append(
                    (serial, event, created, created, company, project, resource, resource_id, event_type)
                )
                for hook_name in by_scope[(company, project)]:
                    status = rng.choices(statuses, status_weights)[0]
                    counts, weights = ATTEMPTS[status]
                    tries = rng.choices(counts, weights)[0]
                    name = f"{hook_name}/deliveries/{event}"
                    response = {"delivered": 200, "failed": 400, "discarded": 503, "retrying": 502}.get(status)
                    end = created + tries * 1_500_000
                    pending = status in ("queued", "retrying")
                    delivery_rows.append(
                        (
                            name,
                            hook_name,
                            event,
                            serial,
                            resource,
                            resource_id,
                            status,
                            tries,
                            created,
                            end,
                            end + 60_000_000 if pending else None,
                            created if tries else None,
                            "" if status in ("delivered", "queued") else f"HTTP {response}",
                            company,
                            project,
                            event_type,
                            response if tries else None,
                        )
                    )
                    for number in range(1, tries + 1):
                        answer = response if number == tries else 503
                        began = created + (number - 1) * 1_500_000
                        took = rng.randrange(20_000, 400_000)
                        attempt_rows.append(
                            (name, number, began, began + took, answer, "" if answer == 200 else "HTTP")
                        )
            conn.execute("BEGIN")
            conn.executemany(
                "INSERT INTO events (serial, id, publish_time, timestamp, company_id, project_id, user_id,"
                " resource_name, resource_id, event_type, related_resources, idempotency_key)"
                " VALUES (?, ?, ?, ?, ?, ?, 7, ?, ?, ?, '[]', '')",
                event_rows,
            )
            conn.executemany(
                "INSERT INTO deliveries (name, hook_name, event_id, event_serial, resource_name, resource_id, status,"
                " attempt_count, create_time, update_time, next_attempt_time, first_attempt_time, last_error,"
                " company_id, project_id, event_type, last_response_status)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                delivery_rows,
            )
            conn.executemany(
                "INSERT INTO attempts (delivery_name, number, start_time, end_time, request_headers,"
                " response_status, response_headers, response_body, error) VALUES (?, ?, ?, ?, '[]', ?, '[]', x'', ?)",
                attempt_rows,
            )
            conn.execute("COMMIT")
            print(f"   built {min(first + batch, events) * 2:,} deliveries", flush=True)
        conn.execute("BEGIN")
        # One change per delivery (its last), in the order they happened; counters and health.
        conn.execute(
            "INSERT INTO changes (time, name, hook_name, event_id, status, attempt_count, create_time, update_time,"
            " next_attempt_time, first_attempt_time, last_error, company_id, project_id, resource_name,"
            " resource_id, event_type, last_response_status)"
            " SELECT update_time, name, hook_name, event_id, status, attempt_count, create_time, update_time,"
            " next_attempt_time, first_attempt_time, last_error, company_id, project_id, resource_name,"
            " resource_id, event_type, last_response_status FROM deliveries ORDER BY update_time"
        )
        conn.execute(
            "INSERT INTO delivery_counts (hook_name, status, total)"
            " SELECT hook_name, status, count(*) FROM deliveries GROUP BY hook_name, status"
        )
        conn.execute(
            "INSERT INTO hook_health (hook_name, last_success_time, last_failure_time, last_failure_reason,"
            " consecutive_failures) SELECT name, ?, ?, 'HTTP 503', 0 FROM hooks",
            (to_micros("t", NOW - timedelta(seconds=5)), to_micros("t", NOW - timedelta(minutes=3))),
        )
        conn.execute("COMMIT")
        for name, sql in indexes:
            print(f"   indexing {name}", flush=True)
            conn.execute(sql)
        conn.execute("ANALYZE")
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        conn.close()
    tmp.rename(path)


# -- measuring ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Kind:
    """One kind of request: a label, and the call for run number i."""

    label: str
    call: Callable[[Store, int], Awaitable[object]]
    plan_query: DeliveryQuery | None = None


def _filter(text: str) -> filtering.Expr:
    expr = filtering.parse(text, DELIVERY_FILTER_SCHEMA)
    assert expr is not None
    return expr


def _kinds(limit: int, scan_limit: int) -> list[Kind]:
    hooks = [h.name for h in _hooks() if h.company_id == COMPANY and h.project_id is not None]
    failed = frozenset({DeliveryStatus.FAILED})
    finished_badly = frozenset({DeliveryStatus.FAILED, DeliveryStatus.DISCARDED})
    last_day = NOW - timedelta(days=1)

    def page(make: Callable[[int], DeliveryQuery]) -> Callable[[Store, int], Awaitable[object]]:
        async def call(store: Store, i: int) -> object:
            return await store.query_deliveries(make(i), after=None, limit=limit, scan_limit=scan_limit)

        return call

    def hook(i: int) -> str:
        return hooks[i % len(hooks)]

    kinds = [
        ("hook", lambda i: DeliveryQuery(hook_name=hook(i))),
        ("hook, status failed", lambda i: DeliveryQuery(hook_name=hook(i), statuses=failed)),
        ("hook, failed or discarded", lambda i: DeliveryQuery(hook_name=hook(i), statuses=finished_badly)),
        ("hook, resource id", lambda i: DeliveryQuery(hook_name=hook(i), resource_id=1 + i * 997 % RESOURCE_IDS)),
        (
            "hook, resource name + id",
            lambda i: DeliveryQuery(hook_name=hook(i), resource_name="RFIs", resource_id=1 + i * 991 % RESOURCE_IDS),
        ),
        ("hook, resource name", lambda i: DeliveryQuery(hook_name=hook(i), resource_name="Observations")),
        ("hook, event type", lambda i: DeliveryQuery(hook_name=hook(i), event_type="delete")),
        ("hook, last day", lambda i: DeliveryQuery(hook_name=hook(i), start_time=last_day)),
        (
            "hook, filter response_status >= 500",
            lambda i: DeliveryQuery(hook_name=hook(i), filter=_filter("response_status >= 500")),
        ),
        (
            "hook, filter matching nothing",
            lambda i: DeliveryQuery(hook_name=hook(i), filter=_filter("response_status = 999")),
        ),
        ("project", lambda i: DeliveryQuery(company_id=COMPANY, project_id=PROJECTS[i % len(PROJECTS)])),
        (
            "project, status failed",
            lambda i: DeliveryQuery(company_id=COMPANY, project_id=PROJECTS[i % len(PROJECTS)], statuses=failed),
        ),
        (
            "project, filter matching nothing",
            lambda i: DeliveryQuery(
                company_id=COMPANY, project_id=PROJECTS[i % len(PROJECTS)], filter=_filter("attempt_count > 100")
            ),
        ),
        ("company", lambda i: DeliveryQuery(company_id=COMPANY)),
        ("company, resource id", lambda i: DeliveryQuery(company_id=COMPANY, resource_id=1 + i * 983 % RESOURCE_IDS)),
    ]
    result = [Kind(label, page(make), make(0)) for label, make in kinds]

    async def stats(store: Store, i: int) -> object:
        return await store.hook_stats(hook(i), latency_sample=1000)

    async def changes(store: Store, i: int) -> object:
        query = DeliveryQuery(hook_name=hook(i), statuses=failed)
        return await store.list_changes(query, after=i * 1000, limit=limit, scan_limit=scan_limit)

    result += [Kind("hook_stats (1,000 latencies)", stats), Kind("list_changes, hook, status failed", changes)]
    return result


def _first_plan(conn: sqlite3.Connection, query: DeliveryQuery, scan_limit: int) -> str:
    sql, params = sqlite_history.walk_statements(query, plans.plan(query), None, scan_limit + 1)[0]
    return "; ".join(row[3] for row in conn.execute(f"EXPLAIN QUERY PLAN {sql}", params))


async def _measure(path: Path, runs: int, limit: int, scan_limit: int) -> list[tuple[str, float, float, int]]:
    results = []
    async with SqliteBackend().open(f"sqlite:///{path}") as store:
        for kind in _kinds(limit, scan_limit):
            for i in range(WARM_UP):  # one pass over the hooks, projects and ids it rotates through
                await kind.call(store, i)
            times = []
            found = 0
            for i in range(runs):
                start = time.perf_counter()
                got = await kind.call(store, i)
                times.append((time.perf_counter() - start) * 1000)
                found += len(getattr(got, "deliveries", getattr(got, "changes", ())))  # HookStats: 0
            times.sort()
            p99 = times[min(len(times) - 1, round(0.99 * (len(times) - 1)))]
            results.append((kind.label, statistics.median(times), p99, found // runs))
    return results


# -- publishing with and without the history indexes --------------------------------------------


async def _publish_rate(path: Path, drop: bool, events: int, batch: int, hooks: int) -> float:
    async with SqliteBackend().open(f"sqlite:///{path}") as store:
        if drop:
            for name in HISTORY_INDEXES:
                await trio.to_thread.run_sync(store._conn.execute, f"DROP INDEX {name}")
        start_time = NOW - RETENTION
        for h in range(hooks):
            name = f"companies/1/projects/2/hooks/h{h}"
            await store.create_hook(_hook(name, 1, 2))
            await store.add_triggers(
                name, [Trigger(trigger_name(name, "RFIs", "update"), "RFIs", "update", start_time)]
            )
        rng = random.Random(3)
        batch_events = [
            Event(str(ULID()), 0, NOW, 1, 2, 7, "RFIs", rng.randrange(1, RESOURCE_IDS), "update") for _ in range(events)
        ]
        start = time.process_time()
        for i in range(0, events, batch):
            await store.publish_events(batch_events[i : i + batch], NOW + timedelta(seconds=i))
        return events * hooks / (time.process_time() - start)


def _publish(repeats: int, events: int, batch: int, hooks: int) -> dict[str, list[float]]:
    rates: dict[str, list[float]] = {"with history indexes": [], "without": []}
    for _ in range(repeats):
        for label, drop in (("with history indexes", False), ("without", True)):
            with tempfile.TemporaryDirectory() as tmp:
                rates[label].append(trio.run(_publish_rate, Path(tmp) / "p.sqlite3", drop, events, batch, hooks))
    return rates


# -- command line --------------------------------------------------------------------------------


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--deliveries", type=int, default=1_000_000, help="deliveries to build (default 1000000)")
    parser.add_argument("--cache", type=Path, default=Path("var"), help="where the built file is kept (default var/)")
    parser.add_argument("--runs", type=int, default=200, help="requests per kind; p50/p99 over them (default 200)")
    parser.add_argument("--limit", type=int, default=50, help="page size (default 50)")
    parser.add_argument("--scan-limit", type=int, default=5000, help="deliveries a page may examine (default 5000)")
    parser.add_argument("--publish-repeats", type=int, default=5, help="publish runs per variant (default 5; 0: skip)")
    parser.add_argument("--publish-events", type=int, default=20_000, help="events per publish run (default 20000)")
    parser.add_argument(
        "--store",
        metavar="POSTGRESQL_URL",
        help="run on PostgreSQL: the database is made (and kept) on this URL's server, e.g."
        " postgresql://postgres@127.0.0.1:5432/postgres",
    )
    parser.add_argument(
        "--database", default="", help="with --store: the database to build or reuse (default named after the data)"
    )
    parser.add_argument(
        "--no-plans",
        action="store_true",
        help="with --store: no plan column (an older store, first on PYTHONPATH, can then run on the same data)",
    )
    parser.add_argument("--drop", action="store_true", help="with --store: drop the database at the end")
    parser.add_argument("--drop-rounds", type=int, default=3, help="with --store: partition drops measured (default 3)")
    parser.add_argument("--drop-rate", type=int, default=200, help="with --store: events/s delivered (default 200)")
    parser.add_argument("--drop-seconds", type=float, default=6.0, help="with --store: window length (default 6)")


@contextlib.contextmanager
def _timed(what: str) -> Iterator[None]:
    start = time.perf_counter()
    yield
    print(f"   {what}: {time.perf_counter() - start:.0f} s", flush=True)


def run(args: argparse.Namespace) -> int:
    if args.store:
        from bench import history_pg  # psycopg and the plugin only when asked for

        return history_pg.run(args, _hooks(), _kinds(args.limit, args.scan_limit), WARM_UP)
    args.cache.mkdir(parents=True, exist_ok=True)
    path = _cached_path(args.cache, args.deliveries)
    if not path.exists():
        with _timed(f"built {path}"):
            build(path, args.deliveries)
    conn = sqlite3.connect(path)
    deliveries, attempts = (conn.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in ("deliveries", "attempts"))
    print(f"{path}: {deliveries:,} deliveries, {attempts:,} attempts, {path.stat().st_size / 2**20:,.0f} MiB")
    print(f"first page: limit {args.limit}, scan_limit {args.scan_limit}, {args.runs} runs per kind (ms)")
    results = trio.run(_measure, path, args.runs, args.limit, args.scan_limit)
    plans_by_label = {k.label: k.plan_query for k in _kinds(args.limit, args.scan_limit)}
    print(f"| {'request':<40} | {'p50':>7} | {'p99':>7} | found | plan of the first range")
    for label, p50, p99, found in results:
        query = plans_by_label[label]
        plan = _first_plan(conn, query, args.scan_limit) if query is not None else ""
        print(f"| {label:<40} | {p50:7.2f} | {p99:7.2f} | {found:5} | {plan}")
    conn.close()
    if args.publish_repeats:
        rates = _publish(args.publish_repeats, args.publish_events, 500, 4)
        base = statistics.median(rates["without"])
        print(f"publish, {args.publish_events:,} events x 4 hooks in batches of 500 (deliveries/s of CPU time):")
        for label, values in rates.items():
            median = statistics.median(values)
            print(
                f"   {label:<22} {median:9,.0f}  ({median / base:.2f})  runs: {', '.join(f'{v:,.0f}' for v in values)}"
            )
    return 0
