"""The SQLite store's event and delivery SQL: each function is the body of one transaction.

SqliteStore runs them in its worker thread, inside the transaction it opened, after it has
checked and converted the arguments (times arrive as integer microseconds). Pending means
QUEUED or RETRYING, spelled ``status IN ('queued', 'retrying')`` exactly as in the partial
indexes' WHERE clauses, since SQLite only uses a partial index for a query that repeats it.
"""

from __future__ import annotations

import json
import sqlite3
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from tidings_server.domain import sendrate
from tidings_server.domain.errors import NotFound
from tidings_server.domain.model import PENDING_STATUSES, Attempt, Delivery, Event, SendRate
from tidings_server.domain.names import trigger_id
from tidings_server.domain.ports import AttemptRecord, Claim, IdempotencyConflict, Published, QueueDepth, same_event
from tidings_server.domain.sendrate import SendGrant
from tidings_server.stores import history as plans
from tidings_server.stores.sqlite import history, rows

# -- publishing ------------------------------------------------------------------------------

# The largest serial ever handed out; AUTOINCREMENT keeps it in sqlite_sequence even when the
# newest event has been purged. Serials are assigned here, not by SQLite, so a whole batch can
# go in with executemany and its deliveries can carry their event's serial.
_LAST_SERIAL = """
    SELECT max(coalesce((SELECT seq FROM sqlite_sequence WHERE name = 'events'), 0),
               coalesce((SELECT max(serial) FROM events), 0))
"""
# Repeats the partial index's condition (idempotency_key != '') so that SQLite uses it.
_FIND_KEY = """
    SELECT id, serial, idempotency_fingerprint FROM events
    WHERE company_id = ? AND idempotency_key = ? AND idempotency_key != ''
"""
# One index range of triggers_by_event per (company, project, resource, event type); a
# company-level event has project_id NULL, which IS matches and the index serves.
_MATCHING_HOOKS = """
    SELECT DISTINCT t.hook_name FROM triggers AS t JOIN hooks AS h ON h.name = t.hook_name
    WHERE t.company_id = ? AND t.project_id IS ? AND t.resource_name = ? AND t.event_type = ?
      AND h.status IN ('active', 'paused')
    ORDER BY t.hook_name
"""
# A project's event: the project's hooks; the company's hooks without a project list (the
# partial index of their triggers, named: the planner would rather take triggers_by_event, which
# holds the listing hooks' triggers too); the company's hooks listing the project, each probing its
# trigger by primary key (the trigger id, ?5, is derived from the pair).
_MATCHING_HOOKS_OF_PROJECT = """
    SELECT t.hook_name FROM triggers AS t JOIN hooks AS h ON h.name = t.hook_name
    WHERE t.company_id = ?1 AND t.project_id = ?2 AND t.resource_name = ?3 AND t.event_type = ?4
      AND h.status IN ('active', 'paused')
    UNION
    SELECT t.hook_name FROM triggers AS t INDEXED BY triggers_of_every_project JOIN hooks AS h ON h.name = t.hook_name
    WHERE t.company_id = ?1 AND t.project_id IS NULL AND t.all_projects = 1 AND t.resource_name = ?3
      AND t.event_type = ?4 AND h.status IN ('active', 'paused')
    UNION
    SELECT t.hook_name FROM hook_projects AS p
    JOIN triggers AS t ON t.hook_name = p.hook_name AND t.name = p.hook_name || '/triggers/' || ?5
    JOIN hooks AS h ON h.name = p.hook_name
    WHERE p.company_id = ?1 AND p.project_id = ?2 AND t.resource_name = ?3 AND t.event_type = ?4
      AND h.status IN ('active', 'paused')
    ORDER BY 1
"""
_INSERT_EVENT = """
    INSERT INTO events (serial, id, publish_time, timestamp, company_id, project_id, user_id, resource_name,
                        resource_id, event_type, source_user_id, source_project_id, source_operation_id,
                        source_company_id, source_application_id, related_resources, idempotency_key,
                        traceparent, idempotency_fingerprint)
    VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
"""
_INSERT_DELIVERY = """
    INSERT INTO deliveries (name, hook_name, event_id, event_serial, resource_name, resource_id, status,
                            attempt_count, create_time, update_time, next_attempt_time, first_attempt_time,
                            last_error, lease_until, company_id, project_id, event_type, last_response_status)
    VALUES (?1, ?2, ?3, ?4, ?5, ?6, 'queued', 0, ?7, ?7, ?7, NULL, '', NULL, ?8, ?9, ?10, NULL)
"""

