"""A hook's send rate as a token bucket kept by the store, so the limit holds across every
process delivering from it: the arithmetic here, the row (and its lock) in each backend."""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timedelta

from tidings_server.domain.model import SendRate

# Float arithmetic on elapsed microseconds can leave a bucket a hair short of a whole token
# exactly when one is due; a send that is due must not wait a microsecond more for it.
_SLACK = 1e-9


@dataclass(frozen=True, slots=True)
class Bucket:
    """The sends a hook has left (``tokens``, at most its burst) as of ``at``."""

    tokens: float
    at: datetime


@dataclass(frozen=True, slots=True)
class SendGrant:
    """How many of the sends asked for may go now, and when the next one may."""

    granted: int
    next_time: datetime


def take(bucket: Bucket | None, rate: SendRate, now: datetime, wanted: int) -> tuple[SendGrant, Bucket]:
    """Spend up to ``wanted`` tokens of ``bucket`` (None: never used, so full) at ``now``.

    The bucket refills at ``rate.per_second`` up to ``rate.burst``; a bucket read from an older
    limit is capped to the new burst, so a change applies from the next send on. The next send
    time is rounded up to the microsecond stores keep.
    """
    if bucket is None:
        tokens = float(rate.burst)
    else:
        elapsed = max(0.0, (now - bucket.at).total_seconds())
        tokens = min(float(rate.burst), bucket.tokens + elapsed * rate.per_second)
    granted = max(0, min(wanted, math.floor(tokens + _SLACK)))
    tokens = max(0.0, tokens - granted)
    if tokens + _SLACK >= 1.0:
        next_time = now
    else:
        micros = math.ceil((1.0 - tokens) / rate.per_second * 1_000_000 - _SLACK * 1_000_000)
        next_time = now + timedelta(microseconds=max(1, micros))
    return SendGrant(granted, next_time), Bucket(tokens, now)
