"""Standard Webhooks signing end to end: real server, real receiver, verified by the PyPI
``standardwebhooks`` library (which nobody here wrote), at creation, during a rotation's overlap
and after it.

The exact end of an overlap is a matter of time and is tested in virtual time
(tests/delivery/test_signing_engine.py); here an overlap of 0 shows a replaced secret failing.
Refused rotations are rows of tests/api/test_bad_inputs.py.
"""

from __future__ import annotations

import base64
import json
import sqlite3
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import grpc
import pytest
from google.protobuf import duration_pb2, field_mask_pb2
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from tests.harness import Api, ServerThread, restarted
from tests.http_sink import Request, Sink, running_sink
from tidings.v1 import events_pb2, hooks_pb2
from tidings_server.app import Config
from tidings_server.stores.sqlite.migrate import migrate, migrations

PROJECT = "companies/8/projects/6778"


@pytest.fixture
def sink() -> Iterator[Sink]:
    with running_sink() as s:
        yield s


def make_hook(api: Api, url: str, **fields: object) -> hooks_pb2.Hook:
    hook = api.hooks.CreateHook(
        hooks_pb2.CreateHookRequest(
            parent=PROJECT,
            hook=hooks_pb2.Hook(destination_url=url, payload_format="procore.v4", **fields),  # type: ignore[arg-type]
        )
    )
    api.hooks.BatchCreateTriggers(
        hooks_pb2.BatchCreateTriggersRequest(
            parent=hook.name, triggers=[hooks_pb2.Trigger(resource_name="RFIs", event_type="update")]
        )
    )
    return hook


def deliver_one(api: Api, sink: Sink, resource_id: int) -> tuple[str, Request]:
    """Publish one RFI update and return its event id and the request that carried it."""
    reply = api.events.PublishEvents(
        events_pb2.PublishEventsRequest(
            events=[
                events_pb2.Event(
                    company_id=8,
                    project_id=6778,
                    resource_name="RFIs",
                    resource_id=resource_id,
                    event_type="update",
                    user_id=5447,
                )
            ]
        )
    )
    event_id = reply.results[0].event_id
    assert not sink.wait_for({event_id}, timeout=10)
    with sink.arrived:
        [request] = [r for r in sink.requests if r.header("Tidings-Delivery-Id") == event_id]
    return event_id, request


def verify(secret: str, request: Request) -> object:
    return Webhook(secret).verify(request.body, dict(request.headers))


def test_created_hook_signs_every_delivery(api: Api, sink: Sink) -> None:
    hook = make_hook(api, sink.url())
    assert hook.signing_secret.startswith("whsec_")
    assert len(base64.b64decode(hook.signing_secret.removeprefix("whsec_"), validate=True)) == 32
    assert not hook.signing_disabled
    assert not hook.HasField("previous_secret_expire_time")
    event_id, request = deliver_one(api, sink, 54321)
    payload = verify(hook.signing_secret, request)
    assert payload == json.loads(request.body)
    assert request.header("webhook-id") == event_id
    stamp = int(request.header("webhook-timestamp") or "0")
    assert abs(stamp - datetime.now(UTC).timestamp()) < 30
    assert (request.header("webhook-signature") or "").count("v1,") == 1


def test_secret_is_shown_only_at_creation_and_rotation(api: Api) -> None:
    hook = make_hook(api, "https://hooks.example.com/in")
    fetched = api.hooks.GetHook(hooks_pb2.GetHookRequest(name=hook.name))
    listed = api.hooks.ListHooks(hooks_pb2.ListHooksRequest(parent=PROJECT)).hooks
    updated = api.hooks.UpdateHook(
        hooks_pb2.UpdateHookRequest(
            hook=hooks_pb2.Hook(name=hook.name, display_name="renamed"),
            update_mask=field_mask_pb2.FieldMask(paths=["display_name"]),
        )
    )
    for seen in (fetched, *listed, updated):
        assert seen.signing_secret == ""
        assert hook.signing_secret not in str(seen)
    rotated = api.hooks.RotateSigningSecret(hooks_pb2.RotateSigningSecretRequest(name=hook.name))
    assert rotated.signing_secret.startswith("whsec_")
    assert rotated.signing_secret != hook.signing_secret
    assert api.hooks.GetHook(hooks_pb2.GetHookRequest(name=hook.name)).signing_secret == ""


def test_rotation_overlap_signs_with_both_secrets(api: Api, sink: Sink) -> None:
    hook = make_hook(api, sink.url())
    before = datetime.now(UTC)
    rotated = api.hooks.RotateSigningSecret(hooks_pb2.RotateSigningSecretRequest(name=hook.name))
    expire = rotated.previous_secret_expire_time.ToDatetime(tzinfo=UTC)
    assert before + timedelta(hours=24) <= expire <= datetime.now(UTC) + timedelta(hours=24)
    fetched = api.hooks.GetHook(hooks_pb2.GetHookRequest(name=hook.name))
    assert fetched.previous_secret_expire_time == rotated.previous_secret_expire_time
    _, request = deliver_one(api, sink, 1)
    signatures = (request.header("webhook-signature") or "").split(" ")
    assert len(signatures) == 2
    assert all(s.startswith("v1,") for s in signatures)
    verify(rotated.signing_secret, request)  # receivers already switched
    verify(hook.signing_secret, request)  # receivers not yet switched
    with pytest.raises(WebhookVerificationError):
        verify("whsec_" + base64.b64encode(b"x" * 32).decode(), request)