_MatchKey = tuple[int, int | None, str, str]


def publish(conn: sqlite3.Connection, *, events: Sequence[Event], now: int) -> list[Published]:
    serial: int = conn.execute(_LAST_SERIAL).fetchone()[0]
    last_stored = serial
    results: list[Published] = []
    event_rows: list[tuple[object, ...]] = []
    delivery_rows: list[tuple[str, str, str, int, str, int, int, int, int | None, str]] = []
    first_use: dict[tuple[int, str], tuple[str, int, str]] = {}
    hooks_for: dict[_MatchKey, list[str]] = {}
    for index, event in enumerate(events):
        key = event.idempotency_key
        if key:
            company_key = (event.company_id, key)
            first = first_use.get(company_key)
            if first is None:
                found = conn.execute(_FIND_KEY, company_key).fetchone()
                first = None if found is None else (found[0], found[1], found[2])
            if first is not None:
                if not same_event(first[2], event.idempotency_fingerprint):
                    raise IdempotencyConflict(index, key, first[0])
                first_use[company_key] = first
                results.append(Published(first[0], first[1], 0, True))
                continue
        serial += 1
        if key:
            first_use[(event.company_id, key)] = (event.id, serial, event.idempotency_fingerprint)
        match = (event.company_id, event.project_id, event.resource_name, event.event_type)
        hooks = hooks_for.get(match)
        if hooks is None:
            if event.project_id is None:
                found = conn.execute(_MATCHING_HOOKS, match)
            else:
                found = conn.execute(_MATCHING_HOOKS_OF_PROJECT, (*match, trigger_id(*match[2:])))
            hooks = hooks_for[match] = [row[0] for row in found]
        event_rows.append(rows.event_row(event, serial, now))
        for hook in hooks:
            name = f"{hook}/deliveries/{event.id}"
            delivery_rows.append(
                (
                    name,
                    hook,
                    event.id,
                    serial,
                    event.resource_name,
                    event.resource_id,
                    now,
                    event.company_id,
                    event.project_id,
                    event.event_type,
                )
            )
        results.append(Published(event.id, serial, len(hooks), False))
    try:
        conn.executemany(_INSERT_EVENT, event_rows)
    except sqlite3.IntegrityError as exc:
        if "events.id" not in str(exc):
            raise
        raise ValueError(f"event id {_repeated_id(conn, event_rows, last_stored)} is already taken") from None
    conn.executemany(_INSERT_DELIVERY, delivery_rows)
    conn.executemany(history.LOG_NEW_DELIVERY, delivery_rows)
    history.count(conn, Counter((row[1], "queued") for row in delivery_rows))
    return results


def _repeated_id(conn: sqlite3.Connection, event_rows: list[tuple[object, ...]], last_stored: int) -> object:
    """The first event id of the batch that an earlier event (stored, or earlier in it) has."""
    seen: set[object] = set()
    for row in event_rows:
        event_id = row[1]
        stored = conn.execute("SELECT 1 FROM events WHERE id = ? AND serial <= ?", (event_id, last_stored))
        if event_id in seen or stored.fetchone() is not None:
            return event_id
        seen.add(event_id)
    return "?"  # not reached: the IntegrityError had a reason


# -- claiming --------------------------------------------------------------------------------

