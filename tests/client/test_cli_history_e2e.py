"""The delivery-history commands end to end: a real ``tidings`` process against a real server process."""

from __future__ import annotations

import json
import subprocess
import threading
import time
from collections.abc import Callable
from typing import Any

from tests.client.cli_run import TIDINGS, Cli, assert_one_line_error
from tests.http_sink import Sink

# What the server must answer for these tests to pass (tidings.v1.DeliveryService).
SERVER_MUST_SUPPORT = [
    "DeliveryService.ListDeliveries",
    "DeliveryService.GetDelivery",
    "DeliveryService.GetHookOverview",
    "DeliveryService.WatchDeliveries",
    "DeliveryService.RedeliverDeliveries",
    "DeliveryService.SendTestEvent",
]


def eventually(check: Callable[[], Any], timeout: float = 15) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.2)


def make_hook(cli: Cli, project: str, url: str, *events: str) -> str:
    args = ["--json", "hooks", "create", "--project", project, "--url", url, "--format", "procore.v4"]
    for event in events:
        args += ["--event", event]
    return str(cli.ok(*args).json()["hook"]["name"])


def publish(cli: Cli, project: str, resource: str, resource_id: int, event_type: str = "update") -> str:
    [result] = cli.ok(
        "--json",
        "publish",
        "--project",
        project,
        "--resource",
        resource,
        "--resource-id",
        str(resource_id),
        "--event-type",
        event_type,
        "--user-id",
        "5447",
    ).json()
    return str(result["event_id"])


def test_history_search_details_and_overview(cli: Cli, project: str, sink: Sink) -> None:
    hook = make_hook(cli, project, sink.url(), "RFIs:update", "Submittals:update")
    watcher = subprocess.Popen(
        [str(TIDINGS), "--json", "deliveries", "watch", hook, "--status", "delivered"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=cli.env(),
    )
    lines: list[dict[str, Any]] = []
    arrived = threading.Condition()

    def read() -> None:
        assert watcher.stdout is not None
        for line in watcher.stdout:
            with arrived:
                lines.append(json.loads(line))
                arrived.notify_all()

    threading.Thread(target=read, daemon=True).start()
    # The watch follows changes from the moment it connects: until it shows one, it may not
    # have connected yet, so a primer event is published until one shows up.
    primers = set()
    with arrived:
        while not lines:
            primers.add(publish(cli, project, "RFIs", 1))
            arrived.wait(1.0)
    ids = [publish(cli, project, "RFIs", 54321), publish(cli, project, "RFIs", 54322)]
    ids.append(publish(cli, project, "Submittals", 777))
    with arrived:
        assert arrived.wait_for(lambda: set(ids) <= {c["delivery"]["event"]["id"] for c in lines}, 30)
    watcher.terminate()
    watcher.wait(10)
    assert {c["delivery"]["event"]["id"] for c in lines} <= set(ids) | primers
    assert all(c["delivery"]["status"] == "delivered" for c in lines)

    eventually(
        lambda: len(cli.ok("--json", "deliveries", "list", hook, "--status", "delivered").json()) == 3 + len(primers)
    )
    listed = cli.ok("--json", "deliveries", "list", hook).json()
    assert [d["event"]["id"] for d in listed][:3] == list(reversed(ids))  # newest first
    assert {d["event"]["id"] for d in listed[3:]} == primers
    by_id = cli.ok("--json", "deliveries", "list", hook, "--resource-id", "54321").json()
    assert [d["event"]["id"] for d in by_id] == [ids[0]]
    rfis = cli.ok("--json", "deliveries", "list", hook, "--resource-name", "RFIs", "--status", "delivered").json()
    assert {d["event"]["id"] for d in rfis} == set(ids[:2]) | primers
    custom = cli.ok("--json", "deliveries", "list", hook, "--filter", 'resource_name = "Submittals"').json()
    assert [d["event"]["id"] for d in custom] == [ids[2]]
    by_project = cli.ok("--json", "deliveries", "list", f"companies/{project.replace('/', '/projects/')}").json()
    assert {d["name"] for d in by_project} == {d["name"] for d in listed}
    assert "delivered" in cli.ok("deliveries", "list", hook).out

    detail = cli.ok("--json", "deliveries", "show", listed[0]["name"]).json()
    assert detail["attempts"][0]["response_status"] == 200
    assert detail["body"]
    assert "Attempts" in cli.ok("deliveries", "show", listed[0]["name"]).out

    overview = cli.ok("--json", "hooks", "show", hook).json()
    assert overview["delivered_count"] == 3 + len(primers)
    assert overview["success_rate"] == 1.0
    assert "100.0%" in cli.ok("hooks", "show", hook).out
    assert cli.ok("--json", "hooks", "test", hook).json()["response_status"] == 200
    assert_one_line_error(cli("deliveries", "show", f"{hook}/deliveries/01JN0000000000000000000000"), 3, "NOT_FOUND")


def test_failed_deliveries_and_redelivery(cli: Cli, project: str, refusing_url: str) -> None:
    hook = make_hook(cli, project, refusing_url, "RFIs:create")
    event_id = publish(cli, project, "RFIs", 1, "create")
    failed = eventually(lambda: cli.ok("--json", "deliveries", "list", hook, "--status", "failed").json())
    assert failed[0]["event"]["id"] == event_id
    assert failed[0]["last_response_status"] == 400
    assert cli("hooks", "test", hook).code == 1  # the endpoint answered 400

    queued = cli.ok("--json", "deliveries", "redeliver", failed[0]["name"]).json()
    assert queued["queued_count"] == 1
    again = eventually(
        lambda: [d for d in cli.ok("--json", "deliveries", "list", hook).json() if d["attempt_count"] >= 2]
    )
    assert again[0]["status"] == "failed"
    bulk = cli.ok("--json", "deliveries", "redeliver", "--parent", hook, "--status", "failed", "--yes").json()
    assert bulk["queued_count"] >= 1

    cli.ok("hooks", "update", hook, "--status", "disabled")
    assert_one_line_error(cli("deliveries", "redeliver", failed[0]["name"]), 4, "FAILED_PRECONDITION")


def test_a_server_message_echoing_markup_is_printed_as_it_is(cli: Cli, project: str, sink: Sink) -> None:
    hook = make_hook(cli, project, sink.url(), "RFIs:update")
    result = cli("deliveries", "list", hook, "--event-type", "[/x]")
    assert_one_line_error(result, 2, "INVALID_ARGUMENT")
    assert "[/x]" in result.err
