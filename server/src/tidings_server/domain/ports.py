"""The Store interface: what the core needs from persistence, and the rules every backend keeps.

Every method is atomic: it either applies entirely or raises and changes nothing. Errors are
the domain's (``NotFound``, ``AlreadyExists``); anything else is a defect of the backend.
Lists are ordered by name (plain string order) and resume strictly after ``after``.
Times come from the caller, never from the backend's clock, so tests can run in virtual time.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Final, Protocol

import trio

from tidings_server.domain import filtering
from tidings_server.domain.model import (
    Attempt,
    Delivery,
    DeliveryStatus,
    Event,
    Hook,
    RenderedBody,
    SendRate,
    Template,
    Trigger,
)
from tidings_server.domain.names import Parent
from tidings_server.domain.sendrate import SendGrant
from tidings_server.domain.tokens import Token


@dataclass(frozen=True, slots=True)
class Published:
    """What ``publish_events`` did with one event."""

    event_id: str
    serial: int
    deliveries: int
    duplicate: bool
    # Set by the event service, never by a store: why the project template a Projects create
    # event named was not applied ("" when it was, or none was named).
    project_template_error: str = ""


class IdempotencyConflict(Exception):
    """``publish_events``: the event at ``index`` reuses a key its company used for a different
    event, ``first_id`` (stored earlier, or earlier in the same batch)."""

    def __init__(self, index: int, key: str, first_id: str) -> None:
        super().__init__(f"events[{index}]: idempotency key already used by event {first_id}")
        self.index = index
        self.key = key
        self.first_id = first_id


def same_event(first_fingerprint: str, again: str) -> bool:
    """Whether a reused key names the event it was first used for (unknown counts as the
    same: events stored before fingerprints were kept have none)."""
    return not first_fingerprint or not again or first_fingerprint == again


@dataclass(frozen=True, slots=True)
class Claim:
    """A delivery claimed for an attempt, with what the attempt needs.

    ``interrupted`` counts the earlier claims of the delivery, since its last recorded attempt
    or redelivery, that ended with no attempt recorded: the server holding it died mid-attempt.
    A delivery that keeps killing its server (a render, a response) is failed, not retried.
    """

    delivery: Delivery
    event: Event
    hook: Hook
    interrupted: int = 0


@dataclass(frozen=True, slots=True)
class QueueDepth:
    """How much delivery work is waiting: what operators graph first.

    ``due`` counts pending deliveries due now and not leased, up to the ``limit`` asked for
    (a backlog larger than that reads as the limit); ``oldest_due_time`` is the earliest due
    time among all of them, or None when nothing is due.
    """

    due: int
    oldest_due_time: datetime | None


@dataclass(frozen=True, slots=True)
class AttemptRecord:
    """One finished attempt and the delivery state it leads to (decided by the state machine).

    ``rendered`` is the body the attempt sent; the store keeps the first one per delivery.
    """

    delivery_name: str
    attempt: Attempt
    status: DeliveryStatus
    next_attempt_time: datetime | None
    error: str
    rendered: RenderedBody | None = None


# The fields a history filter (AIP-160) may name, with their types. A record for ``evaluate``
# is what ``filter_record`` returns; SQL stores map each field to a column.
DELIVERY_FILTER_SCHEMA: Final[filtering.Schema] = {
    "status": filtering.Enum(tuple(s.value for s in DeliveryStatus)),
    "resource_name": filtering.STRING,
    "resource_id": filtering.INT,
    "event_type": filtering.STRING,
    "response_status": filtering.INT,
    "attempt_count": filtering.INT,
    "create_time": filtering.TIMESTAMP,
    "update_time": filtering.TIMESTAMP,
    "hook": filtering.STRING,
    "project_id": filtering.INT,
}


def filter_record(delivery: Delivery) -> dict[str, object]:
    """A delivery as ``filtering.evaluate`` sees it under ``DELIVERY_FILTER_SCHEMA``."""
    return {
        "status": delivery.status.value,
        "resource_name": delivery.resource_name,
        "resource_id": delivery.resource_id,
        "event_type": delivery.event_type,
        "response_status": delivery.last_response_status,
        "attempt_count": delivery.attempt_count,
        "create_time": delivery.create_time,
        "update_time": delivery.update_time,
        "hook": delivery.hook_name,
        "project_id": delivery.project_id,
    }


@dataclass(frozen=True, slots=True)
class DeliveryQuery:
    """Which deliveries a history list, a watch or a bulk redeliver selects.

    The parent is ``hook_name``, or else ``company_id`` with ``project_id`` (None: every
    delivery of the company, of company and project hooks alike). Every criterion that is set
    must hold: ``statuses`` (empty: any), the equalities, ``start_time <= create_time <
    end_time``, and ``filter`` over ``DELIVERY_FILTER_SCHEMA``.
    """

    hook_name: str | None = None
    company_id: int | None = None
    project_id: int | None = None
    statuses: frozenset[DeliveryStatus] = frozenset()
    resource_name: str | None = None
    resource_id: int | None = None
    event_type: str | None = None
    start_time: datetime | None = None
    end_time: datetime | None = None
    filter: filtering.Expr | None = None


@dataclass(frozen=True, slots=True)
class DeliveryPage:
    """What ``query_deliveries`` found: matches with their events, and where to go on.

    ``next_after`` is None when no delivery after the last one examined is left under the
    parent; otherwise the name to pass as ``after`` to continue.
    """

    deliveries: list[tuple[Delivery, Event]]
    next_after: str | None


@dataclass(frozen=True, slots=True)
class HookStats:
    """The figures of a hook's overview that need the store."""

    counts: Mapping[DeliveryStatus, int]
    recent_latencies: Sequence[timedelta]
    last_success_time: datetime | None = None
    last_failure_time: datetime | None = None
    last_failure_reason: str = ""
    consecutive_failures: int = 0
    next_attempt_time: datetime | None = None
    # The last time its rate limit held a delivery back (``take_sends`` granted less than asked).
    rate_limited_time: datetime | None = None


