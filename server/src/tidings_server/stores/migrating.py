"""What every SQL store's migrations share: numbered, forward-only SQL files shipped in a package.

Files are ``migrations/NNNN_what.sql`` inside the store's package, read with importlib.resources
so they are found in a wheel as well as in a source tree; versions run 1, 2, … without gaps.
How a step is applied, and where the version is kept, is each store's own (``sqlite.migrate``,
``tidings_postgresql.migrate``). Never edit a released file: add the next.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from importlib import resources

_FILE_RE = re.compile(r"(?P<version>[0-9]{4})_(?P<what>[a-z0-9_]+)\.sql")


@dataclass(frozen=True, slots=True)
class Migration:
    """One schema step: applying it to version ``version - 1`` yields ``version``."""

    version: int
    name: str
    sql: str


def load(package: str, store: str) -> tuple[Migration, ...]:
    """The migrations of ``package``, by version; ``store`` names the store in the error when
    the files are misnumbered (a defect of the package, not of any database)."""
    found: list[Migration] = []
    for entry in resources.files(package).joinpath("migrations").iterdir():
        m = _FILE_RE.fullmatch(entry.name)
        if m is not None:
            found.append(Migration(int(m["version"]), entry.name, entry.read_text(encoding="utf-8")))
    found.sort(key=lambda step: step.version)
    versions = [step.version for step in found]
    if versions != list(range(1, len(found) + 1)):
        raise RuntimeError(f"{store} migrations must be numbered 1..N without gaps; found {versions}")
    return tuple(found)


def too_new(current: int, latest: int) -> str:
    """Why a database whose schema is newer than this code is refused, and what to do."""
    return (
        f"the database has schema version {current}, but this tidings-server knows versions up to"
        f" {latest}; run a tidings-server at least as new as the one that wrote it"
    )
