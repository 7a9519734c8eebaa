"""The PostgreSQL store's event and delivery SQL: each function is the body of one transaction.

PostgresStore runs them in a worker thread on a pooled connection, inside the transaction it
opened, after it has checked the arguments. A delivery is addressed by (name, create_time), its
primary key, wherever the create time is known, so PostgreSQL reads one day's partition.
Arrays (the columns of ``unnest(…)``, the lists of ``ANY(…)``) are binary parameters (``%b``):
psycopg dumps a text array in a Python loop that quotes and escapes every element, about 16
times the cost per row (docs/performance.md).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any, Final

import psycopg
from psycopg import sql

from tidings_postgresql import changelog, partitions, rows
from tidings_postgresql.rows import ATTEMPT_COLUMNS, DELIVERY_COLUMNS, EVENT_COLUMNS, HOOK_COLUMNS, prefixed
from tidings_server.domain import sendrate
from tidings_server.domain.errors import NotFound
from tidings_server.domain.model import PENDING_STATUSES, Attempt, Delivery, Event, Hook, SendRate
from tidings_server.domain.names import trigger_id
from tidings_server.domain.ports import AttemptRecord, Claim, IdempotencyConflict, Published, QueueDepth, same_event
from tidings_server.domain.sendrate import SendGrant
from tidings_server.stores import history as plans

PENDING: Final = "status IN ('queued', 'retrying')"
_PENDING_VALUES: Final = frozenset(s.value for s in PENDING_STATUSES)
DUE: Final = "due"
CHANGES: Final = "changes"


def columns(rows: Sequence[Sequence[Any]]) -> list[list[Any]]:
    """``rows`` turned into one list per column, the parameters of an ``unnest`` statement."""
    return [list(column) for column in zip(*rows, strict=True)]


class KeyRace(Exception):
    """Another server stored an idempotency key this publish meant to store: run it again."""


# -- publishing ------------------------------------------------------------------------------

_FIND_KEYS: Final = """
    SELECT k.company_id, k.idempotency_key, k.event_id, k.serial, k.fingerprint FROM idempotency_keys AS k
    JOIN unnest(%b::bigint[], %b::text[]) AS u(company_id, idempotency_key)
      ON k.company_id = u.company_id AND k.idempotency_key = u.idempotency_key
"""
_TAKEN_IDS: Final = "SELECT id FROM events WHERE id = ANY(%b)"
_SERIALS: Final = "SELECT nextval('event_serials') FROM generate_series(1, %s)"
_STORE_KEYS: Final = """
    INSERT INTO idempotency_keys (company_id, idempotency_key, event_id, serial, fingerprint, publish_time)
    SELECT * FROM unnest(%b::bigint[], %b::text[], %b::text[], %b::bigint[], %b::text[], %b::timestamptz[])
    ON CONFLICT DO NOTHING
"""
_MATCHING_HOOKS: Final = """
    SELECT DISTINCT t.hook_name FROM triggers AS t JOIN hooks AS h ON h.name = t.hook_name
    WHERE t.company_id = %s AND {project} AND t.resource_name = %s AND t.event_type = %s
      AND h.status IN ('active', 'paused')
    ORDER BY t.hook_name
"""
_EVENT_TYPES: Final = (
    "bigint", "text", "timestamptz", "timestamptz", "bigint", "bigint", "bigint", "text", "bigint", "text", "bigint",
    "bigint", "bigint", "bigint", "text", "text", "text", "text", "text",
)  # fmt: skip
# Every event and delivery of a publish in one statement each, from one array per column (a
# delivery's are changelog.NEW_DELIVERY_FIELDS, which its change is logged from, too).
_INSERT_EVENTS: Final = (
    f"INSERT INTO events ({EVENT_COLUMNS}) SELECT * FROM unnest({', '.join(f'%s::{t}[]' for t in _EVENT_TYPES)})"
)
_INSERT_DELIVERIES: Final = """
    INSERT INTO deliveries (name, hook_name, event_id, event_serial, resource_name, resource_id, status,
                            attempt_count, create_time, update_time, next_attempt_time, first_attempt_time,
                            last_error, company_id, project_id, event_type, last_response_status)
    SELECT u.name, u.hook, u.event_id, u.serial, u.resource, u.resource_id, 'queued', 0, u.now, u.now, u.now,
           NULL, '', u.company, u.project, u.event_type, NULL
    FROM unnest(%b::text[], %b::text[], %b::text[], %b::bigint[], %b::text[], %b::bigint[], %b::timestamptz[],
                %b::bigint[], %b::bigint[], %b::text[])
        AS u(name, hook, event_id, serial, resource, resource_id, now, company, project, event_type)