@dataclass(frozen=True, slots=True)
class Change:
    """A delivery was created, attempted or changed status: the delivery as it was right after.

    ``seq`` increases with every change across the store and is never reused, so a watcher
    resumes after the last ``seq`` it saw. ``time`` is the delivery's ``update_time``.
    """

    seq: int
    time: datetime
    delivery: Delivery = field(repr=False)


@dataclass(frozen=True, slots=True)
class ChangePage:
    """Changes found by ``list_changes``; ``last_seq`` is the last change examined (matching
    or not), or the newest seq when every change under the parent was examined: where the
    next call continues."""

    changes: list[Change]
    last_seq: int


@dataclass(frozen=True, slots=True)
class Activity:
    """What deliveries did lately, cluster-wide: the changes of the log made at or after a time,
    counted by the status each led to (QUEUED: created or queued again; the others: attempts
    and discards). ``complete`` is False when every change examined was that recent, so the
    scan limit cut the count short and the counts are lower bounds."""

    counts: Mapping[DeliveryStatus, int]
    complete: bool


@dataclass(frozen=True, slots=True)
class FailingHook:
    """A hook whose latest attempts failed: how many in a row, and since when it last worked."""

    hook_name: str
    consecutive_failures: int
    last_failure_time: datetime | None
    last_failure_reason: str
    last_success_time: datetime | None


class Notice(enum.Enum):
    """What one process tells the others sharing its store."""

    DUE = "due"  # deliveries may have become due (publish, redeliver, hook changed, attempt finished)
    CHANGES = "changes"  # deliveries changed: watchers re-read the change log


