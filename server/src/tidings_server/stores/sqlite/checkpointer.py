"""WAL checkpoints on a connection and a thread of their own, so that no commit waits for one.

By default SQLite checkpoints in the committing connection: the commit that takes the WAL past
its threshold copies the WAL's pages into the database file before it returns, and the store's
one connection, which every publish, claim and record waits for, stalls meanwhile. Those stalls
were most of the tail of publish→delivered latency (docs/performance.md). Here a thread runs a
PASSIVE checkpoint every ``interval`` seconds instead: it copies what is committed without
waiting for the writer or blocking it, and sqlite3 lets go of the interpreter lock while it
copies, so it runs beside the server's own thread. The writer's auto-checkpoint stays, as a
backstop, at a threshold this thread keeps the WAL well under.
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


class Checkpointer:
    """A daemon thread that checkpoints ``path``'s WAL until ``stop``; ``checkpoints`` counts
    the checkpoints that copied every committed page (what a test or a status can read)."""

    def __init__(self, path: Path, busy_timeout_ms: int, interval: float = INTERVAL) -> None:
        self._path = path
        self._busy_timeout_ms = busy_timeout_ms
        self._interval = interval
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name="sqlite-checkpointer", daemon=True)
        self.checkpoints = 0

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
            conn.execute(f"PRAGMA busy_timeout = {self._busy_timeout_ms:d}")
            while not self._stopping.wait(self._interval):
                try:
                    busy, pages, copied = conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
                except sqlite3.Error as exc:  # a full disk, say: the next round tries again
                    log.warning("a WAL checkpoint failed", extra={"error": str(exc)})
                    continue
                if not busy and pages == copied:
                    self.checkpoints += 1
        finally:
            conn.close()