"""


# A project's event: the project's hooks; the company's hooks without a project list (the
# partial index of their triggers); the company's hooks listing the project (the GIN index of
# the lists), each probing its trigger by primary key (the trigger id is derived from the pair).
_MATCHING_HOOKS_OF_PROJECT: Final = """
    SELECT t.hook_name FROM triggers AS t JOIN hooks AS h ON h.name = t.hook_name
    WHERE t.company_id = %(company)s AND t.project_id = %(project)s AND t.resource_name = %(resource)s
      AND t.event_type = %(event_type)s AND h.status IN ('active', 'paused')
    UNION
    SELECT t.hook_name FROM triggers AS t JOIN hooks AS h ON h.name = t.hook_name
    WHERE t.company_id = %(company)s AND t.project_id IS NULL AND t.all_projects
      AND t.resource_name = %(resource)s AND t.event_type = %(event_type)s AND h.status IN ('active', 'paused')
    UNION
    SELECT t.hook_name FROM hooks AS h
    JOIN triggers AS t ON t.hook_name = h.name AND t.name = h.name || '/triggers/' || %(trigger_id)s
    WHERE h.project_id IS NULL AND h.projects @> ARRAY[%(project)s]::bigint[] AND h.company_id = %(company)s
      AND t.resource_name = %(resource)s AND t.event_type = %(event_type)s AND h.status IN ('active', 'paused')
    ORDER BY 1
