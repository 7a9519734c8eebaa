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
from tidings.v1 import hooks_pb2
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
