"""What only the SQLite backend does: URLs, durability settings, the file on disk and its migrations."""

from __future__ import annotations

import dataclasses
import sqlite3
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import trio
from ulid import ULID

from tidings_server.domain.errors import NotFound
from tidings_server.domain.model import DEFAULT_MAX_CONCURRENCY, Event, Hook, HookStatus, Ordering, RetryPolicy, Trigger
from tidings_server.domain.names import trigger_name
from tidings_server.plugins.spec import StorageBackend
from tidings_server.stores import sqlite as sqlite_plugin
from tidings_server.stores.sqlite import (
    SchemaTooNewError,
    SqliteBackend,
    SqliteSettings,
    SqliteStore,
    deliveries,
    parse_url,
)
from tidings_server.stores.sqlite import migrate as migrate_module
from tidings_server.stores.sqlite.migrate import Migration, latest_version, migrate, migrations, schema_version
from tidings_server.stores.sqlite.rows import to_micros
from tidings_server.testing.stores.samples import make_event

T0 = datetime(2024, 5, 17, 12, 30, 45, 123456, tzinfo=UTC)
T1 = datetime(2024, 5, 17, 12, 30, 46, 123457, tzinfo=UTC)
HOOK = "companies/1/projects/2/hooks/h"
HOOK_RECORD = Hook(
    name=HOOK,
    company_id=1,
    project_id=2,
    display_name="Deliveries",
    destination_url="https://receiver.example.com/hooks",
    authorization_header="Bearer s3cret-token",
    payload_format="procore.v4",
    status=HookStatus.ACTIVE,
    create_time=T0,
    update_time=T0,
)


def _trigger(resource: str = "Projects", event: str = "create", at: datetime = T0) -> Trigger:
    return Trigger(trigger_name(HOOK, resource, event), resource, event, at)


def _url(path: Path, query: str = "") -> str:
    return f"sqlite:///{path}{query}"


def _connect(path: Path) -> sqlite3.Connection:
    return sqlite3.connect(path, isolation_level=None)


def _pragma(path: Path, name: str) -> object:
    conn = _connect(path)
    try:
        return conn.execute(f"PRAGMA {name}").fetchone()[0]
    finally:
        conn.close()


# URLs


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("sqlite:///tidings.db", SqliteSettings(Path("tidings.db"), "normal")),
        ("sqlite:///var/data/tidings.db", SqliteSettings(Path("var/data/tidings.db"), "normal")),
        ("sqlite:////var/lib/tidings.db", SqliteSettings(Path("/var/lib/tidings.db"), "normal")),
        ("sqlite:////srv/my%20data/t.db", SqliteSettings(Path("/srv/my data/t.db"), "normal")),
        ("sqlite:///t.db?synchronous=full", SqliteSettings(Path("t.db"), "full")),
        ("sqlite:///t.db?synchronous=NORMAL", SqliteSettings(Path("t.db"), "normal")),
        ("SQLite:///t.db", SqliteSettings(Path("t.db"), "normal")),
        ("sqlite:///t.db?mode=ro", SqliteSettings(Path("t.db"), "normal", read_only=True)),
    ],
)
def test_parse_url_accepts_relative_and_absolute_paths(url: str, expected: SqliteSettings) -> None:
    assert parse_url(url) == expected


@pytest.mark.parametrize(
    ("url", "why"),
    [
        ("sqlite://host/t.db", "a host is not allowed"),
        ("sqlite:/t.db", "a host is not allowed"),
        ("sqlite:t.db", "a host is not allowed"),
        ("sqlite:///", "does not name a file"),
        ("sqlite:///dir/", "does not name a file"),
        ("sqlite:///:memory:", "in-memory"),
        ("sqlite:///t.db#x", "fragment"),
        ("sqlite:///t.db?synchronous=off", "synchronous must be"),
        ("sqlite:///t.db?synchronous", "malformed"),
        ("sqlite:///t.db?journal_mode=delete", "unknown parameter 'journal_mode'"),
        ("sqlite:///t.db?synchronous=full&synchronous=normal", "given twice"),
        ("sqlite:///t.db?mode=rw", "mode must be 'ro'"),
        ("postgresql:///t.db", "scheme"),
    ],
)
def test_parse_url_rejects_bad_urls_saying_why_and_what_is_expected(url: str, why: str) -> None:
    with pytest.raises(ValueError, match="invalid SQLite store URL") as raised:
        parse_url(url)
    assert why in str(raised.value)
    assert "sqlite:////absolute/path.db" in str(raised.value)


