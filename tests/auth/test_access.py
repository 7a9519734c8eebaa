"""Access beyond the matrix: the table against the proto, a publisher's mixed batch, a
project-scoped principal, revocation on the next call, no existence oracle, the audit line,
open health and reflection, and what ``serve`` accepts with auth on and off."""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import subprocess
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from google.protobuf import field_mask_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from tests.auth.world import BIN, DEADLINE, World, build, cli_token, event, hook, metadata, project
from tests.secrets.spelling import found_in
from tidings.v1 import catalog_pb2, deliveries_pb2, events_pb2, hooks_pb2, templates_pb2, tokens_pb2
from tidings_server.app import ConfigError, check_listen
from tidings_server.domain.access import POLICY
from tidings_server.domain.tokens import hash_secret
from tidings_server.grpc_api.access import Guard, PolicyInterceptor


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    built = build(Path(tmp_path_factory.mktemp("access")))
    yield built
    built.api.channel.close()
    built.server.stop()


def _error(call: object, request: object, secret: str | None) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as err:
        call(request, metadata=metadata(secret), timeout=DEADLINE)  # type: ignore[operator]
    return err.value


def test_the_policy_lists_every_method_of_every_service_in_the_proto() -> None:
    files = (catalog_pb2, deliveries_pb2, events_pb2, hooks_pb2, templates_pb2, tokens_pb2)
    protos = {p.stem for p in (Path(__file__).resolve().parents[2] / "proto" / "tidings" / "v1").glob("*.proto")}
    assert {f.DESCRIPTOR.name.rsplit("/", 1)[-1].removesuffix(".proto") for f in files} == protos
    methods = {
        f"/{service.full_name}/{method.name}"
        for module in files
        for service in module.DESCRIPTOR.services_by_name.values()
        for method in service.methods
    }
    assert len(methods) == 28
    assert methods <= set(POLICY)
    open_ = {m for m, rule in POLICY.items() if rule.permission is None}
    assert open_ == {
        "/grpc.health.v1.Health/Check",
        "/grpc.health.v1.Health/Watch",
        "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo",
    }


def test_a_method_missing_from_the_table_or_registered_around_the_guard_is_refused() -> None:
    async def main() -> tuple[grpc.StatusCode, str, grpc.StatusCode]:
        async def echo(request: bytes, context: object) -> bytes:
            return request

        server = grpc.aio.server(interceptors=[PolicyInterceptor(Guard(None, None))])  # type: ignore[arg-type]
        handlers: dict[str, grpc.RpcMethodHandler[bytes, bytes]] = {"Do": grpc.unary_unary_rpc_method_handler(echo)}
        server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler("tidings.v1.Unlisted", handlers),))
        # A method the table guards, registered around the guard: refused too.
        bypass: dict[str, grpc.RpcMethodHandler[bytes, bytes]] = {"GetHook": grpc.unary_unary_rpc_method_handler(echo)}
        server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler("tidings.v1.HookService", bypass),))
        port = server.add_insecure_port("127.0.0.1:0")
        await server.start()
        try:
            async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
                codes: list[grpc.StatusCode] = []
                details = ""
                for method in (
                    "/tidings.v1.Unlisted/Do",
                    "/tidings.v1.Unlisted/Nothing",
                    "/tidings.v1.HookService/GetHook",
                ):
                    try:
                        await channel.unary_unary(method)(b"x", timeout=DEADLINE)  # type: ignore[arg-type]
                        codes.append(grpc.StatusCode.OK)
                    except grpc.aio.AioRpcError as err:
                        codes.append(err.code())
                        details = details or (err.details() or "")
                assert codes[2] == grpc.StatusCode.PERMISSION_DENIED  # guarded, but not through the guard
                return codes[0], details, codes[1]
        finally:
            await server.stop(0)

    listed, details, unknown = asyncio.run(main())
    assert listed == grpc.StatusCode.PERMISSION_DENIED
    assert "not in the access policy" in details
    assert unknown == grpc.StatusCode.UNIMPLEMENTED


def test_health_and_reflection_need_no_token(world: World) -> None:
    health = health_pb2_grpc.HealthStub(world.api.channel)
    reply = health.Check(health_pb2.HealthCheckRequest(service="tidings.v1.TokenService"), timeout=DEADLINE)
    assert reply.status == health_pb2.HealthCheckResponse.SERVING
    reflection = reflection_pb2_grpc.ServerReflectionStub(world.api.channel)
    replies = list(
        reflection.ServerReflectionInfo(
            iter([reflection_pb2.ServerReflectionRequest(list_services="")]), timeout=DEADLINE
        )
    )
    assert "tidings.v1.TokenService" in {s.name for s in replies[0].list_services_response.service}