@dataclass(frozen=True, slots=True)
class NodeInfo:
    """One server process of a cluster, as it last told the store.

    ``node_id`` is unique per process start (``<hostname>-<pid>-<4 random hex>``); ``role`` is
    ``all``, ``api`` or ``worker``; ``in_flight`` counts the attempts the node was running at
    its last heartbeat; ``version`` is its tidings-server version ("" for a node registered by
    its heartbeat alone, or by a server from before nodes recorded it). Who is alive is the
    reader's call, from ``last_seen``.
    """

    node_id: str
    role: str
    host: str
    pid: int
    start_time: datetime
    last_seen: datetime
    in_flight: int
    version: str = ""


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

    async def list_all_hooks(self, *, after: str | None, limit: int) -> list[Hook]:
        """Return up to ``limit`` hooks of every parent with names > ``after``, by name: a walk
        over all hooks in pages (re-sealing secrets under a new key, checks at start-up)."""
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

    async def create_hooks(self, hooks: Sequence[tuple[Hook, Sequence[Trigger]]]) -> None:
        """Insert several hooks, each with its triggers, all or none (applying a template).

        Raises ``AlreadyExists`` naming the first hook (in input order) whose name is taken,
        and then stores nothing.
        """

    # -- templates -------------------------------------------------------------------------

    async def create_template(self, template: Template) -> None:
        """Insert ``template``. Raises ``AlreadyExists`` if its name is taken."""

    async def get_template(self, name: str) -> Template:
        """Return the template called ``name``. Raises ``NotFound``."""
        ...

    async def list_templates(self, company_id: int, *, after: str | None, limit: int) -> list[Template]:
        """Up to ``limit`` templates of the company with names > ``after``, by name."""
        ...

    async def list_all_templates(self, *, after: str | None, limit: int) -> list[Template]:
        """Up to ``limit`` templates of every company with names > ``after``, by name: a walk
        over all templates in pages (re-sealing their Authorization headers under a new key)."""
        ...

    async def update_template(self, name: str, change: Callable[[Template], Template]) -> Template:
        """Replace the template with ``change(current)`` atomically and return the new one; as
        ``update_hook``: ``change`` is pure and must not rename it. Raises ``NotFound``."""
        ...

    async def delete_template(self, name: str) -> None:
        """Delete the template (the hooks made from it stay). Raises ``NotFound``."""

    # -- events and deliveries -------------------------------------------------------------

    async def publish_events(self, events: Sequence[Event], now: datetime) -> list[Published]:
        """Store events and fan each out to its hooks, all in one transaction; one result per event.

        An event whose non-empty ``idempotency_key`` its company already used (earlier, or
        earlier in this batch) is not stored: its result carries the first event's id and
        serial, ``deliveries=0`` and ``duplicate=True`` — provided it is the same event: when
        both carry an ``idempotency_fingerprint`` and the two differ, ``IdempotencyConflict``
        is raised for the first such event of the batch and nothing of the batch is stored.
        The fingerprint is stored with the event (one column; the key lookup a publish does
        anyway reads it) and read back with it. Otherwise the event is stored with the
        next serial (ignoring ``event.serial``; serials increase in publish order) and
        ``now`` as its publish time, and one QUEUED delivery due at ``now`` is created for every
        ACTIVE or PAUSED hook that has a trigger for the event's (resource_name, event_type) and
        is either a hook of the same company and the same project, or a company hook of the same
        company (for a company-level event, where ``project_id`` is None, only those) — for a
        project's event, a company hook whose ``projects`` is not empty only if it lists the
        event's project. Finding those hooks must not scan unrelated hooks, nor cost more with
        the number of projects a company or a hook's list has.
        """
        ...

    async def claim_due(
        self, now: datetime, *, limit: int, lease_until: datetime, owner: str, finished: Collection[str] = ()
    ) -> list[Claim]:
        """Lease up to ``limit`` due deliveries to ``owner`` and return them, earliest due first.

        Due: QUEUED or RETRYING, ``next_attempt_time <= now``, not leased (or the lease ended,
        ``lease_until <= now``), and the hook is ACTIVE. For a PER_RESOURCE hook only the
        pending delivery with the lowest event serial per (resource_name, resource_id) is
        eligible, leased or not. A delivery created before its hook (left by a deleted hook of
        the same name) is never claimed. A hook's concurrency holds across every owner: at most
        ``hook.max_concurrency`` minus the hook's deliveries whose lease is unexpired
        (``lease_until > now``, whoever holds it) are claimed, so a slow hook never takes
        another's share of ``limit``. Claimed rows are leased until ``lease_until`` and held by
        ``owner``; ties are broken by serial.

        ``finished`` names deliveries leased to ``owner`` whose attempt is over and whose
        record is on its way (``record_attempts`` not yet committed): no request of theirs is
        at the endpoint any more, so they do not count against their hook's concurrency, and a
        freed slot is taken at once rather than after the record commits. They stay leased
        (and pending, so a PER_RESOURCE hook's next delivery of the resource still waits for
        their record). A name that is not leased to ``owner`` changes nothing.

        Every claim is counted per delivery: ``Claim.interrupted`` is the count of claims before
        this one since the delivery's last recorded attempt (``record_attempts``) or redelivery
        (``redeliver``), which reset it; ``release`` takes back the claim it releases.
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

    async def queue_depth(self, now: datetime, *, limit: int) -> QueueDepth:
        """The QUEUED or RETRYING deliveries with ``next_attempt_time <= now`` whose lease is
        unset or ended, whatever their hook's status: their count (at most ``limit``) and the
        earliest due time among them. Reads an index of pending deliveries, never the history."""
        ...

    async def record_attempts(self, records: Sequence[AttemptRecord]) -> None:
        """Store finished attempts and move their deliveries on, in one transaction.

        Each attempt is stored under its delivery. A delivery still pending gets ``status``,
        ``next_attempt_time``, ``last_error`` = ``error``, ``attempt_count`` = the attempt's
        number, ``first_attempt_time`` (if unset) = the attempt's start, ``update_time`` = its
        end, ``last_response_status`` = the attempt's response status, its lease cleared, and
        the record's ``rendered`` body if it has none yet. A delivery no longer pending
        (discarded meanwhile) keeps its status. A delivery that does not exist (purged) is
        skipped. Every change is also one ``Change``; so is every delivery created, discarded
        or redelivered.
        """

    async def release(self, delivery_names: Sequence[str]) -> None:
        """Clear the leases (and their owners) of these deliveries so they can be claimed again at
        once; their claims were not interrupted, so each one's claim count goes down by one (not
        below 0)."""

    async def take_sends(self, hook_name: str, rate: SendRate, now: datetime, wanted: int) -> SendGrant:
        """Spend up to ``wanted`` sends of the hook's token bucket at ``now``, atomically across
        every process sharing the store, and say how many were granted and when the next send
        is there (``domain/sendrate.take`` is the arithmetic; a hook never asked before starts
        with a full bucket). Granting less than asked is remembered as the hook's
        ``HookStats.rate_limited_time``."""
        ...

    async def postpone(self, delivery_names: Sequence[str], until: datetime) -> None:
        """Release these claims, as ``release`` does, and make the pending ones among them due
        at ``until``, without an attempt: nothing else of them changes (their retry window
        still counts from their first attempt). Held back by a rate limit or an open circuit."""
        ...

    async def hasten(self, hook_name: str, now: datetime) -> int:
        """Make every pending delivery of the hook due later than ``now`` due at ``now`` and
        return how many moved: its circuit closed (the endpoint answers again) or its rate limit
        changed, so what was held back for either goes at once."""
        ...

    async def mark_failing(self, hook_name: str, since: datetime, *, last_success: datetime | None) -> datetime:
        """The hook's endpoint has failed since ``since`` (the first failure a node saw after its
        own last success, ``last_success``, None if it saw none): record that, unless the time
        recorded already is earlier and still holds — no success at or after it, neither in the
        hook's health (``HookStats.last_success_time``) nor ``last_success``. Return the time that
        holds: deactivation counts from it, whichever node or process start saw the failure first."""
        ...

    async def clear_failing(self, hook_name: str) -> None:
        """Forget since when the hook fails (it was disabled: once enabled again it starts afresh);
        an unknown hook is not an error. Deleting a hook forgets it too."""

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

    # -- history ---------------------------------------------------------------------------

    async def query_deliveries(
        self, query: DeliveryQuery, *, after: str | None, limit: int, scan_limit: int
    ) -> DeliveryPage:
        """Up to ``limit`` deliveries matching ``query``, each with its event, newest first.

        Newest first is descending (event_id, name): event ids are ULIDs, so this is publish
        order, and it is a total order that new deliveries only ever extend at the front, so
        paging with ``after`` (the name of the last delivery seen) never skips or repeats one.
        At most ``scan_limit`` deliveries under the parent are examined per call, so a rare
        filter answers in bounded time; the page then holds fewer than ``limit`` deliveries and
        ``next_after`` says where to continue. Deliveries a backend skips through an index (of a
        hook's statuses or resource) are not examined; ``stores.history.plan`` says which, so
        every backend returns the same pages.
        """
        ...

    async def get_rendered(self, delivery_name: str) -> RenderedBody | None:
        """The body stored at the delivery's first attempt; None if it has had none.
        Raises ``NotFound`` for an unknown delivery."""
        ...

    async def hook_stats(self, hook_name: str, *, latency_sample: int) -> HookStats:
        """Counts per status of the hook's deliveries (every status present, 0 for none), the
        durations of up to ``latency_sample`` attempts of its newest deliveries (newest delivery
        first, its latest attempt first), the end of its last answered-2xx
        attempt, the end and error of its last failed attempt, failed attempts since the last
        success, and the earliest ``next_attempt_time`` of its pending deliveries. Must not
        read every delivery of the hook: an overview answers fast with millions of them."""
        ...

    async def hook_project_stats(self, hook_name: str, project_id: int) -> HookStats:
        """A company hook's overview narrowed to one project: counts per status of its
        deliveries of that project's events (every status present, 0 for none) and the earliest
        ``next_attempt_time`` of those pending; the other fields are left empty. Reads an index
        of (hook, project, status), never the hook's other deliveries."""
        ...

    async def redeliver(self, names: Sequence[str], now: datetime) -> list[str]:
        """Queue these deliveries again (state machine cause REDELIVER); return the names
        moved, in input order.

        Only deliveries in a status REDELIVER applies to, whose hook exists, is not DISABLED
        and was created before the delivery, are moved: to QUEUED, due at ``now``, with
        ``first_attempt_time`` None (the retry window starts again), ``last_error`` '',
        ``update_time`` = ``now``, no lease and no claims counted. Attempts and ``attempt_count`` are kept.
        Unknown names are skipped.
        """
        ...

    async def list_changes(self, query: DeliveryQuery, *, after: int, limit: int, scan_limit: int) -> ChangePage:
        """Up to ``limit`` changes with ``seq > after`` of deliveries under the query's parent
        whose status (after the change) is in ``query.statuses`` (empty: any), oldest first.
        Examines at most ``scan_limit`` changes under the parent; other criteria of ``query``
        are ignored."""
        ...

    async def change_bounds(self) -> tuple[int, int]:
        """(oldest retained seq, newest seq); (n + 1, n) when none is retained, where n is the
        newest seq ever assigned (0 for a new store)."""
        ...

    async def get_event(self, event_id: str) -> Event:
        """Return one event. Raises ``NotFound``."""
        ...

    async def purge(self, before: datetime, limit: int) -> int:
        """Delete up to ``limit`` deliveries created before ``before``, with their attempts, and
        events published before ``before`` that no delivery refers to any more, and changes
        made before ``before`` (oldest seq first, up to the first one that is not: a change
        recorded after a newer one waits for it); return how many rows were deleted (0 when
        nothing is left). Small batches keep each transaction short so delivery is never stalled.
        A backend that keeps these rows in partitions by time may instead drop, per call, the
        oldest partitions that lie wholly before ``before`` (cheaper than deleting their rows):
        it counts the rows they held, which may be more than ``limit``.
        """
        ...

    # -- what operators check first (``tidings-server status``) ---------------------------

    async def activity(self, since: datetime, *, scan_limit: int) -> Activity:
        """Count by status the changes made at or after ``since`` (their ``time``) among the
        newest ``scan_limit`` of the change log (seq order), so the cost is bounded whatever
        the traffic; ``complete`` is False when all ``scan_limit`` of them were that recent."""
        ...

    async def failing_hooks(self, *, limit: int) -> list[FailingHook]:
        """The existing hooks whose last attempts failed (``consecutive_failures > 0``, as
        ``hook_stats`` counts them), most failures in a row first, then by name; at most
        ``limit``."""
        ...

    # -- a cluster: the nodes sharing the store, their leases and their wake-ups -------------

    async def heartbeat(self, node_id: str, now: datetime, *, lease_until: datetime, in_flight: int) -> int:
        """The node is alive at ``now``: set its ``last_seen`` and ``in_flight`` (registering it
        if it is unknown), and extend to ``lease_until`` the lease of every pending delivery it
        holds whose lease has not ended (``lease_until > now``), in one statement. Returns how
        many leases were extended. A lease that ended is never revived: another node may hold
        the delivery by now."""
        ...

    async def register_node(self, node: NodeInfo) -> None:
        """Insert or replace the node with ``node.node_id`` (at start)."""

    async def list_nodes(self) -> list[NodeInfo]:
        """Every registered node, by ``node_id``."""
        ...

    async def remove_node(self, node_id: str) -> None:
        """Forget a node (at its clean shutdown) and clear every lease it holds; an unknown id
        is not an error."""

    async def listen(
        self, on_notice: Callable[[Notice], None], *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
    ) -> None:
        """Until cancelled, call ``on_notice`` for each notice any process sharing the store
        sent (this one included), once listening has started (``task_status.started()``).

        Writes send their notices themselves, with their commit: ``publish_events`` that made
        deliveries (DUE, CHANGES), ``record_attempts`` (DUE, CHANGES), ``redeliver`` (DUE,
        CHANGES), ``discard_pending`` (CHANGES), creating, updating and deleting a hook (DUE).
        A store only one process can use (memory, SQLite) starts and then sleeps forever: its
        one process wakes itself in memory. Notices may be merged, and one can be lost with a
        connection, so a caller still polls now and then.
        """

    # -- principals: bearer tokens, stored by the hash of their secret ------------------------

    async def create_token(self, token: Token) -> None:
        """Insert ``token``. Raises ``AlreadyExists`` if its id or its secret hash is taken."""

    async def get_token(self, token_id: str) -> Token:
        """Return the token with ``token_id`` (revoked ones too). Raises ``NotFound``."""
        ...

    async def find_token(self, secret_hash: str) -> Token | None:
        """The token whose secret hashes to ``secret_hash`` (revoked ones too), or None; one
        lookup by a unique key, made on every authenticated call."""
        ...

    async def list_tokens(self, *, after: str | None, limit: int) -> list[Token]:
        """Up to ``limit`` tokens (revoked ones too) with ids > ``after``, by id."""
        ...

    async def revoke_token(self, token_id: str, now: datetime) -> Token:
        """Mark the token revoked at ``now`` (a revoked one keeps its first revoke time) and
        return it. Raises ``NotFound``."""
        ...

    async def touch_token(self, token_id: str, now: datetime) -> None:
        """Set the token's ``last_used_time`` to ``now`` unless it is later already; an unknown
        id is not an error."""
