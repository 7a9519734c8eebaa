"""The Store interface: what the core needs from persistence, and the rules every backend keeps.

Every method is atomic: it either applies entirely or raises and changes nothing. Errors are
the domain's (``NotFound``, ``AlreadyExists``); anything else is a defect of the backend.
Lists are ordered by name (plain string order) and resume strictly after ``after``.
Times come from the caller, never from the backend's clock, so tests can run in virtual time.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from tidings_server.domain.model import Attempt, Delivery, DeliveryStatus, Event, Hook, Trigger
from tidings_server.domain.names import Parent


@dataclass(frozen=True, slots=True)
class Published:
    """What ``publish_events`` did with one event."""

    event_id: str
    serial: int
    deliveries: int
    duplicate: bool


@dataclass(frozen=True, slots=True)
class Claim:
    """A delivery claimed for an attempt, with what the attempt needs."""

    delivery: Delivery
    event: Event
    hook: Hook


@dataclass(frozen=True, slots=True)
class AttemptRecord:
    """One finished attempt and the delivery state it leads to (decided by the state machine)."""

    delivery_name: str
    attempt: Attempt
    status: DeliveryStatus
    next_attempt_time: datetime | None
    error: str


class Store(Protocol):
    async def create_hook(self, hook: Hook) -> None:
        """Insert ``hook``. Raises ``AlreadyExists`` if its name is taken."""

    async def get_hook(self, name: str) -> Hook:
        """Return the hook called ``name``. Raises ``NotFound``."""
        ...

    async def list_hooks(self, parent: Parent, *, after: str | None, limit: int) -> list[Hook]:
        """Return up to ``limit`` hooks directly under ``parent`` with names > ``after``.

        ``parent.any_project`` selects the project hooks of every project of the company.
        """
        ...

    async def payload_formats_in_use(self) -> dict[str, tuple[int, str]]:
        """For each payload format any hook uses: how many hooks use it, and the first of them
        by name. (Start-up refuses to run hooks whose format no loaded plugin provides.)"""
        ...

    async def update_hook(self, name: str, change: Callable[[Hook], Hook]) -> Hook:
        """Replace the hook with ``change(current)`` atomically and return the new hook.

        ``change`` is a pure function; if it raises, nothing is written and the error
        propagates. It must not change the name. Raises ``NotFound``.
        """
        ...

    async def delete_hook(self, name: str) -> None:
        """Delete the hook and all its triggers. Raises ``NotFound``."""

    async def add_triggers(self, hook_name: str, triggers: Sequence[Trigger]) -> list[Trigger]:
        """Add triggers to a hook, all or none, and return them in input order.

        A trigger whose name the hook already has is kept as stored (its original
        ``create_time`` is returned). Duplicates within ``triggers`` are allowed.
        Raises ``NotFound`` if the hook does not exist.
        """
        ...

    async def delete_triggers(self, hook_name: str, names: Sequence[str], *, allow_missing: bool) -> None:
        """Delete triggers of a hook, all or none.

        Raises ``NotFound`` if the hook does not exist, or (unless ``allow_missing``) naming the
        first trigger in ``names`` the hook does not have.
        """

    async def list_triggers(self, hook_name: str, *, after: str | None, limit: int) -> list[Trigger]:
        """Return up to ``limit`` triggers of the hook with names > ``after``. Raises ``NotFound``."""
        ...

    # -- events and deliveries -------------------------------------------------------------

    async def publish_events(self, events: Sequence[Event], now: datetime) -> list[Published]:
        """Store events and fan each out to its hooks, all in one transaction; one result per event.

        An event whose non-empty ``idempotency_key`` its company already used (earlier, or
        earlier in this batch) is not stored: its result carries the first event's id and
        serial, ``deliveries=0`` and ``duplicate=True``. Otherwise the event is stored with the
        next serial (ignoring ``event.serial``; serials increase in publish order) and
        ``now`` as its publish time, and one QUEUED delivery due at ``now`` is created for every
        ACTIVE or PAUSED hook of the same company and the same project (company hooks only for
        company-level events, where ``project_id`` is None) that has a trigger for the event's
        (resource_name, event_type). Finding those hooks must not scan unrelated hooks.
        """
        ...

    async def claim_due(
        self, now: datetime, *, limit: int, lease_until: datetime, in_flight: Mapping[str, int]
    ) -> list[Claim]:
        """Lease up to ``limit`` due deliveries and return them, earliest due first.

        Due: QUEUED or RETRYING, ``next_attempt_time <= now``, not leased (or the lease ended,
        ``lease_until <= now``), and the hook is ACTIVE. For a PER_RESOURCE hook only the
        pending delivery with the lowest event serial per (resource_name, resource_id) is
        eligible. A delivery created before its hook (left by a deleted hook of the same name)
        is never claimed. At most ``hook.max_concurrency - in_flight.get(hook.name, 0)`` deliveries
        of one hook are claimed, so a slow hook never takes another's share of ``limit``.
        Claimed rows are leased until ``lease_until``; ties are broken by serial.
        """
        ...

    async def next_due_time(self, *, after: datetime | None = None) -> datetime | None:
        """The earliest time later than ``after`` at which a pending delivery of an ACTIVE hook
        may become due, or None.

        For a leased delivery that is the later of its due time and its lease end. A dispatcher
        whose claim at ``now`` came back short passes ``after=now``: what was due then but not
        claimable (behind its resource's head, or its hook at full concurrency) is freed by an
        attempt finishing, which wakes the dispatcher anyway; counting it would make the
        dispatcher wake at once, again and again.
        """
        ...

    async def record_attempts(self, records: Sequence[AttemptRecord]) -> None:
        """Store finished attempts and move their deliveries on, in one transaction.

        Each attempt is stored under its delivery. A delivery still pending gets ``status``,
        ``next_attempt_time``, ``last_error`` = ``error``, ``attempt_count`` = the attempt's
        number, ``first_attempt_time`` (if unset) = the attempt's start, ``update_time`` = its
        end, and its lease cleared. A delivery no longer pending (discarded meanwhile) keeps its
        status. A delivery that does not exist (purged) is skipped.
        """

    async def release(self, delivery_names: Sequence[str]) -> None:
        """Clear the leases of these deliveries so they can be claimed again at once."""

    async def discard_pending(self, hook_name: str, now: datetime, reason: str) -> int:
        """Discard every QUEUED or RETRYING delivery of a hook; return how many.

        Sets status DISCARDED, ``next_attempt_time`` None, ``last_error`` = ``reason``,
        ``update_time`` = ``now``, and clears leases.
        """
        ...

    async def get_delivery(self, name: str) -> Delivery:
        """Return one delivery. Raises ``NotFound``."""
        ...

    async def list_attempts(self, delivery_name: str) -> list[Attempt]:
        """The attempts of a delivery, oldest first. Raises ``NotFound`` for an unknown delivery."""
        ...

    async def list_deliveries(self, hook_name: str, *, after: str | None, limit: int) -> list[Delivery]:
        """Up to ``limit`` deliveries of a hook (existing or deleted) with names > ``after``, by name."""
        ...

    async def get_event(self, event_id: str) -> Event:
        """Return one event. Raises ``NotFound``."""
        ...

    async def purge(self, before: datetime, limit: int) -> int:
        """Delete up to ``limit`` deliveries created before ``before``, with their attempts, and
        events published before ``before`` that no delivery refers to any more; return how many
        deliveries and events were deleted (0 when nothing is left to purge). Small batches keep
        each transaction short so delivery is never stalled.
        """
        ...
