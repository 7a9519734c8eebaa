"""SIGHUP to a real server process: new connections get the new certificate, an open
WatchDeliveries stream goes on receiving on its old connection, and a bad file is logged and
leaves the certificate in use in place."""

from __future__ import annotations

import os
import signal
import subprocess
import threading
from pathlib import Path

import grpc
from cryptography.hazmat.primitives import hashes
from google.protobuf.duration_pb2 import Duration

from tests.http_sink import running_sink
from tests.tls.processes import SERVER, server_process
from tests.tls_certs import Authority, Issued, server_certificate
from tidings.v1 import deliveries_pb2, events_pb2, events_pb2_grpc, hooks_pb2, hooks_pb2_grpc
from tidings.v1.deliveries_pb2_grpc import DeliveryServiceStub

PROJECT = "companies/8/projects/6778"
DELIVERED = deliveries_pb2.DELIVERY_STATUS_DELIVERED


def bind_certificate(store: str, cert_name: str) -> None:
    """An owner principal for the client certificate named ``cert_name``, made before start."""
    subprocess.run(
        [str(SERVER), "tokens", "create", "--store", store, "--role", "owner", "--name", "tls reload tests",
         "--client-cert-name", cert_name],
        capture_output=True, text=True, timeout=60, check=True,
    )  # fmt: skip


def install(cert: Issued, live: Path) -> None:
    """Put ``cert`` in the files the server reads, each replaced whole, as a deploy tool does."""
    for data, name in ((cert.cert_pem, "server.pem"), (cert.key_pem, "server.key")):
        staged = live / f".{name}.new"
        staged.write_bytes(data)
        os.replace(staged, live / name)


class Stream:
    """One WatchDeliveries call read on a thread; it is never reopened, so what it keeps
    receiving proves the connection under it was not dropped."""

    def __init__(self, channel: grpc.Channel) -> None:
        self.call = DeliveryServiceStub(channel).WatchDeliveries(
            deliveries_pb2.WatchDeliveriesRequest(parent=PROJECT, statuses=[DELIVERED])
        )
        self.events: list[str] = []
        self.error: grpc.RpcError | None = None
        self.cond = threading.Condition()
        self.call.initial_metadata()  # the stream is open and positioned from here on
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self) -> None:
        try:
            for change in self.call:
                with self.cond:
                    self.events.append(change.delivery.event.id)
                    self.cond.notify_all()
        except grpc.RpcError as exc:
            with self.cond:
                self.error = exc
                self.cond.notify_all()

    def wait_for(self, event_id: str) -> None:
        with self.cond:
            assert self.cond.wait_for(lambda: event_id in self.events or self.error is not None, 30)
            assert self.error is None, self.error


def publish(channel: grpc.Channel, resource_id: int) -> str:
    reply = events_pb2_grpc.EventServiceStub(channel).PublishEvents(
        events_pb2.PublishEventsRequest(
            events=[
                events_pb2.Event(company_id=8, project_id=6778, resource_name="RFIs", resource_id=resource_id,
                                 event_type="update", user_id=5447)
            ]
        ),
        timeout=30,
    )  # fmt: skip
    return reply.results[0].event_id


def test_sighup_serves_new_connections_the_new_certificate_and_keeps_open_streams(tmp_path: Path) -> None:
    authority = Authority(tmp_path / "ca")
    first, second = authority.server("first"), authority.server("second")
    client = authority.client("admin", "admin")
    live = tmp_path / "live"
    live.mkdir()
    install(first, live)
    tls = ["--tls-cert", str(live / "server.pem"), "--tls-key", str(live / "server.key")]
    store = f"sqlite:///{tmp_path / 'tidings.sqlite3'}"
    bind_certificate(store, "admin")  # the client authenticates by its certificate alone
    creds = grpc.ssl_channel_credentials(authority.cert_pem, client.key_pem, client.cert_pem)
    with running_sink() as sink, server_process(store, *tls, "--client-ca", str(authority.cert_path)) as server:
        assert server.logged("grpc serving")["transport"] == "mutual TLS"
        assert fingerprint(server.port) == first.fingerprint
        old = grpc.secure_channel(f"127.0.0.1:{server.port}", creds)
        hooks = hooks_pb2_grpc.HookServiceStub(old)
        hook = hooks.CreateHook(
            hooks_pb2.CreateHookRequest(
                parent=PROJECT,
                hook=hooks_pb2.Hook(destination_url=sink.url(), payload_format="procore.v4",
                                    retry_policy=hooks_pb2.RetryPolicy(initial_backoff=Duration(nanos=100_000_000))),
            ),
            timeout=30,
        )  # fmt: skip
        hooks.BatchCreateTriggers(
            hooks_pb2.BatchCreateTriggersRequest(
                parent=hook.name, triggers=[hooks_pb2.Trigger(resource_name="RFIs", event_type="update")]
            ),
            timeout=30,
        )
        stream = Stream(old)
        stream.wait_for(publish(old, 1))

        install(second, live)
        os.kill(server.proc.pid, signal.SIGHUP)
        reloaded = server.logged("TLS files reloaded")
        assert reloaded["cert"] == str(live / "server.pem")
        assert reloaded["subject"] == "CN=localhost"

        assert fingerprint(server.port) == second.fingerprint
        with grpc.secure_channel(f"127.0.0.1:{server.port}", creds) as new:
            event = publish(new, 2)  # a new connection, on the new certificate
        stream.wait_for(event)  # the stream opened before the reload still receives
        stream.wait_for(publish(old, 3))  # and its connection still carries calls

        (live / "server.key").write_text("half a key\n")  # a broken deploy
        os.kill(server.proc.pid, signal.SIGHUP)
        failed = server.logged("TLS files not reloaded")
        assert failed["level"] == "error"
        assert failed["file"] == str(live / "server.key")
        assert str(live / "server.key") in str(failed["message"])
        assert fingerprint(server.port) == second.fingerprint
        with grpc.secure_channel(f"127.0.0.1:{server.port}", creds) as new:
            stream.wait_for(publish(new, 4))
        assert server.proc.poll() is None, "SIGHUP never stops the server"
        assert stream.error is None
        stream.call.cancel()
        old.close()


def test_sighup_without_tls_changes_nothing(tmp_path: Path) -> None:
    with server_process("memory:") as server:
        os.kill(server.proc.pid, signal.SIGHUP)
        assert server.logged("nothing to reload")["level"] == "info"
        assert server.proc.poll() is None


def fingerprint(port: int) -> bytes:
    """The SHA-256 fingerprint of the certificate a new connection to the server is shown."""
    return server_certificate("127.0.0.1", port).fingerprint(hashes.SHA256())


def test_sighup_to_the_supervisor_reloads_every_child(tmp_path: Path, postgres_url: str) -> None:
    authority = Authority(tmp_path / "ca")
    first, second = authority.server("first"), authority.server("second")
    live = tmp_path / "live"
    live.mkdir()
    install(first, live)
    tls = ["--tls-cert", str(live / "server.pem"), "--tls-key", str(live / "server.key")]
    with server_process(postgres_url, "--processes", "2", *tls) as server:
        assert fingerprint(server.port) == first.fingerprint
        install(second, live)
        os.kill(server.proc.pid, signal.SIGHUP)
        with server.changed:
            assert server.changed.wait_for(lambda: server.count("TLS files reloaded") == 2, 30), "".join(server.lines)
        # The kernel spreads new connections over both children: each now shows the new certificate.
        assert {fingerprint(server.port) for _ in range(8)} == {second.fingerprint}
        assert server.proc.poll() is None
