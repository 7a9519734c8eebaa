"""A server with auth on and a small world in it: two companies, a hook and a delivery in one
project of each, and a token for every role at scope ``all`` and at ``companies/1``.

The hooks are paused, so nothing is ever attempted and the database changes only when a call
changes it: ``snapshot`` reads every table of the SQLite file (but a token's last use and the
node heartbeat, which every call and every second move) to prove a refused call changed nothing.
"""

from __future__ import annotations

import os
import sqlite3
import subprocess
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
from google.protobuf import field_mask_pb2

from tests.harness import SECRETS_ENV, Api, ServerThread, secrets_key
from tidings.v1 import deliveries_pb2, events_pb2, hooks_pb2, tokens_pb2
from tidings_server.app import Config

BIN = Path(__file__).resolve().parents[2] / ".venv" / "bin" / "tidings-server"
DEADLINE = 10.0  # every call has one: a refused or stuck call never hangs the suite
ROLES = ("owner", "admin", "viewer", "publisher")


def project(company: int) -> str:
    return f"companies/{company}/projects/{company * 10}"


def hook(company: int) -> str:
    return f"{project(company)}/hooks/h"


def cli_token(store: str, role: str, name: str, scope: str = "all") -> str:
    """A token made with ``tidings-server tokens create`` on the store (the server stopped)."""
    made = subprocess.run(
        [str(BIN), "tokens", "create", "--store", store, "--role", role, "--name", name, "--scope", scope],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
        env={**os.environ, **SECRETS_ENV},
    )
    return made.stdout.strip()


def metadata(secret: str | None) -> tuple[tuple[str, str], ...]:
    """The call's credential: none, a bearer token, or (``Basic …``) a header of another scheme."""
    if secret is None:
        return ()
    return (("authorization", secret if secret.startswith("Basic ") else f"Bearer {secret}"),)


def code_of(call: Callable[..., Any], request: Any, secret: str | None) -> grpc.StatusCode:
    try:
        call(request, metadata=metadata(secret), timeout=DEADLINE)
    except grpc.RpcError as err:
        return err.code()
    return grpc.StatusCode.OK


def watch_code(api: Api, parent: str, secret: str | None) -> grpc.StatusCode:
    """A watch that is let through sends its headers and then waits for news: cancelled here."""
    request = deliveries_pb2.WatchDeliveriesRequest(parent=parent)
    call = api.deliveries.WatchDeliveries(request, metadata=metadata(secret), timeout=DEADLINE)
    call.initial_metadata()  # returns once the headers came, or the call ended without any
    if call.is_active():
        call.cancel()
        return grpc.StatusCode.CANCELLED
    return call.code()


@dataclass
class World:
    server: ServerThread
    api: Api
    db: Path
    owner: str
    secrets: dict[tuple[str, str], str] = field(default_factory=dict)  # (role, scope) → secret
    revoked: str = ""
    delivery: dict[int, str] = field(default_factory=dict)  # company → a delivery's name

    def snapshot(self) -> dict[str, list[tuple[Any, ...]]]:
        with sqlite3.connect(f"file:{self.db}?mode=ro", uri=True) as conn:
            tables = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
            found: dict[str, list[tuple[Any, ...]]] = {}
            for table in tables:
                if table == "nodes":
                    continue
                columns = [r[1] for r in conn.execute(f"PRAGMA table_info({table})")]
                kept = ", ".join(c for c in columns if c != "last_used_time")
                found[table] = sorted(conn.execute(f"SELECT {kept} FROM {table}").fetchall(), key=repr)
        return found


def build(tmp: Path) -> World:
    db = tmp / "tidings.sqlite3"
    store = f"sqlite:///{db}"
    owner = cli_token(store, "owner", "first owner")
    config = Config(
        listen="127.0.0.1:0",
        store_url=store,
        allow_http=True,
        allow_private_destinations=True,
        secrets_key=secrets_key(),
    )
    server = ServerThread(config, auth=True).start()
    api = Api.connect(server.port)
    world = World(server, api, db, owner)
    md = metadata(owner)
    for company in (1, 2):
        api.hooks.CreateHook(
            hooks_pb2.CreateHookRequest(
                parent=project(company),
                hook_id="h",
                hook=hooks_pb2.Hook(
                    display_name="sync",
                    destination_url="http://127.0.0.1:9/hooks",
                    payload_format="procore.v4",
                    authorization_header="Bearer receiver-secret-1234567890",
                ),
            ),
            metadata=md,
            timeout=DEADLINE,
        )
        api.hooks.UpdateHook(
            hooks_pb2.UpdateHookRequest(
                hook=hooks_pb2.Hook(name=hook(company), status=hooks_pb2.HOOK_STATUS_PAUSED),
                update_mask=field_mask_pb2.FieldMask(paths=["status"]),
            ),
            metadata=md,
            timeout=DEADLINE,
        )
        api.hooks.BatchCreateTriggers(
            hooks_pb2.BatchCreateTriggersRequest(
                parent=hook(company), triggers=[hooks_pb2.Trigger(resource_name="RFIs", event_type="create")]
            ),
            metadata=md,
            timeout=DEADLINE,
        )
        published = api.events.PublishEvents(
            events_pb2.PublishEventsRequest(events=[event(company)]), metadata=md, timeout=DEADLINE
        )
        world.delivery[company] = f"{hook(company)}/deliveries/{published.results[0].event_id}"
    for role in ROLES:
        for scope in ("all", "companies/1"):
            made = api.tokens.CreateToken(
                tokens_pb2.CreateTokenRequest(
                    token=tokens_pb2.Token(display_name=f"{role} {scope}", role=role_value(role), scope=scope)
                ),
                metadata=md,
                timeout=DEADLINE,
            )
            world.secrets[(role, scope)] = made.secret
    gone = api.tokens.CreateToken(
        tokens_pb2.CreateTokenRequest(token=tokens_pb2.Token(display_name="gone", role=tokens_pb2.ROLE_OWNER)),
        metadata=md,
        timeout=DEADLINE,
    )
    api.tokens.RevokeToken(tokens_pb2.RevokeTokenRequest(name=gone.name), metadata=md, timeout=DEADLINE)
    world.revoked = gone.secret
    return world


def role_value(role: str) -> tokens_pb2.Role.ValueType:
    return tokens_pb2.Role.Value(f"ROLE_{role.upper()}")


def event(company: int, resource: str = "RFIs") -> events_pb2.Event:
    return events_pb2.Event(
        company_id=company,
        project_id=company * 10,
        resource_name=resource,
        resource_id=54321,
        event_type="create",
        user_id=5447,
    )