async def test_open_rejects_a_bad_url_before_touching_disk(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="synchronous"):
        async with SqliteBackend().open(_url(tmp_path / "t.db", "?synchronous=sometimes")):
            pass
    assert not (tmp_path / "t.db").exists()


async def test_mode_ro_reads_beside_the_server_holding_the_file_and_writes_nothing(tmp_path: Path) -> None:
    path = tmp_path / "t.db"
    async with SqliteBackend().open(_url(path)) as held:
        await held.create_hook(HOOK_RECORD)
        with pytest.raises(ValueError, match="already in use by another tidings-server"):
            async with SqliteBackend().open(_url(path)):
                pass
        async with SqliteBackend().open(_url(path, "?mode=ro")) as reader:
            assert (await reader.get_hook(HOOK)).name == HOOK
            await held.update_hook(HOOK, lambda h: dataclasses.replace(h, display_name="Renamed"))
            assert (await reader.get_hook(HOOK)).display_name == "Renamed"  # committed writes are seen
            with pytest.raises(sqlite3.OperationalError, match="readonly"):
                await reader.delete_hook(HOOK)
        assert (await held.get_hook(HOOK)).display_name == "Renamed"


async def test_mode_ro_opens_an_existing_file_only(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="no SQLite store there"):
        async with SqliteBackend().open(_url(tmp_path / "missing.db", "?mode=ro")):
            pass
    assert not (tmp_path / "missing.db").exists()


