"""The test harness: a real tidings server in a thread on a free loopback port, and stubs for it."""

from __future__ import annotations

import threading
from dataclasses import dataclass, replace

import grpc
import trio

from tidings.v1 import (
    catalog_pb2_grpc,
    deliveries_pb2_grpc,
    events_pb2_grpc,
    hooks_pb2_grpc,
    templates_pb2_grpc,
    tokens_pb2_grpc,
)
from tidings_server.app import Config, Running, serve
from tidings_server.domain.sealing import Keyring, encode_key, new_key
from tidings_server.keys import ENV_VAR, KeySource

# One key for the servers tests start: a library Config takes it as a KeySource, a server
# process from the environment.
SECRETS_KEY = new_key()
SECRETS_ENV = {ENV_VAR: encode_key(SECRETS_KEY)}


def secrets_key() -> KeySource:
    return KeySource(Keyring([SECRETS_KEY]))


class ServerThread:
    """A server in its own thread and trio run, so tests can be plain blocking gRPC code.

    Callers are not authenticated (``--no-auth``) unless ``auth``: the tests of access opt in.
    """

    def __init__(self, config: Config, *, auth: bool = False) -> None:
        self.config = replace(config, auth=auth)
        self.port = 0
        self.running: Running | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._token: trio.lowlevel.TrioToken | None = None
        self._stop: trio.Event | None = None
        self._thread = threading.Thread(target=self._main, name="test-server", daemon=True)

    def start(self) -> ServerThread:
        self._thread.start()
        if not self._ready.wait(30):
            raise TimeoutError("server did not start within 30 s")
        if self._error is not None:
            raise self._error
        return self

    def stop(self, grace: float = 1.0) -> None:
        if self._token is not None and self._stop is not None and self._thread.is_alive():
            trio.from_thread.run_sync(self._stop.set, trio_token=self._token)
        self._thread.join(30)
        assert not self._thread.is_alive(), "server thread did not stop"

    def _main(self) -> None:
        try:
            trio.run(self._serve)
        except BaseException as exc:  # surfaced to the test by start()
            self._error = exc
        finally:
            self._ready.set()

    async def _serve(self) -> None:
        self._token = trio.lowlevel.current_trio_token()
        self._stop = trio.Event()
        async with trio.open_nursery() as nursery:
            running: Running = await nursery.start(serve, self.config)
            self.port = running.port
            self.running = running
            self._ready.set()
            await self._stop.wait()
            await running.stop(1.0)


@dataclass
class Api:
    """Stubs for every service on one channel."""

    channel: grpc.Channel
    hooks: hooks_pb2_grpc.HookServiceStub
    catalog: catalog_pb2_grpc.CatalogServiceStub
    events: events_pb2_grpc.EventServiceStub
    deliveries: deliveries_pb2_grpc.DeliveryServiceStub
    tokens: tokens_pb2_grpc.TokenServiceStub
    templates: templates_pb2_grpc.TemplateServiceStub

    @classmethod
    def connect(cls, port: int, credentials: grpc.ChannelCredentials | None = None, host: str = "127.0.0.1") -> Api:
        """Plaintext, or TLS with ``credentials`` (tests/tls_certs.py makes the certificates)."""
        target = f"{host}:{port}"
        channel = grpc.secure_channel(target, credentials) if credentials else grpc.insecure_channel(target)
        return cls(
            channel,
            hooks_pb2_grpc.HookServiceStub(channel),
            catalog_pb2_grpc.CatalogServiceStub(channel),
            events_pb2_grpc.EventServiceStub(channel),
            deliveries_pb2_grpc.DeliveryServiceStub(channel),
            tokens_pb2_grpc.TokenServiceStub(channel),
            templates_pb2_grpc.TemplateServiceStub(channel),
        )


def restarted(server: ServerThread, **changes: object) -> ServerThread:
    """Stop a server and start another on the same store (optionally with other options)."""
    server.stop()
    config = replace(server.config, **changes)  # type: ignore[arg-type]
    return ServerThread(config, auth=config.auth).start()
