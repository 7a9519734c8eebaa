"""How ``publish()`` splits events into calls and keys them, shared by both clients.

Every event gets an idempotency key before the first attempt, so a batch whose answer was
lost (UNAVAILABLE, a dropped connection) can be sent again without creating its events twice.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Iterator
from dataclasses import replace
from itertools import islice

from tidings_client.types import Event

MAX_EVENTS_PER_CALL = 1000


def keyed(event: Event) -> Event:
    """The event with an idempotency key: its own if it has one, else a fresh random one."""
    if event.idempotency_key:
        return event
    return replace(event, idempotency_key=f"tc-{uuid.uuid4().hex}")


def batches(events: Iterable[Event], size: int = MAX_EVENTS_PER_CALL) -> Iterator[list[Event]]:
    """Keyed events in lists of at most ``size`` (the server takes at most 1000 per call)."""
    if not 1 <= size <= MAX_EVENTS_PER_CALL:
        raise ValueError(f"batch size must be 1 to {MAX_EVENTS_PER_CALL}")
    keyed_events = map(keyed, events)
    while batch := list(islice(keyed_events, size)):
        yield batch