"""


def _matching_hooks(conn: psycopg.Connection[Any], event: Event) -> list[str]:
    if event.project_id is None:
        query = _MATCHING_HOOKS.format(project="t.project_id IS NULL")
        found = conn.execute(query, (event.company_id, event.resource_name, event.event_type)).fetchall()
    else:
        args = {
            "company": event.company_id,
            "project": event.project_id,
            "resource": event.resource_name,
            "event_type": event.event_type,
            "trigger_id": trigger_id(event.resource_name, event.event_type),
        }
        found = conn.execute(_MATCHING_HOOKS_OF_PROJECT, args).fetchall()
    return [row[0] for row in found]


def publish(conn: psycopg.Connection[Any], *, events: Sequence[Event], now: datetime) -> list[Published]:
    keyed = sorted({(e.company_id, e.idempotency_key) for e in events if e.idempotency_key})
    # The first use of each key: (event id, serial, fingerprint), stored earlier or in this batch.
    known: dict[tuple[int, str], tuple[str, int, str]] = {}
    if keyed:
        found = conn.execute(_FIND_KEYS, ([k[0] for k in keyed], [k[1] for k in keyed])).fetchall()
        known = {(company, key): (event_id, serial, fp) for company, key, event_id, serial, fp in found}
    # Which events are stored: the first use of each key, and every event without one.
    stored: list[Event] = []
    first_in_batch: dict[tuple[int, str], Event] = {}
    for index, event in enumerate(events):
        key = (event.company_id, event.idempotency_key)
        if event.idempotency_key:
            first = known.get(key)
            earlier = first_in_batch.get(key)
            if first is None and earlier is not None:
                first = (earlier.id, 0, earlier.idempotency_fingerprint)
            if first is not None:
                if not same_event(first[2], event.idempotency_fingerprint):
                    raise IdempotencyConflict(index, event.idempotency_key, first[0])
                continue
            first_in_batch[key] = event
        stored.append(event)
    ids = [e.id for e in stored]
    taken = {row[0] for row in conn.execute(_TAKEN_IDS, (ids,)).fetchall()} if ids else set()
    seen: set[str] = set()
    for event_id in ids:
        if event_id in taken or event_id in seen:
            raise ValueError(f"event id {event_id} is already taken")
        seen.add(event_id)
    serials = sorted(int(row[0]) for row in conn.execute(_SERIALS, (len(stored),)).fetchall()) if stored else []
    serial_of = {e.id: s for e, s in zip(stored, serials, strict=True)}
    new_keys = [
        (e.company_id, e.idempotency_key, e.id, serial_of[e.id], e.idempotency_fingerprint)
        for e in stored
        if e.idempotency_key
    ]
    if new_keys:
        with conn.cursor() as cur:
            cur.execute(_STORE_KEYS, (*columns(new_keys), [now] * len(new_keys)))
            if cur.rowcount != len(new_keys):
                raise KeyRace
    for e in stored:
        if e.idempotency_key:
            known[(e.company_id, e.idempotency_key)] = (e.id, serial_of[e.id], e.idempotency_fingerprint)
    results: list[Published] = []
    event_rows: list[tuple[Any, ...]] = []
    delivery_rows: list[tuple[Any, ...]] = []
    hooks_for: dict[tuple[int, int | None, str, str], list[str]] = {}
    stored_ids = set(serial_of)
    done: set[str] = set()
    for event in events:
        if event.id not in stored_ids or event.id in done:
            first = known[(event.company_id, event.idempotency_key)]
            results.append(Published(first[0], first[1], 0, True))
            continue
        done.add(event.id)
        serial = serial_of[event.id]
        match = (event.company_id, event.project_id, event.resource_name, event.event_type)
        hooks = hooks_for.get(match)
        if hooks is None:
            hooks = hooks_for[match] = _matching_hooks(conn, event)
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
    with conn.pipeline():  # the writes need no answer before the next: one round trip for them all
        if event_rows:
            conn.execute(_INSERT_EVENTS, columns(event_rows))
        if delivery_rows:
            new = columns(delivery_rows)
            conn.execute(_INSERT_DELIVERIES, new)
            changelog.count(conn, Counter((row[1], "queued") for row in delivery_rows))
            changelog.log_new(conn, new)
            changelog.notify(conn, DUE, CHANGES)
    return results


# -- claiming --------------------------------------------------------------------------------

# Two statements. The first locks the ACTIVE hooks (FOR NO KEY UPDATE SKIP LOCKED) for the
# rest of the transaction, so two servers never count one hook's leases at once: a hook another
# server is claiming from is skipped this round (that server takes its share). The claim is a
# second statement because under READ COMMITTED a statement reads the snapshot it started
# with: had the lock been taken inside it, a claim that committed between its start and the
# lock would be invisible to its lease count and to its test for live leases, and the hook
# would get more than its room, or a delivery two leases. Its room is its max_concurrency less
# its live leases, whoever holds them (leases_by_hook); each hook offers up to its room of its
# earliest due deliveries without a live lease through deliveries_due_by_hook, and of all of
# those the earliest due ``limit`` are leased to the owner: a row of leases each, made or taken
# over from a lease that ran out, whose count of claims says whether an attempt was cut off.
# The deliveries themselves are only locked (FOR UPDATE: a record or a discard under way skips
# them), never updated. A PER_RESOURCE hook only offers a resource's head: the pending delivery
# with the lowest serial, leased or not. Deliveries older than their hook belong to an earlier
# hook of the same name and are never claimed.
_CLAIM: Final = f"""
    WITH active AS (
        SELECT name, max_concurrency, ordering, create_time FROM hooks
        WHERE name = ANY(%(hooks)b) AND status = 'active'
    ), room AS (
        SELECT a.name, a.ordering, a.create_time,
               least(%(limit)s, a.max_concurrency - (
                   SELECT count(*)::integer FROM leases AS l
                   WHERE l.hook_name = a.name AND l.lease_until > %(now)s
                     AND NOT (l.owner = %(owner)s AND l.delivery_name = ANY(%(finished)b)))) AS room
        FROM active AS a
    ), candidates AS (
        SELECT c.*
        FROM room AS r CROSS JOIN LATERAL (
            SELECT {prefixed(DELIVERY_COLUMNS, "d")}, d.event_serial FROM deliveries AS d
            WHERE d.hook_name = r.name AND d.{PENDING} AND d.next_attempt_time <= %(now)s
              AND d.create_time >= r.create_time
              AND NOT EXISTS (
                  SELECT 1 FROM leases AS l WHERE l.delivery_name = d.name AND l.lease_until > %(now)s)
              AND (r.ordering <> 'per_resource' OR NOT EXISTS (
                  SELECT 1 FROM deliveries AS p
                  WHERE p.hook_name = d.hook_name AND p.resource_name = d.resource_name
                    AND p.resource_id = d.resource_id AND p.{PENDING} AND p.event_serial < d.event_serial))
            ORDER BY d.next_attempt_time, d.event_serial LIMIT greatest(r.room, 0)
            FOR UPDATE OF d SKIP LOCKED
        ) AS c
        WHERE r.room > 0
        ORDER BY c.next_attempt_time, c.event_serial, c.name LIMIT %(limit)s
    ), leased AS (
        INSERT INTO leases AS l (delivery_name, delivery_create_time, hook_name, owner, lease_until, claims)
        SELECT name, create_time, hook_name, %(owner)s, %(lease_until)s, 1 FROM candidates
        ON CONFLICT (delivery_name) DO UPDATE
            SET owner = excluded.owner, lease_until = excluded.lease_until, claims = l.claims + 1
        RETURNING l.delivery_name, l.claims - 1 AS interrupted
    )
    SELECT {prefixed(DELIVERY_COLUMNS, "c")}, {prefixed(HOOK_COLUMNS, "h")}, {prefixed(EVENT_COLUMNS, "e")},
           l.interrupted
    FROM candidates AS c
    JOIN leased AS l ON l.delivery_name = c.name
    JOIN hooks AS h ON h.name = c.hook_name
    JOIN events AS e ON e.serial = c.event_serial AND e.publish_time = c.create_time
    ORDER BY c.next_attempt_time, c.event_serial, c.name
"""
_LOCK_ACTIVE_HOOKS: Final = """
    SELECT name FROM hooks WHERE status = 'active' ORDER BY name FOR NO KEY UPDATE SKIP LOCKED
