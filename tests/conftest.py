"""Shared fixtures: a real tidings server on a free loopback port, and stubs to talk to it."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.harness import Api, ServerThread, secrets_key
from tests.pg import temporary_database
from tidings_server.app import Config

# Server processes the tests start take their settings from the environment too: callers are
# not authenticated there either (tests/auth starts its servers with auth on, explicitly).
os.environ.setdefault("TIDINGS_NO_AUTH", "1")


@pytest.fixture
def server_config(tmp_path: Path) -> Config:
    """Tests deliver to receivers on loopback over http, so both are allowed here."""
    return Config(
        listen="127.0.0.1:0",
        store_url=f"sqlite:///{tmp_path / 'tidings.sqlite3'}",
        allow_http=True,
        allow_private_destinations=True,
        secrets_key=secrets_key(),
    )


@pytest.fixture
def server(server_config: Config) -> Iterator[ServerThread]:
    srv = ServerThread(server_config).start()
    yield srv
    srv.stop()


@pytest.fixture
def api(server: ServerThread) -> Iterator[Api]:
    client = Api.connect(server.port)
    yield client
    client.channel.close()


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """The URL of a fresh, empty PostgreSQL database, dropped after the test.

    Fails (never skips) when PostgreSQL is not reachable: see tests/pg.py.
    """
    with temporary_database() as url:
        yield url