async def test_relative_path_is_under_the_working_directory_and_parents_are_created(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    async with SqliteBackend().open("sqlite:///nested/dir/t.db") as store:
        await store.create_hook(HOOK_RECORD)
    assert (tmp_path / "nested" / "dir" / "t.db").is_file()


async def test_absolute_path_parents_are_created(tmp_path: Path) -> None:
    path = tmp_path / "a" / "b" / "t.db"
    assert _url(path).startswith("sqlite:////")
    async with SqliteBackend().open(_url(path)):
        pass
    assert path.is_file()


@pytest.mark.parametrize("synchronous", ["normal", "full"])
async def test_synchronous_setting_opens_a_working_store(tmp_path: Path, synchronous: str) -> None:
    async with SqliteBackend().open(_url(tmp_path / "t.db", f"?synchronous={synchronous}")) as store:
        await store.create_hook(HOOK_RECORD)
        assert (await store.get_hook(HOOK)).name == HOOK


# The file


def test_plugin_provides_one_sqlite_backend() -> None:
    [backend] = sqlite_plugin.tidings_storage_backends()
    assert isinstance(backend, StorageBackend)
    assert isinstance(backend, SqliteBackend)
    assert backend.scheme == "sqlite"


async def test_data_persists_across_close_and_reopen(tmp_path: Path) -> None:
    url = _url(tmp_path / "t.db")
    hook = dataclasses.replace(HOOK_RECORD, status=HookStatus.PAUSED)
    async with SqliteBackend().open(url) as store:
        assert isinstance(store, SqliteStore)
        await store.create_hook(hook)
        triggers = await store.add_triggers(HOOK, [_trigger(), _trigger("RFIs", "update", at=T1)])
    async with SqliteBackend().open(url) as store:
        assert await store.get_hook(HOOK) == hook
        assert await store.list_triggers(HOOK, after=None, limit=10) == sorted(triggers, key=lambda t: t.name)


async def test_journal_mode_is_wal_and_schema_is_current(tmp_path: Path) -> None:
    path = tmp_path / "t.db"
    async with SqliteBackend().open(_url(path)):
        assert _pragma(path, "journal_mode") == "wal"
        assert _pragma(path, "user_version") == latest_version()


async def test_deleting_a_hook_cascades_to_its_trigger_rows(tmp_path: Path) -> None:
    path = tmp_path / "t.db"
    async with SqliteBackend().open(_url(path)) as store:
        await store.create_hook(HOOK_RECORD)
        await store.add_triggers(HOOK, [_trigger(), _trigger("RFIs", "create")])
        await store.delete_hook(HOOK)
    conn = _connect(path)
    try:
        assert conn.execute("SELECT count(*) FROM triggers").fetchone() == (0,)
    finally:
        conn.close()


# Migrations


def test_migrations_are_numbered_from_one_without_gaps() -> None:
    steps = migrations()
    assert [m.version for m in steps] == list(range(1, len(steps) + 1))
    assert [m.name for m in steps[:3]] == ["0001_hooks.sql", "0002_triggers.sql", "0003_delivery.sql"]
    assert latest_version() == len(steps)


def test_migrate_applies_up_to_a_target_and_then_the_rest(tmp_path: Path) -> None:
    conn = _connect(tmp_path / "t.db")
    try:
        assert migrate(conn, target=1) == 1
        tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_schema WHERE type = 'table'")}
        assert tables == {"hooks"}
        assert migrate(conn) == latest_version()
        assert migrate(conn) == latest_version()
        assert migrate(conn, target=1) == latest_version()  # forward only: never goes back
        indexes = {row[0] for row in conn.execute("SELECT name FROM sqlite_schema WHERE type = 'index'")}
        assert {"triggers_by_event", "deliveries_due", "deliveries_pending_by_resource"} <= indexes
        tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_schema WHERE type = 'table'")}
        assert {"hooks", "triggers", "events", "deliveries", "attempts"} <= tables
    finally:
        conn.close()


def test_migrate_refuses_a_target_it_does_not_know(tmp_path: Path) -> None:
    conn = _connect(tmp_path / "t.db")
    try:
        with pytest.raises(ValueError, match="target schema version"):
            migrate(conn, target=latest_version() + 1)
        assert schema_version(conn) == 0
    finally:
        conn.close()


def _create_version_1_database(path: Path) -> None:
    """A file as an older tidings-server left it: schema version 1 and one hook, written with raw SQL."""
    conn = _connect(path)
    try:
        migrate(conn, target=1)
        conn.execute(
            "INSERT INTO hooks (name, parent, company_id, project_id, display_name, destination_url,"
            " authorization_header, payload_format, status, create_time, update_time)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                HOOK,
                "companies/1/projects/2",
                1,
                2,
                "Deliveries",
                "https://receiver.example.com/hooks",
                "Bearer s3cret-token",
                "procore.v4",
                "active",
                to_micros("create_time", T0),
                to_micros("update_time", T0),
            ),
        )
    finally:
        conn.close()


