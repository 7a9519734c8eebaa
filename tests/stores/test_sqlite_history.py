"""What only the SQLite backend does for history: the index each query reads, and migrating a
database written before history existed."""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tidings_server.domain import filtering
from tidings_server.domain.model import DeliveryStatus
from tidings_server.domain.ports import DELIVERY_FILTER_SCHEMA, DeliveryQuery
from tidings_server.stores import history as plans
from tidings_server.stores.sqlite import SqliteBackend, history
from tidings_server.stores.sqlite.migrate import latest_version, migrate
from tidings_server.stores.sqlite.rows import to_micros
from tidings_server.testing.stores.samples import event_id

HOOK = "companies/1/projects/2/hooks/h"
T0 = datetime(2024, 5, 17, 12, 30, 45, 123456, tzinfo=UTC)


def _connect(path: Path) -> sqlite3.Connection:
    return sqlite3.connect(path, isolation_level=None)


def _plan(conn: sqlite3.Connection, sql: str, params: Sequence[object]) -> list[str]:
    return [row[3] for row in conn.execute(f"EXPLAIN QUERY PLAN {sql}", params)]


def _reads_only(plan: list[str], index: str) -> None:
    """The plan searches ``index`` and neither scans a whole table nor sorts."""
    assert any(step.startswith("SEARCH") and f"INDEX {index} " in step for step in plan), plan
    assert not any(step.startswith("SCAN") or "TEMP B-TREE" in step for step in plan), plan


_FAILED = filtering.parse("response_status >= 500", DELIVERY_FILTER_SCHEMA)
_AFTER = f"{HOOK}/deliveries/{event_id(5)}"


@pytest.mark.parametrize(
    ("query", "index"),
    [
        pytest.param(DeliveryQuery(hook_name=HOOK, filter=_FAILED), "sqlite_autoindex_deliveries_1", id="hook"),
        pytest.param(
            DeliveryQuery(hook_name=HOOK, statuses=frozenset({DeliveryStatus.FAILED, DeliveryStatus.DISCARDED})),
            "deliveries_history_by_status",
            id="statuses",
        ),
        pytest.param(
            DeliveryQuery(
                hook_name=HOOK, resource_id=5, resource_name="RFIs", statuses=frozenset({DeliveryStatus.FAILED})
            ),
            "deliveries_history_by_resource_id",
            id="resource",
        ),
        pytest.param(DeliveryQuery(hook_name=HOOK, resource_name="RFIs"), "sqlite_autoindex_deliveries_1", id="name"),
        pytest.param(
            DeliveryQuery(company_id=1, project_id=2, event_type="update", filter=_FAILED),
            "deliveries_history_by_project",
            id="project",
        ),
        pytest.param(DeliveryQuery(company_id=1, resource_id=5), "deliveries_history_by_company", id="company"),
    ],
)
@pytest.mark.parametrize("after", [None, _AFTER], ids=["first", "next"])
def test_each_history_walk_reads_its_index_in_order(
    tmp_path: Path, query: DeliveryQuery, index: str, after: str | None
) -> None:
    """Each range of a walk is one index search in history order: LIMIT bounds it, no sort
    reads it all first."""
    conn = _connect(tmp_path / "t.db")
    try:
        migrate(conn)
        statements = history.walk_statements(query, plans.plan(query), after, 100)
        assert len(statements) == (len(query.statuses) if plans.plan(query).statuses else 1)
        for sql, params in statements:
            plan = _plan(conn, sql, params)
            _reads_only(plan, index)
            if after is not None:
                assert "event_id<?" in plan[0] or "(event_id,name)<(?,?)" in plan[0] or "name<?" in plan[0]
        # The page's rows and their events are read by rowid.
        found = _plan(conn, history._SELECT_FOUND, ("[1, 2]",))
        assert "SEARCH d USING INTEGER PRIMARY KEY (rowid=?)" in found
        assert "SEARCH e USING INTEGER PRIMARY KEY (rowid=?)" in found
    finally:
        conn.close()