"""
_GENERIC_PLAN: Final = "SET LOCAL plan_cache_mode = force_generic_plan"
_N_DELIVERY: Final = 16
_N_HOOK: Final = 28


def claim(
    conn: psycopg.Connection[Any], *, now: datetime, limit: int, lease_until: datetime, owner: str, finished: list[str]
) -> list[Claim]:
    hooks_locked = [row[0] for row in conn.execute(_LOCK_ACTIVE_HOOKS).fetchall()]
    if not hooks_locked:
        return []
    args = {"now": now, "limit": limit, "lease_until": lease_until, "owner": owner, "hooks": hooks_locked,
            "finished": finished}  # fmt: skip
    # Leased and read in one statement, earliest due first, then publish order, then name, on a
    # generic plan prepared once per connection: planned afresh for each claim, over every day's
    # partition of the deliveries and each of their indexes, it cost the database as much CPU as
    # running it (docs/performance.md). Its parameters prune nothing at plan time anyway.
    conn.execute(_GENERIC_PLAN)
    found = conn.execute(_CLAIM, args, prepare=True).fetchall()
    # Each hook, and each event (its deliveries to several hooks are claimed together), is read
    # once per claim: an event is a fifth of a claim's Python time, per row.
    hooks: dict[str, Hook] = {}
    events: dict[int, Event] = {}
    claims: list[Claim] = []
    for row in found:
        hook = hooks.get(row[1])
        if hook is None:
            hook = hooks[row[1]] = rows.hook(row[_N_DELIVERY : _N_DELIVERY + _N_HOOK])
        delivery = rows.delivery(row[:_N_DELIVERY])
        serial = row[_N_DELIVERY + _N_HOOK]  # EVENT_COLUMNS start with the serial
        event = events.get(serial)
        if event is None:
            event = events[serial] = rows.event(row[_N_DELIVERY + _N_HOOK : -1])
        # Every claim is counted until an attempt is recorded; Claim.interrupted is the count before it.
        claims.append(Claim(delivery, event, hook, interrupted=int(row[-1])))
    return claims


_QUEUE_DEPTH: Final = f"""
    SELECT count(*), min(t) FROM (
        SELECT d.next_attempt_time AS t FROM deliveries AS d
        WHERE d.{PENDING} AND d.next_attempt_time <= %(now)s
          AND NOT EXISTS (SELECT 1 FROM leases AS l WHERE l.delivery_name = d.name AND l.lease_until > %(now)s)
        ORDER BY d.next_attempt_time LIMIT %(limit)s) AS due
"""


def queue_depth(conn: psycopg.Connection[Any], *, now: datetime, limit: int) -> QueueDepth:
    row = conn.execute(_QUEUE_DEPTH, {"now": now, "limit": limit}).fetchone()
    assert row is not None
    return QueueDepth(int(row[0]), row[1])


_BEFORE_ANY: Final = datetime.min.replace(tzinfo=UTC)
# The earliest of: a pending delivery without a live lease due after ``after`` (hook by hook,
# in due order), and a live lease's end. Only pending deliveries hold leases (every move out of
# pending deletes its lease), and a delivery is leased only once due, so a live lease ends
# after its delivery is due: the second half reads the leases alone, through leases_by_hook,
# bounded by what is in flight, however long the queue.
_NEXT_DUE: Final = f"""
    SELECT least((
        SELECT min(x.t) FROM hooks AS h CROSS JOIN LATERAL (
            SELECT d.next_attempt_time AS t FROM deliveries AS d
            WHERE d.hook_name = h.name AND d.{PENDING} AND d.next_attempt_time > %(after)s
              AND NOT EXISTS (
                  SELECT 1 FROM leases AS l WHERE l.delivery_name = d.name AND l.lease_until > %(after)s)
            ORDER BY d.next_attempt_time LIMIT 1) AS x
        WHERE h.status = 'active'
    ), (
        SELECT min(x.t) FROM hooks AS h CROSS JOIN LATERAL (
            SELECT min(l.lease_until) AS t FROM leases AS l
            WHERE l.hook_name = h.name AND l.lease_until > %(after)s) AS x
        WHERE h.status = 'active'
    ))
"""


def next_due_time(conn: psycopg.Connection[Any], *, after: datetime | None) -> datetime | None:
    row = conn.execute(_NEXT_DUE, {"after": after if after is not None else _BEFORE_ANY}).fetchone()
    return None if row is None else row[0]


# -- recording -------------------------------------------------------------------------------

# Locked at once: after the change log's lock a transaction must wait for no other (see changelog).
_STATUSES: Final = """
    SELECT name, status, create_time FROM deliveries WHERE name = ANY(%b) ORDER BY name FOR UPDATE
"""
# Each statement below writes every row of its kind in the batch at once, from one array per
# column: one execution in PostgreSQL whatever the batch's size.
_INSERT_ATTEMPTS: Final = """
    INSERT INTO attempts (delivery_name, delivery_create_time, number, start_time, end_time, request_headers,
                          response_status, response_headers, response_body, error)
    SELECT * FROM unnest(%b::text[], %b::timestamptz[], %b::integer[], %b::timestamptz[], %b::timestamptz[],
                         %b::text[], %b::integer[], %b::text[], %b::bytea[], %b::text[])
    ON CONFLICT DO NOTHING