async def test_opens_a_database_created_by_an_older_schema(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    _create_version_1_database(path)
    assert _pragma(path, "user_version") == 1
    async with SqliteBackend().open(_url(path)) as store:
        assert await store.get_hook(HOOK) == HOOK_RECORD
        trigger = _trigger(at=T1)
        assert await store.add_triggers(HOOK, [trigger]) == [trigger]
        assert await store.list_triggers(HOOK, after=None, limit=10) == [trigger]
    assert _pragma(path, "user_version") == latest_version()


def _create_version_2_database(path: Path) -> None:
    """A file as the server before delivery left it: schema 2, two hooks and their triggers."""
    conn = _connect(path)
    try:
        migrate(conn, target=2)
        for name, parent, company, project in (
            (HOOK, "companies/1/projects/2", 1, 2),
            ("companies/3/hooks/c", "companies/3", 3, None),
        ):
            conn.execute(
                "INSERT INTO hooks (name, parent, company_id, project_id, display_name, destination_url,"
                " authorization_header, payload_format, status, create_time, update_time)"
                " VALUES (?, ?, ?, ?, 'Deliveries', 'https://receiver.example.com/hooks', 'Bearer s3cret-token',"
                " 'procore.v4', 'active', ?, ?)",
                (name, parent, company, project, to_micros("create_time", T0), to_micros("update_time", T0)),
            )
        conn.executemany(
            "INSERT INTO triggers (hook_name, name, resource_name, event_type, create_time) VALUES (?, ?, ?, ?, ?)",
            [
                (HOOK, trigger_name(HOOK, "Projects", "create"), "Projects", "create", to_micros("t", T0)),
                (HOOK, trigger_name(HOOK, "RFIs", "update"), "RFIs", "update", to_micros("t", T1)),
                ("companies/3/hooks/c", trigger_name("companies/3/hooks/c", "Users", "create"), "Users", "create", 0),
            ],
        )
    finally:
        conn.close()


async def test_opens_a_schema_2_database_keeping_hooks_and_triggers_with_default_delivery_settings(
    tmp_path: Path,
) -> None:
    path = tmp_path / "v2.db"
    _create_version_2_database(path)
    assert _pragma(path, "user_version") == 2
    async with SqliteBackend().open(_url(path)) as store:
        hook = await store.get_hook(HOOK)
        assert hook == HOOK_RECORD
        assert hook.retry_policy == RetryPolicy()
        assert (hook.ordering, hook.max_concurrency) == (Ordering.UNORDERED, DEFAULT_MAX_CONCURRENCY)
        assert await store.list_triggers(HOOK, after=None, limit=10) == [
            _trigger(),
            _trigger("RFIs", "update", at=T1),
        ]
        # The triggers' company and project were filled in from their hooks: fan-out finds them.
        project_event = Event(str(ULID()), 0, T1, 1, 2, 7, "RFIs", 5, "update")
        company_event = Event(str(ULID()), 0, T1, 3, None, 7, "Users", 5, "create")
        published = await store.publish_events([project_event, company_event], T1)
        assert [p.deliveries for p in published] == [1, 1]
    assert _pragma(path, "user_version") == latest_version()


def _plan(conn: sqlite3.Connection, sql: str, args: Any) -> str:
    return "\n".join(row[3] for row in conn.execute(f"EXPLAIN QUERY PLAN {sql}", args))


def test_fan_out_and_claiming_read_their_indexes(tmp_path: Path) -> None:
    """Fan-out reads one index range per (company, project, resource, event type), never other hooks;
    claiming reads one index range per hook, never another hook's backlog."""
    conn = _connect(tmp_path / "t.db")
    try:
        migrate(conn)
        for project in (2, None):
            plan = _plan(conn, deliveries._MATCHING_HOOKS, (1, project, "RFIs", "update"))
            assert "SEARCH t USING INDEX triggers_by_event (company_id=? AND project_id=? AND resource_name=?" in plan
            assert "SCAN" not in plan
        args = {"hook": HOOK, "now": 0, "room": 8, "created": 0}
        plan = _plan(conn, deliveries._DUE_OF_HOOK, args)
        assert plan == "SEARCH d USING INDEX deliveries_due_by_hook (hook_name=? AND next_attempt_time<?)"
        plan = _plan(conn, deliveries._DUE_OF_ORDERED_HOOK, args)
        assert plan.startswith("SEARCH d USING INDEX deliveries_due_by_hook (hook_name=? AND next_attempt_time<?)")
        assert "deliveries_pending_by_resource (hook_name=? AND resource_name=? AND resource_id=?" in plan
        assert "SCAN" not in _plan(conn, deliveries._DISCARD, ("why", 0, HOOK))
        assert "SCAN" not in _plan(conn, deliveries._LIST_DELIVERIES, ("a", "b", HOOK, 10))
    finally:
        conn.close()


async def test_refuses_a_database_with_a_newer_schema(tmp_path: Path) -> None:
    path = tmp_path / "new.db"
    newer = latest_version() + 1
    conn = _connect(path)
    try:
        conn.execute(f"PRAGMA user_version = {newer}")
    finally:
        conn.close()
    with pytest.raises(SchemaTooNewError, match=f"schema version {newer}") as raised:
        async with SqliteBackend().open(_url(path)):
            pass
    assert str(path) in str(raised.value)
    assert _pragma(path, "user_version") == newer
    assert _pragma(path, "journal_mode") == "delete"  # refused before anything was changed


def test_migrate_refuses_a_database_with_a_newer_schema(tmp_path: Path) -> None:
    conn = _connect(tmp_path / "t.db")
    try:
        conn.execute(f"PRAGMA user_version = {latest_version() + 1}")
        with pytest.raises(SchemaTooNewError, match="at least as new"):
            migrate(conn)
        assert not conn.in_transaction
    finally:
        conn.close()


def test_a_failing_migration_changes_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    first = migrations()[0]
    broken = Migration(
        2,
        "0002_broken.sql",
        "-- a comment; with a semicolon\n"
        "CREATE TABLE kept_only_if_all_succeeds (note TEXT DEFAULT 'a;b');\n"
        "INSERT INTO kept_only_if_all_succeeds DEFAULT VALUES;\n"
        "CREATE TABLE hooks (name TEXT);\n",  # fails: hooks exists
    )
    monkeypatch.setattr(migrate_module, "migrations", lambda: (first, broken))
    conn = _connect(tmp_path / "t.db")
    try:
        with pytest.raises(sqlite3.OperationalError, match="already exists"):
            migrate(conn)
        assert schema_version(conn) == 1
        assert not conn.in_transaction
        tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_schema WHERE type = 'table'")}
        assert tables == {"hooks"}
    finally:
        conn.close()


def test_a_migration_may_hold_semicolons_in_strings_and_comments(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    step = Migration(
        1,
        "0001_notes.sql",
        "-- first; second\nCREATE TABLE notes (body TEXT);\n/* a; b */ INSERT INTO notes VALUES ('x; y');\n"
        "INSERT INTO notes VALUES ('z')",
    )
    monkeypatch.setattr(migrate_module, "migrations", lambda: (step,))
    conn = _connect(tmp_path / "t.db")
    try:
        assert migrate(conn) == 1
        assert conn.execute("SELECT body FROM notes ORDER BY body").fetchall() == [("x; y",), ("z",)]
    finally:
        conn.close()


async def test_concurrent_publishes_share_commits_and_fail_alone(tmp_path: Path) -> None:
    """Group commit: calls arriving during a commit share the next one; a bad call fails alone."""
    async with SqliteBackend().open(_url(tmp_path / "group.db")) as store:
        assert isinstance(store, SqliteStore)
        results: dict[int, object] = {}

        async def publish(n: int) -> None:
            events = [make_event(n * 10 + i) for i in range(10)]
            if n == 7:  # a naive timestamp cannot be stored: this call alone must fail
                events[3] = dataclasses.replace(events[3], timestamp=datetime(2024, 1, 1))
            try:
                results[n] = await store.publish_events(events, T0)
            except ValueError as exc:
                results[n] = exc

        async with trio.open_nursery() as nursery:
            for n in range(20):
                nursery.start_soon(publish, n)
        assert isinstance(results.pop(7), ValueError)
        assert all(isinstance(r, list) and len(r) == 10 for r in results.values())
        assert store.publish_commits < 20
        for n in results:
            for i in range(10):
                await store.get_event(make_event(n * 10 + i).id)
        with pytest.raises(NotFound):
            await store.get_event(make_event(70).id)
