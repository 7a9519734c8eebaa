"""Token buckets per key: how often a caller may make the server do something costly for it.

A dozen lines of arithmetic over the server's own clock, rather than a library: the rate
libraries for Python read the wall clock or asyncio's, and tests must drive this one in
trio's virtual time to assert exact retry times.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

MAX_KEYS = 10_000  # buckets kept before full ones are dropped (a full bucket is as good as none)


@dataclass(slots=True)
class _Bucket:
    tokens: float
    at: datetime


class RateLimit:
    """``rate`` actions per second per key, in bursts of up to ``burst``."""

    def __init__(self, rate: float, burst: int) -> None:
        if rate <= 0 or burst < 1:
            raise ValueError("a rate limit needs a positive rate and a burst of at least 1")
        self.rate = rate
        self.burst = burst
        self._buckets: dict[str, _Bucket] = {}

    def take(self, key: str, now: datetime) -> float:
        """Spend one token of ``key``'s bucket: 0.0 when there was one, else the seconds until
        there is one (and nothing is spent)."""
        bucket = self._buckets.get(key)
        if bucket is None:
            if len(self._buckets) >= MAX_KEYS:
                self._forget_full(now)
            bucket = self._buckets[key] = _Bucket(float(self.burst), now)
        elapsed = max(0.0, (now - bucket.at).total_seconds())
        bucket.tokens = min(float(self.burst), bucket.tokens + elapsed * self.rate)
        bucket.at = now
        if bucket.tokens >= 1.0:
            bucket.tokens -= 1.0
            return 0.0
        return (1.0 - bucket.tokens) / self.rate

    def _forget_full(self, now: datetime) -> None:
        full = self.burst / self.rate
        for key in [k for k, b in self._buckets.items() if (now - b.at).total_seconds() >= full]:
            del self._buckets[key]