# Claiming goes hook by hook: every ACTIVE hook with free concurrency takes up to that many of
# its earliest due deliveries through deliveries_due_by_hook (its leased rows, at most its
# concurrency, are the only ones skipped). The cost is one index probe per active hook plus
# the rows taken, whatever the backlog; a slow hook's backlog is never walked. For a
# PER_RESOURCE hook the NOT EXISTS probe admits only a resource's head (lowest pending serial).
# Deliveries older than their hook belong to an earlier hook of the same name (deleted, with
# its pending deliveries discarded: a crash between the two could leave some behind) and are
# never sent to the new one.
#
# Only hooks with pending deliveries are probed: a loose scan of deliveries_due_by_hook seeks
# from one hook name to the next that has any, so idle hooks (however many) cost nothing.
_PENDING_ACTIVE_HOOKS = """
    WITH RECURSIVE pending(hook_name) AS (
        SELECT (SELECT min(hook_name) FROM deliveries INDEXED BY deliveries_due_by_hook
                WHERE status IN ('queued', 'retrying'))
        UNION ALL
        SELECT (SELECT min(d.hook_name) FROM deliveries AS d INDEXED BY deliveries_due_by_hook
                WHERE d.status IN ('queued', 'retrying') AND d.hook_name > pending.hook_name)
        FROM pending WHERE pending.hook_name IS NOT NULL
    )
    SELECT h.name, h.max_concurrency, h.ordering, h.create_time
    FROM pending JOIN hooks AS h ON h.name = pending.hook_name
    WHERE h.status = 'active'
"""
_DUE_OF_HOOK = """
    SELECT d.next_attempt_time, d.event_serial, d.name
    FROM deliveries AS d INDEXED BY deliveries_due_by_hook
    WHERE d.hook_name = :hook AND d.status IN ('queued', 'retrying') AND d.next_attempt_time <= :now
      AND (d.lease_until IS NULL OR d.lease_until <= :now) AND d.create_time >= :created
    ORDER BY d.next_attempt_time, d.event_serial LIMIT :room
"""
_DUE_OF_ORDERED_HOOK = """
    SELECT d.next_attempt_time, d.event_serial, d.name
    FROM deliveries AS d INDEXED BY deliveries_due_by_hook
    WHERE d.hook_name = :hook AND d.status IN ('queued', 'retrying') AND d.next_attempt_time <= :now
      AND (d.lease_until IS NULL OR d.lease_until <= :now) AND d.create_time >= :created
      AND NOT EXISTS (
          SELECT 1 FROM deliveries AS p
          WHERE p.hook_name = d.hook_name AND p.resource_name = d.resource_name
            AND p.resource_id = d.resource_id AND p.status IN ('queued', 'retrying')
            AND p.event_serial < d.event_serial)
    ORDER BY d.next_attempt_time, d.event_serial LIMIT :room
"""
# Every claim is counted until an attempt is recorded; Claim.interrupted is the count before it.
# The lease returns the leased rows as they are after it, so the claim reads each row once; the
# events and hooks of the claim follow in one statement each (the serials and names as JSON
# arrays), an event or hook read once however many of the claim's deliveries share it.
_LEASE = """
    UPDATE deliveries SET lease_until = ?, lease_owner = ?, claims_since_attempt = claims_since_attempt + 1
    WHERE name IN (SELECT value FROM json_each(?))
    RETURNING name, hook_name, event_id, status, attempt_count, create_time, update_time, next_attempt_time,
              first_attempt_time, last_error, company_id, project_id, resource_name, resource_id, event_type,
              last_response_status, event_serial, claims_since_attempt
"""
# Every hook's unexpired leases, whoever holds them, but the claiming owner's finished ones
# (attempts over, records on the way): the leased rows are few (one per attempt in flight) and
# all in this partial index.
_LEASES_HELD = """
    SELECT hook_name, count(*) FROM deliveries INDEXED BY deliveries_leased_by_hook
    WHERE lease_until IS NOT NULL AND lease_until > :now
      AND NOT (lease_owner = :owner AND name IN (SELECT value FROM json_each(:finished)))
    GROUP BY hook_name
"""
_CLAIMED_EVENTS = """
    SELECT serial, id, publish_time, timestamp, company_id, project_id, user_id, resource_name, resource_id,
           event_type, source_user_id, source_project_id, source_operation_id, source_company_id,
           source_application_id, related_resources, idempotency_key, traceparent, idempotency_fingerprint
    FROM events WHERE serial IN (SELECT value FROM json_each(?))
"""
# The hook columns rows.hook() reads with signing and protection (no projects: a claim needs none).
_CLAIMED_HOOKS = """
    SELECT name, company_id, project_id, display_name, destination_url, authorization_header, payload_format,
           status, create_time, update_time, timeout_us, retry_window_us, initial_backoff_us, max_backoff_us,
           retryable_statuses, ordering, max_concurrency, signing_disabled, signing_secret,
           previous_signing_secret, previous_secret_expire_time, rate_limit_per_second, rate_limit_burst,
           disabled_reason, disable_time
    FROM hooks WHERE name IN (SELECT value FROM json_each(?))
"""


