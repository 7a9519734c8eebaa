"""``serve --processes 2`` on PostgreSQL: two children share the port and the work, a child
killed -9 is restarted, and SIGTERM stops them all."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import httpx
from prometheus_client.parser import text_string_to_metric_families

from tests.cluster.nodes import BIN, LEASE, running_receiver
from tests.harness import SECRETS_ENV, Api
from tests.ports import free_port
from tidings.v1 import events_pb2, hooks_pb2
from tidings_server import __version__

PROJECT = "companies/8/projects/6778"


def _live_pids(store: str) -> set[int]:
    shown = subprocess.run([str(BIN), "status", "--store", store, "--json"], capture_output=True, text=True, timeout=60)
    assert shown.returncode == 0, shown.stderr
    nodes = json.loads(shown.stdout)["nodes"]
    assert {n["version"] for n in nodes} <= {__version__}  # each node recorded the version it runs
    return {n["pid"] for n in nodes}


def _publish(api: Api, first: int, count: int) -> set[str]:
    events = [
        events_pb2.Event(company_id=8, project_id=6778, resource_name="RFIs", resource_id=first + i,
                         event_type="update", user_id=1)
        for i in range(count)
    ]  # fmt: skip
    return {r.event_id for r in api.events.PublishEvents(events_pb2.PublishEventsRequest(events=events)).results}


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


@contextmanager
def _two_processes(store: str, *args: str) -> Iterator[tuple[subprocess.Popen[str], int, list[str]]]:
    """``serve --processes 2`` on ``store``: the supervisor, the port it serves, and its stderr
    lines so far (drained on a thread from then on); killed at the end if still running."""
    supervisor = subprocess.Popen(
        [str(BIN), "serve", "--processes", "2", "--listen", "127.0.0.1:0", "--store", store,
         "--allow-http", "--allow-private-destinations", "--delivery-lease", LEASE, *args],
        stderr=subprocess.PIPE, text=True, env={**os.environ, **SECRETS_ENV},
    )  # fmt: skip
    assert supervisor.stderr is not None
    lines: list[str] = []
    port = 0
    for line in supervisor.stderr:
        lines.append(line)
        if m := re.search(r"listening on port (\d+) \(2 processes", line):
            port = int(m.group(1))
            break
    assert port, "".join(lines)
    threading.Thread(target=lambda: lines.extend(supervisor.stderr or ()), daemon=True).start()
    try:
        yield supervisor, port, lines
    finally:
        if supervisor.poll() is None:
            supervisor.kill()
            supervisor.wait(10)


def _hook_to(api: Api, url: str) -> None:
    """A project hook on RFIs × update, delivering to ``url``."""
    hook = hooks_pb2.Hook(destination_url=url, payload_format="procore.v2")
    created = api.hooks.CreateHook(hooks_pb2.CreateHookRequest(parent=PROJECT, hook=hook))
    trigger = hooks_pb2.Trigger(resource_name="RFIs", event_type="update")
    api.hooks.BatchCreateTriggers(hooks_pb2.BatchCreateTriggersRequest(parent=created.name, triggers=[trigger]))


def test_two_processes_serve_deliver_and_a_killed_child_is_restarted(postgres_url: str) -> None:
    with running_receiver(0.001) as receiver, _two_processes(postgres_url) as (supervisor, port, lines):
        children = _live_pids(postgres_url)
        assert len(children) == 2
        assert supervisor.pid not in children
        api = Api.connect(port)
        _hook_to(api, receiver.url("h"))
        expected = {("h", e) for e in _publish(api, 1, 200)}
        assert not receiver.wait_for(expected, timeout=60)

        killed = min(children)
        os.kill(killed, signal.SIGKILL)
        deadline = time.monotonic() + 60
        while not (_live_pids(postgres_url) - children) and time.monotonic() < deadline:
            time.sleep(0.2)
        restarted = _live_pids(postgres_url) - children
        assert len(restarted) == 1, "the killed child was not restarted"
        assert any("child exited; restarting it" in line and str(killed) in line for line in lines)
        # The port is served throughout: new calls reach the live children.
        expected |= {("h", e) for e in _publish(api, 1000, 200)}
        assert not receiver.wait_for(expected, timeout=60)
        api.channel.close()

        supervisor.send_signal(signal.SIGTERM)
        assert supervisor.wait(30) == 0
        assert not any(_alive(pid) for pid in (children - {killed}) | restarted)


def _delivered(port: int) -> float:
    reply = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=10)
    assert reply.status_code == 200
    return sum(
        sample.value
        for family in text_string_to_metric_families(reply.text)
        for sample in family.samples
        if sample.name == "tidings_deliveries_total" and sample.labels.get("outcome") == "delivered"
    )


def test_each_process_serves_its_own_metrics_on_consecutive_ports(postgres_url: str) -> None:
    """``--metrics-listen HOST:P`` with two processes: one on P, one on P + 1, which together
    counted every delivery the receiver got."""
    metrics = free_port(2)  # one port for each process's metrics
    metrics_listen = ("--metrics-listen", f"127.0.0.1:{metrics}")
    with running_receiver(0.001) as receiver, _two_processes(postgres_url, *metrics_listen) as (supervisor, port, out):
        api = Api.connect(port)
        _hook_to(api, receiver.url("h"))
        expected = {("h", e) for e in _publish(api, 1, 100)}
        assert not receiver.wait_for(expected, timeout=60)
        api.channel.close()
        served = [line for line in out if '"metrics serving"' in line]
        assert sorted(json.loads(line)["port"] for line in served) == [metrics, metrics + 1]
        deadline = time.monotonic() + 30
        while (counted := _delivered(metrics) + _delivered(metrics + 1)) < 100 and time.monotonic() < deadline:
            time.sleep(0.1)
        assert counted == 100, "each delivery counted once, by the process that made it"

        supervisor.send_signal(signal.SIGTERM)
        assert supervisor.wait(30) == 0
