"""Wall-clock datetimes that advance with trio's clock.

Stored times (publish, due, attempt) are datetimes, while waiting is done with trio deadlines.
Deriving one from the other keeps them consistent, and under a virtual clock in tests a 12-hour
retry window passes in milliseconds with exact times.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

import trio


class Clock:
    """Must be created inside a trio run; ``origin`` pins the wall time it starts at."""

    def __init__(self, origin: datetime | None = None) -> None:
        self._wall = origin or datetime.now(UTC)
        self._trio = trio.current_time()

    def now(self) -> datetime:
        return self._wall + timedelta(seconds=trio.current_time() - self._trio)

    def deadline(self, when: datetime | None) -> float:
        """The trio deadline for a wall time (``inf`` for None)."""
        if when is None:
            return math.inf
        return self._trio + (when - self._wall).total_seconds()
