"""The database, its WAL and shared-memory files, and key files are the server user's alone
(mode 0600), whatever the umask the server was started with."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tidings_server.keys import add_key, init_key, retire_old_keys
from tidings_server.stores.sqlite import SqliteBackend
from tidings_server.testing.stores.samples import make_hook

SERVER = Path(sys.executable).parent / "tidings-server"


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture(params=[0o022, 0o000], ids=["umask-022", "umask-000"])
def umask(request: pytest.FixtureRequest) -> Iterator[int]:
    old = os.umask(request.param)
    try:
        yield request.param
    finally:
        os.umask(old)


async def test_database_wal_and_shm_are_created_0600(tmp_path: Path, umask: int) -> None:
    db = tmp_path / "new" / "tidings.sqlite3"
    async with SqliteBackend().open(f"sqlite:///{db}") as store:
        await store.create_hook(make_hook())
        files = [db, db.with_name(db.name + "-wal"), db.with_name(db.name + "-shm")]
        assert {f.name: mode(f) for f in files} == {f.name: 0o600 for f in files}


async def test_an_existing_database_open_to_others_is_made_private(tmp_path: Path, umask: int) -> None:
    db = tmp_path / "old.sqlite3"
    async with SqliteBackend().open(f"sqlite:///{db}") as store:
        await store.create_hook(make_hook())
    db.chmod(0o644)  # as servers before this one left it
    async with SqliteBackend().open(f"sqlite:///{db}") as store:
        await store.create_hook(make_hook("companies/1/hooks/second"))
        assert mode(db) == mode(db.with_name(db.name + "-wal")) == 0o600


def test_key_files_are_created_and_replaced_0600(tmp_path: Path, umask: int) -> None:
    path = tmp_path / "keys" / "secrets.key"
    init_key(path)
    assert mode(path) == 0o600
    add_key(path)
    assert mode(path) == 0o600
    retire_old_keys(path)
    assert mode(path) == 0o600
    assert sorted(p.name for p in path.parent.iterdir()) == ["secrets.key"]  # no temporary file left


def test_init_key_command_makes_a_private_file_and_never_overwrites(tmp_path: Path, umask: int) -> None:
    path = tmp_path / "var" / "secrets.key"

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(SERVER), "secrets", "init-key", *args, str(path)],
            capture_output=True,
            text=True,
            timeout=60,
            preexec_fn=lambda: os.umask(umask),
        )

    created = run()
    assert created.returncode == 0, created.stderr
    assert created.stdout.startswith(f"created {path} (mode 0600) with key ")
    assert mode(path) == 0o600
    text = path.read_text()
    again = run()
    refusal = f"tidings-server secrets: {path} exists; a key is never overwritten"
    assert (again.returncode, again.stderr.strip()) == (1, refusal)
    assert run("--if-missing").returncode == 0
    assert path.read_text() == text
