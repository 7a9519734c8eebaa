"""A receiver that echoes its credentials back: nothing of them is stored or served again.

A real server process, a real ``tidings`` command and a real receiver on loopback that answers
401 with the Authorization header it got in ``WWW-Authenticate`` and in its body (and, as a
careless debugging endpoint might, the signing secret it was configured with).
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from tests.client.cli_run import Cli, server_process
from tests.harness import Api
from tests.secrets.spelling import found_in, spellings
from tidings.v1 import deliveries_pb2, events_pb2

AUTH = "Bearer tk_live_51H8secretvalue0123456789abcdef"


@dataclass
class Echo:
    port: int = 0
    signing_secret: str = ""
    hits: int = 0

    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"


@pytest.fixture
def echo() -> Iterator[Echo]:
    state = Echo()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length", "0")))
            got = self.headers.get("Authorization", "")
            body = json.dumps(
                {"error": "invalid token", "you_sent": got, "headers": dict(self.headers.items()),
                 "configured_secret": state.signing_secret}
            ).encode() + b"\nAuthorization: " + got.encode()  # fmt: skip
            self.send_response(401)
            self.send_header("WWW-Authenticate", f'Bearer realm="hooks", error="invalid_token", token="{got}"')
            self.send_header("X-Echo-Token", got.partition(" ")[2])
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
            state.hits += 1

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    state.port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()
        thread.join(10)


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[Cli, Path]]:
    with server_process(tmp_path) as target:
        yield Cli(target, tmp_path / "no-config.toml"), tmp_path / "tidings.sqlite3"


def test_an_echoed_credential_is_neither_stored_nor_shown(served: tuple[Cli, Path], echo: Echo) -> None:
    cli, db = served
    created = cli.ok(
        "--json", "hooks", "create", "--project", "8/6778", "--id", "echo", "--url", echo.url(),
        "--auth-header", AUTH, "--format", "procore.v4", "--event", "RFIs:update",
    ).json()  # fmt: skip
    hook = created["hook"]["name"]
    echo.signing_secret = secret = created["hook"]["signing_secret"]
    secrets = [AUTH, secret]

    api = Api.connect(int(cli.target.rsplit(":", 1)[1]))
    try:
        reply = api.events.PublishEvents(
            events_pb2.PublishEventsRequest(
                events=[
                    events_pb2.Event(
                        company_id=8, project_id=6778, resource_name="RFIs", resource_id=1, event_type="update",
                        user_id=1,
                    )
                ]
            )
        )  # fmt: skip
        name = f"{hook}/deliveries/{reply.results[0].event_id}"
        deadline = time.monotonic() + 15
        while not (delivery := api.deliveries.GetDelivery(deliveries_pb2.GetDeliveryRequest(name=name))).attempts:
            assert time.monotonic() < deadline, "no attempt was recorded"
            time.sleep(0.05)
        assert echo.hits == 1
        [attempt] = delivery.attempts
        assert attempt.response_status == 401
        shown = [
            attempt.response_body,
            *(f"{h.name}: {h.value}".encode() for h in attempt.response_headers),
            *(f"{h.name}: {h.value}".encode() for h in attempt.request_headers),
            delivery.last_error.encode(),
        ]
        assert b'"error": "invalid token"' in attempt.response_body  # the rest of the answer is kept
        assert not [s for s in secrets for form in spellings(s) for part in shown if form in part]
        assert b"realm=" in b"".join(shown)  # WWW-Authenticate kept, its token masked

        tested = api.deliveries.SendTestEvent(deliveries_pb2.SendTestEventRequest(name=hook))
        assert tested.response_status == 401
        assert not [s for s in secrets for form in spellings(s) if form in tested.response_excerpt]
    finally:
        api.channel.close()

    for args in (("deliveries", "show", name), ("--json", "deliveries", "show", name), ("hooks", "test", hook)):
        out = cli(*args).out
        assert "invalid token" in out or "401" in out
        assert not [s for s in secrets for form in spellings(s) if form.decode("latin-1") in out], args
    assert found_in([db, db.with_name(db.name + "-wal")], secrets) == []
