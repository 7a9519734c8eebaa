"""A principal bound to a client certificate, on a real ``serve`` process behind mutual TLS: made
with ``tidings-server tokens create --client-cert-name``, authorized by its role and scope like a
token, audited by its name, revoked with ``tokens revoke``, and never reachable by a bearer."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import grpc
import pytest

from tests.auth.world import BIN, DEADLINE, hook, metadata, project
from tests.harness import SECRETS_ENV, Api
from tests.tls.processes import ServerProcess, server_process
from tests.tls_certs import Authority, Issued
from tidings.v1 import hooks_pb2, tokens_pb2
from tidings_server.domain.tokens import MAX_CERT_NAME


def tokens_cli(store: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(BIN), "tokens", *args, "--store", store],
        capture_output=True, text=True, timeout=60, check=False, env={**os.environ, **SECRETS_ENV},
    )  # fmt: skip


def code_of(call: Callable[..., Any], request: Any, secret: str | None = None) -> grpc.StatusCode:
    try:
        call(request, metadata=metadata(secret), timeout=DEADLINE)
    except grpc.RpcError as err:
        return err.code()
    return grpc.StatusCode.OK


def details_of(call: Callable[..., Any], request: Any, secret: str | None = None) -> str:
    try:
        call(request, metadata=metadata(secret), timeout=DEADLINE)
    except grpc.RpcError as err:
        return str(err.details())
    raise AssertionError("the call passed")


def connect(process: ServerProcess, authority: Authority, client: Issued) -> Api:
    creds = grpc.ssl_channel_credentials(authority.cert_pem, client.key_pem, client.cert_pem)
    return Api.connect(process.port, creds)


def list_hooks(company: int) -> hooks_pb2.ListHooksRequest:
    return hooks_pb2.ListHooksRequest(parent=project(company))


def test_a_client_certificate_bound_to_an_admin_is_authorized_audited_and_revoked(tmp_path: Path) -> None:
    authority = Authority(tmp_path / "ca")
    server = authority.server()
    erp, stranger = authority.client("erp", "erp"), authority.client("stranger", "stranger", ("other.internal",))
    by_san = authority.client("by-san", "not-bound", ("erp",))
    tls = ["--tls-cert", str(server.cert_path), "--tls-key", str(server.key_path), "--client-ca",
           str(authority.cert_path)]  # fmt: skip
    store = f"sqlite:///{tmp_path / 'tidings.sqlite3'}"
    made = tokens_cli(store, "create", "--role", "admin", "--scope", "companies/1", "--name", "erp sync",
                      "--client-cert-name", "erp")  # fmt: skip
    assert made.returncode == 0, made.stderr
    assert "bound to client certificates named 'erp'" in made.stdout
    assert "tdg_" not in made.stdout + made.stderr  # there is no secret to show
    principal = made.stdout.split()[1]
    assert principal.startswith("tokens/")
    listed = tokens_cli(store, "list")
    assert "client certificate 'erp'" in listed.stdout, listed.stdout

    with server_process(store, *tls) as process:
        api, other, san = (connect(process, authority, c) for c in (erp, stranger, by_san))
        assert code_of(api.hooks.ListHooks, list_hooks(1)) == grpc.StatusCode.OK
        assert code_of(san.hooks.ListHooks, list_hooks(1)) == grpc.StatusCode.OK  # a SAN names it too
        assert code_of(api.hooks.ListHooks, list_hooks(2)) == grpc.StatusCode.PERMISSION_DENIED
        created = api.hooks.CreateHook(
            hooks_pb2.CreateHookRequest(
                parent=project(1), hook_id="h",
                hook=hooks_pb2.Hook(display_name="sync", destination_url="http://127.0.0.1:9/hooks",
                                    payload_format="procore.v4"),
            ),
            timeout=DEADLINE,
        )  # fmt: skip
        assert created.name == hook(1)
        audit = process.logged("control-plane change")
        assert audit["principal"] == principal
        assert audit["principal_name"] == "erp sync [x509:erp]"
        # Another certificate the CA signed, bound to nothing: told as a caller with no credentials.
        assert code_of(other.hooks.ListHooks, list_hooks(1)) == grpc.StatusCode.UNAUTHENTICATED
        assert details_of(other.hooks.ListHooks, list_hooks(1)).startswith("no credentials")
        # A bearer, when sent, decides alone: the namespace key never authenticates, and a bad
        # bearer is not rescued by a good certificate.
        for secret in ("x509:erp", "tdg_x509:erp", "tdg_nothing"):
            assert code_of(api.hooks.ListHooks, list_hooks(1), secret) == grpc.StatusCode.UNAUTHENTICATED
            assert code_of(other.hooks.ListHooks, list_hooks(1), secret) == grpc.StatusCode.UNAUTHENTICATED
        for a in (api, other, san):
            a.channel.close()

    revoked = tokens_cli(store, "revoke", principal)
    assert revoked.returncode == 0, revoked.stderr
    assert "client certificate 'erp'" in tokens_cli(store, "list").stdout
    with server_process(store, *tls) as process:
        api = connect(process, authority, erp)
        assert code_of(api.hooks.ListHooks, list_hooks(1)) == grpc.StatusCode.UNAUTHENTICATED
        api.channel.close()


@pytest.mark.parametrize(("name", "problem"), [("", "required"), ("e" * (MAX_CERT_NAME + 1), "more than")])
def test_an_empty_or_over_long_certificate_name_is_one_line_naming_the_option(
    tmp_path: Path, name: str, problem: str
) -> None:
    store = f"sqlite:///{tmp_path / 'tidings.sqlite3'}"
    made = tokens_cli(store, "create", "--role", "admin", "--name", "erp", "--client-cert-name", name)
    assert made.returncode == 2, made.stderr
    lines = [line for line in made.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, made.stderr
    assert lines[0].startswith("tidings-server tokens: --client-cert-name: ")
    assert problem in lines[0]
    assert made.stdout == ""
    assert tokens_cli(store, "list").stdout.strip() == "no tokens"


def test_a_revocation_on_a_shared_postgresql_store_holds_from_the_next_call(tmp_path: Path, postgres_url: str) -> None:
    authority = Authority(tmp_path / "ca")
    server, erp = authority.server(), authority.client("erp", "billing", ("spiffe://corp/erp",))
    made = tokens_cli(postgres_url, "create", "--role", "viewer", "--name", "erp", "--client-cert-name",
                      "spiffe://corp/erp")  # fmt: skip
    assert made.returncode == 0, made.stderr
    principal = made.stdout.split()[1]
    tls = ["--tls-cert", str(server.cert_path), "--tls-key", str(server.key_path), "--client-ca",
           str(authority.cert_path)]  # fmt: skip
    with server_process(postgres_url, *tls) as process:
        api = connect(process, authority, erp)
        assert code_of(api.hooks.ListHooks, list_hooks(1)) == grpc.StatusCode.OK
        again = tokens_cli(postgres_url, "create", "--role", "owner", "--name", "erp 2", "--client-cert-name",
                           "spiffe://corp/erp")  # fmt: skip
        assert again.returncode == 2
        assert f"already bound to {principal}" in again.stderr
        revoked = tokens_cli(postgres_url, "revoke", principal)  # while the server runs
        assert revoked.returncode == 0, revoked.stderr
        assert code_of(api.hooks.ListHooks, list_hooks(1)) == grpc.StatusCode.UNAUTHENTICATED
        rebound = tokens_cli(postgres_url, "create", "--role", "viewer", "--name", "erp renewed",
                             "--client-cert-name", "spiffe://corp/erp")  # fmt: skip
        assert rebound.returncode == 0, rebound.stderr
        assert code_of(api.hooks.ListHooks, list_hooks(1)) == grpc.StatusCode.OK
        api.channel.close()


def test_an_owner_binds_a_client_certificate_over_the_api(tmp_path: Path) -> None:
    authority = Authority(tmp_path / "ca")
    server = authority.server()
    laptop, erp = authority.client("laptop", "ops-laptop"), authority.client("erp", "erp.internal")
    tls = ["--tls-cert", str(server.cert_path), "--tls-key", str(server.key_path), "--client-ca",
           str(authority.cert_path)]  # fmt: skip
    store = f"sqlite:///{tmp_path / 'tidings.sqlite3'}"
    owner = tokens_cli(store, "create", "--role", "owner", "--name", "ops")
    admin = tokens_cli(store, "create", "--role", "admin", "--name", "ops admin")
    local = tokens_cli(store, "create", "--role", "owner", "--name", "owner of 1", "--scope", "companies/1")
    secrets_of = [made.stdout.split()[0] for made in (owner, admin, local)]
    owner_secret, admin_secret, local_secret = secrets_of

    def bind(name: str, role: tokens_pb2.Role.ValueType = tokens_pb2.ROLE_ADMIN) -> tokens_pb2.CreateTokenRequest:
        wanted = tokens_pb2.Token(display_name="erp sync", role=role, scope="companies/1", client_cert_name=name)
        return tokens_pb2.CreateTokenRequest(token=wanted)

    with server_process(store, *tls) as process:
        ops = connect(process, authority, laptop)  # its certificate is bound to nothing: the bearer decides
        create = ops.tokens.CreateToken
        # Token management is the owner's of scope all: an admin, a company's owner, no one else.
        for secret in (admin_secret, local_secret):
            assert code_of(create, bind("erp.internal"), secret) == grpc.StatusCode.PERMISSION_DENIED
        assert code_of(create, bind("erp.internal")) == grpc.StatusCode.UNAUTHENTICATED
        long_name = "e" * (MAX_CERT_NAME + 1)
        assert details_of(create, bind(long_name), owner_secret) == (
            f"token.client_cert_name: {MAX_CERT_NAME + 1} characters is more than {MAX_CERT_NAME}"
        )
        assert code_of(create, bind("erp\x00"), owner_secret) == grpc.StatusCode.INVALID_ARGUMENT
        listed = ops.tokens.ListTokens(tokens_pb2.ListTokensRequest(), metadata=metadata(owner_secret))
        assert len(listed.tokens) == 3  # nothing was made by the refused calls

        made = create(bind("erp.internal"), metadata=metadata(owner_secret), timeout=DEADLINE)
        assert (made.client_cert_name, made.secret, made.display_name) == (
            "erp.internal", "", "erp sync [x509:erp.internal]"
        )  # fmt: skip
        assert (made.role, made.scope) == (tokens_pb2.ROLE_ADMIN, "companies/1")
        shown = ops.tokens.GetToken(tokens_pb2.GetTokenRequest(name=made.name), metadata=metadata(owner_secret))
        assert shown.client_cert_name == "erp.internal"
        again = details_of(create, bind("erp.internal", tokens_pb2.ROLE_OWNER), owner_secret)
        assert again == f"token.client_cert_name: 'erp.internal' is already bound to {made.name}; revoke it first"

        # The certificate now authenticates, with the role and scope given, from the next call.
        api = connect(process, authority, erp)
        assert code_of(api.hooks.ListHooks, list_hooks(1)) == grpc.StatusCode.OK
        assert code_of(api.hooks.ListHooks, list_hooks(2)) == grpc.StatusCode.PERMISSION_DENIED
        assert code_of(api.tokens.CreateToken, bind("other")) == grpc.StatusCode.PERMISSION_DENIED  # an admin
        assert process.logged("control-plane change")["principal_name"] == "ops"
        ops.tokens.RevokeToken(tokens_pb2.RevokeTokenRequest(name=made.name), metadata=metadata(owner_secret))
        assert code_of(api.hooks.ListHooks, list_hooks(1)) == grpc.StatusCode.UNAUTHENTICATED
        for a in (ops, api):
            a.channel.close()
