"""Fixtures for the client tests: one real server (in a thread for the library, as a process for
the CLI) and one scripted DeliveryService per module."""

from __future__ import annotations

import itertools
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import grpc
import pytest
import trustme

from tests.client.cli_run import Cli, server_process
from tests.client.scripted import ScriptedServer
from tests.harness import ServerThread, secrets_key
from tests.http_sink import Sink, running_sink
from tidings_server.app import Config


@pytest.fixture(scope="module")
def real_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerThread]:
    """A real tidings server shared by a module's tests; each test uses its own project ids."""
    db = tmp_path_factory.mktemp("client") / "tidings.sqlite3"
    config = Config(
        listen="127.0.0.1:0",
        store_url=f"sqlite:///{db}",
        allow_http=True,
        allow_private_destinations=True,
        secrets_key=secrets_key(),
    )
    srv = ServerThread(config).start()
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def scripted_server() -> Iterator[ScriptedServer]:
    srv = ScriptedServer()
    yield srv
    srv.stop()


@pytest.fixture
def scripted(scripted_server: ScriptedServer) -> ScriptedServer:
    """The module's scripted server with a fresh script and no recorded requests."""
    scripted_server.service.reset()
    return scripted_server


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture(scope="module")
def tls_server(ca: trustme.CA) -> Iterator[ScriptedServer]:
    """The scripted service behind mutual TLS: its certificate names tidings.test, and it wants one of ours."""
    cert = ca.issue_cert("tidings.test")
    credentials = grpc.ssl_server_credentials(
        [(cert.private_key_pem.bytes(), cert.cert_chain_pems[0].bytes())],
        root_certificates=ca.cert_pem.bytes(),
        require_client_auth=True,
    )
    srv = ScriptedServer(credentials)
    yield srv
    srv.stop()


_cli_projects = itertools.count(6000)


@pytest.fixture(scope="module")
def cli(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cli]:
    """The real ``tidings`` command against a real server process shared by a module's tests."""
    tmp = tmp_path_factory.mktemp("cli")
    with server_process(tmp) as target:
        yield Cli(target, tmp / "no-config.toml")


@pytest.fixture
def project() -> str:
    """COMPANY/PROJECT of the test's own project, so tests sharing the server stay apart."""
    return f"8/{next(_cli_projects)}"


@pytest.fixture
def sink() -> Iterator[Sink]:
    with running_sink() as s:
        yield s


@pytest.fixture
def refusing_url() -> Iterator[str]:
    """An endpoint that answers every POST with 400: its deliveries fail at once, without retries."""

    class Refuse(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length", "0")))
            body = b"bad payload"
            self.send_response(400)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Refuse)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/in"
    finally:
        server.shutdown()
        server.server_close()
