"""The database going away under a running store, and bad databases at start-up.

The machine's PostgreSQL is shared, so an outage is made by ending this store's sessions
(``pg_terminate_backend`` from another connection), never by stopping the server.
"""

from __future__ import annotations

import secrets
import subprocess
import sys

import psycopg
import pytest
import trio
from psycopg import sql

from tests.pg import admin_connect, url_for
from tidings_postgresql.backend import PostgresBackend
from tidings_server.domain.errors import NotFound, Unavailable
from tidings_server.domain.ports import Notice
from tidings_server.testing.stores.samples import T0, make_event, make_hook, make_trigger

HOOK = "companies/1/projects/2/hooks/h"


def _terminate_sessions(url: str) -> int:
    database = url.rsplit("/", 1)[1]
    with admin_connect() as conn:
        rows = conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()",
            (database,),
        ).fetchall()
    return len(rows)


async def test_lost_connections_answer_unavailable_and_the_store_recovers_by_itself(postgres_url: str) -> None:
    async with PostgresBackend().open(postgres_url + "?pool_size=3") as store:
        await store.create_hook(make_hook(HOOK))
        await store.add_triggers(HOOK, [make_trigger(HOOK)])
        heard: list[Notice] = []
        arrived = trio.Event()

        def on_notice(notice: Notice) -> None:
            heard.append(notice)
            arrived.set()

        async def hear(*wanted: Notice) -> None:
            nonlocal arrived
            with trio.fail_after(20):
                while not set(wanted) <= set(heard):
                    await arrived.wait()
                    arrived = trio.Event()

        async with trio.open_nursery() as nursery:
            await nursery.start(store.listen, on_notice)
            assert _terminate_sessions(postgres_url) == 4  # the pool's three and the listener
            with pytest.raises(Unavailable, match=r"the PostgreSQL store at postgresql://.* is unavailable"):
                await store.get_hook(HOOK)
            # The pool replaces what broke; the next calls work, with everything still there.
            with trio.fail_after(20):
                while True:
                    try:
                        [published] = await store.publish_events([make_event(1)], T0)
                        break
                    except Unavailable:
                        await trio.sleep(0.1)
            assert published.deliveries == 1
            assert (await store.get_hook(HOOK)).name == HOOK
            with pytest.raises(NotFound):
                await store.get_hook(HOOK + "x")
            # The listener reconnected too: it tells of both (what it missed), then hears new writes.
            await hear(Notice.DUE, Notice.CHANGES)
            heard.clear()
            await store.discard_pending(HOOK, T0, "hook disabled")
            await hear(Notice.CHANGES)
            nursery.cancel_scope.cancel()


def _serve(url: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tidings_server.cli", "serve", "--listen", "127.0.0.1:0", "--store", url],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def _refused(url: str, why: str) -> None:
    done = _serve(url)
    lines = done.stderr.strip().splitlines()
    assert done.returncode == 2, done.stderr
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("tidings-server: --store: ")
    assert why in lines[0], lines[0]
    assert "hunter2" not in done.stderr + done.stdout


def test_an_unreachable_server_is_one_clear_line_and_a_failed_start() -> None:
    _refused("postgresql://postgres:hunter2@127.0.0.1:1/test", "Connection refused")


def test_credentials_that_may_not_log_in_are_one_clear_line_and_a_failed_start() -> None:
    # The test server trusts every local connection, so a password is never checked; a role that
    # may not log in is the credential PostgreSQL refuses here.
    role = f"tidings_test_{secrets.token_hex(4)}"
    with admin_connect() as conn:
        conn.execute(sql.SQL("CREATE ROLE {} NOLOGIN PASSWORD 'hunter2'").format(sql.Identifier(role)))
    try:
        _refused(f"postgresql://{role}:hunter2@127.0.0.1:5432/test", f'role "{role}" is not permitted to log in')
        _refused("postgresql://no_such_role:hunter2@127.0.0.1:5432/test", 'role "no_such_role" does not exist')
    finally:
        with admin_connect() as conn:
            conn.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(role)))


def test_a_missing_database_is_one_clear_line_and_a_failed_start_and_is_not_created() -> None:
    missing = f"tidings_test_missing_{secrets.token_hex(4)}"
    _refused(url_for(missing).replace("postgres@", "postgres:hunter2@"), f'database "{missing}" does not exist')
    with admin_connect() as conn:
        assert conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (missing,)).fetchone() is None


def test_another_applications_database_is_one_clear_line_and_a_failed_start_untouched(postgres_url: str) -> None:
    with psycopg.connect(postgres_url) as conn:
        conn.execute("CREATE TABLE invoices (id integer PRIMARY KEY)")
        conn.commit()
    _refused(postgres_url.replace("postgres@", "postgres:hunter2@"), "another application")
    with psycopg.connect(postgres_url) as conn:
        tables = conn.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public'").fetchall()
    assert tables == [("invoices",)]
