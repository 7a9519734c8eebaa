"""The delivery-history commands as a real ``tidings`` process, against the scripted DeliveryService.

The server's DeliveryService is not there yet; these check the CLI's side: the requests it
sends, how it shows the answers, exit codes, redelivery batches and watch resumption.
"""

from __future__ import annotations

import base64
import json
import re
from pathlib import Path

import grpc
import pytest
import trustme

from tests.client.cli_run import Cli, assert_one_line_error, in_terminal, screen_lines
from tests.client.scripted import HOOK, ScriptedServer, Stream, change, delivery, overview
from tidings.v1 import deliveries_pb2

DELIVERED = deliveries_pb2.DELIVERY_STATUS_DELIVERED
FAILED = deliveries_pb2.DELIVERY_STATUS_FAILED
RETRYING = deliveries_pb2.DELIVERY_STATUS_RETRYING


@pytest.fixture
def cli(scripted: ScriptedServer, tmp_path: Path) -> Cli:
    return Cli(scripted.target, tmp_path / "no-config.toml")


def test_list_sends_the_filters_and_shows_rows(cli: Cli, scripted: ScriptedServer) -> None:
    failed = delivery(5, FAILED)
    failed.last_error = "connect: [/oops] [bold]refused"  # server text, not markup
    scripted.service.script.deliveries = [failed, delivery(4), delivery(3, RETRYING)]
    args = ["--resource-id", "54321", "--resource-name", "RFIs", "--status", "failed", "--status", "retrying"]
    args += ["--event-type", "update", "--since", "2026-11-20T09:00:00Z", "--until", "2026-11-21"]
    args += ["--filter", "response_status >= 500"]
    listed = cli.ok("--json", "deliveries", "list", HOOK, *args).json()
    assert [d["event"]["resource_id"] for d in listed] == [54005, 54004, 54003]
    assert listed[0]["status"] == "failed"
    assert listed[0]["create_time"] == "2026-11-20T09:35:00Z"
    request = scripted.service.requests("ListDeliveries")[0]
    assert isinstance(request, deliveries_pb2.ListDeliveriesRequest)
    assert (request.parent, request.resource_id, request.resource_name) == (HOOK, 54321, "RFIs")
    assert list(request.statuses) == [FAILED, RETRYING]
    assert request.start_time.ToJsonString() == "2026-11-20T09:00:00Z"
    assert request.end_time.ToJsonString() == "2026-11-21T00:00:00Z"
    assert request.filter == "response_status >= 500"

    table = cli.ok("deliveries", "list", HOOK).out
    rows = [line for line in table.splitlines() if "01JDELIVERY" in line]
    assert len(rows) == 3
    assert "failed" in rows[0]
    assert "connect: [/oops] [bold]refused" in rows[0]


def test_list_limit(cli: Cli, scripted: ScriptedServer) -> None:
    scripted.service.script.deliveries = [delivery(n) for n in range(9, 0, -1)]
    limited = cli.ok("deliveries", "list", HOOK, "--limit", "4")
    assert sum("01JDELIVERY" in line for line in limited.out.splitlines()) == 4
    assert "more" in limited.err
    assert len(cli.ok("--json", "deliveries", "list", HOOK, "--all").json()) == 9
    assert cli("deliveries", "list", HOOK, "--since", "last tuesday").code == 2
    assert "give PARENT" in cli("deliveries", "list").err


def test_show_one_delivery(cli: Cli, scripted: ScriptedServer) -> None:
    d = delivery(5, FAILED, full=True)
    scripted.service.script.deliveries = [d]
    shown = cli.ok("deliveries", "show", d.name).out
    for fragment in ("Attempts", "503", "HTTP 503 Service Unavailable", "RFIs 54005", "••••••4e94b", '"id": 54005'):
        assert fragment in shown, fragment
    data = cli.ok("--json", "deliveries", "show", d.name).json()
    assert base64.b64decode(data["body"]) == d.body
    assert data["attempts"][0]["response_status"] == 503
    assert data["event"]["metadata"]["source_application_id"] == "procore"
    assert data["next_attempt_time"] is None
    assert_one_line_error(cli("deliveries", "show", f"{HOOK}/deliveries/nope"), 3, "NOT_FOUND", "nope")


