"""``tidings-server status`` beside a running server on SQLite and PostgreSQL: the real command,
a real server delivering to real receivers (one healthy and one failing; one holding its
requests, beside a paused hook's backlog)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from google.protobuf import field_mask_pb2
from google.protobuf.duration_pb2 import Duration

from tests.harness import SECRETS_ENV, Api
from tests.http_sink import HeldReceiver, running_sink
from tests.test_cli import BIN
from tidings.v1 import events_pb2, hooks_pb2
from tidings_server import __version__

PROJECT = "companies/8/projects/6778"


def _hook(api: Api, url: str) -> str:
    hook = api.hooks.CreateHook(
        hooks_pb2.CreateHookRequest(
            parent=PROJECT, hook=hooks_pb2.Hook(destination_url=url, payload_format="procore.v2")
        )
    )
    trigger = hooks_pb2.Trigger(resource_name="RFIs", event_type="update")
    api.hooks.BatchCreateTriggers(hooks_pb2.BatchCreateTriggersRequest(parent=hook.name, triggers=[trigger]))
    return hook.name


def _status(store: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(BIN), "status", "--store", store, *args],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "COLUMNS": "120"},
        check=False,
    )


def _store(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> str:
    if backend == "sqlite":
        return f"sqlite:///{tmp_path / 'db.sqlite3'}"
    # A password in the URL (the test server trusts local connections and ignores it) is never shown.
    return str(request.getfixturevalue("postgres_url")).replace("//postgres@", "//postgres:hunter2@")


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_status_beside_a_running_server_reports_nodes_rates_and_failing_hooks(
    tmp_path: Path, backend: str, request: pytest.FixtureRequest
) -> None:
    store = _store(backend, tmp_path, request)
    with running_sink() as sink:
        sink.answers["/bad"] = [500]
        proc, port = _serve(tmp_path, store)
        api = Api.connect(port)
        try:
            good = _hook(api, sink.url("/ok"))
            bad = _hook(api, sink.url("/bad"))
            events = [
                events_pb2.Event(company_id=8, project_id=6778, resource_name="RFIs", resource_id=n,
                                 event_type="update", user_id=1)
                for n in range(1, 6)
            ]  # fmt: skip
            published = api.events.PublishEvents(events_pb2.PublishEventsRequest(events=events)).results
            assert not sink.wait_for({r.event_id for r in published}, timeout=60)
            assert sink.wait_until(lambda: sink.hits.get("/bad", 0) >= 5 and sink.hits.get("/ok", 0) == 5, 60)

            shown = _status(store, "--json")
            assert shown.returncode == 0, shown.stderr
            status = json.loads(shown.stdout)
            assert [(n["pid"], n["role"], n["version"]) for n in status["nodes"]] == [(proc.pid, "all", __version__)]
            assert status["store"] == store.replace(":hunter2@", ":•••@")
            assert status["uptime_seconds"] > 0
            minute = status["last_minute"]
            assert minute["delivered"] == 5  # the good hook's five; nothing else succeeds
            assert minute["queued"] == 10  # five events, two hooks each
            assert minute["retried"] + minute["failed"] + minute["discarded"] >= 5
            assert minute["complete"] is True
            (failing,) = status["failing_hooks"]
            assert failing["hook"] == bad
            assert failing["consecutive_failures"] >= 5
            assert "500" in failing["last_failure_reason"]
            assert failing["last_success_time"] is None
            assert status["due"] >= 0
            assert status["in_flight"] >= 0

            table = _status(store)
            assert table.returncode == 0, table.stderr
            lines = table.stdout.splitlines()
            assert all(len(line) <= 120 for line in lines), lines
            assert "1 live node," in table.stdout
            assert f"tidings-server {__version__} (this command); nodes run {__version__}" in table.stdout
            [node_row] = [line for line in lines if line.startswith(status["nodes"][0]["node_id"][:31])]
            assert f" {proc.pid} {__version__} " in node_row
            assert "5 delivered" in table.stdout
            assert any(line.startswith(bad) for line in lines)
            assert good not in table.stdout  # it is not failing

            # Reading took no lock: the server goes on taking calls and writing.
            again = api.events.PublishEvents(events_pb2.PublishEventsRequest(events=events[:1])).results
            assert not sink.wait_for({r.event_id for r in again}, timeout=60)
        finally:
            api.channel.close()
            proc.terminate()
            assert proc.wait(30) == 0


def _serve(tmp_path: Path, store: str) -> tuple[subprocess.Popen[str], int]:
    proc = subprocess.Popen(
        [str(BIN), "serve", "--listen", "127.0.0.1:0", "--store", store, "--allow-http", "--allow-private-destinations",
         "--delivery-lease", str(LEASE)],
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1", **SECRETS_ENV},
    )  # fmt: skip
    assert proc.stderr is not None
    for line in proc.stderr:
        m = re.search(r"listening on port (\d+)", line)
        if m:
            threading.Thread(target=proc.stderr.read, daemon=True).start()
            return proc, int(m.group(1))
    proc.wait(10)
    pytest.fail(f"server exited with {proc.returncode} before listening")


def _status_until(store: str, ready: Callable[[dict[str, Any]], bool], why: str) -> dict[str, Any]:
    deadline = time.monotonic() + 60
    while True:
        shown = _status(store, "--json", "--delivery-lease", str(LEASE))
        assert shown.returncode == 0, shown.stderr
        status: dict[str, Any] = json.loads(shown.stdout)
        if ready(status):
            return status
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {why}: {status}")
        time.sleep(0.2)


LEASE = 1.5  # seconds; the nodes beat every half second, so in flight is fresh soon


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_status_counts_the_backlog_its_age_and_the_attempts_in_flight(
    tmp_path: Path, backend: str, request: pytest.FixtureRequest
) -> None:
    """Two events to a hook whose receiver holds its requests and to a paused hook: two in flight,
    two due and ageing since the publish; once released, two delivered in the last minute."""
    store = _store(backend, tmp_path, request)
    proc, port = _serve(tmp_path, store)
    api = Api.connect(port)
    try:
        with HeldReceiver() as receiver, running_sink() as sink:
            held = _hook(api, receiver.url("/held"))
            slow = hooks_pb2.RetryPolicy(timeout=Duration(seconds=60))  # held well past the default 5 s
            api.hooks.UpdateHook(
                hooks_pb2.UpdateHookRequest(
                    hook=hooks_pb2.Hook(name=held, retry_policy=slow),
                    update_mask=field_mask_pb2.FieldMask(paths=["retry_policy"]),
                )
            )
            paused = _hook(api, sink.url("/paused"))
            api.hooks.UpdateHook(
                hooks_pb2.UpdateHookRequest(
                    hook=hooks_pb2.Hook(name=paused, status=hooks_pb2.HOOK_STATUS_PAUSED),
                    update_mask=field_mask_pb2.FieldMask(paths=["status"]),
                )
            )
            before = datetime.now(UTC)
            events = [
                events_pb2.Event(company_id=8, project_id=6778, resource_name="RFIs", resource_id=n,
                                 event_type="update", user_id=1)
                for n in (1, 2)
            ]  # fmt: skip
            api.events.PublishEvents(events_pb2.PublishEventsRequest(events=events))
            deadline = time.monotonic() + 30
            while receiver.waiting < 2:
                assert time.monotonic() < deadline, "the receiver did not get both requests"
                time.sleep(0.05)

            status = _status_until(store, lambda s: s["in_flight"] == 2, "both held attempts in flight")
            assert status["store"] == store.replace(":hunter2@", ":•••@")
            assert "hunter2" not in json.dumps(status)
            assert status["due"] == 2, "the paused hook's two deliveries"
            assert status["due_at_least"] is False
            since_publish = (datetime.fromisoformat(status["time"]) - before).total_seconds()
            assert 0 < status["oldest_due_age_seconds"] <= since_publish
            assert status["last_minute"]["queued"] == 4
            assert status["last_minute"]["delivered"] == 0
            [node] = status["nodes"]
            assert (node["pid"], node["in_flight"], node["version"]) == (proc.pid, 2, __version__)

            table = _status(store, "--delivery-lease", str(LEASE))
            assert table.returncode == 0, table.stderr
            assert "1 live node, 2 in flight" in table.stdout
            assert re.search(r"^due +2 due now, the oldest due for \d+s$", table.stdout, re.MULTILINE), table.stdout
            assert "hunter2" not in table.stdout

            receiver.release()
            status = _status_until(
                store, lambda s: s["in_flight"] == 0 and s["last_minute"]["delivered"] == 2, "both delivered"
            )
            assert receiver.answered == 2
            assert status["due"] == 2, "the paused hook's backlog stays"
            assert not sink.received
    finally:
        api.channel.close()
        proc.terminate()
        assert proc.wait(30) == 0
