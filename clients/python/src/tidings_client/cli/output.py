"""How results reach the terminal: rich tables for people, stable JSON for programs.

JSON is the client's values as objects with their field names in a fixed order: times as RFC
3339 strings in UTC (``2026-11-20T09:30:00Z``), spans as seconds (a number), enumerations as
their lowercase names, bytes as base64 (the proto3 JSON rule), unset values as null.
"""

from __future__ import annotations

import base64
import dataclasses
import enum
import json
import os
import sys
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from rich.console import Console
from rich.table import Table
from rich.text import Text

from tidings_client.cli.params import format_duration
from tidings_client.types import DeliveryStatus, HookStatus

STATUS_STYLE: dict[str, str] = {
    DeliveryStatus.QUEUED: "cyan",
    DeliveryStatus.RETRYING: "yellow",
    DeliveryStatus.DELIVERED: "green",
    DeliveryStatus.FAILED: "bold red",
    DeliveryStatus.DISCARDED: "magenta",
    HookStatus.ACTIVE: "green",
    HookStatus.PAUSED: "yellow",
    HookStatus.DISABLED: "red",
}


def jsonable(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: jsonable(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat().replace("+00:00", "Z")
    if isinstance(value, timedelta):
        return value.total_seconds()
    if isinstance(value, bytes):
        return base64.b64encode(value).decode("ascii")
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    return value


def status_text(status: str) -> Text:
    return Text(str(status), style=STATUS_STYLE.get(status, ""))


def when(value: datetime | None) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%SZ") if value else "-"


def span(value: timedelta | None) -> str:
    return format_duration(value)


class Output:
    """Where a command writes: one object per invocation, chosen by ``--json``."""

    def __init__(self, as_json: bool) -> None:
        self.as_json = as_json
        # Piped output is read by programs and in logs: do not cut lines at 80 columns.
        width = None if sys.stdout.isatty() or os.environ.get("COLUMNS") else 200
        # No markup: server data ("[Errno 111]", URLs, bodies) is printed as it is.
        self.console = Console(width=width, highlight=False, markup=False)
        self.err = Console(stderr=True, highlight=False, markup=False, width=width)

    def json(self, value: Any, *, compact: bool = False) -> None:
        text = json.dumps(jsonable(value), ensure_ascii=False, indent=None if compact else 2)
        sys.stdout.write(text + "\n")
        sys.stdout.flush()

    def print(self, *renderables: Any) -> None:
        self.console.print(*renderables)

    def note(self, message: str) -> None:
        """A remark for the person at the terminal; kept off stdout so JSON stays clean."""
        self.err.print(message, style="dim")

    def warn(self, message: str) -> None:
        """A remark the person must act on (a secret shown once): off stdout too, but not dimmed."""
        self.err.print(message, style="bold yellow")


def table(*columns: str, title: str | None = None) -> Table:
    t = Table(title=title, title_justify="left", header_style="bold", box=None, pad_edge=False)
    for name in columns:
        t.add_column(name, overflow="fold")
    return t


def fields_table(rows: Iterable[tuple[str, Any]]) -> Table:
    """Label/value pairs, for one object."""
    t = Table(show_header=False, box=None, pad_edge=False)
    t.add_column(style="bold")
    t.add_column(overflow="fold")
    for label, value in rows:
        t.add_row(label, value if isinstance(value, Text) else str(value))
    return t


def joined(values: Sequence[object]) -> str:
    return ", ".join(str(v) for v in values) if values else "-"