def claim(
    conn: sqlite3.Connection, *, now: int, limit: int, lease_until: int, owner: str, finished: list[str]
) -> list[Claim]:
    held_args = {"now": now, "owner": owner, "finished": json.dumps(finished)}
    held: dict[str, int] = dict(conn.execute(_LEASES_HELD, held_args).fetchall())
    candidates: list[tuple[int, int, str]] = []
    for hook_name, max_concurrency, ordering, created in conn.execute(_PENDING_ACTIVE_HOOKS).fetchall():
        room = min(limit, max_concurrency - held.get(hook_name, 0))
        if room <= 0:
            continue
        query = _DUE_OF_ORDERED_HOOK if ordering == "per_resource" else _DUE_OF_HOOK
        args = {"hook": hook_name, "now": now, "room": room, "created": created}
        candidates += conn.execute(query, args).fetchall()
    candidates.sort()  # earliest due first across hooks, then publish order
    chosen = [name for _, _, name in candidates[:limit]]
    if not chosen:
        return []
    found = {row[0]: row for row in conn.execute(_LEASE, (lease_until, owner, json.dumps(chosen)))}
    serials = sorted({row[16] for row in found.values()})
    events = {row[0]: rows.event(row) for row in conn.execute(_CLAIMED_EVENTS, (json.dumps(serials),))}
    hook_names = sorted({row[1] for row in found.values()})
    hooks = {row[0]: rows.hook(row) for row in conn.execute(_CLAIMED_HOOKS, (json.dumps(hook_names),))}
    claims: list[Claim] = []
    for name in chosen:
        row = found[name]
        claims.append(Claim(rows.delivery(row[:16]), events[row[16]], hooks[row[1]], row[17] - 1))
    return claims


# When claimable work may appear next: the earliest due time of an unleased pending delivery
# of an ACTIVE hook, or, for a leased one, the later of its due time and its lease end. Only
# times after ``after`` count. The unleased walk stops at its first row; the leased rows,
# few (one per attempt in flight), come from their own small partial index.
_EARLIEST_UNLEASED = """
    SELECT d.next_attempt_time FROM deliveries AS d CROSS JOIN hooks AS h
    WHERE d.status IN ('queued', 'retrying') AND d.next_attempt_time > ? AND d.lease_until IS NULL
      AND h.name = d.hook_name AND h.status = 'active'
    ORDER BY d.next_attempt_time LIMIT 1
"""
_EARLIEST_LEASED = """
    SELECT min(max(d.next_attempt_time, d.lease_until))
    FROM deliveries AS d INDEXED BY deliveries_leased_by_hook CROSS JOIN hooks AS h
    WHERE d.lease_until IS NOT NULL AND d.status IN ('queued', 'retrying')
      AND max(d.next_attempt_time, d.lease_until) > ?
      AND h.name = d.hook_name AND h.status = 'active'
"""


# The backlog for operators: the due, unleased pending rows in due order (so the first is the
# oldest), counted up to a limit so that a huge backlog costs a bounded walk of one index.
_QUEUE_DEPTH = """
    SELECT count(*), min(next_attempt_time) FROM (
        SELECT next_attempt_time FROM deliveries INDEXED BY deliveries_due
        WHERE status IN ('queued', 'retrying') AND next_attempt_time <= :now
          AND (lease_until IS NULL OR lease_until <= :now)
        ORDER BY next_attempt_time LIMIT :limit)
"""


