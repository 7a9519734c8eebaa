"""The throwaway-database helper: a fresh database per use, gone afterwards."""

from __future__ import annotations

import psycopg

from tests.pg import admin_connect, temporary_database


def _exists(name: str) -> bool:
    with admin_connect() as conn:
        return conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone() is not None


def test_temporary_database_is_created_empty_and_dropped_even_while_connected() -> None:
    with temporary_database() as url:
        name = url.rsplit("/", 1)[1]
        assert name.startswith("tidings_test_")
        assert _exists(name)
        left_open = psycopg.connect(url)
        tables = left_open.execute("SELECT count(*) FROM pg_tables WHERE schemaname = 'public'").fetchone()
        assert tables == (0,)
    assert not _exists(name)
    left_open.close()


def test_postgres_url_fixture_gives_a_usable_database(postgres_url: str) -> None:
    with psycopg.connect(postgres_url) as conn:
        assert conn.execute("SELECT current_database()").fetchone() == (postgres_url.rsplit("/", 1)[1],)
