"""A real server on loopback with TLS and with mutual TLS: who gets through the handshake, and
the identity of a verified client certificate as a handler sees it."""

from __future__ import annotations

import asyncio
import json
import queue
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from tests.harness import Api, ServerThread, secrets_key
from tests.tls_certs import Authority, Issued, self_signed
from tidings.v1 import hooks_pb2
from tidings_server.app import Config
from tidings_server.grpc_api.tls import peer_certificate, server_credentials
from tidings_server.tls import Certificates, TlsFiles

PROJECT = "companies/8/projects/6778"


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> tuple[Authority, Issued]:
    authority = Authority(tmp_path_factory.mktemp("pki"))
    return authority, authority.server()


def start(files: TlsFiles) -> ServerThread:
    return ServerThread(Config(listen="127.0.0.1:0", store_url="memory:", secrets_key=secrets_key(), tls=files)).start()


@pytest.fixture(scope="module")
def tls_server(pki: tuple[Authority, Issued]) -> Iterator[ServerThread]:
    _, cert = pki
    srv = start(TlsFiles(cert.cert_path, cert.key_path))
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def mtls_server(pki: tuple[Authority, Issued]) -> Iterator[ServerThread]:
    authority, cert = pki
    srv = start(TlsFiles(cert.cert_path, cert.key_path, authority.cert_path))
    yield srv
    srv.stop()


def credentials(root: bytes, client: Issued | None = None) -> grpc.ChannelCredentials:
    if client is None:
        return grpc.ssl_channel_credentials(root)
    return grpc.ssl_channel_credentials(root, client.key_pem, client.cert_pem)


def call(port: int, creds: grpc.ChannelCredentials | None, host: str = "127.0.0.1") -> grpc.StatusCode:
    """The code of a health check and of a real API call over a new channel (OK if both pass)."""
    api = Api.connect(port, creds, host)
    try:
        health = health_pb2_grpc.HealthStub(api.channel).Check(health_pb2.HealthCheckRequest(), timeout=20)
        assert health.status == health_pb2.HealthCheckResponse.SERVING
        api.hooks.ListHooks(hooks_pb2.ListHooksRequest(parent=PROJECT), timeout=20)
    except grpc.RpcError as exc:
        return exc.code()
    finally:
        api.channel.close()
    return grpc.StatusCode.OK


def test_tls_serves_clients_that_trust_its_ca(tls_server: ServerThread, pki: tuple[Authority, Issued]) -> None:
    authority, _ = pki
    assert call(tls_server.port, credentials(authority.cert_pem)) == grpc.StatusCode.OK
    assert call(tls_server.port, credentials(authority.cert_pem), host="localhost") == grpc.StatusCode.OK


def test_tls_refuses_plaintext_and_clients_that_trust_another_ca(tls_server: ServerThread, tmp_path: Path) -> None:
    assert call(tls_server.port, None) == grpc.StatusCode.UNAVAILABLE
    stranger = Authority(tmp_path / "other-ca", "another CA")
    assert call(tls_server.port, credentials(stranger.cert_pem)) == grpc.StatusCode.UNAVAILABLE


def test_mutual_tls_serves_a_client_certificate_signed_by_the_client_ca(
    mtls_server: ServerThread, pki: tuple[Authority, Issued]
) -> None:
    authority, _ = pki
    client = authority.client("billing", "billing-service")
    assert call(mtls_server.port, credentials(authority.cert_pem, client)) == grpc.StatusCode.OK


def test_mutual_tls_refuses_at_the_handshake_clients_without_a_good_certificate(
    mtls_server: ServerThread, pki: tuple[Authority, Issued], tmp_path: Path
) -> None:
    authority, _ = pki
    root = authority.cert_pem
    assert call(mtls_server.port, credentials(root)) == grpc.StatusCode.UNAVAILABLE, "no client certificate"
    unsigned = self_signed(tmp_path, "intruder", "billing-service")
    assert call(mtls_server.port, credentials(root, unsigned)) == grpc.StatusCode.UNAVAILABLE, "not signed by the CA"
    expired = authority.issue("expired", "billing-service", expired=True)
    assert call(mtls_server.port, credentials(root, expired)) == grpc.StatusCode.UNAVAILABLE, "expired"
    assert call(mtls_server.port, None) == grpc.StatusCode.UNAVAILABLE, "plaintext"


async def _whoami(request: bytes, context: grpc.aio.ServicerContext[bytes, bytes]) -> bytes:
    peer = peer_certificate(context)
    return json.dumps(None if peer is None else {"cn": peer.common_name, "sans": list(peer.alt_names)}).encode()


@contextmanager
def whoami_server(files: TlsFiles) -> Iterator[int]:
    """A grpc.aio server, as tidings runs, with the server's own credentials and a one-method
    service that answers who called; in a thread of its own."""
    ports: queue.Queue[int] = queue.Queue()
    stopping: list[tuple[asyncio.AbstractEventLoop, asyncio.Event]] = []

    async def main() -> None:
        server = grpc.aio.server()
        handler: grpc.RpcMethodHandler[bytes, bytes] = grpc.unary_unary_rpc_method_handler(_whoami)
        server.add_generic_rpc_handlers([grpc.method_handlers_generic_handler("test.Peer", {"Who": handler})])
        port = server.add_secure_port("127.0.0.1:0", server_credentials(Certificates(files)))
        await server.start()
        stop = asyncio.Event()
        stopping.append((asyncio.get_running_loop(), stop))
        ports.put(port)
        await stop.wait()
        await server.stop(None)

    thread = threading.Thread(target=asyncio.run, args=(main(),), daemon=True)
    thread.start()
    port = ports.get(timeout=30)
    try:
        yield port
    finally:
        loop, stop = stopping[0]
        loop.call_soon_threadsafe(stop.set)
        thread.join(30)


@pytest.mark.parametrize("mutual", [True, False], ids=["mutual", "server-only"])
def test_a_handler_reads_the_verified_client_identity(pki: tuple[Authority, Issued], mutual: bool) -> None:
    authority, cert = pki
    files = TlsFiles(cert.cert_path, cert.key_path, authority.cert_path if mutual else None)
    client = authority.client("svc", "billing-service", ("billing.internal", "spiffe://tidings.test/billing"))
    with (
        whoami_server(files) as port,
        grpc.secure_channel(f"127.0.0.1:{port}", credentials(authority.cert_pem, client)) as channel,
    ):
        who_is: grpc.UnaryUnaryMultiCallable[bytes, bytes] = channel.unary_unary("/test.Peer/Who")
        who = json.loads(who_is(b"", timeout=20))
    if mutual:
        assert who == {"cn": "billing-service", "sans": ["billing.internal", "spiffe://tidings.test/billing"]}
    else:
        assert who is None, "without --client-ca no client certificate is asked for, so none is trusted"