"""
_RECORD: Final = f"""
    UPDATE deliveries AS d SET status = u.status, next_attempt_time = u.next_attempt_time, last_error = u.error,
        attempt_count = u.number, first_attempt_time = coalesce(d.first_attempt_time, u.start_time),
        update_time = u.end_time, last_response_status = u.response_status
    FROM unnest(%b::text[], %b::timestamptz[], %b::text[], %b::integer[], %b::timestamptz[], %b::timestamptz[],
                %b::integer[], %b::text[], %b::timestamptz[])
        AS u(status, next_attempt_time, error, number, start_time, end_time, response_status, name, created)
    WHERE d.name = u.name AND d.create_time = u.created AND d.{PENDING}
"""
# Whatever the claims since its last attempt, a delivery that moves out of pending, or has an
# attempt recorded, holds no lease (history's redelivery uses it too).
UNLEASE: Final = "DELETE FROM leases WHERE delivery_name = ANY(%b)"
_INSERT_BODIES: Final = """
    INSERT INTO delivery_bodies (delivery_name, delivery_create_time, content_type, body)
    SELECT * FROM unnest(%b::text[], %b::timestamptz[], %b::text[], %b::bytea[])
    ON CONFLICT DO NOTHING
"""
_HEALTH: Final = """
    SELECT hook_name, last_success_time, last_failure_time, last_failure_reason, consecutive_failures
    FROM hook_health WHERE hook_name = ANY(%b) FOR UPDATE
"""
_WRITE_HEALTH: Final = """
    INSERT INTO hook_health (hook_name, last_success_time, last_failure_time, last_failure_reason,
                             consecutive_failures)
    SELECT * FROM unnest(%b::text[], %b::timestamptz[], %b::timestamptz[], %b::text[], %b::integer[])
    ON CONFLICT (hook_name) DO UPDATE SET last_success_time = excluded.last_success_time,
        last_failure_time = excluded.last_failure_time, last_failure_reason = excluded.last_failure_reason,
        consecutive_failures = excluded.consecutive_failures
"""


@dataclass(frozen=True, slots=True)
class Recording:
    """``records`` checked, with the day of each change they may log (for its partition)."""

    records: Sequence[AttemptRecord]
    change_times: list[datetime] = field(default_factory=list)


def recording(records: Sequence[AttemptRecord]) -> Recording:
    for record in records:
        if record.status in PENDING_STATUSES and record.next_attempt_time is None:
            raise ValueError(f"{record.delivery_name}: a {record.status.value} delivery needs a next_attempt_time")
        rows.aware("start_time", record.attempt.start_time)
        rows.aware("end_time", record.attempt.end_time)
        rows.optional_aware("next_attempt_time", record.next_attempt_time)
    return Recording(records, [r.attempt.end_time for r in records])


def _hook_of(delivery_name: str) -> str:
    return delivery_name.rsplit("/deliveries/", 1)[0]


def record(conn: psycopg.Connection[Any], *, recording: Recording) -> None:
    records = recording.records
    names = sorted({r.delivery_name for r in records})
    if not names:
        return
    # Generic plans, prepared once per connection, as for the claim: planned afresh, these
    # statements over every day's partition cost the database more than running them (about
    # 3 ms a call with 30 days: 330-420 against 250-265 µs of its CPU per delivery recorded,
    # bench pgstore --days 28). Sending the mode and the first read in one pipeline cost more
    # than the round trip it saves.
    conn.execute(_GENERIC_PLAN)
    found = conn.execute(_STATUSES, (names,), prepare=True).fetchall()
    statuses: dict[str, str] = {name: status for name, status, _ in found}
    created: dict[str, datetime] = {name: when for name, _, when in found}
    hooks = sorted({_hook_of(name) for name in statuses})
    health = {row[0]: list(row[1:]) for row in conn.execute(_HEALTH, (hooks,)).fetchall()} if hooks else {}
    deltas: Counter[tuple[str, str]] = Counter()
    attempts: list[tuple[Any, ...]] = []
    applied: list[tuple[Any, ...]] = []
    bodies: list[tuple[Any, ...]] = []
    for r in records:
        name = r.delivery_name
        old = statuses.get(name)
        if old is None:
            continue  # purged meanwhile
        a = r.attempt
        attempts.append(
            (
                name,
                created[name],
                a.number,
                a.start_time,
                a.end_time,
                rows.headers_text(a.request_headers),
                a.response_status,
                rows.headers_text(a.response_headers),
                bytes(a.response_body),
                a.error,
            )
        )
        _move_health(
            health.setdefault(_hook_of(name), [None, None, "", 0]),
            plans.succeeded(a.response_status),
            end=a.end_time,
            error=a.error,
        )
        if old not in _PENDING_VALUES:
            continue
        applied.append(
            (
                r.status.value,
                r.next_attempt_time,
                r.error,
                a.number,
                a.start_time,
                a.end_time,
                a.response_status,
                name,
                created[name],
            )
        )
        if r.rendered is not None:
            bodies.append((name, created[name], r.rendered.content_type, bytes(r.rendered.body)))
        deltas[_hook_of(name), old] -= 1
        deltas[_hook_of(name), r.status.value] += 1
        statuses[name] = r.status.value
    with conn.pipeline():  # the writes need no answer before the next: one round trip for them all
        if attempts:
            conn.execute(_INSERT_ATTEMPTS, columns(attempts), prepare=True)
            conn.execute(UNLEASE, (list(statuses),), prepare=True)
        if bodies:
            conn.execute(_INSERT_BODIES, columns(bodies), prepare=True)
        changelog.count(conn, deltas)
        if health:
            conn.execute(_WRITE_HEALTH, columns([(hook, *values) for hook, values in sorted(health.items())]))
        # Last, the moves and their changes: every row they touch is locked already.
        moved = [(str(u[7]), u[8]) for u in applied]
        if len(set(moved)) == len(moved):
            if applied:
                conn.execute(_RECORD, columns(applied), prepare=True)
            changelog.log_deliveries(conn, moved)
        else:  # a delivery moved twice in one batch: each change is logged as it was then
            for update, key in zip(applied, moved, strict=True):
                conn.execute(_RECORD, columns([update]), prepare=True)
                changelog.log_deliveries(conn, [key])
        if applied:
            changelog.notify(conn, DUE, CHANGES)


def _move_health(health: list[Any], ok: bool, *, end: datetime, error: str) -> None:
    """As the SQLite store: a success resets the failure streak; the last success and the last
    failure only move forward in time."""
    if ok:
        if health[0] is None or health[0] < end:
            health[0] = end
        health[3] = 0
    else:
        if health[1] is None or health[1] <= end:
            health[1], health[2] = end, error
        health[3] += 1


# Released, not interrupted: the claim is taken back, and counted no more.
_RELEASE: Final = """
    UPDATE leases SET owner = NULL, lease_until = NULL, claims = greatest(claims - 1, 0)
    WHERE delivery_name = ANY(%b)
