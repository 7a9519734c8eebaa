"""WAL checkpoints on a connection and a thread of their own, so that no commit waits for one.

By default SQLite checkpoints in the committing connection: the commit that takes the WAL past
its threshold copies the WAL's pages into the database file before it returns, and the store's
one connection, which every publish, claim and record waits for, stalls meanwhile. Those stalls
were most of the tail of publish→delivered latency (docs/performance.md). Here a thread runs a
PASSIVE checkpoint every ``interval`` seconds instead: it copies what is committed without
waiting for the writer or blocking it, and sqlite3 lets go of the interpreter lock while it
copies, so it runs beside the server's own thread.

A passive checkpoint never starts the WAL over: under steady writes new frames land while it
copies, so the writer finds the WAL never wholly copied and keeps appending, until its own
auto-checkpoint (the backstop) fires in a commit, syncs tens of MiB and stalls every caller for
10-40 ms, about once a second at 1,000 events/s (docs/performance.md). So once a pass leaves the
WAL longer than ``RESTART_PAGES``, this thread restarts it: a RESTART checkpoint takes the write
lock for a moment, copies the few frames committed since the pass, and the next commit writes
from the WAL's start. It waits for the lock at most ``RESTART_WAIT_MS`` and otherwise leaves it
to the next round. Once it has the lock, writers wait for the copy and a sync: 2-5 ms at 1,000
events/s, up to about 30 ms with a backlog (measured), against the backstop's 10-40 ms.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
from pathlib import Path

log = logging.getLogger(__name__)

INTERVAL = 0.5
"""Seconds between checkpoints. Longer copies each hot page fewer times (a page written many
times in the WAL is copied once), shorter keeps the WAL smaller; docs/performance.md measures."""
RESTART_PAGES = 4000
"""WAL frames (of 4 KiB) past which a pass is followed by a restart of the WAL: well under the
writer's backstop (``WAL_AUTOCHECKPOINT_PAGES``), so the backstop does not fire."""
RESTART_WAIT_MS = 10
"""How long a restart waits for the write lock and then for readers of the old frames (holding
the lock) before it gives up until the next round: a commit or a read of the store takes about
a millisecond, and a longer read elsewhere (another process) must not hold the writer up."""


class Checkpointer:
    """A daemon thread that checkpoints ``path``'s WAL until ``stop``; ``checkpoints`` counts
    the checkpoints that copied every committed page (what a test or a status can read)."""

    def __init__(
        self, path: Path, busy_timeout_ms: int, interval: float = INTERVAL, restart_pages: int = RESTART_PAGES
    ) -> None:
        """``busy_timeout_ms`` bounds the wait for another process's lock when opening; a
        restart waits at most ``RESTART_WAIT_MS``."""
        self._path = path
        self._busy_timeout_ms = busy_timeout_ms
        self._interval = interval
        self._restart_pages = restart_pages
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name="sqlite-checkpointer", daemon=True)
        self.checkpoints = 0
        self.restarts = 0  # restarts of the WAL this thread made (a test reads it)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        """Blocking: ends the thread after the checkpoint under way, if any."""
        self._stopping.set()
        if self._thread.is_alive():
            self._thread.join()

    def _run(self) -> None:
        try:
            conn = sqlite3.connect(self._path, isolation_level=None, check_same_thread=False)
        except sqlite3.Error as exc:  # the writer's auto-checkpoint still bounds the WAL
            log.warning("the WAL checkpointer could not open the database", extra={"error": str(exc)})
            return
        try:
            try:
                conn.execute(f"PRAGMA busy_timeout = {self._busy_timeout_ms:d}")
                conn.execute("PRAGMA journal_mode")  # the first read, which may wait out another's lock
                conn.execute(f"PRAGMA busy_timeout = {RESTART_WAIT_MS:d}")  # from now on, what a restart may wait
            except sqlite3.Error as exc:
                log.warning("the WAL checkpointer could not read the database", extra={"error": str(exc)})
                return
            while not self._stopping.wait(self._interval):
                try:
                    self._round(conn)
                except sqlite3.Error as exc:  # a full disk, say: the next round tries again
                    log.warning("a WAL checkpoint failed", extra={"error": str(exc)})
        finally:
            conn.close()

    def _round(self, conn: sqlite3.Connection) -> None:
        """A passive pass; then, if the WAL is long, a restart (given up when the lock is busy)."""
        busy, pages, copied = conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
        if not busy and pages == copied:
            self.checkpoints += 1
        if pages >= self._restart_pages:
            busy, _pages, _copied = conn.execute("PRAGMA wal_checkpoint(RESTART)").fetchone()
            if not busy:
                self.restarts += 1