def queue_depth(conn: sqlite3.Connection, *, now: int, limit: int) -> QueueDepth:
    due, oldest = conn.execute(_QUEUE_DEPTH, {"now": now, "limit": limit}).fetchone()
    return QueueDepth(due, None if oldest is None else rows.from_micros(oldest))


def next_due_time(conn: sqlite3.Connection, *, after: int) -> datetime | None:
    unleased = conn.execute(_EARLIEST_UNLEASED, (after,)).fetchone()
    (leased,) = conn.execute(_EARLIEST_LEASED, (after,)).fetchone()
    times = [t for t in (None if unleased is None else unleased[0], leased) if t is not None]
    return rows.from_micros(min(times)) if times else None


_PENDING_VALUES = frozenset(s.value for s in PENDING_STATUSES)

# -- recording -------------------------------------------------------------------------------

# An attempt is kept only if its delivery still exists (it may have been purged meanwhile: record
# inserts only the attempts of the deliveries it read); a second record of the same attempt
# number keeps the first.
_INSERT_ATTEMPT = """
    INSERT INTO attempts (delivery_name, number, start_time, end_time, request_headers, response_status,
                          response_headers, response_body, error)
    VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)
    ON CONFLICT (delivery_name, number) DO NOTHING
"""
_RECORD = """
    UPDATE deliveries SET status = ?, next_attempt_time = ?, last_error = ?, attempt_count = ?,
                          first_attempt_time = coalesce(first_attempt_time, ?), update_time = ?, lease_until = NULL,
                          lease_owner = NULL, last_response_status = ?, claims_since_attempt = 0
    WHERE name = ? AND status IN ('queued', 'retrying')
"""
# The first body is kept; it is written only with an update that applies (a pending delivery).
_INSERT_BODY = """
    INSERT INTO delivery_bodies (delivery_name, content_type, body) VALUES (?, ?, ?)
    ON CONFLICT (delivery_name) DO NOTHING
"""
# Each delivery's status before the batch, and the columns of its change-log row that an update
# leaves as they are (first_attempt_time only moves from NULL).
_STATUSES = """
    SELECT name, status, hook_name, event_id, create_time, first_attempt_time, company_id, project_id,
           resource_name, resource_id, event_type
    FROM deliveries WHERE name IN (SELECT value FROM json_each(?))
"""
_HEALTH = """
    SELECT hook_name, last_success_time, last_failure_time, last_failure_reason, consecutive_failures
    FROM hook_health WHERE hook_name IN (SELECT value FROM json_each(?))
"""
_WRITE_HEALTH = """
    INSERT OR REPLACE INTO hook_health (hook_name, last_success_time, last_failure_time, last_failure_reason,
                                        consecutive_failures)
    VALUES (?, ?, ?, ?, ?)
"""


@dataclass(frozen=True, slots=True)
class Recording:
    """Rows for ``record``, one of each per record, in record order: the attempt, the delivery's
    update, the rendered body (content type and bytes, or None) and whether the attempt succeeded."""

    attempts: list[tuple[object, ...]] = field(default_factory=list)
    updates: list[tuple[object, ...]] = field(default_factory=list)
    bodies: list[tuple[str, bytes] | None] = field(default_factory=list)
    successes: list[bool] = field(default_factory=list)


def recording(records: Sequence[AttemptRecord]) -> Recording:
    """Check and convert ``records``."""
    out = Recording()
    for record in records:
        attempt = record.attempt
        if record.status in PENDING_STATUSES and record.next_attempt_time is None:
            raise ValueError(f"{record.delivery_name}: a {record.status.value} delivery needs a next_attempt_time")
        row = rows.attempt_row(record.delivery_name, attempt)
        out.attempts.append(row)
        out.updates.append(
            (
                record.status.value,
                rows.optional_micros("next_attempt_time", record.next_attempt_time),
                record.error,
                attempt.number,
                row[2],  # start_time
                row[3],  # end_time
                attempt.response_status,
                record.delivery_name,
            )
        )
        rendered = record.rendered
        out.bodies.append(None if rendered is None else (rendered.content_type, bytes(rendered.body)))
        out.successes.append(plans.succeeded(attempt.response_status))
    return out


