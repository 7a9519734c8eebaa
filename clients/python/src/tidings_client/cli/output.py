"""How results reach the terminal: rich tables for people, stable JSON for programs.

``-o/--output`` picks the form: ``table`` (the default; piped, it is tab-separated without
padding, as gh does), ``tsv`` (the same on a terminal), ``json``, ``jsonl`` (one object a
line; a list as one line per item), ``name`` (each object's name, a line each) or
``jsonpath=.a.b`` (that field of each object, a line each). ``--fields a,b.c`` keeps only
those fields: in JSON, objects with just them; otherwise tab-separated columns of them.

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
import re
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


MODES = ("table", "json", "jsonl", "tsv", "name")


def parse_mode(text: str) -> tuple[str, str]:
    """``-o`` as (mode, jsonpath); ValueError names what is accepted."""
    if text.startswith("jsonpath="):
        path = text.removeprefix("jsonpath=").strip().removeprefix("{").removesuffix("}").strip()
        if not path.startswith("."):
            raise ValueError(f"{text!r}: a jsonpath starts with '.', e.g. jsonpath=.event.user_id")
        return "jsonpath", path
    if text not in MODES:
        raise ValueError(f"{text!r} is not an output; use one of {', '.join(MODES)} or jsonpath=.FIELD")
    return text, ""


_STEP = re.compile(r"\.([A-Za-z_][A-Za-z0-9_]*)|\[(\d+)\]")


def pick(value: Any, path: str) -> Any:
    """``.event.user_id`` or ``.attempts[0].error`` of a JSON value; None where it has none."""
    for m in _STEP.finditer(path):
        if m.group(1) is not None:
            value = value.get(m.group(1)) if isinstance(value, dict) else None
        else:
            i = int(m.group(2))
            value = value[i] if isinstance(value, list) and i < len(value) else None
    return value


def _items(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, dict | list):
        return json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    return str(value).replace("\t", " ").replace("\n", " ")


class Output:
    """Where a command writes: one object per invocation, chosen by ``-o``/``--json``/``--fields``."""

    def __init__(self, mode: str = "table", *, jsonpath: str = "", fields: tuple[str, ...] = ()) -> None:
        self.mode = mode
        self.jsonpath = jsonpath
        self.fields = fields
        # Piped output is read by programs and in logs: do not cut lines at 80 columns.
        width = None if sys.stdout.isatty() or os.environ.get("COLUMNS") else 200
        # No markup: server data ("[Errno 111]", URLs, bodies) is printed as it is.
        self.console = Console(width=width, highlight=False, markup=False)
        self.err = Console(stderr=True, highlight=False, markup=False, width=width)

    @property
    def as_json(self) -> bool:
        """Whether commands hand their values to ``json()`` instead of drawing a table."""
        return self.mode not in ("table", "tsv") or bool(self.fields)

    @property
    def tab_separated(self) -> bool:
        return self.mode == "tsv" or not self.console.is_terminal

    def json(self, value: Any, *, compact: bool = False) -> None:
        """The values of a command; ``compact`` for one of a stream (a line each)."""
        data = jsonable(value)
        if self.fields:
            data = [{f: pick(item, "." + f) for f in self.fields} for item in _items(data)]
            data = data if isinstance(jsonable(value), list) else data[0]
        lines: list[str]
        if self.mode == "name":
            lines = [_cell(_name_of(item)) for item in _items(data)]
        elif self.mode == "jsonpath":
            lines = [_cell(pick(item, self.jsonpath)) for item in _items(data)]
        elif self.mode == "jsonl" or (compact and self.mode == "json"):
            each = _items(data) if self.mode == "jsonl" else [data]
            lines = [json.dumps(item, ensure_ascii=False) for item in each]
        elif self.mode == "json":
            lines = [json.dumps(data, ensure_ascii=False, indent=2)]
        else:  # --fields with a table or tsv: columns of the chosen fields
            lines = ["\t".join(f.upper() for f in self.fields)] if self.console.is_terminal and not compact else []
            lines += ["\t".join(_cell(item.get(f)) for f in self.fields) for item in _items(data)]
        if lines:
            sys.stdout.write("\n".join(lines) + "\n")
        sys.stdout.flush()

    def print(self, *renderables: Any) -> None:
        for r in renderables:
            if isinstance(r, Table) and self.tab_separated:
                self.tsv(r)
            else:
                self.console.print(r)

    def tsv(self, t: Table) -> None:
        """A table as tab-separated lines: a header, then a row a line, nothing padded."""
        columns = t.columns
        if columns and t.show_header:
            sys.stdout.write("\t".join(str(c.header) for c in columns) + "\n")
        for i in range(t.row_count):
            sys.stdout.write("\t".join(_cell(_plain(list(c.cells)[i])) for c in columns) + "\n")
        sys.stdout.flush()

    def note(self, message: str) -> None:
        """A remark for the person at the terminal; kept off stdout so JSON stays clean."""
        self.err.print(message, style="dim", soft_wrap=not self.err.is_terminal)

    def warn(self, message: str) -> None:
        """A remark the person must act on (a secret shown once): off stdout too, but not dimmed.
        Piped (to a log, a CI job), a remark is one line however long: a command it names
        is never broken in two."""
        self.err.print(message, style="bold yellow", soft_wrap=not self.err.is_terminal)


def _plain(cell: Any) -> str:
    return cell.plain if isinstance(cell, Text) else str(cell)


def tsv_line(cells: Sequence[Any]) -> str:
    """One row for a program: the cells' plain text joined by tabs, a tab or line break inside
    a cell (a server's error text) turned into a space so that a row stays one line."""
    return "\t".join(_cell(_plain(c)) for c in cells) + "\n"


def _name_of(item: Any) -> Any:
    """An object's name; for a wrapper such as create's ``{"hook": …}``, the wrapped one's."""
    if not isinstance(item, dict):
        return item
    if "name" in item:
        return item["name"]
    return next((v["name"] for v in item.values() if isinstance(v, dict) and "name" in v), None)


def table(*columns: str, title: str | None = None) -> Table:
    t = Table(title=title, title_justify="left", header_style="bold", box=None, pad_edge=False)
    for name in columns:
        t.add_column(name, overflow="fold")
    return t


MIN_FREE_TEXT = 12
"""The narrowest the last, free-text column (an error) may get before other columns give way."""


def fitted_table(
    headers: Sequence[str],
    rows: Sequence[Sequence[str | Text]],
    free_text: Sequence[str],
    width: int,
    *,
    free_header: str = "ERROR",
    droppable: Sequence[str] = (),
    title: str | None = None,
) -> Table:
    """A table for a terminal ``width`` columns wide, one line a row, never wrapped: each column
    as wide as its widest value, then the free text (``free_text[i]`` ends row ``i``) in what is
    left, cut with ``…``. When less than ``MIN_FREE_TEXT`` is left, the ``droppable`` columns
    go, in that order, until enough is; the columns that identify a row are never dropped."""
    widths = {h: max([len(h), *(len(_plain(r[i])) for r in rows)]) for i, h in enumerate(headers)}
    kept = list(headers)

    def room() -> int:
        return width - sum(widths[h] for h in kept) - 2 * len(kept)  # two spaces between columns

    for header in droppable:
        if room() >= MIN_FREE_TEXT:
            break
        kept.remove(header)
    space = room()
    t = Table(title=title, title_justify="left", header_style="bold", box=None, pad_edge=False)
    for h in kept:
        t.add_column(h, no_wrap=True, min_width=widths[h])
    shown = space >= len(free_header)
    if shown:
        t.add_column(free_header, no_wrap=True, overflow="ellipsis", max_width=space)
    where = [headers.index(h) for h in kept]
    for row, text in zip(rows, free_text, strict=True):
        text = " ".join(text.split())  # one line, whatever the server's text holds
        cells = [row[i] for i in where]
        t.add_row(*cells, *([text if len(text) <= space else text[: space - 1] + "…"] if shown else []))
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
