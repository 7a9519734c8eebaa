"""The ``sqlite`` storage backend: a single-file store for one server, with no database to run.

Store URLs follow SQLAlchemy's convention, the path being everything after ``sqlite:///``:

* ``sqlite:///relative/path.db``: relative to the server's working directory;
* ``sqlite:////absolute/path.db``: an absolute path (note the fourth slash).

Missing parent directories are created. Percent-escapes in the path are decoded (``%20``).
The query parameter ``synchronous`` sets how much a commit survives:

* ``normal`` (default): the database runs in WAL mode, where NORMAL never corrupts it and
  loses no committed transaction when the server process crashes; after a power loss or an
  operating-system crash the last few commits may be rolled back;
* ``full``: every commit also survives a power loss, at the cost of one fsync per commit.

``mode=ro`` opens an existing file read-only, beside the server that holds it: no lock is
taken, nothing is migrated or cleared, and any write fails. WAL lets a reader in another
process see every committed transaction while the server writes; ``tidings-server status``
reads a SQLite store this way.

A file has one server at a time. Opening it takes an exclusive ``flock`` on the sidecar file
``<path>.lock`` for as long as the store is open, so a second server on the same file is
refused at once, with the holder's pid, instead of sharing it (two dispatchers would lease the
same deliveries and each wake only itself). Being the one owner, the store then clears every
lease the previous process left: after a crash, what was in flight is claimable at once rather
than when its leases would have ended. The kernel drops the lock with the process, kill -9
included, so a stale lock file never blocks a restart.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import sqlite3
import stat
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from urllib.parse import parse_qsl, unquote, urlsplit

import trio

from tidings_server.plugins.spec import StorageBackend, hookimpl
from tidings_server.stores.sqlite import nodes
from tidings_server.stores.sqlite.checkpointer import Checkpointer
from tidings_server.stores.sqlite.migrate import SchemaTooNewError, check_not_newer, latest_version
from tidings_server.stores.sqlite.migrate import migrate as apply_migrations
from tidings_server.stores.sqlite.store import SqliteStore

__all__ = ["SchemaTooNewError", "SqliteBackend", "SqliteSettings", "SqliteStore", "StoreInUseError", "parse_url"]

log = logging.getLogger(__name__)
_URL_FORMS = (
    "sqlite:///relative/path.db or sqlite:////absolute/path.db, optionally ?synchronous=normal|full or ?mode=ro"
)
_PARAMETERS = ("synchronous", "mode")
_SYNCHRONOUS = {"normal": "PRAGMA synchronous = NORMAL", "full": "PRAGMA synchronous = FULL"}
BUSY_TIMEOUT_MS = 5000
"""How long a statement waits for another process's lock (a backup, a second server) before failing."""
CACHE_KIB = 65536
"""The page cache, in KiB. SQLite's default of 2 MiB cannot hold the delivery indexes a publish
touches, and re-reading their pages halves publishing throughput once the backlog grows."""
WAL_AUTOCHECKPOINT_PAGES = 10000
"""How many WAL pages (of 4 KiB) a commit lets pile up before it copies them into the database
file itself: a backstop only, since the store's checkpointer thread (``checkpointer``) copies
them first, off the commit path. Durability is the ``synchronous`` level's alone: a checkpoint
only copies what is already committed."""


@dataclass(frozen=True, slots=True)
class SqliteSettings:
    """What a ``sqlite:`` URL asks for: the database file and its ``synchronous`` level."""

    path: Path
    synchronous: str = "normal"
    read_only: bool = False  # ?mode=ro: beside the server that holds the file


def parse_url(url: str) -> SqliteSettings:
    """Parse a ``sqlite:`` store URL; raise ValueError saying what is wrong and what is expected."""

    def bad(why: str) -> ValueError:
        return ValueError(f"invalid SQLite store URL {url!r}: {why}; expected {_URL_FORMS}")

    parts = urlsplit(url)
    if parts.scheme.lower() != "sqlite":
        raise bad("the scheme is not 'sqlite'")
    if not url[len(parts.scheme) :].startswith(":///"):
        raise bad("a host is not allowed; the path starts after 'sqlite:///'")
    if parts.fragment or url.endswith("#"):
        raise bad("a fragment ('#…') is not allowed")
    path = unquote(parts.path[1:])
    if not path or path.endswith("/"):
        raise bad("the path does not name a file")
    if path == ":memory:":
        raise bad("an in-memory SQLite database is not supported (use the URL 'memory:')")
    synchronous = "normal"
    read_only = False
    try:
        query = parse_qsl(parts.query, keep_blank_values=True, strict_parsing=True) if parts.query else []
    except ValueError:
        raise bad(f"the query {parts.query!r} is malformed") from None
    seen: set[str] = set()
    for key, value in query:
        if key not in _PARAMETERS:
            raise bad(f"unknown parameter {key!r}")
        if key in seen:
            raise bad(f"parameter {key!r} is given twice")
        seen.add(key)
        if key == "mode":
            if value.lower() != "ro":
                raise bad(f"mode must be 'ro' (read-only), not {value!r}")
            read_only = True
        elif value.lower() not in _SYNCHRONOUS:
            raise bad(f"synchronous must be 'normal' or 'full', not {value!r}")
        else:
            synchronous = value.lower()
    return SqliteSettings(Path(path), synchronous, read_only)


PRIVATE = 0o600
"""The mode of the database file, whatever the umask. SQLite gives the WAL and shared-memory
files the mode of the database file, so they are private too: history and any secret from
before encryption at rest are for the server's user alone."""