def test_a_publisher_event_outside_its_scope_refuses_the_whole_batch(world: World) -> None:
    secret = world.secrets[("publisher", "companies/1")]
    before = world.snapshot()
    request = events_pb2.PublishEventsRequest(events=[event(1), event(1), event(2)])
    err = _error(world.api.events.PublishEvents, request, secret)
    assert err.code() == grpc.StatusCode.PERMISSION_DENIED
    assert "events[2]: companies/2/projects/20 is outside the scope" in (err.details() or "")
    assert world.snapshot() == before
    published = world.api.events.PublishEvents(
        events_pb2.PublishEventsRequest(events=[event(1)]), metadata=metadata(secret), timeout=DEADLINE
    )
    assert published.results[0].deliveries == 1


def test_out_of_scope_reads_the_same_whether_the_resource_exists_or_not(world: World) -> None:
    secret = world.secrets[("admin", "companies/1")]
    exists = _error(world.api.hooks.GetHook, hooks_pb2.GetHookRequest(name=hook(2)), secret)
    missing = _error(world.api.hooks.GetHook, hooks_pb2.GetHookRequest(name=f"{project(2)}/hooks/nope"), secret)
    assert exists.code() == missing.code() == grpc.StatusCode.PERMISSION_DENIED
    assert exists.details() == missing.details()
    nowhere = _error(world.api.hooks.GetHook, hooks_pb2.GetHookRequest(name="companies/999/hooks/x"), secret)
    assert nowhere.code() == grpc.StatusCode.PERMISSION_DENIED


def test_a_project_scoped_principal_is_refused_its_company_wide_lists(world: World) -> None:
    made = world.api.tokens.CreateToken(
        tokens_pb2.CreateTokenRequest(
            token=tokens_pb2.Token(display_name="p10", role=tokens_pb2.ROLE_VIEWER, scope=project(1))
        ),
        metadata=metadata(world.owner),
        timeout=DEADLINE,
    )
    secret = made.secret
    listed = world.api.hooks.ListHooks(
        hooks_pb2.ListHooksRequest(parent=project(1)), metadata=metadata(secret), timeout=DEADLINE
    )
    assert [h.name for h in listed.hooks] == [hook(1)]
    for parent in ("companies/1", "companies/1/projects/-", "companies/1/projects/11"):
        err = _error(world.api.hooks.ListHooks, hooks_pb2.ListHooksRequest(parent=parent), secret)
        assert err.code() == grpc.StatusCode.PERMISSION_DENIED, parent
        err = _error(world.api.deliveries.ListDeliveries, deliveries_pb2.ListDeliveriesRequest(parent=parent), secret)
        assert err.code() == grpc.StatusCode.PERMISSION_DENIED, parent
    err = _error(world.api.hooks.GetHook, hooks_pb2.GetHookRequest(name="companies/1/hooks/h"), secret)
    assert err.code() == grpc.StatusCode.PERMISSION_DENIED


def test_a_revocation_holds_from_the_next_call(world: World) -> None:
    owner = metadata(world.owner)
    made = world.api.tokens.CreateToken(
        tokens_pb2.CreateTokenRequest(token=tokens_pb2.Token(display_name="brief", role=tokens_pb2.ROLE_VIEWER)),
        metadata=owner,
        timeout=DEADLINE,
    )
    assert made.secret.startswith("tdg_")
    assert len(made.secret) >= 4 + 22  # at least 128 bits of base64
    request = hooks_pb2.GetHookRequest(name=hook(1))
    world.api.hooks.GetHook(request, metadata=metadata(made.secret), timeout=DEADLINE)
    shown = world.api.tokens.GetToken(tokens_pb2.GetTokenRequest(name=made.name), metadata=owner, timeout=DEADLINE)
    assert shown.secret == ""
    assert shown.HasField("last_used_time")
    assert not shown.HasField("revoke_time")
    world.api.tokens.RevokeToken(tokens_pb2.RevokeTokenRequest(name=made.name), metadata=owner, timeout=DEADLINE)
    err = _error(world.api.hooks.GetHook, request, made.secret)
    assert err.code() == grpc.StatusCode.UNAUTHENTICATED
    assert made.secret not in (err.details() or "")


