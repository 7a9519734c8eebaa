"""The delivery state machine: every status change of a delivery is a row of ``TRANSITIONS``.

Nothing else decides what status follows another. The table does no I/O; callers look up a
transition, then store its result (a store discarding a hook's pending deliveries in bulk
applies the HOOK_GONE rows). ``diagram()`` draws the table for the docs, so the picture
cannot drift from the code. A paused hook is not a transition: its pending deliveries keep
their status and are simply not claimed until the hook is active again.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping

from tidings_server.domain.model import DeliveryStatus

QUEUED, RETRYING, DELIVERED, FAILED, DISCARDED = (
    DeliveryStatus.QUEUED,
    DeliveryStatus.RETRYING,
    DeliveryStatus.DELIVERED,
    DeliveryStatus.FAILED,
    DeliveryStatus.DISCARDED,
)


class Cause(enum.Enum):
    """What happened to a delivery."""

    SUCCEEDED = "2xx response"
    RETRYABLE_FAILURE = "retryable failure, retry window left"
    WINDOW_EXHAUSTED = "retryable failure, window exhausted"
    PERMANENT_FAILURE = "permanent failure"
    HOOK_GONE = "hook disabled or deleted"
    POISONED = "in flight at too many server deaths"
    REDELIVER = "redeliver"


class IllegalTransition(Exception):
    """A cause that cannot happen to a delivery in its current status: a defect, never input."""

    def __init__(self, status: DeliveryStatus, cause: Cause) -> None:
        super().__init__(f"a {status.value} delivery cannot take {cause.name} ({cause.value})")
        self.status = status
        self.cause = cause


TRANSITIONS: Mapping[tuple[DeliveryStatus, Cause], DeliveryStatus] = {
    (QUEUED, Cause.SUCCEEDED): DELIVERED,
    (RETRYING, Cause.SUCCEEDED): DELIVERED,
    (QUEUED, Cause.RETRYABLE_FAILURE): RETRYING,
    (RETRYING, Cause.RETRYABLE_FAILURE): RETRYING,
    (QUEUED, Cause.WINDOW_EXHAUSTED): DISCARDED,
    (RETRYING, Cause.WINDOW_EXHAUSTED): DISCARDED,
    (QUEUED, Cause.PERMANENT_FAILURE): FAILED,
    (RETRYING, Cause.PERMANENT_FAILURE): FAILED,
    (QUEUED, Cause.HOOK_GONE): DISCARDED,
    (RETRYING, Cause.HOOK_GONE): DISCARDED,
    (QUEUED, Cause.POISONED): FAILED,
    (RETRYING, Cause.POISONED): FAILED,
    (DELIVERED, Cause.REDELIVER): QUEUED,
    (FAILED, Cause.REDELIVER): QUEUED,
    (DISCARDED, Cause.REDELIVER): QUEUED,
}


def transition(status: DeliveryStatus, cause: Cause) -> DeliveryStatus:
    """The status that follows ``status`` on ``cause``; raises ``IllegalTransition`` if none does."""
    try:
        return TRANSITIONS[(status, cause)]
    except KeyError:
        raise IllegalTransition(status, cause) from None


def sources(cause: Cause) -> frozenset[DeliveryStatus]:
    """The statuses ``cause`` may happen in (what a store filters on when applying it in bulk)."""
    return frozenset(s for (s, c) in TRANSITIONS if c is cause)


def diagram() -> str:
    """The table as a Mermaid state diagram."""
    lines = ["stateDiagram-v2", "    [*] --> queued: event matches hook"]
    lines += [f"    {a.value} --> {b.value}: {cause.value}" for (a, cause), b in TRANSITIONS.items()]
    return "\n".join(lines)
