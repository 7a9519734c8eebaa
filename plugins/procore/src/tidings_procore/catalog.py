"""Procore's resources and their event types, read from the TSV bundled with this package.

The table is data, not code, so it can be compared line for line with Procore's documentation.
Parsing is strict: triggers and published events are validated against this catalog, so a typo
must stop start-up with the offending line rather than silently drop or invent a resource.
"""

from __future__ import annotations

import functools
import re
from importlib.resources import files

from tidings_server.domain.model import ResourceType, Scope

RESOURCES_FILE = "resources.tsv"
HEADER = ("scope", "resource_name", "event_types")
_HEADER_LINE = "\t".join(HEADER)
_EVENT_TYPE = re.compile(r"[a-z][a-z_]*")


class CatalogError(ValueError):
    """The resource table is malformed; the message names the source and the line."""


def parse_resources(text: str, source: str = RESOURCES_FILE) -> tuple[ResourceType, ...]:
    """Parse a ``scope<TAB>resource_name<TAB>event_types`` table, header first.

    ``event_types`` is a comma-separated list. Line numbers in errors count the header as
    line 1, as an editor does. A final newline is fine; any empty line is malformed.
    """
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    if not lines:
        raise CatalogError(f"{source}: empty, expected the header {_HEADER_LINE!r}")
    if lines[0] != _HEADER_LINE:
        raise CatalogError(f"{source} line 1: expected the header {_HEADER_LINE!r}, got {lines[0]!r}")
    resources: list[ResourceType] = []
    seen: dict[tuple[Scope, str], int] = {}
    for number, line in enumerate(lines[1:], start=2):
        resource = _parse_line(line, f"{source} line {number}")
        key = (resource.scope, resource.name)
        if key in seen:
            raise CatalogError(
                f"{source} line {number}: {resource.scope.value} resource {resource.name!r} "
                f"already listed on line {seen[key]}"
            )
        seen[key] = number
        resources.append(resource)
    return tuple(resources)


def _parse_line(line: str, where: str) -> ResourceType:
    fields = line.split("\t")
    if len(fields) != len(HEADER):
        raise CatalogError(f"{where}: expected {len(HEADER)} tab-separated fields, got {len(fields)}: {line!r}")
    scope_text, name, types_text = fields
    try:
        scope = Scope(scope_text)
    except ValueError:
        allowed = ", ".join(s.value for s in Scope)
        raise CatalogError(f"{where}: unknown scope {scope_text!r} (expected one of {allowed})") from None
    if not name or name != name.strip():
        raise CatalogError(f"{where}: resource name {name!r} is empty or has surrounding whitespace")
    event_types = types_text.split(",")
    for event_type in event_types:
        if not _EVENT_TYPE.fullmatch(event_type):
            raise CatalogError(f"{where}: invalid event type {event_type!r} in {types_text!r}")
    if len(set(event_types)) != len(event_types):
        raise CatalogError(f"{where}: repeated event type in {types_text!r}")
    return ResourceType(name=name, scope=scope, event_types=frozenset(event_types), payload_formats=None)


@functools.cache
def load_resources() -> tuple[ResourceType, ...]:
    """The bundled table, parsed once; read through importlib.resources so zipped installs work."""
    text = files("tidings_procore").joinpath(RESOURCES_FILE).read_text(encoding="utf-8")
    return parse_resources(text, RESOURCES_FILE)


class ProcoreCatalog:
    """The ``procore`` resource catalog; every resource may be selected by every payload format."""

    name: str = "procore"

    def resources(self) -> tuple[ResourceType, ...]:
        return load_resources()