def test_overlap_of_zero_retires_the_old_secret_at_once(api: Api, sink: Sink) -> None:
    hook = make_hook(api, sink.url())
    rotated = api.hooks.RotateSigningSecret(
        hooks_pb2.RotateSigningSecretRequest(name=hook.name, overlap=duration_pb2.Duration(seconds=0))
    )
    assert not rotated.HasField("previous_secret_expire_time")
    _, request = deliver_one(api, sink, 2)
    verify(rotated.signing_secret, request)
    with pytest.raises(WebhookVerificationError, match="No matching signature"):
        verify(hook.signing_secret, request)


def test_signing_can_be_disabled_at_creation_and_enabled_later(api: Api, sink: Sink) -> None:
    hook = make_hook(api, sink.url(), signing_disabled=True)
    assert hook.signing_disabled
    assert hook.signing_secret.startswith("whsec_")  # ready for when signing is turned on
    _, unsigned = deliver_one(api, sink, 3)
    assert [k for k, _ in unsigned.headers if k.lower().startswith("webhook-")] == []
    enabled = api.hooks.UpdateHook(
        hooks_pb2.UpdateHookRequest(
            hook=hooks_pb2.Hook(name=hook.name, signing_disabled=False),
            update_mask=field_mask_pb2.FieldMask(paths=["signing_disabled"]),
        )
    )
    assert not enabled.signing_disabled
    _, signed = deliver_one(api, sink, 4)
    verify(hook.signing_secret, signed)
    disabled = api.hooks.UpdateHook(
        hooks_pb2.UpdateHookRequest(
            hook=hooks_pb2.Hook(name=hook.name, signing_disabled=True),
            update_mask=field_mask_pb2.FieldMask(paths=["signing_disabled"]),
        )
    )
    assert disabled.signing_disabled
    _, again = deliver_one(api, sink, 5)
    assert again.header("webhook-signature") is None


def test_secrets_and_overlap_survive_a_restart(server: ServerThread, sink: Sink) -> None:
    api = Api.connect(server.port)
    hook = make_hook(api, sink.url())
    rotated = api.hooks.RotateSigningSecret(
        hooks_pb2.RotateSigningSecretRequest(name=hook.name, overlap=duration_pb2.Duration(seconds=3600))
    )
    api.channel.close()
    second = restarted(server)
    try:
        api = Api.connect(second.port)
        fetched = api.hooks.GetHook(hooks_pb2.GetHookRequest(name=hook.name))
        assert fetched.previous_secret_expire_time == rotated.previous_secret_expire_time
        _, request = deliver_one(api, sink, 6)
        verify(rotated.signing_secret, request)
        verify(hook.signing_secret, request)
        api.channel.close()
    finally:
        second.stop()


def test_hooks_from_before_signing_stay_unsigned_until_given_a_secret(server_config: Config, sink: Sink) -> None:
    """A database written before signing existed: its hooks have no secret, so they are shown as
    signing_disabled and delivered as before, unsigned, and cannot be switched to signing without
    a secret; a rotation gives them one and signing starts with it."""
    path = server_config.store_url.removeprefix("sqlite:///")
    [step] = [m for m in migrations() if m.name.endswith("_signing.sql")]
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        migrate(conn, target=step.version - 1)
        conn.execute(
            "INSERT INTO hooks (name, parent, company_id, project_id, display_name, destination_url,"
            " authorization_header, payload_format, status, create_time, update_time)"
            " VALUES (?, ?, 8, 6778, 'old', ?, '', 'procore.v4', 'active', 0, 0)",
            (f"{PROJECT}/hooks/old", PROJECT, sink.url()),
        )
    finally:
        conn.close()
    server = ServerThread(server_config).start()
    api = Api.connect(server.port)
    try:
        name = f"{PROJECT}/hooks/old"
        assert api.hooks.GetHook(hooks_pb2.GetHookRequest(name=name)).signing_disabled
        api.hooks.BatchCreateTriggers(
            hooks_pb2.BatchCreateTriggersRequest(
                parent=name, triggers=[hooks_pb2.Trigger(resource_name="RFIs", event_type="update")]
            )
        )
        _, unsigned = deliver_one(api, sink, 7)
        assert unsigned.header("webhook-signature") is None
        enable = hooks_pb2.UpdateHookRequest(
            hook=hooks_pb2.Hook(name=name, signing_disabled=False),
            update_mask=field_mask_pb2.FieldMask(paths=["signing_disabled"]),
        )
        with pytest.raises(grpc.RpcError) as err:
            api.hooks.UpdateHook(enable)
        assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION
        assert "has no signing secret yet; call RotateSigningSecret first" in (err.value.details() or "")
        rotated = api.hooks.RotateSigningSecret(hooks_pb2.RotateSigningSecretRequest(name=name))
        assert not rotated.HasField("previous_secret_expire_time")  # there was nothing to overlap with
        assert not rotated.signing_disabled
        _, signed = deliver_one(api, sink, 8)
        assert signatures_of(signed) == 1
        verify(rotated.signing_secret, signed)
    finally:
        api.channel.close()
        server.stop()


def signatures_of(request: Request) -> int:
    return len((request.header("webhook-signature") or "").split(" "))