"""


def postpone(conn: psycopg.Connection[Any], *, names: list[str], until: datetime) -> None:
    # Released as below, and due again at ``until``; only pending rows move. The deliveries
    # first, their leases after, in the order a record takes them, so the two never wait on
    # each other in a cycle.
    conn.execute(f"UPDATE deliveries SET next_attempt_time = %s WHERE name = ANY(%b) AND {PENDING}", (until, names))
    conn.execute(_RELEASE, (names,))


def hasten(conn: psycopg.Connection[Any], *, hook_name: str, now: datetime) -> int:
    with conn.cursor() as cur:
        cur.execute(
            "UPDATE deliveries SET next_attempt_time = %(now)s WHERE hook_name = %(hook)s"
            " AND status IN ('queued', 'retrying') AND next_attempt_time > %(now)s",
            {"hook": hook_name, "now": now},
        )
        if cur.rowcount:
            changelog.notify(conn, DUE)
        return cur.rowcount


# The bucket row is made full on first use, then locked: takes on every node queue on it, so
# no two ever spend the same token.
_NEW_BUCKET: Final = """
    INSERT INTO send_buckets (hook_name, tokens, at) VALUES (%s, %s, %s) ON CONFLICT (hook_name) DO NOTHING
"""
_LOCK_BUCKET: Final = "SELECT tokens, at, limited_time FROM send_buckets WHERE hook_name = %s FOR UPDATE"
_WRITE_BUCKET: Final = "UPDATE send_buckets SET tokens = %s, at = %s, limited_time = %s WHERE hook_name = %s"


def take_sends(
    conn: psycopg.Connection[Any], *, hook_name: str, rate: SendRate, now: datetime, wanted: int
) -> SendGrant:
    conn.execute(_NEW_BUCKET, (hook_name, float(rate.burst), now))
    row = conn.execute(_LOCK_BUCKET, (hook_name,)).fetchone()
    if row is None:  # its hook is gone (the foreign key refused the row): nothing may go
        raise NotFound(f"hook {hook_name} does not exist")
    grant, bucket = sendrate.take(sendrate.Bucket(row[0], row[1]), rate, now, wanted)
    limited = now if grant.granted < wanted else row[2]
    conn.execute(_WRITE_BUCKET, (bucket.tokens, bucket.at, limited, hook_name))
    return grant


def release(conn: psycopg.Connection[Any], *, names: list[str]) -> None:
    conn.execute(_RELEASE, (names,))
    changelog.notify(conn, DUE)


_PENDING_OF_HOOK: Final = f"""
    SELECT name, create_time, status FROM deliveries WHERE hook_name = %s AND {PENDING}
    ORDER BY name FOR UPDATE