def test_hook_overview(cli: Cli, scripted: ScriptedServer) -> None:
    scripted.service.script.overview = overview()
    data = cli.ok("--json", "hooks", "show", HOOK).json()
    assert data["hook"]["name"] == HOOK
    assert (data["delivered_count"], data["failed_count"], data["success_rate"]) == (40, 3, 0.8)
    assert data["latency_p50"] == 0.084
    text = cli.ok("hooks", "show", HOOK).out
    for fragment in ("80.0%", "84ms", "1.2s", "HTTP 503 Service Unavailable", "procore.v4"):
        assert fragment in text, fragment


def test_tls_and_token_options(tls_server: ScriptedServer, ca: trustme.CA, tmp_path: Path) -> None:
    tls_server.service.reset().overview = overview()
    me = ca.issue_cert("admin@tidings.test")
    ca.cert_pem.write_to_path(str(tmp_path / "ca.pem"))
    me.cert_chain_pems[0].write_to_path(str(tmp_path / "me.pem"))
    me.private_key_pem.write_to_path(str(tmp_path / "me.key"))
    cli = Cli(tls_server.target, tmp_path / "no-config.toml")
    flags = ["--ca-cert", str(tmp_path / "ca.pem"), "--tls-server-name", "tidings.test", "--token", "s3cret"]
    mine = ["--client-cert", str(tmp_path / "me.pem"), "--client-key", str(tmp_path / "me.key")]
    assert cli.ok("--json", *flags, *mine, "hooks", "show", HOOK).json()["hook"]["name"] == HOOK
    assert tls_server.service.received[0].metadata["authorization"] == "Bearer s3cret"
    # The same from a profile.
    config = tmp_path / "config.toml"
    config.write_text(
        f'[profiles.secure]\ntarget = "{tls_server.target}"\nca_cert = "{tmp_path / "ca.pem"}"\n'
        f'client_cert = "{tmp_path / "me.pem"}"\nclient_key = "{tmp_path / "me.key"}"\n'
        'tls_server_name = "tidings.test"\ntoken = "from-profile"\n'
    )
    assert cli.ok("--config", str(config), "--profile", "secure", "hooks", "show", HOOK).code == 0
    assert tls_server.service.received[1].metadata["authorization"] == "Bearer from-profile"
    # Without our certificate the server refuses the handshake; a key without its certificate is a usage error.
    assert_one_line_error(cli("--timeout", "5", *flags, "hooks", "show", HOOK), 5, "UNAVAILABLE")
    assert cli(*flags, "--client-key", str(tmp_path / "me.key"), "hooks", "show", HOOK).code == 2
    assert len(tls_server.service.received) == 2


def test_hook_test_exit_codes(cli: Cli, scripted: ScriptedServer) -> None:
    script = scripted.service.script
    script.test_response = deliveries_pb2.SendTestEventResponse(response_status=204)
    script.test_response.latency.FromMilliseconds(12)
    assert cli.ok("--json", "hooks", "test", HOOK).json()["response_status"] == 204
    script.test_response = deliveries_pb2.SendTestEventResponse(
        response_status=500, error="HTTP 500", response_excerpt=b"boom"
    )
    failed = cli("hooks", "test", HOOK)
    assert failed.code == 1
    assert "boom" in failed.out
    script.test_response = None  # the scripted hook is disabled
    assert_one_line_error(cli("hooks", "test", HOOK), 4, "FAILED_PRECONDITION")


def test_redeliver_one(cli: Cli, scripted: ScriptedServer) -> None:
    name = f"{HOOK}/deliveries/01JDELIVERY000000000000005"
    scripted.service.script.redeliveries = [
        deliveries_pb2.RedeliverDeliveriesResponse(queued_count=1, names=[name], more=False)
    ]
    assert cli.ok("--json", "deliveries", "redeliver", name).json() == {
        "queued_count": 1,
        "names": [name],
        "more": False,
    }
    [request] = scripted.service.requests("RedeliverDeliveries")
    assert isinstance(request, deliveries_pb2.RedeliverDeliveriesRequest)
    assert (request.name, request.parent) == (name, "")
    assert_one_line_error(cli("deliveries", "redeliver", name), 3, "NOT_FOUND")
    assert cli("deliveries", "redeliver").code == 2