def _hook_of(delivery_name: str) -> str:
    return delivery_name.rsplit("/deliveries/", 1)[0]


def record(conn: sqlite3.Connection, *, recording: Recording) -> None:
    # What each record does follows from the deliveries' statuses before the batch, taken in
    # record order: an update applies to a pending delivery (it is logged as it was right after
    # it, counted, and brings the first body), and every attempt of a delivery that exists
    # is kept and moves its hook's health on.
    names = sorted({str(update[-1]) for update in recording.updates})
    found = {row[0]: row for row in conn.execute(_STATUSES, (json.dumps(names),))}
    conn.executemany(_INSERT_ATTEMPT, [attempt for attempt in recording.attempts if attempt[0] in found])
    statuses: dict[str, str] = {name: row[1] for name, row in found.items()}
    hooks = sorted({_hook_of(name) for name in statuses})
    health = {row[0]: list(row[1:]) for row in conn.execute(_HEALTH, (json.dumps(hooks),))}
    deltas: Counter[tuple[str, str]] = Counter()
    applied: list[tuple[object, ...]] = []
    bodies: list[tuple[str, str, bytes]] = []
    records = zip(recording.attempts, recording.updates, recording.bodies, recording.successes, strict=True)
    for attempt, update, body, ok in records:
        name = str(update[-1])
        old = statuses.get(name)
        if old is None:
            continue  # purged meanwhile
        hook = _hook_of(name)
        _move_health(health.setdefault(hook, [None, None, "", 0]), ok, end=attempt[3], error=attempt[8])
        if old not in _PENDING_VALUES:
            continue  # no longer pending: the attempt is history, the status stands
        applied.append(update)
        if body is not None:
            bodies.append((name, *body))
        new = str(update[0])
        deltas[hook, old] -= 1
        deltas[hook, new] += 1
        statuses[name] = new
    conn.executemany(_INSERT_BODY, bodies)
    moved = [str(update[-1]) for update in applied]
    if len(set(moved)) == len(moved):
        conn.executemany(_RECORD, applied)
        conn.executemany(history.LOG_CHANGE_VALUES, [_change_row(found[str(u[-1])], u) for u in applied])
    else:  # a delivery moved twice in one batch: each change is logged as it was then
        for update, name in zip(applied, moved, strict=True):
            conn.execute(_RECORD, update)
            history.log_changes(conn, [name])
    history.count(conn, deltas)
    conn.executemany(_WRITE_HEALTH, [(hook, *values) for hook, values in health.items()])


def _change_row(before: Sequence[Any], update: tuple[object, ...]) -> tuple[object, ...]:
    """The change-log row of a delivery read as ``before`` (_STATUSES) once ``update`` (_RECORD's
    parameters) applied to it, in LOG_CHANGE_VALUES' parameter order."""
    status, next_attempt, error, attempts, start, end, response_status, name = update
    _, _, hook_name, event_id, created, first_attempt, company_id, project_id, resource, resource_id, kind = before
    first = start if first_attempt is None else first_attempt
    return (
        name, hook_name, event_id, status, attempts, created, next_attempt, end, first, error,
        company_id, project_id, resource, resource_id, kind, response_status,
    )  # fmt: skip


def _move_health(health: list[Any], ok: bool, *, end: object, error: object) -> None:
    """In record order: a success resets the failure streak; the last success and the last
    failure only ever move forward in time. ``health`` is (last success, last failure, its
    reason, consecutive failures), changed in place."""
    if ok:
        if health[0] is None or health[0] < end:
            health[0] = end
        health[3] = 0
    else:
        if health[1] is None or health[1] <= end:
            health[1], health[2] = end, error
        health[3] += 1


