"""The CLI's pieces that need no server: help texts, value parsing, the JSON rules, import isolation."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from datetime import UTC, datetime, timedelta

import click
import pytest
from click.testing import CliRunner
from rich.console import Console

from tidings_client.cli.main import root
from tidings_client.cli.output import MIN_FREE_TEXT, fitted_table, jsonable
from tidings_client.cli.params import parse_duration, parse_event, parse_status_ranges, parse_time
from tidings_client.types import Delivery, DeliveryStatus, StatusRange


def commands(group: click.Group, path: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    found = []
    for name, command in sorted(group.commands.items()):
        found.append((*path, name))
        if isinstance(command, click.Group):
            found += commands(command, (*path, name))
    return found


@pytest.mark.parametrize("path", [(), *commands(root)], ids=lambda p: " ".join(p) or "tidings")
def test_every_command_has_help_with_examples(path: tuple[str, ...]) -> None:
    result = CliRunner().invoke(root, [*path, "--help"], prog_name="tidings")
    assert result.exit_code == 0, result.output
    assert "Usage: tidings" in result.output
    assert "Example" in result.output


def test_every_rpc_command_is_there() -> None:
    assert set(commands(root)) >= {
        ("hooks", name) for name in ("create", "list", "get", "show", "update", "pause", "resume", "delete", "test")
    } | {("events", n) for n in ("add", "remove", "list")} | {("catalog", n) for n in ("resources", "formats")} | {
        ("deliveries", n) for n in ("list", "show", "redeliver", "watch")
    } | {("publish",), ("completion",)}


def test_library_import_loads_no_cli_or_server_code() -> None:
    probe = (
        "import sys, tidings_client; "
        "c = tidings_client.Client('127.0.0.1:1'); c.close(); "
        "print(sorted({m.split('.')[0] for m in sys.modules} & {'click', 'rich', 'trio', 'httpx', 'tidings_server'}))"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_durations() -> None:
    assert parse_duration("1h30m") == timedelta(hours=1, minutes=30)
    assert parse_duration("100ms") == timedelta(milliseconds=100)
    assert parse_duration("90") == timedelta(seconds=90)
    assert parse_duration("2d") == timedelta(days=2)
    for bad in ("", "soon", "5 s", "1h30", "-1s"):
        with pytest.raises(ValueError, match="not a duration"):
            parse_duration(bad)


def test_times() -> None:
    now = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)
    assert parse_time("2h", now) == datetime(2026, 11, 27, 10, 0, tzinfo=UTC)
    assert parse_time("2026-11-20T09:30:00Z") == datetime(2026, 11, 20, 9, 30, tzinfo=UTC)
    assert parse_time("2026-11-20") == datetime(2026, 11, 20, tzinfo=UTC)
    assert parse_time("2026-11-20T10:30:00+01:00") == datetime(2026, 11, 20, 9, 30, tzinfo=UTC)
    with pytest.raises(ValueError, match="not a time"):
        parse_time("yesterday")


def test_status_ranges_and_events() -> None:
    assert parse_status_ranges("408, 429,500-599") == (
        StatusRange(408, 408),
        StatusRange(429, 429),
        StatusRange(500, 599),
    )
    with pytest.raises(ValueError, match="not an HTTP status"):
        parse_status_ranges("5xx")
    assert parse_event("Change Order Packages:update") == ("Change Order Packages", "update")
    assert parse_event("RFIs:*") == ("RFIs", "*")
    for bad in ("RFIs", ":create", "RFIs:"):
        with pytest.raises(ValueError, match="RESOURCE:EVENT_TYPE"):
            parse_event(bad)


def test_json_rules() -> None:
    d = Delivery(
        name="h/deliveries/e",
        hook="h",
        status=DeliveryStatus.RETRYING,
        event=None,
        attempt_count=2,
        create_time=datetime(2026, 11, 20, 9, 30, 0, 500000, tzinfo=UTC),
        update_time=None,
        next_attempt_time=None,
        last_error="",
        last_response_status=503,
        body=b'{"a": 1}',
    )
    data = jsonable(d)
    assert list(data)[:4] == ["name", "hook", "status", "event"]  # field order is the dataclass's
    assert data["status"] == "retrying"
    assert data["create_time"] == "2026-11-20T09:30:00.500000Z"
    assert data["update_time"] is None
    assert data["body"] == "eyJhIjogMX0="
    assert jsonable({"latency": timedelta(milliseconds=84)}) == {"latency": 0.084}
    json.dumps(data)  # nothing left that JSON cannot carry


def test_a_fitted_table_gives_way_column_by_column_and_never_wraps() -> None:
    headers = ["EVENT ID", "STATUS", "HOOK", "RESOURCE", "TRIES", "HTTP"]
    rows = [["01JDELIVERY000000000000001", "failed", "01jdhook0000000000000000ab", "Submittal Packages", "12", "503"]]
    error = ["connect error: [Errno 111] Connection refused\nwhile POSTing " * 3]

    def drawn(width: int) -> tuple[list[str], list[str]]:
        t = fitted_table(headers, rows, error, width, droppable=("TRIES", "RESOURCE", "HTTP"))
        console = Console(width=width, record=True, file=io.StringIO())
        console.print(t)
        return [str(c.header) for c in t.columns], console.export_text().splitlines()

    wide, lines = drawn(160)
    assert wide == [*headers, "ERROR"]
    assert len(lines) == 2  # the header and one row: the error's newline and length cut to one line
    assert lines[1].endswith("…")
    narrow, lines = drawn(90)  # the columns take 97 with their gaps: TRIES, then RESOURCE give way
    assert narrow == ["EVENT ID", "STATUS", "HOOK", "HTTP", "ERROR"]
    assert len(lines) == 2
    assert all(len(line) <= 90 for line in lines)
    assert len(lines[1]) - lines[0].index("ERROR") >= MIN_FREE_TEXT - 1
    least, lines = drawn(60)  # the identifying columns stay even when nothing else fits
    assert least[:3] == ["EVENT ID", "STATUS", "HOOK"]
    assert "HTTP" not in least
