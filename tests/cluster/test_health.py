"""gRPC health follows the store: NOT_SERVING while PostgreSQL cannot be reached, SERVING again
once it can, on a real server over a real channel.

The machine's PostgreSQL is shared, so the outage is made on this test's database alone: it
stops accepting connections (``ALLOW_CONNECTIONS false``) and its sessions are ended, which is
what a database that went away looks like to the server; then it accepts them again.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from psycopg import sql

from tests.harness import ServerThread, secrets_key
from tests.pg import admin_connect
from tidings_server.app import Config
from tidings_server.store_health import HealthSettings

SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING
SERVICES = ("", "tidings.v1.HookService", "tidings.v1.DeliveryService")


@contextmanager
def database_away(url: str) -> Iterator[None]:
    name = url.rsplit("/", 1)[1].split("?", 1)[0]
    database = sql.Identifier(name)
    with admin_connect() as conn:
        conn.execute(sql.SQL("ALTER DATABASE {} WITH ALLOW_CONNECTIONS false").format(database))
        conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()",
            (name,),
        )
    try:
        yield
    finally:
        with admin_connect() as conn:
            conn.execute(sql.SQL("ALTER DATABASE {} WITH ALLOW_CONNECTIONS true").format(database))


def wait_for(stub: health_pb2_grpc.HealthStub, wanted: int, within: float = 60.0) -> dict[str, int]:
    """Poll every service's health until all read ``wanted``; the statuses seen last."""
    deadline = time.monotonic() + within
    while True:
        seen = {name: stub.Check(health_pb2.HealthCheckRequest(service=name), timeout=10).status for name in SERVICES}
        if set(seen.values()) == {wanted} or time.monotonic() > deadline:
            return seen
        time.sleep(0.1)


def test_health_is_not_serving_while_the_store_is_away_and_serving_once_it_is_back(postgres_url: str) -> None:
    config = Config(
        listen="127.0.0.1:0",
        store_url=postgres_url,
        secrets_key=secrets_key(),
        store_health=HealthSettings(every=0.2, timeout=3.0),
    )
    server = ServerThread(config).start()
    try:
        with grpc.insecure_channel(f"127.0.0.1:{server.port}") as channel:
            stub = health_pb2_grpc.HealthStub(channel)
            assert wait_for(stub, SERVING) == dict.fromkeys(SERVICES, SERVING)
            with database_away(postgres_url):
                assert wait_for(stub, NOT_SERVING) == dict.fromkeys(SERVICES, NOT_SERVING)
            assert wait_for(stub, SERVING) == dict.fromkeys(SERVICES, SERVING)
    finally:
        server.stop()
