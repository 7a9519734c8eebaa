"""How values read on a page: times in UTC, spans, rates, statuses as words with a symbol, and
the resource names pages are addressed by. Pure functions: the templates' filters."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta

from tidings_client import DeliveryStatus, HookStatus, Scope

_PARENT = re.compile(r"companies/(?P<c>\d+)(?:/projects/(?P<p>\d+))?")

# A symbol beside each status's word, so colour is never the only signal.
STATUS_SYMBOLS = {
    DeliveryStatus.QUEUED: "◷",
    DeliveryStatus.RETRYING: "↻",
    DeliveryStatus.DELIVERED: "✓",
    DeliveryStatus.FAILED: "✕",
    DeliveryStatus.DISCARDED: "⊘",
    HookStatus.ACTIVE: "●",
    HookStatus.PAUSED: "‖",
    HookStatus.DISABLED: "⊘",
}

EVENT_TYPE_ORDER = ("create", "update", "delete")


@dataclass(frozen=True)
class Parent:
    """A company or a project: where hooks live."""

    company: int
    project: int | None = None

    @property
    def name(self) -> str:
        base = f"companies/{self.company}"
        return base if self.project is None else f"{base}/projects/{self.project}"

    @property
    def scope(self) -> Scope:
        return Scope.COMPANY if self.project is None else Scope.PROJECT

    @property
    def title(self) -> str:
        return f"Company {self.company}" if self.project is None else f"Project {self.project} (company {self.company})"

    @classmethod
    def of(cls, name: str) -> Parent | None:
        """The company or project a resource name (a parent, hook or delivery) lies under."""
        m = _PARENT.match(name)
        if m is None:
            return None
        return cls(int(m["c"]), int(m["p"]) if m["p"] else None)


def utc(value: datetime | None) -> str:
    return value.strftime("%Y-%m-%d %H:%M:%S UTC") if value is not None else "—"


def span(value: timedelta | None) -> str:
    if value is None:
        return "—"
    ms = value.total_seconds() * 1000
    return f"{ms:.0f} ms" if ms < 10_000 else f"{ms / 1000:.1f} s"


def percent(value: float) -> str:
    return f"{value:.1%}"


def status_label(value: str) -> str:
    symbol = STATUS_SYMBOLS.get(value, "")  # type: ignore[call-overload]
    return f"{symbol} {value.capitalize()}".strip()


def as_text(body: bytes) -> str:
    """A body as characters; bytes that are not UTF-8 show as replacement marks, never fail."""
    return body.decode("utf-8", errors="replace")


def ordered_event_types(types: set[str]) -> list[str]:
    known = [t for t in EVENT_TYPE_ORDER if t in types]
    return known + sorted(types - set(EVENT_TYPE_ORDER))
