"""Secrets at rest, read as a local user would: the raw SQLite file and its WAL hold no secret."""

from __future__ import annotations

import dataclasses
import secrets as random
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from google.protobuf import duration_pb2, field_mask_pb2

from tests.harness import Api, ServerThread
from tests.http_sink import Sink, running_sink
from tests.secrets.spelling import found_in
from tidings.v1 import events_pb2, hooks_pb2
from tidings_server.app import Config

PROJECT = "companies/8/projects/6778"


@pytest.fixture
def sink() -> Iterator[Sink]:
    with running_sink() as s:
        yield s


def _files(db: Path) -> list[Path]:
    return [db, db.with_name(db.name + "-wal")]


def _deliver(api: Api, sink: Sink, resource_id: int) -> str | None:
    reply = api.events.PublishEvents(
        events_pb2.PublishEventsRequest(
            events=[
                events_pb2.Event(
                    company_id=8, project_id=6778, resource_name="RFIs", resource_id=resource_id,
                    event_type="update", user_id=5447,
                )
            ]
        )
    )  # fmt: skip
    event_id = reply.results[0].event_id
    assert not sink.wait_for({event_id}, timeout=10)
    with sink.arrived:
        [request] = [r for r in sink.requests if r.header("Tidings-Delivery-Id") == event_id]
    return request.header("Authorization")


def _set_every_secret(config: Config, sink: Sink) -> tuple[list[str], list[str], list[str]]:
    """Create a hook, deliver, change its Authorization header, rotate its signing secret twice
    (the first rotated out entirely, the second kept as previous), deliver again; return every
    secret set, and which of them the database and its WAL held while the server ran (its
    checkpointer may have copied some pages into the file by then) and after it stopped."""
    db = Path(config.store_url.removeprefix("sqlite:///"))
    server = ServerThread(config).start()
    api = Api.connect(server.port)
    ever: list[str] = []
    try:
        first_auth = f"Bearer {random.token_urlsafe(24)}"
        hook = api.hooks.CreateHook(
            hooks_pb2.CreateHookRequest(
                parent=PROJECT,
                hook=hooks_pb2.Hook(
                    destination_url=sink.url(), payload_format="procore.v4", authorization_header=first_auth
                ),
            )
        )
        ever += [first_auth, hook.signing_secret]
        api.hooks.BatchCreateTriggers(
            hooks_pb2.BatchCreateTriggersRequest(
                parent=hook.name, triggers=[hooks_pb2.Trigger(resource_name="RFIs", event_type="update")]
            )
        )
        assert _deliver(api, sink, 1) == first_auth
        second_auth = f"Token token={random.token_hex(20)}"
        api.hooks.UpdateHook(
            hooks_pb2.UpdateHookRequest(
                hook=hooks_pb2.Hook(name=hook.name, authorization_header=second_auth),
                update_mask=field_mask_pb2.FieldMask(paths=["authorization_header"]),
            )
        )
        ever.append(second_auth)
        for overlap in (0, 3600):
            rotated = api.hooks.RotateSigningSecret(
                hooks_pb2.RotateSigningSecretRequest(name=hook.name, overlap=duration_pb2.Duration(seconds=overlap))
            )
            ever.append(rotated.signing_secret)
        assert _deliver(api, sink, 2) == second_auth  # the store gives the engine plaintext
        assert len(set(ever)) == 5
        wal = db.with_name(db.name + "-wal")
        assert wal.stat().st_size > 0, "the WAL was checkpointed away before it could be read"
        running = found_in(_files(db), ever)
    finally:
        api.channel.close()
        server.stop()
    return ever, running, found_in([p for p in _files(db) if p.exists()], ever)


def test_no_secret_ever_set_is_in_the_database_or_its_wal(server_config: Config, sink: Sink) -> None:
    """Created, updated and rotated out: none of them, in any spelling (the signing keys' bytes
    raw, hex and base64 too), byte by byte in the main file and the WAL."""
    _, running, stopped = _set_every_secret(server_config, sink)
    assert running == []
    assert stopped == []


def test_the_scan_finds_what_plaintext_mode_leaves_in_the_files(server_config: Config, sink: Sink) -> None:
    """The same scan over a store kept without a key (``--plaintext-secrets``) finds every
    secret: it would see one sealing let through."""
    plain = dataclasses.replace(server_config, secrets_key=None, plaintext_secrets=True)
    ever, running, _ = _set_every_secret(plain, sink)
    assert {entry.split(" in ")[0] for entry in running} == {f"secret #{i}" for i in range(len(ever))}


def test_a_secret_altered_in_the_database_is_data_loss_naming_the_hook(server_config: Config) -> None:
    """A sealed value copied from another hook's row does not open under this hook's name: the
    API says so (DATA_LOSS) instead of sending one hook's credential to another's endpoint."""
    db = Path(server_config.store_url.removeprefix("sqlite:///"))
    server = ServerThread(server_config).start()
    api = Api.connect(server.port)
    try:
        names = [
            api.hooks.CreateHook(
                hooks_pb2.CreateHookRequest(
                    parent=PROJECT,
                    hook_id=hook_id,
                    hook=hooks_pb2.Hook(
                        destination_url="http://127.0.0.1:9/in",
                        payload_format="procore.v4",
                        authorization_header=f"Bearer {random.token_hex(16)}",
                    ),
                )
            ).name
            for hook_id in ("victim", "other")
        ]
        with sqlite3.connect(db, isolation_level=None) as conn:
            conn.execute(
                "UPDATE hooks SET authorization_header = (SELECT authorization_header FROM hooks WHERE name = ?)"
                " WHERE name = ?",
                (names[1], names[0]),
            )
        with pytest.raises(grpc.RpcError) as caught:
            api.hooks.GetHook(hooks_pb2.GetHookRequest(name=names[0]))
        assert caught.value.code() == grpc.StatusCode.DATA_LOSS
        assert caught.value.details() == (
            f"hook {names[0]}, authorization_header: the sealed value does not open (altered, or moved here)"
        )
        assert api.hooks.GetHook(hooks_pb2.GetHookRequest(name=names[1])).name == names[1]
    finally:
        api.channel.close()
        server.stop()
