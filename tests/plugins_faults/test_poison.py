"""Poison detection against a real server process: whatever kills the server mid-attempt (here
kill -9 the moment the request arrives), the delivery it was attempting is failed with a
reason once it has been in flight at more than ``--poison-after`` deaths, instead of taking
every restart down with it."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from google.protobuf import duration_pb2

from tests.harness import SECRETS_ENV, Api
from tidings.v1 import deliveries_pb2, events_pb2, hooks_pb2

BIN = Path(sys.executable).parent / "tidings-server"
LEASE = 3.0  # longer than an attempt (1 s timeout), so a live server never re-claims its own


def start(store: str, *extra: str) -> tuple[subprocess.Popen[str], int]:
    proc = subprocess.Popen(
        [str(BIN), "serve", "--listen", "127.0.0.1:0", "--store", store, "--allow-http",
         "--allow-private-destinations", "--delivery-lease", str(LEASE), *extra],
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1", **SECRETS_ENV},
    )  # fmt: skip
    assert proc.stderr is not None
    for line in proc.stderr:
        if m := re.search(r"listening on port (\d+)", line):
            threading.Thread(target=proc.stderr.read, daemon=True).start()  # keep the pipe drained
            return proc, int(m.group(1))
    raise AssertionError(f"server exited with {proc.wait(10)} before listening")


@contextmanager
def silent_receiver() -> Iterator[tuple[int, threading.Semaphore]]:
    """A port that accepts connections and never answers; the semaphore counts arrivals."""
    arrived = threading.Semaphore(0)
    listener = socket.create_server(("127.0.0.1", 0))
    held: list[socket.socket] = []

    def serve() -> None:
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            held.append(conn)
            if conn.recv(65536):
                arrived.release()

    threading.Thread(target=serve, daemon=True).start()
    try:
        yield listener.getsockname()[1], arrived
    finally:
        listener.close()
        for conn in held:
            conn.close()


def test_a_delivery_in_flight_at_too_many_deaths_is_failed_with_the_reason(tmp_path: Path) -> None:
    store = f"sqlite:///{tmp_path / 'poison.sqlite3'}"
    with silent_receiver() as (port, arrived):
        proc, api_port = start(store, "--poison-after", "1")
        api = Api.connect(api_port)
        hook = api.hooks.CreateHook(
            hooks_pb2.CreateHookRequest(
                parent="companies/8/projects/6778",
                hook=hooks_pb2.Hook(
                    destination_url=f"http://127.0.0.1:{port}/in",
                    payload_format="procore.v4",
                    retry_policy=hooks_pb2.RetryPolicy(timeout=duration_pb2.Duration(seconds=1)),
                ),
            )
        )
        api.hooks.BatchCreateTriggers(
            hooks_pb2.BatchCreateTriggersRequest(
                parent=hook.name, triggers=[hooks_pb2.Trigger(resource_name="RFIs", event_type="update")]
            )
        )
        event = events_pb2.Event(
            company_id=8, project_id=6778, resource_name="RFIs", resource_id=1, event_type="update", user_id=1
        )
        api.events.PublishEvents(events_pb2.PublishEventsRequest(events=[event]))
        for _ in range(2):  # two deaths mid-attempt: more than --poison-after 1
            assert arrived.acquire(timeout=30), "the delivery was not attempted"
            proc.send_signal(signal.SIGKILL)
            proc.wait(10)
            api.channel.close()
            proc, api_port = start(store, "--poison-after", "1")
            api = Api.connect(api_port)
        try:
            deadline = time.monotonic() + 30
            while True:
                [delivery] = api.deliveries.ListDeliveries(
                    deliveries_pb2.ListDeliveriesRequest(parent=hook.name, view=deliveries_pb2.DELIVERY_VIEW_FULL)
                ).deliveries
                if delivery.status == deliveries_pb2.DELIVERY_STATUS_FAILED or time.monotonic() > deadline:
                    break
                time.sleep(0.1)
            assert delivery.status == deliveries_pb2.DELIVERY_STATUS_FAILED
            assert delivery.last_error == (
                "not attempted again: 2 attempts of this delivery in a row ended with the server stopping"
                " mid-attempt (more than 1 allowed); its render or its send may be what stops the server"
            )
            [attempt] = delivery.attempts
            assert (attempt.error, attempt.response_status) == (delivery.last_error, 0)
            assert not arrived.acquire(timeout=0.5)  # not sent a third time
            assert proc.poll() is None
        finally:
            api.channel.close()
            proc.send_signal(signal.SIGTERM)
            proc.wait(20)
