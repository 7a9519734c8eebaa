"""The retry policy: how an attempt's result becomes a cause, and when the next attempt is due.

Pure functions of the result, the hook's policy and the time, so that a whole retry schedule
can be checked exactly. Backoff doubles from ``initial_backoff`` up to ``max_backoff``; jitter
only ever shortens a wait (by up to ``JITTER``), so the cap holds and the retry window is
never overshot by it. A ``Retry-After`` longer than the backoff is honoured up to the cap.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime, timedelta
from email.utils import parsedate_to_datetime

from tidings_server.domain.model import RetryPolicy
from tidings_server.domain.states import Cause
from tidings_server.domain.texts import bound_error

JITTER = 0.2
MAX_RETRY_AFTER_SECONDS = 7 * 86400  # far past any cap; keeps hostile values finite


class Failure(enum.Enum):
    """Ways an attempt can fail before any HTTP status arrives."""

    CONNECT = "connect"  # refused, unreachable, DNS failure, TLS handshake failure
    TIMEOUT = "timeout"  # no complete response within the policy's timeout
    NETWORK = "network"  # the connection broke mid-exchange
    REFUSED_DESTINATION = "refused_destination"  # the address is not allowed (checked at connect time)
    RENDER = "render"  # the payload format could not render the event
    RENDER_BUSY = "render_busy"  # no render worker was free in time: the format is busy, not broken
    FORMAT_UNAVAILABLE = "format_unavailable"  # its plugin is not loaded (disabled); it may come back


RETRYABLE_FAILURES = frozenset(
    {Failure.CONNECT, Failure.TIMEOUT, Failure.NETWORK, Failure.RENDER_BUSY, Failure.FORMAT_UNAVAILABLE}
)


@dataclass(frozen=True, slots=True)
class Result:
    """What an attempt produced: an HTTP status, or a failure kind with its description."""

    status: int | None = None
    failure: Failure | None = None
    error: str = ""
    retry_after: timedelta | None = None


@dataclass(frozen=True, slots=True)
class Decision:
    cause: Cause
    next_attempt_time: datetime | None
    disable_hook: bool
    error: str


def backoff(policy: RetryPolicy, failures: int, jitter: float) -> timedelta:
    """The wait after the ``failures``-th consecutive failure (1-based); ``jitter`` in [0, 1)."""
    exponent = min(failures - 1, 48)  # far past any cap; keeps the arithmetic finite
    base = min(policy.initial_backoff.total_seconds() * 2**exponent, policy.max_backoff.total_seconds())
    return timedelta(seconds=base * (1 - JITTER * jitter))


def decide(
    result: Result,
    policy: RetryPolicy,
    *,
    attempt_number: int,
    first_attempt_time: datetime,
    now: datetime,
    jitter: float,
) -> Decision:
    """Turn one attempt's result into the cause to apply and the next due time, if any."""
    if result.status is not None and 200 <= result.status < 300:
        return Decision(Cause.SUCCEEDED, None, False, "")
    # Every error an attempt records passes here: bounded once, whatever produced it.
    error = bound_error(result.error or _describe(result))
    if result.status == 410:
        return Decision(Cause.PERMANENT_FAILURE, None, True, error + "; the hook is disabled")
    retryable = (
        result.status in policy.retryable_statuses
        if result.status is not None
        else result.failure in RETRYABLE_FAILURES
    )
    if not retryable:
        return Decision(Cause.PERMANENT_FAILURE, None, False, error)
    wait = backoff(policy, attempt_number, jitter)
    if result.retry_after is not None:
        wait = max(wait, min(result.retry_after, policy.max_backoff))
    due = now + wait
    if due > first_attempt_time + policy.retry_window:
        return Decision(Cause.WINDOW_EXHAUSTED, None, False, error + "; the retry window is over")
    return Decision(Cause.RETRYABLE_FAILURE, due, False, error)


def _describe(result: Result) -> str:
    if result.status is not None:
        if 300 <= result.status < 400:
            return f"HTTP {result.status}: redirects are not followed"
        return f"HTTP {result.status}"
    return result.failure.value if result.failure is not None else "unknown failure"


def parse_retry_after(value: str | None, now: datetime) -> timedelta | None:
    """Read a Retry-After header: delay-seconds or an HTTP date; None if absent or unreadable."""
    if not value:
        return None
    value = value.strip()
    if value.isascii() and value.isdigit():  # a receiver's header: never trust it to be sane
        return timedelta(seconds=min(int(value[:12]), MAX_RETRY_AFTER_SECONDS))
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, OverflowError):
        return None
    if when.tzinfo is None:
        return None
    return max(when - now, timedelta(0))
