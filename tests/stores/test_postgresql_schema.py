"""The PostgreSQL store's schema: registration, migrations, and databases it must refuse untouched."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time
from datetime import timedelta

import psycopg
import pytest

from tidings_postgresql.backend import PostgresBackend, parse_url
from tidings_postgresql.migrate import SchemaTooNewError, latest_version, migrate, schema_version
from tidings_server.domain.model import DeliveryStatus, Hook
from tidings_server.plugins.manager import Plugins
from tidings_server.testing.stores.samples import T0, event_id, make_event, make_hook, make_trigger


def _tables(url: str) -> list[str]:
    with psycopg.connect(url) as conn:
        found = conn.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY 1").fetchall()
    return [name for (name,) in found]


def test_the_backend_registers_through_the_entry_point_for_both_schemes() -> None:
    plugins = Plugins.load()
    for url in ("postgresql://h/db", "postgres://h/db"):
        backend = plugins.storage_backend_for(url)
        assert isinstance(backend, PostgresBackend)
        assert backend.scheme == url.split(":")[0]


def test_store_urls_name_a_database_and_a_pool_size() -> None:
    settings = parse_url("postgres://tidings:pw@db.internal:6543/tidings?pool_size=3&sslmode=prefer")
    assert settings.pool_size == 3
    assert settings.conninfo.startswith("postgresql://tidings:pw@db.internal:6543/tidings?")
    assert "sslmode=prefer" in settings.conninfo
    assert "pool_size" not in settings.conninfo
    assert settings.where == "postgres://tidings:•••@db.internal:6543/tidings?pool_size=3&sslmode=prefer"
    assert parse_url("postgresql://h/db").pool_size == 8
    for url, why in [
        ("postgresql://h/db?pool_size=0", "pool_size must be a whole number from 1 to 1000, not '0'"),
        ("postgresql://h/db?pool_size=eight", "pool_size must be"),
        ("postgresql://u:secret@h/", "no database is named"),
        ("mysql://h/db", "the scheme is not"),
    ]:
        with pytest.raises(ValueError, match=why) as caught:
            parse_url(url)
        assert "secret" not in str(caught.value)


_MIGRATE_ONE = textwrap.dedent(
    """
    import sys, time
    import psycopg
    from tidings_postgresql.migrate import migrate

    url, start = sys.argv[1], float(sys.argv[2])
    with psycopg.connect(url) as conn:
        while time.time() < start:  # every process connected: now all at once
            time.sleep(0.001)
        done = migrate(conn)
    print(done.found, done.version)
    """
)


def test_five_processes_migrating_one_empty_database_at_once_migrate_it_once(postgres_url: str) -> None:
    start = time.time() + 2.0
    processes = [
        subprocess.Popen(
            [sys.executable, "-c", _MIGRATE_ONE, postgres_url, str(start)], stdout=subprocess.PIPE, text=True
        )
        for _ in range(5)
    ]
    outputs = [p.communicate(timeout=60)[0].split() for p in processes]
    assert [p.returncode for p in processes] == [0] * 5
    latest = latest_version()
    # One process found the database empty and migrated it; the other four found it done.
    assert sorted(outputs) == [["0", str(latest)]] + [[str(latest), str(latest)]] * 4
    with psycopg.connect(postgres_url) as conn:
        assert schema_version(conn) == latest
        assert conn.execute("SELECT count(*) FROM tidings_schema").fetchone() == (1,)


def _old_rows(conn: psycopg.Connection[tuple[object, ...]], hook: Hook, events: int = 1) -> None:
    """Rows as a server of schema 1 wrote them: a hook with a trigger, events, a delivery each."""
    conn.execute(
        "INSERT INTO hooks (name, parent, company_id, project_id, display_name, destination_url,"
        " authorization_header, payload_format, status, create_time, update_time, timeout_us,"
        " retry_window_us, initial_backoff_us, max_backoff_us, retryable_statuses, ordering,"
        " max_concurrency, signing_disabled, signing_secret, previous_signing_secret)"
        " VALUES (%s, 'companies/1/projects/2', 1, 2, 'Old', 'https://r.example.com/', 'Bearer x',"
        " 'procore.v4', 'active', %s, %s, 5000000, 43200000000, 1000000, 3600000000, '{500}',"
        " 'unordered', 4, false, 'whsec_x', '')",
        (hook.name, T0, T0),
    )
    conn.execute(
        "INSERT INTO triggers VALUES (%s, %s, 1, 2, 'Projects', 'create', %s)",
        (hook.name, make_trigger(hook.name).name, T0),
    )
    conn.execute(
        "CREATE TABLE events_20240517 PARTITION OF events FOR VALUES FROM ('2024-05-17+00') TO ('2024-05-18+00')"
    )
    conn.execute(
        "CREATE TABLE deliveries_20240517 PARTITION OF deliveries"
        " FOR VALUES FROM ('2024-05-17+00') TO ('2024-05-18+00')"
    )
    for n in range(1, events + 1):
        conn.execute(
            "INSERT INTO events (serial, id, publish_time, timestamp, company_id, project_id, user_id,"
            " resource_name, resource_id, event_type, related_resources, idempotency_key)"
            " VALUES (nextval('event_serials'), %s, %s, %s, 1, 2, 7, 'Projects', 100, 'create', '[]', '')",
            (event_id(n), T0, T0),
        )
        conn.execute(
            "INSERT INTO deliveries (name, hook_name, event_id, event_serial, resource_name, resource_id, status,"
            " attempt_count, create_time, update_time, next_attempt_time, last_error, company_id, project_id,"
            " event_type) VALUES (%s, %s, %s, %s, 'Projects', 100, 'queued', 0, %s, %s, %s, '', 1, 2, 'create')",
            (f"{hook.name}/deliveries/{event_id(n)}", hook.name, event_id(n), n, T0, T0, T0),
        )


async def test_a_database_made_by_an_older_schema_is_upgraded_and_keeps_its_data(postgres_url: str) -> None:
    with psycopg.connect(postgres_url) as conn:
        assert migrate(conn, target=1).version == 1
        hook = make_hook("companies/1/projects/2/hooks/old")
        _old_rows(conn, hook)
        conn.commit()
    async with PostgresBackend().open(postgres_url) as store:
        stored = await store.get_hook(hook.name)
        assert (stored.display_name, stored.max_concurrency) == ("Old", 4)
        assert stored.retry_policy.retryable_statuses == frozenset({500})
        [claim] = await store.claim_due(T0, limit=10, lease_until=T0, owner="node-a")
        assert claim.delivery.name == f"{hook.name}/deliveries/{event_id(1)}"
        assert claim.event.serial == 1
        [published] = await store.publish_events([make_event(2)], T0)
        assert (published.serial, published.deliveries) == (2, 1)
        assert (await store.get_delivery(f"{hook.name}/deliveries/{event_id(2)}")).status is DeliveryStatus.QUEUED
    with psycopg.connect(postgres_url) as conn:
        assert schema_version(conn) == latest_version()


async def test_leases_held_under_schema_10_still_hold_and_count_their_claims(postgres_url: str) -> None:
    hook = make_hook("companies/1/projects/2/hooks/old")
    with psycopg.connect(postgres_url) as conn:
        assert migrate(conn, target=10).version == 10
        _old_rows(conn, hook, events=3)
        # Under schema 10 the lease was the delivery's own: 1 leased by node-a until T0 + 30 s
        # after an attempt was cut off, 2 released after one (its node was removed), 3 never claimed.
        for n, until, owner, claims in ((1, T0 + timedelta(seconds=30), "node-a", 2), (2, None, None, 1)):
            conn.execute(
                "UPDATE deliveries SET lease_until = %s, lease_owner = %s, claims_since_attempt = %s WHERE name = %s",
                (until, owner, claims, f"{hook.name}/deliveries/{event_id(n)}"),
            )
        conn.commit()
    async with PostgresBackend().open(postgres_url) as store:
        free = await store.claim_due(T0, limit=10, lease_until=T0 + timedelta(seconds=60), owner="node-b")
        assert [(c.event.serial, c.interrupted) for c in free] == [(2, 1), (3, 0)]
        later = T0 + timedelta(seconds=31)
        [taken_over] = await store.claim_due(later, limit=10, lease_until=later, owner="node-b")
        assert (taken_over.event.serial, taken_over.interrupted) == (1, 2)
    with psycopg.connect(postgres_url) as conn:
        columns = conn.execute(
            "SELECT column_name FROM information_schema.columns WHERE table_name = 'deliveries'"
        ).fetchall()
        assert not [c for (c,) in columns if "lease" in c or "claims" in c]


async def test_a_database_newer_than_the_code_is_refused_untouched(postgres_url: str) -> None:
    with psycopg.connect(postgres_url) as conn:
        migrate(conn)
        conn.execute("UPDATE tidings_schema SET version = 99")
        conn.commit()
    before = _tables(postgres_url)
    with pytest.raises(SchemaTooNewError, match="schema version 99, but this tidings-server knows versions up to"):
        async with PostgresBackend().open(postgres_url):
            pass
    assert _tables(postgres_url) == before
    with psycopg.connect(postgres_url) as conn:
        assert schema_version(conn) == 99


async def test_a_database_holding_another_applications_tables_is_refused_untouched(postgres_url: str) -> None:
    with psycopg.connect(postgres_url) as conn:
        conn.execute("CREATE TABLE invoices (id integer PRIMARY KEY)")
        conn.commit()
    with pytest.raises(ValueError, match=r"holds 1 table\(s\) of another application \(such as 'invoices'\)"):
        async with PostgresBackend().open(postgres_url):
            pass
    assert _tables(postgres_url) == ["invoices"]