def test_redeliver_by_filter_in_batches(cli: Cli, scripted: ScriptedServer) -> None:
    scripted.service.script.redeliveries = [
        deliveries_pb2.RedeliverDeliveriesResponse(queued_count=2, names=["d9", "d8"], more=True),
        deliveries_pb2.RedeliverDeliveriesResponse(queued_count=1, names=["d7"], more=False),
    ]
    args = ["--parent", HOOK, "--status", "failed", "--status", "discarded", "--filter", 'resource_name = "RFIs"']
    assert cli("deliveries", "redeliver", *args).code == 2  # no terminal to confirm on
    result = cli.ok("--json", "deliveries", "redeliver", *args, "--batch", "2", "--yes").json()
    assert result == {"queued_count": 3, "names": ["d9", "d8", "d7"], "more": False}
    requests = scripted.service.requests("RedeliverDeliveries")
    assert len(requests) == 2
    for r in requests:
        assert isinstance(r, deliveries_pb2.RedeliverDeliveriesRequest)
        assert (r.parent, r.limit) == (HOOK, 2)
        # One sweep: what it queued again is newer than its start, so not taken twice.
        assert re.fullmatch(
            r'\(\(status = "failed" OR status = "discarded"\) AND \(resource_name = "RFIs"\)\)'
            r' AND update_time < "\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d+Z"',
            r.filter,
        ), r.filter


def test_redeliver_stops_when_the_same_deliveries_come_back(cli: Cli, scripted: ScriptedServer) -> None:
    # Deliveries redelivered fast enough match `status = "delivered"` again: no endless loop.
    again = deliveries_pb2.RedeliverDeliveriesResponse(queued_count=2, names=["d2", "d1"], more=True)
    scripted.service.script.redeliveries = [again, again, again]
    result = cli.ok("--json", "deliveries", "redeliver", "--parent", HOOK, "--status", "delivered", "--yes").json()
    assert result["names"] == ["d2", "d1"]
    assert len(scripted.service.requests("RedeliverDeliveries")) == 2
    capped = deliveries_pb2.RedeliverDeliveriesResponse(queued_count=1, names=["d3"], more=True)
    scripted.service.script.redeliveries = [capped]
    assert cli.ok("deliveries", "redeliver", "--parent", HOOK, "--max", "1", "--yes").code == 0
    assert scripted.service.requests("RedeliverDeliveries")[-1].limit == 1  # type: ignore[attr-defined]


def test_watch_prints_changes_and_resumes(cli: Cli, scripted: ScriptedServer) -> None:
    scripted.service.script.streams = [
        Stream([change(1, RETRYING), change(2, DELIVERED)], grpc.StatusCode.UNAVAILABLE),
        Stream([change(3, FAILED)], None),
    ]
    watched = cli.ok("--json", "deliveries", "watch", HOOK, "--status", "failed", "--count", "3")
    lines = [json.loads(line) for line in watched.out.splitlines()]
    assert [c["resume_token"] for c in lines] == ["tok-1", "tok-2", "tok-3"]
    assert [c["delivery"]["status"] for c in lines] == ["retrying", "delivered", "failed"]
    requests = scripted.service.requests("WatchDeliveries")
    assert [r.resume_token for r in requests] == ["", "tok-2"]  # type: ignore[attr-defined]
    assert all(list(r.statuses) == [FAILED] for r in requests)  # type: ignore[attr-defined]

    scripted.service.reset().streams = [Stream([change(4, DELIVERED)], None)]
    piped = cli.ok("deliveries", "watch", HOOK, "--count", "1", "--resume-token", "tok-3")
    assert "delivered" in piped.out
    assert "01JDELIVERY000000000000004" in piped.out
    assert scripted.service.requests("WatchDeliveries")[0].resume_token == "tok-3"  # type: ignore[attr-defined]

    scripted.service.reset().streams = [Stream([], grpc.StatusCode.OUT_OF_RANGE, "resume_token too old")]
    assert_one_line_error(cli("deliveries", "watch", HOOK, "--resume-token", "tok-0"), 2, "OUT_OF_RANGE", "too old")