def test_the_overview_and_the_change_log_read_their_indexes(tmp_path: Path) -> None:
    conn = _connect(tmp_path / "t.db")
    try:
        migrate(conn)
        assert _plan(conn, history._COUNTS, (HOOK,)) == ["SEARCH delivery_counts USING PRIMARY KEY (hook_name=?)"]
        assert _plan(conn, history._HEALTH, (HOOK,)) == ["SEARCH hook_health USING PRIMARY KEY (hook_name=?)"]
        _reads_only(_plan(conn, history._LATENCIES, ("a", "b", 1000)), "sqlite_autoindex_attempts_1")
        _reads_only(_plan(conn, history._NEXT_ATTEMPT, (HOOK,)), "deliveries_due_by_hook")
        for query, index in (
            (DeliveryQuery(hook_name=HOOK), "changes_by_hook"),
            (
                DeliveryQuery(company_id=1, project_id=2, statuses=frozenset({DeliveryStatus.FAILED})),
                "changes_by_project",
            ),
            (DeliveryQuery(company_id=1), "changes_by_company"),
        ):
            sql, params = history.change_statement(query, 0, 100)
            _reads_only(_plan(conn, sql, params), index)
    finally:
        conn.close()


# Migrating a database from before history


def _micros(at: datetime) -> int:
    return to_micros("t", at)


def _create_version_4_database(path: Path) -> None:
    """A file as the server before history left it: two hooks, events, deliveries, attempts."""
    conn = _connect(path)
    try:
        migrate(conn, target=4)
        for name, parent, company, project in (
            (HOOK, "companies/1/projects/2", 1, 2),
            ("companies/1/hooks/c", "companies/1", 1, None),
        ):
            conn.execute(
                "INSERT INTO hooks (name, parent, company_id, project_id, display_name, destination_url,"
                " authorization_header, payload_format, status, create_time, update_time)"
                " VALUES (?, ?, ?, ?, 'Deliveries', 'https://receiver.example.com/hooks', '', 'procore.v4',"
                " 'active', ?, ?)",
                (name, parent, company, project, _micros(T0), _micros(T0)),
            )
        events = [
            (1, event_id(1), 1, 2, "RFIs", 7, "update"),
            (2, event_id(2), 1, 2, "Projects", 8, "create"),
            (3, event_id(3), 1, None, "Users", 9, "create"),
        ]
        conn.executemany(
            "INSERT INTO events (serial, id, publish_time, timestamp, company_id, project_id, user_id, resource_name,"
            " resource_id, event_type, related_resources, idempotency_key)"
            " VALUES (?, ?, ?, ?, ?, ?, 7, ?, ?, ?, '[]', '')",
            [(s, i, _micros(T0), _micros(T0), c, p, r, rid, t) for s, i, c, p, r, rid, t in events],
        )
        deliveries = [
            # name, hook, serial, status, attempts
            (f"{HOOK}/deliveries/{event_id(1)}", HOOK, 1, "delivered", 2),
            (f"{HOOK}/deliveries/{event_id(2)}", HOOK, 2, "retrying", 1),
            (f"companies/1/hooks/c/deliveries/{event_id(3)}", "companies/1/hooks/c", 3, "queued", 0),
        ]
        for name, hook, serial, status, attempts in deliveries:
            resource_name, resource_id = next((r, rid) for s, _, _, _, r, rid, _ in events if s == serial)
            conn.execute(
                "INSERT INTO deliveries (name, hook_name, event_id, event_serial, resource_name, resource_id, status,"
                " attempt_count, create_time, update_time, next_attempt_time, first_attempt_time, last_error,"
                " lease_until) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, NULL, '', NULL)",
                (
                    name,
                    hook,
                    event_id(serial),
                    serial,
                    resource_name,
                    resource_id,
                    status,
                    attempts,
                    _micros(T0),
                    _micros(T0),
                    None if status == "delivered" else _micros(T0 + timedelta(minutes=serial)),
                ),
            )
        tried = [
            (f"{HOOK}/deliveries/{event_id(1)}", 1, 10, 500, "HTTP 500"),
            (f"{HOOK}/deliveries/{event_id(1)}", 2, 20, 200, ""),
            (f"{HOOK}/deliveries/{event_id(2)}", 1, 30, None, "timeout"),
        ]
        conn.executemany(
            "INSERT INTO attempts (delivery_name, number, start_time, end_time, request_headers, response_status,"
            " response_headers, response_body, error) VALUES (?, ?, ?, ?, '[]', ?, '[]', x'', ?)",
            [
                (
                    name,
                    number,
                    _micros(T0 + timedelta(seconds=s)),
                    _micros(T0 + timedelta(seconds=s, milliseconds=5)),
                    status,
                    error,
                )
                for name, number, s, status, error in tried
            ],
        )
    finally:
        conn.close()