# Released, not interrupted: the claim is taken back.
_RELEASE = """
    UPDATE deliveries SET lease_until = NULL, lease_owner = NULL,
        claims_since_attempt = max(claims_since_attempt - 1, 0)
    WHERE name = ?
"""


def release(conn: sqlite3.Connection, *, names: list[str]) -> None:
    conn.executemany(_RELEASE, [(name,) for name in names])


# Released as above, and due again at ?; only pending rows move (a finished one has no due time).
_POSTPONE = """
    UPDATE deliveries SET lease_until = NULL, lease_owner = NULL,
        claims_since_attempt = max(claims_since_attempt - 1, 0),
        next_attempt_time = CASE WHEN status IN ('queued', 'retrying') THEN ? ELSE next_attempt_time END
    WHERE name = ?
"""


def postpone(conn: sqlite3.Connection, *, names: list[str], until: int) -> None:
    conn.executemany(_POSTPONE, [(until, name) for name in names])


_HASTEN = """
    UPDATE deliveries INDEXED BY deliveries_due_by_hook SET next_attempt_time = :now
    WHERE hook_name = :hook AND status IN ('queued', 'retrying') AND next_attempt_time > :now
"""


def hasten(conn: sqlite3.Connection, *, hook_name: str, now: int) -> int:
    count: int = conn.execute(_HASTEN, {"hook": hook_name, "now": now}).rowcount
    return count


_BUCKET = "SELECT tokens, at, limited_time FROM send_buckets WHERE hook_name = ?"
_WRITE_BUCKET = "INSERT OR REPLACE INTO send_buckets (hook_name, tokens, at, limited_time) VALUES (?, ?, ?, ?)"


def take_sends(conn: sqlite3.Connection, *, hook_name: str, rate: SendRate, now: int, wanted: int) -> SendGrant:
    """One writer at a time (the store's write lock, and SQLite's): the read and write of the
    bucket cannot interleave with another take's."""
    row = conn.execute(_BUCKET, (hook_name,)).fetchone()
    bucket = None if row is None else sendrate.Bucket(row[0], rows.from_micros(row[1]))
    grant, bucket = sendrate.take(bucket, rate, rows.from_micros(now), wanted)
    limited = now if grant.granted < wanted else (None if row is None else row[2])
    conn.execute(_WRITE_BUCKET, (hook_name, bucket.tokens, now, limited))
    return grant


# INDEXED BY: only the hook's pending rows are read, never its whole history.
_DISCARD = """
    UPDATE deliveries INDEXED BY deliveries_pending_by_resource
    SET status = 'discarded', next_attempt_time = NULL, last_error = ?, update_time = ?, lease_until = NULL,
        lease_owner = NULL
    WHERE hook_name = ? AND status IN ('queued', 'retrying')
"""


_PENDING_OF_HOOK = """
    SELECT name, status FROM deliveries INDEXED BY deliveries_pending_by_resource
    WHERE hook_name = ? AND status IN ('queued', 'retrying')
"""


def discard_pending(conn: sqlite3.Connection, *, hook_name: str, now: int, reason: str) -> int:
    pending = conn.execute(_PENDING_OF_HOOK, (hook_name,)).fetchall()
    count: int = conn.execute(_DISCARD, (reason, now, hook_name)).rowcount
    history.log_changes(conn, sorted(name for name, _ in pending))
    deltas = Counter((hook_name, status) for _, status in pending)
    history.count(conn, {key: -n for key, n in deltas.items()} | {(hook_name, "discarded"): len(pending)})
    return count


# -- reading ---------------------------------------------------------------------------------

