"""Circuit breakers, one per hook, held by each node for the attempts it makes.

A hook whose destination fails steadily — at least ``ratio`` of at least ``min_attempts``
attempts within ``window`` (counted in ``SLOTS`` slots), or ``consecutive`` failures in a
row — opens its circuit: its
pending deliveries are no longer tried one by one. One probe at a time goes out, on the hook's
own backoff schedule (``initial_backoff`` doubling up to ``max_backoff``); every other claim of
the hook is postponed to the next probe's time. The first success closes the circuit and the
hook's waiting deliveries go at once (the engine hastens them in the store).

Per node, not shared: the breaker learns from the attempts its node makes, so it costs no
store write per attempt and no node waits on another to learn an endpoint is back. With N
nodes a dead endpoint sees at most N probes at a time (one per node), never a flood; each
node's breaker opens from its own failures. docs/architecture.md ("Circuit breaker") says the same to operators.

The breaker also tracks since when a hook has failed without a single success, for
deactivation: after ``deactivate_after`` the engine disables the hook, having checked with the
store that no node had a success since. That time is kept in the store too (``Store.mark_failing``,
written once per failing run, when it starts): a node that meets a hook already failing, after a
restart or beside another node, adopts the earlier time (``adopt``), so the period is the hook's,
not a process's.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from tidings_server.domain.model import Hook


@dataclass(frozen=True, slots=True)
class BreakerConfig:
    """When a circuit opens, and when a hook failing without a success is disabled.

    ``consecutive`` 0 turns the streak rule off (the ratio rule alone opens circuits);
    ``deactivate_after`` None never disables a hook for failing.
    """

    ratio: float = 0.7
    min_attempts: int = 10
    window: timedelta = timedelta(minutes=5)
    consecutive: int = 20
    deactivate_after: timedelta | None = timedelta(days=5)


SLOTS = 30
"""The window is counted in this many slots (10 s each for 5 minutes): memory per hook stays
constant however many attempts it makes, and the window is exact to one slot."""
_EPOCH = datetime(2000, 1, 1, tzinfo=UTC)


@dataclass(slots=True)
class _Circuit:
    # [slot number, attempts, failures] of the slots within the window, oldest first.
    slots: deque[list[int]] = field(default_factory=deque)
    streak: int = 0  # failures in a row
    failing_since: datetime | None = None  # first failure after the last success
    last_success: datetime | None = None  # the end of this node's last successful attempt
    open_since: datetime | None = None
    backoff: timedelta = timedelta(0)
    probe_at: datetime | None = None  # when the next probe may go (open circuits only)
    probing: str = ""  # the delivery out as a probe


@dataclass(frozen=True, slots=True)
class Verdict:
    """What an attempt's outcome changed: the circuit opened or closed with it; ``failing_since``
    is set when this failure began the hook's failing run (the time to record in the store)."""

    opened: bool = False
    closed: bool = False
    failing_since: datetime | None = None