async def test_migrating_a_schema_4_database_fills_in_history_from_its_rows(tmp_path: Path) -> None:
    path = tmp_path / "v4.db"
    _create_version_4_database(path)
    async with SqliteBackend().open(f"sqlite:///{path}") as store:
        one = await store.get_delivery(f"{HOOK}/deliveries/{event_id(1)}")
        two = await store.get_delivery(f"{HOOK}/deliveries/{event_id(2)}")
        assert (one.company_id, one.project_id, one.event_type, one.last_response_status) == (1, 2, "update", 200)
        assert (two.resource_name, two.event_type, two.last_response_status) == ("Projects", "create", None)
        company = await store.get_delivery(f"companies/1/hooks/c/deliveries/{event_id(3)}")
        assert (company.company_id, company.project_id, company.event_type) == (1, None, "create")
        # Scoped lists find the old deliveries through the new indexes.
        page = await store.query_deliveries(DeliveryQuery(company_id=1), after=None, limit=10, scan_limit=10)
        assert [d.name for d, _ in page.deliveries] == [company.name, two.name, one.name]
        page = await store.query_deliveries(
            DeliveryQuery(hook_name=HOOK, statuses=frozenset({DeliveryStatus.RETRYING})),
            after=None,
            limit=10,
            scan_limit=10,
        )
        assert [d.name for d, _ in page.deliveries] == [two.name]
        stats = await store.hook_stats(HOOK, latency_sample=10)
        assert stats.counts == {
            **dict.fromkeys(DeliveryStatus, 0),
            DeliveryStatus.DELIVERED: 1,
            DeliveryStatus.RETRYING: 1,
        }
        assert stats.last_success_time == T0 + timedelta(seconds=20, milliseconds=5)
        assert (stats.last_failure_time, stats.last_failure_reason) == (
            T0 + timedelta(seconds=30, milliseconds=5),
            "timeout",
        )
        assert stats.consecutive_failures == 1
        assert stats.recent_latencies == [timedelta(milliseconds=5)] * 3
        assert stats.next_attempt_time == T0 + timedelta(minutes=2)
        company_stats = await store.hook_stats("companies/1/hooks/c", latency_sample=10)
        assert company_stats.counts[DeliveryStatus.QUEUED] == 1
        assert (company_stats.last_success_time, company_stats.consecutive_failures) == (None, 0)
        # The change log starts with the migration; its seqs start at 1.
        assert await store.change_bounds() == (1, 0)
        assert await store.redeliver([one.name], T0 + timedelta(hours=1)) == [one.name]
        assert await store.change_bounds() == (1, 1)
        assert (await store.hook_stats(HOOK, latency_sample=0)).counts[DeliveryStatus.QUEUED] == 1
    conn = _connect(path)
    try:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == latest_version()
    finally:
        conn.close()
