"""Endpoint protection: which claimed deliveries may be attempted now, and what an attempt's
outcome changes (a circuit opening or closing, a hook disabled for failing too long).

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
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from tidings_server import operational
from tidings_server.delivery.breaker import Breakers
from tidings_server.delivery.policy import parse_retry_after
from tidings_server.domain import states
from tidings_server.domain.errors import Unavailable
from tidings_server.domain.hooks import disable_hook
from tidings_server.domain.model import Attempt, DeliveryStatus, Hook
from tidings_server.domain.ports import AttemptRecord, Claim, Store

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

    def __init__(
        self,
        store: Store,
        breakers: Breakers,
        announcer: operational.Announcer,
        on_change: Callable[[], None] = lambda: None,
    ) -> None:
        """``on_change`` is called when deliveries were hastened or a hook was disabled."""
        self._store = store
        self.breakers = breakers
        self._announcer = announcer
        self._on_change = on_change
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

    def expired(self, claim: Claim, now: datetime) -> AttemptRecord:
        """Discard a delivery whose retry window ended while its hook's circuit was open, without
        attempting it: its window (from its first attempt) says so, not the breaker."""
        first = claim.delivery.first_attempt_time
        window = claim.hook.retry_policy.retry_window
        error = (
            f"not attempted: the circuit of {claim.hook.name} was open and the retry window"
            f" ({_span(window)} from the first attempt at {first.isoformat() if first else 'none'}) is over"
        )
        status = states.transition(claim.delivery.status, states.Cause.WINDOW_EXHAUSTED)
        attempt = Attempt(claim.delivery.attempt_count + 1, now, now, (), None, (), b"", error)
        return AttemptRecord(claim.delivery.name, attempt, status, None, error)

    async def observe(self, claim: Claim, record: AttemptRecord) -> None:
        """Tell the hook's breaker how an attempt went (a request that reached the wire only:
        a render failing is no news about the endpoint), then act on what changed: a closed
        circuit lets the hook's waiting deliveries go at once (a failure's ``Retry-After`` moves the
        next probe as it moves a retry); a hook failing without a success
        for ``deactivate_after`` is disabled, counted from the first failure of its run as the
        store keeps it. A discard by the retry window is announced."""
        await self.announce_discard(claim, record)
        if record.rendered is None or record.status not in _BREAKER_STATUSES:
            return
        hook, breakers = claim.hook, self.breakers
        status = record.attempt.response_status
        ok = status is not None and 200 <= status < 300
        end = record.attempt.end_time
        retry_after = None if ok else parse_retry_after(_header(record.attempt, "retry-after"), end)
        verdict = breakers.observe(hook, claim.delivery.name, ok, end, retry_after)
        try:
            if verdict.failing_since is not None and breakers.config.deactivate_after is not None:
                # Once per failing run: the store keeps the earliest start, so the period holds
                # across this process's restarts and is the same on every node.
                last_success = breakers.last_success(hook.name)
                since = await self._store.mark_failing(hook.name, verdict.failing_since, last_success=last_success)
                breakers.adopt(hook, since)
            if verdict.opened:
                log.warning("circuit opened", extra={"hook": hook.name, "error": record.error})
                await self._announcer.announce(operational.hook_event(hook, operational.CIRCUIT_OPENED, end))
            if verdict.closed:
                log.info("circuit closed", extra={"hook": hook.name})
                await self._store.hasten(hook.name, end)
                self._on_change()
                await self._announcer.announce(operational.hook_event(hook, operational.CIRCUIT_CLOSED, end))
            deadline = breakers.deactivate_at(hook.name)
            if not ok and deadline is not None and end >= deadline:
                await self._deactivate(hook, end, record.error)
        except Unavailable as exc:  # the next attempt's outcome tries again
            log.warning("acting on a circuit failed", extra={"hook": hook.name, "error": str(exc)})

    async def announce_discard(self, claim: Claim, record: AttemptRecord) -> None:
        """A delivery its retry window discarded is news for the admins who asked to be told."""
        if record.status is DeliveryStatus.DISCARDED:
            draft = operational.discard_event(claim.hook, claim.delivery.name, claim.event, record.attempt.end_time)
            await self._announcer.announce(draft)

    async def _deactivate(self, hook: Hook, now: datetime, error: str) -> None:
        """Disable ``hook``, failing without a success since ``failing_since`` (as the store keeps
        it), unless another node had a success meanwhile (the store's record of the hook's health)."""
        since = self.breakers.failing_since(hook.name)
        period = self.breakers.config.deactivate_after
        if since is None or period is None:
            return
        stats = await self._store.hook_stats(hook.name, latency_sample=0)
        if stats.last_success_time is not None and stats.last_success_time >= since:
            return
        reason = (
            f"disabled by tidings: no successful delivery for {_span(period)}"
            f" (failing since {since.isoformat()}); last error: {error}"
        )
        if await disable_hook(self._store, hook.name, now, reason):
            log.warning("hook disabled for failing", extra={"hook": hook.name, "since": since.isoformat()})
            self.breakers.drop(hook.name)
            self._on_change()
            await self._announcer.announce(operational.hook_event(hook, operational.DISABLED, now))


_BREAKER_STATUSES = frozenset({DeliveryStatus.DELIVERED, DeliveryStatus.RETRYING, DeliveryStatus.DISCARDED})
"""What a breaker learns from: successes and retryable failures (a 4xx other than 408/429 says
the request was wrong, not that the endpoint is down)."""


def _header(attempt: Attempt, name: str) -> str | None:
    """The first response header called ``name`` (lower case) of a recorded attempt, or None."""
    return next((value for key, value in attempt.response_headers if key.lower() == name), None)


def _span(value: timedelta) -> str:
    seconds = value.total_seconds()
    for unit, size in (("day", 86_400), ("hour", 3600), ("minute", 60)):
        if seconds >= size and not seconds % size:
            n = int(seconds // size)
            return f"{n} {unit}{'s' if n != 1 else ''}"
    return f"{seconds:g} s"
