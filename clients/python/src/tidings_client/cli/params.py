"""Command-line value types: durations, times, status ranges, event pairs and resource names.

Each is a click ParamType, so a bad value is a usage error (exit 2) that names the option.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

import click

from tidings_client.types import StatusRange

_DURATION_RE = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d)")
T = TypeVar("T")
_UNIT = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_duration(text: str) -> timedelta:
    """``1h30m``, ``5s``, ``100ms``, ``2d``; a bare number is seconds."""
    text = text.strip()
    if re.fullmatch(r"\d+(?:\.\d+)?", text):
        return timedelta(seconds=float(text))
    pos, seconds = 0, 0.0
    for m in _DURATION_RE.finditer(text):
        if m.start() != pos:
            break
        seconds += float(m.group(1)) * _UNIT[m.group(2)]
        pos = m.end()
    if pos != len(text) or not text:
        raise ValueError(f"{text!r} is not a duration; use e.g. 500ms, 5s, 10m, 1h30m, 2d")
    return timedelta(seconds=seconds)


def format_duration(value: timedelta | None) -> str:
    if value is None:
        return "-"
    seconds = value.total_seconds()
    if seconds < 1:
        return f"{seconds * 1000:.0f}ms"
    if seconds < 60:
        return f"{seconds:g}s"
    parts = []
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        n, seconds = divmod(seconds, size)
        if n:
            parts.append(f"{int(n)}{unit}")
    return "".join(parts)


def parse_time(text: str, now: datetime | None = None) -> datetime:
    """An RFC 3339 time (``2026-11-20T09:30:00Z``; a date alone is midnight UTC; no zone is UTC)
    or a span ago (``2h``, ``7d``)."""
    try:
        return (now or datetime.now(UTC)) - parse_duration(text)
    except ValueError:
        pass
    try:
        value = datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        raise ValueError(f"{text!r} is not a time; use e.g. 2026-11-20T09:30:00Z, 2026-11-20 or 2h (ago)") from None
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def parse_status_ranges(text: str) -> tuple[StatusRange, ...]:
    """``408,429,500-599``."""
    ranges = []
    for part in text.split(","):
        m = re.fullmatch(r"\s*(\d{3})\s*(?:-\s*(\d{3})\s*)?", part)
        if not m:
            raise ValueError(f"{part.strip()!r} is not an HTTP status or range; use e.g. 408,429,500-599")
        first = int(m.group(1))
        ranges.append(StatusRange(first, int(m.group(2) or first)))
    return tuple(ranges)


def parse_event(text: str) -> tuple[str, str]:
    """``RFIs:create`` → (``RFIs``, ``create``); ``RFIs:*`` keeps ``*`` for the caller to expand."""
    resource, sep, event_type = text.rpartition(":")
    if not sep or not resource.strip() or not event_type.strip():
        raise ValueError(f"{text!r} is not an event; use RESOURCE:EVENT_TYPE, e.g. 'RFIs:create' or 'RFIs:*'")
    return resource.strip(), event_type.strip()


_RATE_UNITS = {"s": 1.0, "sec": 1.0, "second": 1.0, "min": 60.0, "minute": 60.0, "h": 3600.0, "hour": 3600.0}


def parse_rate(text: str) -> float:
    """``1000/min`` → deliveries a second (16.666…); ``10/s``, ``3600/h``; ``0`` or ``none``: no limit."""
    if text.strip().lower() in ("0", "none", "off"):
        return 0.0
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*/\s*([a-z]+)\s*", text.lower())
    if not m or m.group(2) not in _RATE_UNITS or float(m.group(1)) <= 0:
        raise ValueError(f"{text!r} is not a rate; use COUNT/UNIT with UNIT s, min or h, e.g. '1000/min' (or 'none')")
    return float(m.group(1)) / _RATE_UNITS[m.group(2)]


def rate_text(per_second: float) -> str:
    """The rate in the unit that shows it as a whole number, when one does: 16.666… → 1000/min."""
    for unit, size in (("s", 1.0), ("min", 60.0), ("h", 3600.0)):
        count = per_second * size
        if abs(count - round(count)) < 1e-6 and round(count) >= 1:
            return f"{round(count)}/{unit}"
    return f"{per_second:g}/s"


class _Parsed(click.ParamType[T]):
    """A ParamType from a parse function whose ValueError message is the explanation."""

    def __init__(self, name: str, parse: Callable[[str], T]) -> None:
        self.name = name
        self._parse = parse

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> T:
        if not isinstance(value, str):
            return value  # type: ignore[no-any-return]  # already converted (a default)
        try:
            return self._parse(value)
        except ValueError as exc:
            self.fail(str(exc), param, ctx)


DURATION = _Parsed("duration", parse_duration)
TIME = _Parsed("time", parse_time)
STATUS_RANGES = _Parsed("statuses", parse_status_ranges)
EVENT = _Parsed("resource:event", parse_event)
RATE = _Parsed("rate", parse_rate)


def parse_project_ids(text: str) -> tuple[int, ...]:
    """``1,3,6778`` → (1, 3, 6778): the projects a company hook is limited to."""
    ids = []
    for part in text.split(","):
        if not re.fullmatch(r"\s*[1-9]\d*\s*", part):
            raise ValueError(f"{part.strip()!r} is not a project id; use positive numbers, e.g. 1,3,6778")
        ids.append(int(part))
    return tuple(ids)


def _company(text: str) -> str:
    if not re.fullmatch(r"[1-9]\d*", text):
        raise ValueError(f"{text!r} is not a company id (a positive number)")
    return f"companies/{text}"


def _project(text: str) -> str:
    m = re.fullmatch(r"([1-9]\d*)/([1-9]\d*|-)", text)
    if not m:
        raise ValueError(f"{text!r} is not COMPANY/PROJECT, e.g. 8/6778 (8/- for every project of company 8)")
    return f"companies/{m.group(1)}/projects/{m.group(2)}"


COMPANY = _Parsed("company", _company)
PROJECT = _Parsed("company/project", _project)
PROJECT_IDS = _Parsed("projects", parse_project_ids)