def test_a_scoped_owner_manages_no_tokens_and_mints_none_wider(world: World) -> None:
    secret = world.secrets[("owner", "companies/1")]
    request = tokens_pb2.CreateTokenRequest(token=tokens_pb2.Token(display_name="wider", role=tokens_pb2.ROLE_OWNER))
    err = _error(world.api.tokens.CreateToken, request, secret)
    assert err.code() == grpc.StatusCode.PERMISSION_DENIED
    assert "only a token of scope all" in (err.details() or "")


def test_every_change_is_one_audit_line_naming_the_principal_never_a_secret(
    world: World, caplog: pytest.LogCaptureFixture
) -> None:
    admin = world.secrets[("admin", "companies/1")]
    with caplog.at_level(logging.INFO, logger="tidings_server.audit"):
        world.api.hooks.UpdateHook(
            hooks_pb2.UpdateHookRequest(
                hook=hooks_pb2.Hook(name=hook(1), display_name="renamed"),
                update_mask=field_mask_pb2.FieldMask(paths=["display_name"]),
            ),
            metadata=metadata(admin),
            timeout=DEADLINE,
        )
        made = world.api.tokens.CreateToken(
            tokens_pb2.CreateTokenRequest(token=tokens_pb2.Token(display_name="audited", role=tokens_pb2.ROLE_ADMIN)),
            metadata=metadata(world.owner),
            timeout=DEADLINE,
        )
        world.api.hooks.GetHook(hooks_pb2.GetHookRequest(name=hook(1)), metadata=metadata(admin), timeout=DEADLINE)
    lines = [r for r in caplog.records if r.name == "tidings_server.audit"]
    assert [(r.method, r.resource, r.outcome) for r in lines] == [  # type: ignore[attr-defined]
        ("UpdateHook", hook(1), "ok"),
        ("CreateToken", made.name, "ok"),
    ]
    assert lines[0].principal_name == "admin companies/1"  # type: ignore[attr-defined]
    assert lines[0].principal.startswith("tokens/")  # type: ignore[attr-defined]
    everything = " ".join(str(vars(r)) for r in caplog.records)
    for secret in (made.secret, admin, world.owner, "receiver-secret"):
        assert secret not in everything


def test_the_server_tokens_command_lists_and_revokes(tmp_path: Path) -> None:
    store = f"sqlite:///{tmp_path / 'cli.sqlite3'}"
    secret = cli_token(store, "publisher", "ingest", "companies/3")
    assert secret.startswith("tdg_")

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(BIN), "tokens", *args, "--store", store], capture_output=True, text=True, timeout=60, check=False
        )

    listed = run("list")
    assert listed.returncode == 0
    name = listed.stdout.split()[0]
    assert name.startswith("tokens/")
    assert "publisher" in listed.stdout
    assert "companies/3" in listed.stdout
    assert secret not in listed.stdout
    assert run("revoke", name).returncode == 0
    assert "revoked" in run("list").stdout
    bad = subprocess.run(
        [str(BIN), "tokens", "create", "--store", store, "--role", "admin", "--name", "x", "--scope", "companies/0"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert bad.returncode == 2
    assert "--scope: 'companies/0' is not a valid scope" in bad.stderr


def test_with_auth_any_address_may_be_served_and_without_only_loopback() -> None:
    assert check_listen("0.0.0.0:50051", tls=True) is False
    assert check_listen("[::]:50051", allow_plaintext=True) is False
    assert check_listen(":50051", tls=True) is False
    assert check_listen("127.0.0.1:50051", auth=False) is True
    for listen in ("0.0.0.0:50051", ":50051"):
        with pytest.raises(ConfigError, match="--no-auth serves the control plane on loopback only"):
            check_listen(listen, auth=False, tls=True)


def test_token_secrets_are_kept_only_as_their_hash(world: World) -> None:
    """Read as a local user would, the database and its WAL hold no token secret, in any
    spelling; what they hold is its SHA-256, by which the token is found."""
    every = [world.owner, world.revoked, *world.secrets.values()]
    files = [p for p in (world.db, world.db.with_name(world.db.name + "-wal")) if p.exists()]
    assert found_in(files, every) == []
    with sqlite3.connect(f"file:{world.db}?mode=ro", uri=True) as conn:
        hashes = {row[0] for row in conn.execute("SELECT secret_hash FROM tokens")}
    assert {hash_secret(secret) for secret in every} <= hashes
