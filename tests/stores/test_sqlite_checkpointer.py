"""A SQLite store's WAL is copied into the database file by a thread of its own, not by the
commits of the store's connection (whose auto-checkpoint is only a backstop at 10,000 pages):
the pages reach the file while the writer does nothing, and the thread ends with the store."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable
from pathlib import Path

import trio

from tidings_server.stores.sqlite import WAL_AUTOCHECKPOINT_PAGES, SqliteBackend
from tidings_server.stores.sqlite.checkpointer import Checkpointer
from tidings_server.testing.stores.samples import T0, make_event, make_hook, make_trigger

HOOK = "companies/1/projects/2/hooks/h"
PAGE = 4096


def _checkpointers() -> set[threading.Thread]:
    """The checkpointer threads of this process (other tests' servers may have theirs)."""
    return {t for t in threading.enumerate() if t.name == "sqlite-checkpointer"}


async def _eventually(ready: Callable[[], bool]) -> bool:
    """Whether ``ready`` holds within 10 s (polled: it reads files another thread writes)."""
    with trio.move_on_after(10):
        while not ready():  # noqa: ASYNC110 - no trio event says a file grew
            await trio.sleep(0.02)
    return ready()


def _writer(path: Path) -> sqlite3.Connection:
    """A connection that never checkpoints by itself, with a WAL of about 2 MiB committed."""
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)  # a test writes from a thread
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA wal_autocheckpoint = 0")
    conn.execute("CREATE TABLE t (v BLOB)")
    conn.execute("BEGIN")
    conn.executemany("INSERT INTO t VALUES (randomblob(1000))", [()] * 2000)
    conn.execute("COMMIT")
    return conn


async def test_the_checkpointer_copies_committed_pages_into_the_file_while_the_writer_is_idle(
    tmp_path: Path,
) -> None:
    path = tmp_path / "t.sqlite3"
    writer = _writer(path)
    try:
        assert path.stat().st_size < 100 * PAGE  # the rows are in the WAL only
        others = _checkpointers()
        checkpointer = Checkpointer(path, busy_timeout_ms=5000, interval=0.05)
        checkpointer.start()
        try:
            assert await _eventually(lambda: checkpointer.checkpoints >= 1 and path.stat().st_size > 450 * PAGE)
        finally:
            checkpointer.stop()
        assert _checkpointers() <= others
        assert writer.execute("SELECT count(*) FROM t").fetchone() == (2000,)
    finally:
        writer.close()


async def test_a_sqlite_store_checkpoints_beside_its_connection_and_stops_with_it(tmp_path: Path) -> None:
    path = tmp_path / "store.sqlite3"
    others = _checkpointers()
    async with SqliteBackend().open(f"sqlite:///{path}") as store:
        assert len(_checkpointers() - others) == 1
        await store.create_hook(make_hook(HOOK))
        await store.add_triggers(HOOK, [make_trigger(HOOK)])
        size = path.stat().st_size
        for batch in range(10):
            await store.publish_events([make_event(batch * 100 + i) for i in range(1, 101)], T0)
        wal = path.with_name(path.name + "-wal").stat().st_size
        assert wal < WAL_AUTOCHECKPOINT_PAGES * PAGE  # the commits' own checkpoint never ran
        # 1,000 events and their deliveries reach the database file with no further commit.
        assert await _eventually(lambda: path.stat().st_size > size + 100 * PAGE)
    assert _checkpointers() <= others


async def test_a_read_only_store_has_no_checkpointer(tmp_path: Path) -> None:
    path = tmp_path / "store.sqlite3"
    async with SqliteBackend().open(f"sqlite:///{path}"):
        pass
    others = _checkpointers()
    async with SqliteBackend().open(f"sqlite:///{path}?mode=ro"):
        assert _checkpointers() <= others


async def test_under_steady_writes_the_checkpointer_restarts_the_wal_so_it_stops_growing(tmp_path: Path) -> None:
    # A passive pass alone never lets the WAL start over while commits keep landing; with the
    # writer's own checkpoint off, only the restarts keep the file from growing by every commit.
    path = tmp_path / "t.sqlite3"
    writer = _writer(path)
    wal = path.with_name(path.name + "-wal")
    row = 1000
    written = 0
    stop = threading.Event()

    def write() -> None:
        nonlocal written
        while not stop.is_set():
            writer.execute("BEGIN")
            writer.executemany("INSERT INTO t VALUES (randomblob(?))", [(row,)] * 20)
            writer.execute("COMMIT")
            written += 20 * row
            stop.wait(0.0002)  # steady, as a server's commits are, not back to back

    checkpointer = Checkpointer(path, busy_timeout_ms=5000, interval=0.01, restart_pages=100)
    checkpointer.start()
    thread = threading.Thread(target=write)
    thread.start()
    try:
        assert await _eventually(lambda: checkpointer.restarts >= 3 and written > 20 * 1024 * 1024)
    finally:
        stop.set()
        thread.join()
        checkpointer.stop()
    try:
        # 20 MiB committed through a WAL that stayed a fraction of it.
        assert wal.stat().st_size < 10 * 1024 * 1024  # without restarts: over 30 MiB
        assert writer.execute("SELECT count(*) FROM t").fetchone() == (2000 + written // row,)
    finally:
        writer.close()
