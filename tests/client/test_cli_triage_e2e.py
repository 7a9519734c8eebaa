"""What a new admin tripped over, end to end: the real ``tidings`` against a real server process."""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from tests.client.cli_run import TIDINGS, Cli, Terminal, in_terminal, screen_lines, server_process
from tests.client.test_cli_history_e2e import eventually, make_hook, publish
from tests.http_sink import Sink
from tests.ports import free_port
from tidings_client import Client


class Watcher:
    """``tidings --json deliveries watch`` in the background, its lines and its notes collected."""

    def __init__(self, cli: Cli, *args: str) -> None:
        self.proc = subprocess.Popen(
            [str(TIDINGS), "--json", "deliveries", "watch", *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=cli.env(),
        )
        self.lines: list[dict[str, Any]] = []
        self.notes: list[str] = []
        self.arrived = threading.Condition()
        threading.Thread(target=self._read, args=(self.proc.stdout, self.lines, json.loads), daemon=True).start()
        threading.Thread(target=self._read, args=(self.proc.stderr, self.notes, str.strip), daemon=True).start()

    def _read(self, pipe: Any, into: list[Any], parse: Any) -> None:
        for line in pipe:
            with self.arrived:
                into.append(parse(line))
                self.arrived.notify_all()

    def wait(self, ready: Any, timeout: float = 30) -> None:
        with self.arrived:
            assert self.arrived.wait_for(ready, timeout), (self.lines, self.notes)

    def seen(self) -> list[tuple[str, str]]:
        with self.arrived:
            return [(c["delivery"]["event"]["id"], c["delivery"]["status"]) for c in self.lines]

    def stop(self) -> int:
        self.proc.terminate()
        return self.proc.wait(10)


def test_watch_shows_the_events_user_and_time(cli: Cli, project: str, sink: Sink) -> None:
    hook = make_hook(cli, project, sink.url(), "RFIs:update")
    watcher = Watcher(cli, hook, "--status", "delivered")
    try:
        watcher.wait(lambda: any(n.startswith("watching") for n in watcher.notes))
        event_id = publish(cli, project, "RFIs", 54321)
        watcher.wait(lambda: len(watcher.lines) >= 1)
    finally:
        watcher.stop()
    [change] = watcher.lines
    event = change["delivery"]["event"]
    assert (event["id"], event["user_id"]) == (event_id, 5447)
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z", event["timestamp"])
    listed = cli.ok("--json", "deliveries", "list", hook).json()
    assert listed[0]["event"] == event  # the watch and the list show one event alike

    published: list[str] = []
    with Client(cli.target) as client:
        # Published once the stream is open, from inside the watch: the change must follow.
        changes = client.watch(hook, on_connected=lambda _: published.append(publish(cli, project, "RFIs", 54322)))
        try:
            first = next(changes)
        finally:
            changes.close()
    assert first.delivery.event is not None
    assert [(first.delivery.event.id, first.delivery.event.user_id)] == [(p, 5447) for p in published]
    assert first.delivery.event.timestamp is not None


def test_redeliver_with_nothing_matching_says_no_more(cli: Cli, project: str, sink: Sink) -> None:
    hook = make_hook(cli, project, sink.url(), "RFIs:update")
    publish(cli, project, "RFIs", 1)
    eventually(lambda: cli.ok("--json", "deliveries", "list", hook, "--status", "delivered").json())
    args = ["deliveries", "redeliver", "--parent", hook, "--status", "failed", "--status", "discarded", "--yes"]
    assert cli.ok("--json", *args).json() == {"queued_count": 0, "names": [], "more": False}
    plain = cli.ok(*args)
    assert "queued 0 deliveries again" in plain.out
    assert "more" not in plain.err


def test_redeliver_in_batches_of_one_goes_through_every_failure(cli: Cli, project: str, refusing_url: str) -> None:
    hook = make_hook(cli, project, refusing_url, "RFIs:update")
    ids = {publish(cli, project, "RFIs", n) for n in (1, 2, 3)}
    eventually(lambda: len(cli.ok("--json", "deliveries", "list", hook, "--status", "failed").json()) == 3)
    # Each redelivery fails again at once, yet the sweep goes on to the older ones.
    result = cli.ok(
        "--json", "deliveries", "redeliver", "--parent", hook, "--status", "failed", "--batch", "1", "--yes"
    )
    body = result.json()
    assert body["more"] is False
    assert {n.rsplit("/", 1)[-1] for n in body["names"]} == ids
    assert body["queued_count"] == 3


@pytest.mark.parametrize(
    ("payload_format", "marked"),
    [
        ("procore.v4", lambda r, body: (body["resource_id"], body["user_id"]) == ("0", "0")),
        (
            "procore.v3",
            lambda r, body: body["metadata"]["source_application_id"] == "tidings-test" and body["resource_id"] == 0,
        ),
        ("standard-webhooks.v1", lambda r, body: body["data"]["metadata"]["source_application_id"] == "tidings-test"),
        ("cloudevents.structured.v1", lambda r, body: body["tidingstest"] == "true"),
        ("cloudevents.binary.v1", lambda r, body: r.header("ce-tidingstest") == "true"),
    ],
)
def test_a_test_send_is_recognisable(cli: Cli, project: str, sink: Sink, payload_format: str, marked: Any) -> None:
    args = ["--json", "hooks", "create", "--project", project, "--url", sink.url("/t"), "--format", payload_format]
    hook = cli.ok(*args).json()["hook"]["name"]
    cli.ok("hooks", "test", hook)
    assert sink.wait_until(lambda: bool(sink.requests), 10)
    [request] = sink.requests
    assert request.header("Tidings-Test") == "true"
    assert marked(request, json.loads(request.body))


def test_create_without_signing_prints_no_secret(cli: Cli, project: str) -> None:
    args = ["hooks", "create", "--project", project, "--url", "http://127.0.0.1:9/in", "--format", "procore.v4"]
    shown = cli.ok(*args, "--no-signing")
    assert "whsec_" not in shown.out + shown.err
    assert "shown once" not in shown.err
    assert "rotate-secret" in shown.err  # how to start signing later
    # Piped (a log, a CI job), the remark is one line: the commands it names are whole.
    name = re.search(r"companies/\S+/hooks/\S+", shown.out)
    assert name is not None, shown.out
    [remark] = [line for line in shown.err.splitlines() if line.startswith("Signing is off")]
    assert f"`tidings hooks update {name.group(0)} --signing`" in remark
    printed = cli.ok("--json", *args, "--no-signing").json()["hook"]
    assert (printed["signing_secret"], printed["signing_disabled"]) == ("", True)


def test_watch_rides_out_a_server_restart(tmp_path: Path, sink: Sink) -> None:
    listen = f"127.0.0.1:{free_port()}"
    project = "8/4242"
    with server_process(tmp_path, listen) as target:
        cli = Cli(target, tmp_path / "no-config.toml")
        hook = make_hook(cli, project, sink.url(), "RFIs:update")
        watcher = Watcher(cli, hook, "--status", "delivered", "--reconnect-for", "30s")
        watcher.wait(lambda: any(n.startswith("watching") for n in watcher.notes))
        before = publish(cli, project, "RFIs", 1)
        watcher.wait(lambda: (before, "delivered") in watcher.seen())
    # The server is gone: the watch says it is reconnecting instead of giving up.
    watcher.wait(lambda: any("reconnecting" in n for n in watcher.notes))
    assert watcher.proc.poll() is None
    with server_process(tmp_path, listen):
        watcher.wait(lambda: any("reconnected" in n for n in watcher.notes))
        after = publish(cli, project, "RFIs", 2)
        watcher.wait(lambda: (after, "delivered") in watcher.seen())
        assert watcher.stop() != 0  # terminated by us, still watching
    # From its token: nothing missed, nothing shown twice.
    assert watcher.seen() == [(before, "delivered"), (after, "delivered")]
    lost = next(n for n in watcher.notes if "reconnecting" in n)
    assert target in lost
    assert "error" not in " ".join(watcher.notes).lower()


def test_a_live_watch_says_it_is_reconnecting_in_one_line_at_120_columns(tmp_path: Path, sink: Sink) -> None:
    """On a 120×24 terminal, the notice of a lost server is the live table's one title line,
    what is happening first, and the table stays under it (a wrapped title pushed rows off)."""
    listen = f"127.0.0.1:{free_port()}"
    project = "8/4243"
    with server_process(tmp_path, listen) as target:
        cli = Cli(target, tmp_path / "no-config.toml")
        make_hook(cli, project, sink.url(), "RFIs:update")  # a generated, 26-character id
        args = ["deliveries", "watch", "companies/8/projects/4243", "--reconnect-for", "30s", "--rows", "50"]
        terminal = Terminal(cli, *args, columns=120, lines=24)
        try:
            terminal.wait_for("Watching companies/8/projects/4243 (Ctrl-C to stop)")
            time.sleep(1)  # the stream open, so that the stop is a lost connection
        except BaseException:
            terminal.proc.kill()
            raise
    try:
        terminal.wait_for("reconnecting in")
        with server_process(tmp_path, listen):
            # Reconnected: the title is the watch's own again, and the watch never exited.
            eventually(
                lambda: (
                    [line.rstrip() for line in terminal.frames()[-1][:1]]
                    == ["Watching companies/8/projects/4243 (Ctrl-C to stop)"]
                )
            )
            assert terminal.proc.poll() is None
    finally:
        code = terminal.interrupt()
    assert code == 130  # Ctrl-C: no error line, no traceback
    assert "error:" not in terminal.drawn
    assert "Traceback" not in terminal.drawn
    [*_, frame] = [f for f in terminal.frames() if "lost the connection" in " ".join(" ".join(f).split())]
    assert all(len(line) <= 120 for line in frame), frame
    assert frame[0].startswith(f"lost the connection to {target} (UNAVAILABLE); reconnecting in "), frame
    assert " — Watching compan" in frame[0]  # the rest of the title, cut at the edge
    assert frame[1].split()[:2] == ["CHANGED", "STATUS"], frame
    assert len(frame) <= 24


def test_a_project_history_fits_a_120_column_terminal(cli: Cli, sink: Sink, refusing_url: str) -> None:
    """A real server's project history on 120 columns: generated hook ids, one delivered, one
    refused (400), one retrying a closed port: a line each, the HOOK column telling them apart."""
    project = "8/4244"
    hooks = [make_hook(cli, project, url, "RFIs:update") for url in (sink.url(), refusing_url, "http://127.0.0.1:9/in")]
    event = publish(cli, project, "RFIs", 54321)
    parent = "companies/8/projects/4244"
    statuses = {"delivered", "failed", "retrying"}
    eventually(lambda: {d["status"] for d in cli.ok("--json", "deliveries", "list", parent).json()} == statuses)
    code, text = in_terminal(cli, "deliveries", "list", parent, columns=120, lines=40)
    assert code == 0, text
    lines = screen_lines(text)
    assert all(len(line) <= 120 for line in lines), max(lines, key=len)
    header, rows = lines[0], [line for line in lines if line.startswith(event)]
    assert header.split()[:4] == ["EVENT", "ID", "CREATED", "STATUS"]
    assert "HOOK" in header
    assert len(rows) == 3  # one line each, nothing wrapped onto a second
    shown = {tuple(row.split()[2:4]) for row in rows}
    assert shown == {
        (status, hook.rsplit("/", 1)[-1])
        for status, hook in zip(["delivered", "failed", "retrying"], hooks, strict=True)
    }
    assert lines[-1] == "3 deliveries"


def test_a_piped_watch_is_tab_separated(cli: Cli, sink: Sink) -> None:
    """Piped, a watch prints a change a line with tab-separated fields, as a piped list does,
    however long the hook id (the console expanded the tabs into spaces and wrapped at 200)."""
    project, long_id = "8/4245", "erp-sync-for-the-accounts-payable-team-in-the-north-region-x"
    cli.ok("hooks", "create", "--project", project, "--id", long_id, "--url", sink.url(), "--format", "procore.v4",
           "--event", "RFIs:update")  # fmt: skip
    args = ["deliveries", "watch", "companies/8/projects/4245", "--status", "delivered", "--count", "1"]
    proc = subprocess.Popen(
        [str(TIDINGS), *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=cli.env()
    )
    try:
        assert proc.stderr is not None
        assert proc.stderr.readline().startswith("watching companies/8/projects/4245 on ")
        event = publish(cli, project, "RFIs", 54321)
        out, _ = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0
    [line] = out.splitlines()
    changed, event_id, created, *rest = line.split("\t")
    assert (event_id, rest) == (event, ["delivered", long_id, "RFIs", "54321", "update", "1", "200", ""])
    assert all(re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\dZ", t) for t in (changed, created)), line


def test_a_watch_gives_up_after_its_reconnect_time(tmp_path: Path) -> None:
    listen = f"127.0.0.1:{free_port()}"
    with server_process(tmp_path, listen) as target:
        cli = Cli(target, tmp_path / "no-config.toml")
        watcher = Watcher(cli, "companies/8/projects/1", "--reconnect-for", "2s")
        watcher.wait(lambda: any(n.startswith("watching") for n in watcher.notes))
    assert watcher.proc.wait(30) == 5
    assert any("reconnecting" in n for n in watcher.notes)
    assert "UNAVAILABLE" in watcher.notes[-1]


def test_make_serve_on_a_taken_port_says_so_in_one_line() -> None:
    root = Path(__file__).resolve().parents[2]
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = subprocess.run(
            ["make", "--no-print-directory", "serve", f"LISTEN=127.0.0.1:{port}", "STORE=memory:"],
            cwd=root,
            # As typed at a prompt, not as a sub-make of `make test`.
            env={k: v for k, v in os.environ.items() if k not in ("MAKEFLAGS", "MAKELEVEL", "MFLAGS")},
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert result.returncode != 0
    # make adds its own "make: *** [serve] Error 2" after the server's line.
    lines = [
        line for line in result.stderr.splitlines() if line.strip() and not re.match(r"make(\[\d+\])?: \*\*\*", line)
    ]
    assert lines == [
        f"tidings-server: --listen: 127.0.0.1:{port} is already in use (another tidings-server?); pick another"
        f" address, e.g. --listen 127.0.0.1:{port + 1} (with make: make serve LISTEN=127.0.0.1:{port + 1})"
    ]
    # On a fresh checkout the first `make serve` also makes the local secrets key, and says so.
    assert [line for line in result.stdout.splitlines() if not line.startswith("created var/secrets.key")] == []