class Breakers:
    """The circuits of one node's hooks; the engine asks it before and tells it after attempts."""

    def __init__(self, config: BreakerConfig) -> None:
        self.config = config
        self._circuits: dict[str, _Circuit] = {}

    def is_open(self, hook_name: str) -> bool:
        circuit = self._circuits.get(hook_name)
        return circuit is not None and circuit.open_since is not None

    def state(self, hook_name: str) -> tuple[datetime | None, datetime | None]:
        """When the hook's circuit opened and when its next probe may go; (None, None) closed."""
        circuit = self._circuits.get(hook_name)
        if circuit is None or circuit.open_since is None:
            return None, None
        return circuit.open_since, circuit.probe_at

    def open_count(self) -> int:
        """Circuits open now; a copy is read, so a metrics scrape may call it from its thread."""
        return sum(1 for c in list(self._circuits.values()) if c.open_since is not None)

    def admit(self, hook: Hook, delivery_name: str, now: datetime) -> datetime | None:
        """None when the delivery may be attempted now; otherwise the time to postpone it to
        (the circuit is open and this is not the probe, or not yet the probe's time)."""
        circuit = self._circuits.get(hook.name)
        if circuit is None or circuit.open_since is None or circuit.probe_at is None:
            return None
        if not circuit.probing and now >= circuit.probe_at:
            circuit.probing = delivery_name
            return None
        if circuit.probing:  # one at a time: the rest wait for the probe after this one
            return self._cap(hook, circuit, max(circuit.probe_at, now) + self._next_backoff(hook, circuit))
        return circuit.probe_at

    def forget(self, hook_name: str, delivery_name: str) -> None:
        """A probe that was not attempted after all (the engine gave it back): another may go."""
        circuit = self._circuits.get(hook_name)
        if circuit is not None and circuit.probing == delivery_name:
            circuit.probing = ""

    def drop(self, hook_name: str) -> None:
        """Forget the hook's circuit (it was disabled: nothing more is attempted)."""
        self._circuits.pop(hook_name, None)

    def failing_since(self, hook_name: str) -> datetime | None:
        circuit = self._circuits.get(hook_name)
        return None if circuit is None else circuit.failing_since

    def last_success(self, hook_name: str) -> datetime | None:
        circuit = self._circuits.get(hook_name)
        return None if circuit is None else circuit.last_success

    def adopt(self, hook: Hook, since: datetime) -> None:
        """The hook has failed since ``since`` as the store has it (earlier than this node knew,
        after a restart or because another node saw it first): count the period from there, and
        keep an open circuit's next probe from passing the moment that makes due."""
        circuit = self._circuits.get(hook.name)
        if circuit is None or circuit.failing_since is None or since >= circuit.failing_since:
            return
        circuit.failing_since = since
        if circuit.probe_at is not None:
            circuit.probe_at = self._cap(hook, circuit, circuit.probe_at)

    def deactivate_at(self, hook_name: str) -> datetime | None:
        """When the hook is due to be disabled if nothing succeeds before (None: not failing)."""
        since = self.failing_since(hook_name)
        if since is None or self.config.deactivate_after is None:
            return None
        return since + self.config.deactivate_after

    def observe(
        self, hook: Hook, delivery_name: str, ok: bool, at: datetime, retry_after: timedelta | None = None
    ) -> Verdict:
        """Count one attempt's outcome, ended at ``at``; a success of any attempt closes the
        circuit, a failed probe moves the next probe one backoff step further. A failure that
        opens the circuit or fails a probe may carry the endpoint's ``Retry-After``: the next
        probe waits for it when it is longer than the backoff step, up to the hook's
        ``max_backoff`` (as a delivery's retry does, ``delivery/policy.py``)."""
        circuit = self._circuits.get(hook.name)
        if circuit is None:
            circuit = self._circuits[hook.name] = _Circuit()
        self._count(circuit, at, ok)
        was_probe = circuit.probing == delivery_name
        if was_probe:
            circuit.probing = ""
        if ok:
            closed = circuit.open_since is not None
            if closed:  # the endpoint answers again: what it did before no longer counts
                circuit.slots.clear()
            circuit.streak, circuit.failing_since, circuit.open_since, circuit.probe_at = 0, None, None, None
            if circuit.last_success is None or circuit.last_success < at:
                circuit.last_success = at
            return Verdict(closed=closed)
        circuit.streak += 1
        began = None
        if circuit.failing_since is None:
            circuit.failing_since = began = at
        if circuit.open_since is not None:
            if was_probe:
                circuit.backoff = self._next_backoff(hook, circuit)
                circuit.probe_at = self._cap(hook, circuit, at + _wait(hook, circuit.backoff, retry_after))
            return Verdict(failing_since=began)
        if self._trips(circuit):
            circuit.open_since = at
            circuit.backoff = hook.retry_policy.initial_backoff
            circuit.probe_at = self._cap(hook, circuit, at + _wait(hook, circuit.backoff, retry_after))
            return Verdict(opened=True, failing_since=began)
        return Verdict(failing_since=began)

    def _count(self, circuit: _Circuit, at: datetime, ok: bool) -> None:
        width = self.config.window / SLOTS
        number = (at - _EPOCH) // width
        slots = circuit.slots
        if slots and slots[-1][0] >= number:  # the current slot (or a late report of an older one)
            slots[-1][1] += 1
            slots[-1][2] += not ok
        else:
            slots.append([number, 1, int(not ok)])
        while slots and slots[0][0] <= number - SLOTS:
            slots.popleft()

    def _trips(self, circuit: _Circuit) -> bool:
        config = self.config
        if config.consecutive and circuit.streak >= config.consecutive:
            return True
        attempts = sum(slot[1] for slot in circuit.slots)
        failures = sum(slot[2] for slot in circuit.slots)
        return attempts >= config.min_attempts and failures >= config.ratio * attempts

    def _next_backoff(self, hook: Hook, circuit: _Circuit) -> timedelta:
        return min(circuit.backoff * 2, hook.retry_policy.max_backoff)

    def _cap(self, hook: Hook, circuit: _Circuit, probe_at: datetime) -> datetime:
        """A probe never goes later than the moment the hook is due to be disabled, so that a
        dead hook is disabled at exactly its period, not up to a backoff step after it."""
        deadline = self.deactivate_at(hook.name)
        return probe_at if deadline is None else min(probe_at, deadline)


def _wait(hook: Hook, backoff: timedelta, retry_after: timedelta | None) -> timedelta:
    """The backoff step, or the endpoint's longer ``Retry-After`` within the hook's cap."""
    if retry_after is None:
        return backoff
    return max(backoff, min(retry_after, hook.retry_policy.max_backoff))
