"""``tidings-server status`` beside a running server on SQLite: the real command, a real server
delivering to a real receiver, one hook healthy and one failing."""

from __future__ import annotations

import json
import os
import subprocess
import threading
from pathlib import Path

from tests.harness import Api
from tests.http_sink import running_sink
from tests.test_cli import BIN, start
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


def test_status_beside_a_running_sqlite_server_reports_nodes_rates_and_failing_hooks(tmp_path: Path) -> None:
    store = f"sqlite:///{tmp_path / 'db.sqlite3'}"
    with running_sink() as sink:
        sink.answers["/bad"] = [500]
        proc, port = start(tmp_path, "--allow-http", "--allow-private-destinations")
        threading.Thread(target=lambda: proc.stderr and proc.stderr.read(), daemon=True).start()
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
            assert status["store"] == store
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