def _private_file(path: Path) -> None:
    """Create ``path`` empty with mode 0600 (SQLite makes a database of an empty file), or take
    group and other access away from an existing database and its WAL and shared-memory files."""
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL, PRIVATE)
    except FileExistsError:
        for file in (path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")):
            with contextlib.suppress(FileNotFoundError):
                if stat.S_IMODE(file.stat().st_mode) & 0o077:
                    file.chmod(stat.S_IMODE(file.stat().st_mode) & 0o700)
                    log.warning("took group and other access away from a database file", extra={"file": str(file)})
        return
    try:
        os.fchmod(fd, PRIVATE)  # os.open's mode went through the umask
    finally:
        os.close(fd)


class StoreInUseError(ValueError):
    """Another process has the SQLite file open as its store; ``pid`` is the one its lock file
    names (None when unreadable), so ``secrets rotate-key`` can signal it."""

    def __init__(self, message: str, pid: int | None = None) -> None:
        super().__init__(message)
        self.pid = pid


@contextmanager
def exclusive(path: Path) -> Iterator[None]:
    """Hold the exclusive lock on ``path``'s sidecar lock file, or raise StoreInUseError at once."""
    path.parent.mkdir(parents=True, exist_ok=True)
    lock_path = path.with_name(path.name + ".lock")
    fd = os.open(lock_path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 64, 0).decode(errors="replace").strip() or "unknown"
            raise StoreInUseError(
                f"{path} is already in use by another tidings-server (pid {holder}, lock {lock_path}); a SQLite"
                " store has one server at a time: stop that one first, or use PostgreSQL to run several",
                int(holder) if holder.isdigit() and int(holder) > 0 else None,
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, str(os.getpid()).encode(), 0)
        yield
    finally:
        os.close(fd)  # closing the descriptor releases the lock


def connect(settings: SqliteSettings) -> sqlite3.Connection:
    """Open (creating if needed) and migrate the database, and clear the leases its previous
    process left; blocking, so called in a worker thread, with the file's lock held."""
    settings.path.parent.mkdir(parents=True, exist_ok=True)
    _private_file(settings.path)
    # isolation_level=None: SqliteStore begins and ends every transaction itself.
    conn = sqlite3.connect(settings.path, timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None, check_same_thread=False)
    try:
        conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS:d}")
        # A file from a newer server is refused before anything about it is changed.
        check_not_newer(conn)
        mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
        if mode != "wal":
            raise RuntimeError(f"{settings.path}: SQLite refused WAL mode (journal_mode is {mode!r})")
        conn.execute(_SYNCHRONOUS[settings.synchronous])
        conn.execute(f"PRAGMA cache_size = -{CACHE_KIB:d}")  # negative: KiB rather than pages
        conn.execute(f"PRAGMA wal_autocheckpoint = {WAL_AUTOCHECKPOINT_PAGES:d}")
        conn.execute("PRAGMA foreign_keys = ON")
        # Deleted rows are zeroed where that costs no extra write: what a purge or an update
        # removes (a secret from before encryption at rest) does not linger in free space.
        conn.execute("PRAGMA secure_delete = FAST")
        apply_migrations(conn)  # imported renamed: the package's ``migrate`` is the module
        conn.execute("BEGIN IMMEDIATE")
        released = nodes.recover(conn)
        conn.execute("COMMIT")
        if released:
            log.info("released the leases the previous server left", extra={"count": released})
    except SchemaTooNewError as exc:
        conn.close()
        raise SchemaTooNewError(f"{settings.path}: {exc}") from None
    except BaseException:
        conn.close()
        raise
    return conn


def connect_read_only(settings: SqliteSettings) -> sqlite3.Connection:
    """Open an existing database for reading only, as a server of this version reads it;
    blocking, so called in a worker thread. No lock, no migration, no lease cleared."""
    if not settings.path.is_file():
        raise ValueError(
            f"{settings.path}: no SQLite store there (read-only, the file must exist: is it the server's --store?)"
        )
    uri = f"{settings.path.resolve().as_uri()}?mode=ro"
    conn = sqlite3.connect(uri, uri=True, timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None, check_same_thread=False)
    try:
        conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS:d}")
        version = check_not_newer(conn)
        if version < latest_version():
            raise ValueError(
                f"{settings.path}: the store has schema version {version}, older than this tidings-server's"
                f" {latest_version()}; it is migrated when a server of this version opens it"
            )
    except SchemaTooNewError as exc:
        conn.close()
        raise SchemaTooNewError(f"{settings.path}: {exc}") from None
    except BaseException:
        conn.close()
        raise
    return conn


class SqliteBackend:
    """Opens a SqliteStore for a ``sqlite:`` URL, migrating the file to the current schema first."""

    scheme = "sqlite"
    description = "one local SQLite file, for a single server (sqlite:///relative.db, sqlite:////absolute.db)"

    @asynccontextmanager
    async def open(self, url: str) -> AsyncIterator[SqliteStore]:
        settings = parse_url(url)
        limiter = trio.CapacityLimiter(1)
        with contextlib.nullcontext() if settings.read_only else exclusive(settings.path):
            opening = connect_read_only if settings.read_only else connect
            conn = await trio.to_thread.run_sync(partial(opening, settings), limiter=limiter)
            checkpointer = None if settings.read_only else Checkpointer(settings.path, BUSY_TIMEOUT_MS)
            try:
                if checkpointer is not None:
                    checkpointer.start()
                yield SqliteStore(conn, limiter)
            finally:
                # Shielded so a cancelled server still closes the file (and checkpoints its WAL,
                # as the last connection to close it).
                with trio.CancelScope(shield=True):
                    if checkpointer is not None:
                        await trio.to_thread.run_sync(checkpointer.stop)
                    await trio.to_thread.run_sync(conn.close, limiter=limiter)


@hookimpl
def tidings_storage_backends() -> list[StorageBackend]:
    return [SqliteBackend()]