def test_watch_live_table_in_a_terminal(cli: Cli, scripted: ScriptedServer) -> None:
    scripted.service.script.streams = [Stream([change(1, RETRYING), change(1, DELIVERED), change(2, FAILED)], None)]
    code, text = in_terminal(cli, "deliveries", "watch", HOOK, "--count", "3", columns=160, lines=40)
    assert code == 0, text
    assert f"Watching {HOOK}" in text
    assert "\x1b[" in text  # styled: statuses in colour
    final = text.rsplit("Watching", 1)[1]
    # One row per delivery: delivery 1 shows only its latest status, newest change first.
    assert final.count("01JDELIVERY000000000000001") == 1
    assert final.index("01JDELIVERY000000000000002") < final.index("01JDELIVERY000000000000001")


def test_list_fits_a_120_column_terminal(cli: Cli, scripted: ScriptedServer) -> None:
    """A project's history on a 120-column terminal, with hook ids as long as generated ones
    (26 characters) and long errors: one line a delivery, compact times, nothing wrapped."""
    found = [delivery(n, FAILED) for n in range(1, 21)]
    generated = "companies/8/projects/6778/hooks/01jdhook0000000000000000ab"
    for d in found:
        d.hook, d.name = generated, d.name.replace(HOOK, generated)
        d.last_error = "connect error: [Errno 111] Connection refused while POSTing to the endpoint " * 2
    scripted.service.script.deliveries = found
    code, text = in_terminal(cli, "deliveries", "list", "companies/8/projects/6778", columns=120, lines=40)
    assert code == 0, text
    lines = screen_lines(text)
    assert all(len(line) <= 120 for line in lines), max(lines, key=len)
    header, rows = lines[0], [line for line in lines if "01JDELIVERY" in line]
    assert header.split()[:4] == ["EVENT", "ID", "CREATED", "STATUS"]
    assert "HOOK" in header
    assert "ERROR" in header
    assert len(rows) == 20  # one line each
    assert all(re.match(r"01JDELIVERY\d{15}  11-20 \d\d:\d\d  failed ", row) for row in rows), rows[0]
    assert all("01jdhook0000000000000000ab" in row and "…" in row for row in rows)
    # Piped, the same list keeps every column whole, for programs.
    piped = cli.ok("deliveries", "list", "companies/8/projects/6778").out.splitlines()
    assert piped[0].split("\t") == [
        "EVENT ID", "CREATED", "STATUS", "HOOK", "RESOURCE", "RESOURCE ID", "EVENT", "TRIES", "HTTP", "ERROR"
    ]  # fmt: skip
    assert piped[1].split("\t")[1] == "2026-11-20 09:31:00Z"
    assert piped[1].split("\t")[-1] == found[0].last_error


def test_watch_fits_a_120_column_terminal(cli: Cli, scripted: ScriptedServer) -> None:
    """30 changes with long errors on a 120×24 terminal: one line each, the newest on screen."""
    changes = [change(n, FAILED) for n in range(1, 31)]
    for c in changes:
        c.delivery.last_error = "connect error: [Errno 111] Connection refused while POSTing to the endpoint " * 2
    scripted.service.script.streams = [Stream(changes, None)]
    code, text = in_terminal(
        cli, "deliveries", "watch", "companies/8/projects/6778", "--count", "30", "--rows", "50", columns=120, lines=24
    )
    assert code == 0, text
    lines = screen_lines(text.rsplit("Watching", 1)[1])
    assert all(len(line) <= 120 for line in lines), max(lines, key=len)
    rows = [line for line in lines if "01JDELIVERY" in line]
    assert len(rows) == 24 - 3  # as many as fit under the title and the header
    assert "01JDELIVERY000000000000030" in rows[0]  # newest first, on screen
    # Compact times: 09:30:05 for today, 11-20 09:30 for an earlier day (these changes are older).
    assert all(re.match(r"11-20 \d\d:\d\d  ", row) for row in rows), rows[0]
    assert "HOOK" in lines[1]
    assert all("procore-sync" in row for row in rows)
    assert all("…" in row for row in rows)  # the long error is cut, not wrapped