"""
_DISCARD: Final = """
    UPDATE deliveries AS d
    SET status = 'discarded', next_attempt_time = NULL, last_error = %s, update_time = %s
    FROM unnest(%b::text[], %b::timestamptz[]) AS u(name, created)
    WHERE d.name = u.name AND d.create_time = u.created
"""


def discard_pending(conn: psycopg.Connection[Any], *, hook_name: str, now: datetime, reason: str) -> int:
    pending = conn.execute(_PENDING_OF_HOOK, (hook_name,)).fetchall()
    if not pending:
        return 0
    with conn.cursor() as cur:
        cur.execute(_DISCARD, (reason, now, [p[0] for p in pending], [p[1] for p in pending]))
        count = cur.rowcount
    conn.execute(UNLEASE, ([p[0] for p in pending],))
    deltas = Counter((hook_name, status) for _, _, status in pending)
    changelog.count(conn, {key: -n for key, n in deltas.items()} | {(hook_name, "discarded"): len(pending)})
    changelog.log_deliveries(conn, [(name, created) for name, created, _ in pending])
    changelog.notify(conn, CHANGES)
    return count


# -- reading ---------------------------------------------------------------------------------

_SELECT_DELIVERY: Final = f"SELECT {DELIVERY_COLUMNS} FROM deliveries WHERE name = %s"
_LIST_DELIVERIES: Final = f"""
    SELECT {DELIVERY_COLUMNS} FROM deliveries WHERE name > %s AND name < %s AND hook_name = %s ORDER BY name LIMIT %s
"""
_LIST_ATTEMPTS: Final = f"SELECT {ATTEMPT_COLUMNS} FROM attempts WHERE delivery_name = %s ORDER BY number"
_SELECT_EVENT: Final = f"SELECT {EVENT_COLUMNS} FROM events WHERE id = %s"


def get_delivery(conn: psycopg.Connection[Any], *, name: str) -> Delivery:
    row = conn.execute(_SELECT_DELIVERY, (name,)).fetchone()
    if row is None:
        raise NotFound(f"delivery {name} does not exist")
    return rows.delivery(row)


def list_attempts(conn: psycopg.Connection[Any], *, delivery_name: str) -> list[Attempt]:
    if conn.execute("SELECT 1 FROM deliveries WHERE name = %s", (delivery_name,)).fetchone() is None:
        raise NotFound(f"delivery {delivery_name} does not exist")
    return [rows.attempt(row) for row in conn.execute(_LIST_ATTEMPTS, (delivery_name,)).fetchall()]


def list_deliveries(conn: psycopg.Connection[Any], *, hook_name: str, after: str, limit: int) -> list[Delivery]:
    prefix = f"{hook_name}/deliveries/"
    args = (max(after, prefix), f"{hook_name}/deliveries0", hook_name, limit)
    return [rows.delivery(row) for row in conn.execute(_LIST_DELIVERIES, args).fetchall()]


def get_event(conn: psycopg.Connection[Any], *, event_id: str) -> Event:
    row = conn.execute(_SELECT_EVENT, (event_id,)).fetchone()
    if row is None:
        raise NotFound(f"event {event_id} does not exist")
    return rows.event(row)


# -- purging ---------------------------------------------------------------------------------

# A day that lies wholly before the cut goes whole: its partitions are detached (outside the
# transaction, detach_expired) and then dropped (the rows of a delivery partition are first
# counted per hook and status, for the counters; see partitions). What is left of
# the day the cut falls in goes row by row, oldest first, within the batch, as in SQLite.
_OLD_DELIVERIES: Final = """
    SELECT name, create_time, hook_name, status FROM deliveries WHERE create_time < %s
    ORDER BY create_time LIMIT %s FOR UPDATE SKIP LOCKED
"""
_PURGE_DELIVERIES: Final = """
    DELETE FROM deliveries AS d USING unnest(%b::text[], %b::timestamptz[]) AS u(name, created)
    WHERE d.name = u.name AND d.create_time = u.created
"""
_PURGE_HANGERS_ON: Final = {
    "attempts": """
        DELETE FROM attempts AS a USING unnest(%b::text[], %b::timestamptz[]) AS u(name, created)
        WHERE a.delivery_name = u.name AND a.delivery_create_time = u.created
    """,
    "delivery_bodies": """
        DELETE FROM delivery_bodies AS b USING unnest(%b::text[], %b::timestamptz[]) AS u(name, created)
        WHERE b.delivery_name = u.name AND b.delivery_create_time = u.created
    """,
    "leases": """
        DELETE FROM leases AS l USING unnest(%b::text[], %b::timestamptz[]) AS u(name, created)
        WHERE l.delivery_name = u.name AND l.delivery_create_time = u.created
    """,
}
_PURGE_EVENTS: Final = """
    WITH gone AS (
        DELETE FROM events WHERE (serial, publish_time) IN (
            SELECT e.serial, e.publish_time FROM events AS e
            WHERE e.publish_time < %s AND NOT EXISTS (
                SELECT 1 FROM deliveries AS d WHERE d.event_serial = e.serial AND d.create_time = e.publish_time)
            ORDER BY e.publish_time LIMIT %s)
        RETURNING company_id, idempotency_key
    ), keys AS (
        DELETE FROM idempotency_keys AS k USING gone
        WHERE gone.idempotency_key <> '' AND k.company_id = gone.company_id
          AND k.idempotency_key = gone.idempotency_key
    )
    SELECT count(*) FROM gone