_SELECT_DELIVERY = """
    SELECT name, hook_name, event_id, status, attempt_count, create_time, update_time, next_attempt_time,
           first_attempt_time, last_error, company_id, project_id, resource_name, resource_id, event_type,
           last_response_status
    FROM deliveries WHERE name = ?
"""
_LIST_DELIVERIES = """
    SELECT name, hook_name, event_id, status, attempt_count, create_time, update_time, next_attempt_time,
           first_attempt_time, last_error, company_id, project_id, resource_name, resource_id, event_type,
           last_response_status
    FROM deliveries WHERE name > ? AND name < ? AND hook_name = ? ORDER BY name LIMIT ?
"""
_LIST_ATTEMPTS = """
    SELECT number, start_time, end_time, request_headers, response_status, response_headers, response_body, error
    FROM attempts WHERE delivery_name = ? ORDER BY number
"""
_SELECT_EVENT = """
    SELECT serial, id, publish_time, timestamp, company_id, project_id, user_id, resource_name, resource_id,
           event_type, source_user_id, source_project_id, source_operation_id, source_company_id,
           source_application_id, related_resources, idempotency_key, traceparent,
           idempotency_fingerprint
    FROM events WHERE id = ?
"""


def get_delivery(conn: sqlite3.Connection, *, name: str) -> Delivery:
    row = conn.execute(_SELECT_DELIVERY, (name,)).fetchone()
    if row is None:
        raise NotFound(f"delivery {name} does not exist")
    return rows.delivery(row)


def list_attempts(conn: sqlite3.Connection, *, delivery_name: str) -> list[Attempt]:
    if conn.execute("SELECT 1 FROM deliveries WHERE name = ?", (delivery_name,)).fetchone() is None:
        raise NotFound(f"delivery {delivery_name} does not exist")
    return [rows.attempt(row) for row in conn.execute(_LIST_ATTEMPTS, (delivery_name,))]


def list_deliveries(conn: sqlite3.Connection, *, hook_name: str, after: str, limit: int) -> list[Delivery]:
    # A hook's deliveries are the names from "{hook}/deliveries/" up to "{hook}/deliveries0"
    # ("0" follows "/"): one range of the primary key. A hook name holds no "/deliveries/", so
    # no other hook's delivery falls inside; the hook_name test only confirms it.
    prefix = f"{hook_name}/deliveries/"
    args = (max(after, prefix), f"{hook_name}/deliveries0", hook_name, limit)
    return [rows.delivery(row) for row in conn.execute(_LIST_DELIVERIES, args)]


def get_event(conn: sqlite3.Connection, *, event_id: str) -> Event:
    row = conn.execute(_SELECT_EVENT, (event_id,)).fetchone()
    if row is None:
        raise NotFound(f"event {event_id} does not exist")
    return rows.event(row)


# -- purging ---------------------------------------------------------------------------------

# Oldest first. Attempts and bodies go with their delivery (ON DELETE CASCADE); the purge
# takes each one off its hook's counters from the rows it read; changes() counts only the
# deliveries. Events go once no
# delivery refers to them, then old changes, within what is left of the batch.
_OLD_DELIVERIES = "SELECT rowid, hook_name, status FROM deliveries WHERE create_time < ? ORDER BY create_time LIMIT ?"
_PURGE_DELIVERIES = "DELETE FROM deliveries WHERE rowid IN (SELECT value FROM json_each(?))"
_PURGE_EVENTS = """
    DELETE FROM events WHERE serial IN (
        SELECT serial FROM events AS e
        WHERE e.publish_time < ? AND NOT EXISTS (SELECT 1 FROM deliveries AS d WHERE d.event_serial = e.serial)
        ORDER BY e.publish_time LIMIT ?)
"""


def purge(conn: sqlite3.Connection, *, before: int, limit: int) -> int:
    old = conn.execute(_OLD_DELIVERIES, (before, limit)).fetchall()
    deleted: int = conn.execute(_PURGE_DELIVERIES, (json.dumps([rowid for rowid, _, _ in old]),)).rowcount
    history.count(conn, {key: -n for key, n in Counter((hook, status) for _, hook, status in old).items()})
    if deleted < limit:
        deleted += conn.execute(_PURGE_EVENTS, (before, limit - deleted)).rowcount
    if deleted < limit:
        deleted += history.purge_changes(conn, before=before, limit=limit - deleted)
    return deleted
