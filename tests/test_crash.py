"""Crash safety: kill -9 the server mid-delivery; every acknowledged event still gets delivered,
and the restarted server resumes at once (a SQLite file has one owner, so its leases go with it)."""

from __future__ import annotations

import os
import re
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import trio

from tests.harness import SECRETS_ENV, Api
from tests.http_sink import running_sink
from tidings.v1 import events_pb2, hooks_pb2
from tidings_server.domain.model import DeliveryStatus
from tidings_server.stores.sqlite import SqliteBackend

BIN = Path(sys.executable).parent / "tidings-server"
EVENTS = 400


def start(store: str) -> tuple[subprocess.Popen[str], int]:
    proc = subprocess.Popen(
        [str(BIN), "serve", "--listen", "127.0.0.1:0", "--store", store, "--allow-http",
         "--allow-private-destinations"],
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1", **SECRETS_ENV},
    )  # fmt: skip
    assert proc.stderr is not None
    for line in proc.stderr:
        if m := re.search(r"listening on port (\d+)", line):
            return proc, int(m.group(1))
    raise AssertionError(f"server exited with {proc.wait(10)} before listening")


def delivered_count(db: Path) -> int:
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
        (n,) = conn.execute("SELECT count(*) FROM deliveries WHERE status = 'delivered'").fetchone()
    return int(n)


def test_kill_9_mid_delivery_loses_nothing(tmp_path: Path) -> None:
    store = f"sqlite:///{tmp_path / 'crash.sqlite3'}"
    with running_sink(delay=0.02) as sink:
        proc, port = start(store)
        api = Api.connect(port)
        hook = api.hooks.CreateHook(
            hooks_pb2.CreateHookRequest(
                parent="companies/8/projects/6778",
                hook=hooks_pb2.Hook(destination_url=sink.url(), payload_format="procore.v4"),
            )
        )
        api.hooks.BatchCreateTriggers(
            hooks_pb2.BatchCreateTriggersRequest(
                parent=hook.name, triggers=[hooks_pb2.Trigger(resource_name="RFIs", event_type="update")]
            )
        )
        acknowledged: set[str] = set()
        for batch in range(EVENTS // 100):
            events = [
                events_pb2.Event(
                    company_id=8, project_id=6778, resource_name="RFIs", resource_id=batch * 100 + i + 1,
                    event_type="update", user_id=1,
                )
                for i in range(100)
            ]  # fmt: skip
            reply = api.events.PublishEvents(events_pb2.PublishEventsRequest(events=events))
            acknowledged |= {r.event_id for r in reply.results}
        api.channel.close()
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
        time.sleep(0.2)  # requests the server sent before dying reach the sink meanwhile
        seen_before_kill = len(sink.received)
        assert len(sink.ids()) < EVENTS, "the kill came too late to interrupt delivery"

        proc, port = start(store)
        restarted = time.monotonic()
        try:
            # The 30 s leases the killed server held are released when the file is opened.
            assert sink.wait_until(lambda: len(sink.received) > seen_before_kill, timeout=10)
            assert time.monotonic() - restarted < 2
            second = subprocess.run(
                [str(BIN), "serve", "--listen", "127.0.0.1:0", "--store", store],
                capture_output=True, text=True, timeout=30,
            )  # fmt: skip
            assert second.returncode == 2
            assert f"already in use by another tidings-server (pid {proc.pid}" in second.stderr
            missing = sink.wait_for(acknowledged, timeout=60)
            assert not missing, f"{len(missing)} acknowledged events never arrived"
            # Deliveries sent but not recorded before the kill are sent again once their lease
            # ends (at least once); wait until the store has every one recorded as delivered.
            deadline = time.monotonic() + 60
            while delivered_count(tmp_path / "crash.sqlite3") < EVENTS and time.monotonic() < deadline:
                time.sleep(0.1)
        finally:
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(30) == 0

    async def statuses() -> list[DeliveryStatus]:
        async with SqliteBackend().open(store) as db:
            found = await db.list_deliveries(hook.name, after=None, limit=10 * EVENTS)
            return [d.status for d in found]

    final = trio.run(statuses)
    assert len(final) == EVENTS
    assert set(final) == {DeliveryStatus.DELIVERED}