"""


def detach_expired(conn: psycopg.Connection[Any], *, before: datetime) -> None:
    """Detach the oldest whole day before ``before`` of each family (``conn`` in autocommit),
    unless another server is detaching: one at a time, and the next purge goes on."""
    row = conn.execute("SELECT pg_try_advisory_lock(%s)", (partitions.RETIRE_LOCK,)).fetchone()
    if row is None or not row[0]:
        return
    try:
        day = partitions.oldest_expired(conn, "deliveries", before)
        if day is not None:
            partitions.detach(conn, "deliveries", day)
        day = partitions.oldest_expired(conn, "events", before)
        if day is not None and day not in partitions.days(conn, "deliveries"):  # its deliveries go first
            partitions.detach(conn, "events", day)
        day = partitions.oldest_expired(conn, "changes", before)
        if day is not None:
            partitions.detach(conn, "changes", day)
    finally:
        conn.execute("SELECT pg_advisory_unlock(%s)", (partitions.RETIRE_LOCK,))


def _count(conn: psycopg.Connection[Any], table: str, day: date) -> int:
    query = sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(partitions.partition_name(table, day)))
    row = conn.execute(query).fetchone()
    assert row is not None
    return int(row[0])


def _drop_detached(conn: psycopg.Connection[Any]) -> int:
    """Drop the days detached by ``detach_expired``; return the rows they held. Another
    server dropping them at the same time waits for this one (the tables' own locks), then
    finds them gone."""
    row = conn.execute("SELECT pg_try_advisory_xact_lock(%s)", (partitions.RETIRE_LOCK,)).fetchone()
    if row is None or not row[0]:
        return 0  # another server is detaching or dropping: its purge does this part
    removed = 0
    for day in partitions.detached(conn, "deliveries"):
        name = partitions.partition_name("deliveries", day)
        per_status = sql.SQL("SELECT hook_name, status, count(*) FROM {} GROUP BY hook_name, status")
        counts = conn.execute(per_status.format(sql.Identifier(name))).fetchall()
        changelog.count(conn, {(hook, status): -int(n) for hook, status, n in counts})
        removed += sum(int(n) for _, _, n in counts)
        start = partitions.start_of(day)
        conn.execute(
            "DELETE FROM leases WHERE delivery_create_time >= %s AND delivery_create_time < %s",
            (start, start + timedelta(days=1)),
        )
        partitions.drop(conn, "deliveries", day)
    for day in partitions.detached(conn, "events"):
        removed += _count(conn, "events", day)
        conn.execute(
            "DELETE FROM idempotency_keys WHERE publish_time < %s", (partitions.start_of(day) + timedelta(days=1),)
        )
        partitions.drop(conn, "events", day)
    for day in partitions.detached(conn, "changes"):
        removed += _count(conn, "changes", day)
        partitions.drop(conn, "changes", day)
    return removed


def purge(conn: psycopg.Connection[Any], *, before: datetime, limit: int) -> int:
    deleted = _drop_detached(conn)
    if deleted:
        return deleted
    old = conn.execute(_OLD_DELIVERIES, (before, limit)).fetchall()
    if old:
        keys = ([r[0] for r in old], [r[1] for r in old])
        for statement in _PURGE_HANGERS_ON.values():
            conn.execute(statement, keys)
        with conn.cursor() as cur:
            cur.execute(_PURGE_DELIVERIES, keys)
            deleted += cur.rowcount
        changelog.count(conn, {k: -n for k, n in Counter((r[2], r[3]) for r in old).items()})
    if deleted < limit:
        row = conn.execute(_PURGE_EVENTS, (before, limit - deleted)).fetchone()
        assert row is not None
        deleted += int(row[0])
    if deleted < limit:
        deleted += purge_changes(conn, before=before, limit=limit - deleted)
    return deleted


_OLDEST_CHANGES: Final = "SELECT seq, time FROM changes ORDER BY seq LIMIT %s"


def purge_changes(conn: psycopg.Connection[Any], *, before: datetime, limit: int) -> int:
    last: int | None = None
    deleted = 0
    for seq, when in conn.execute(_OLDEST_CHANGES, (limit,)).fetchall():
        if when >= before:
            break
        last = seq
        deleted += 1
    if last is not None:
        conn.execute("DELETE FROM changes WHERE seq <= %s", (last,))
    return deleted
