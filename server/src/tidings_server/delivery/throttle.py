"""Endpoint protection at claim time: which claimed deliveries may be attempted now.

Between the claim and the attempt, each claim passes its hook's circuit breaker (this node's,
``delivery/breaker.py``) and then its hook's rate limit (a token bucket in the store, shared by
every node). What may not go now is postponed in the store to the time it may, without an
attempt and without failing: a rate-limited delivery waits its turn, a delivery of an open
circuit waits for the probe. Only a delivery whose retry window ended while its circuit was
open is concluded here, discarded as its window says (it was not attempted).
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

from tidings_server.delivery.breaker import Breakers
from tidings_server.domain.ports import Claim, Store

log = logging.getLogger(__name__)

LIMITED_RECENTLY = 60.0  # seconds a hook counts as rate limited after its limit last held one back
MAX_LIMITED = 1024  # hooks remembered as limited before the old ones are forgotten


@dataclass(slots=True)
class Gated:
    """The claims that go now, and those whose retry window ended behind an open circuit."""

    admitted: list[Claim] = field(default_factory=list)
    expired: list[Claim] = field(default_factory=list)


class Throttle:
    """The breakers and rate limits of one node's engine, asked once per claim batch."""

    def __init__(self, store: Store, breakers: Breakers) -> None:
        self._store = store
        self.breakers = breakers
        # The last time each hook's rate limit held a delivery back here (for metrics).
        self.limited: dict[str, datetime] = {}

    async def gate(self, claims: Sequence[Claim], now: datetime) -> Gated:
        gated = Gated()
        postponed: dict[datetime, list[str]] = defaultdict(list)
        passed: list[Claim] = []
        for claim in claims:
            until = self.breakers.admit(claim.hook, claim.delivery.name, now)
            if until is None:
                passed.append(claim)
                continue
            first = claim.delivery.first_attempt_time
            if first is not None:
                window_end = first + claim.hook.retry_policy.retry_window
                if window_end <= now:
                    gated.expired.append(claim)
                    continue
                until = min(until, window_end)
            postponed[until].append(claim.delivery.name)
        by_hook: dict[str, list[Claim]] = defaultdict(list)
        for claim in passed:
            by_hook[claim.hook.name].append(claim)
        for hook_name, mine in by_hook.items():
            rate = mine[0].hook.rate_limit
            if rate is None:
                gated.admitted += mine
                continue
            grant = await self._store.take_sends(hook_name, rate, now, len(mine))
            gated.admitted += mine[: grant.granted]
            if grant.granted < len(mine):
                self.limited[hook_name] = now
                self._forget_old_limits(now)
                for claim in mine[grant.granted :]:
                    self.breakers.forget(hook_name, claim.delivery.name)
                    postponed[grant.next_time].append(claim.delivery.name)
        for until, names in postponed.items():
            await self._store.postpone(names, until)
        return gated

    def rate_limited_hooks(self, now: datetime) -> int:
        """Hooks whose rate limit held a delivery back here within the last ``LIMITED_RECENTLY``
        seconds. Read-only, so a metrics scrape may call it from its own thread."""
        return sum(1 for at in list(self.limited.values()) if (now - at).total_seconds() <= LIMITED_RECENTLY)

    def _forget_old_limits(self, now: datetime) -> None:
        if len(self.limited) > MAX_LIMITED:
            for name, at in list(self.limited.items()):
                if (now - at).total_seconds() > LIMITED_RECENTLY:
                    del self.limited[name]
