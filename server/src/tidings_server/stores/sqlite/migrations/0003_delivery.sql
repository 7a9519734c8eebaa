-- Delivery: each hook's retry policy, ordering and concurrency; events; deliveries; attempts.
-- Times and durations are integer microseconds (times since the Unix epoch, UTC).

-- The new hook columns default to the model's defaults, so hooks written before this step
-- read back with the default retry policy, UNORDERED and a concurrency of 8.
-- retryable_statuses: the HTTP statuses, ascending, comma-separated ('' for none).
ALTER TABLE hooks ADD COLUMN timeout_us INTEGER NOT NULL DEFAULT 5000000;
ALTER TABLE hooks ADD COLUMN retry_window_us INTEGER NOT NULL DEFAULT 43200000000;
ALTER TABLE hooks ADD COLUMN initial_backoff_us INTEGER NOT NULL DEFAULT 1000000;
ALTER TABLE hooks ADD COLUMN max_backoff_us INTEGER NOT NULL DEFAULT 3600000000;
ALTER TABLE hooks ADD COLUMN retryable_statuses TEXT NOT NULL DEFAULT '408,429,500,501,502,503,504,505,506,507,508,509,510,511,512,513,514,515,516,517,518,519,520,521,522,523,524,525,526,527,528,529,530,531,532,533,534,535,536,537,538,539,540,541,542,543,544,545,546,547,548,549,550,551,552,553,554,555,556,557,558,559,560,561,562,563,564,565,566,567,568,569,570,571,572,573,574,575,576,577,578,579,580,581,582,583,584,585,586,587,588,589,590,591,592,593,594,595,596,597,598,599';
ALTER TABLE hooks ADD COLUMN ordering TEXT NOT NULL DEFAULT 'unordered';
ALTER TABLE hooks ADD COLUMN max_concurrency INTEGER NOT NULL DEFAULT 8;

-- Triggers carry their hook's company and project (which never change: a hook cannot move),
-- so that fan-out finds the triggers of one event's company and project with one index range
-- instead of every hook that selects the same resource. The table is rebuilt rather than
-- altered so the new columns need no placeholder default; nothing refers to it.
CREATE TABLE triggers_new (
    hook_name     TEXT    NOT NULL REFERENCES hooks (name) ON DELETE CASCADE,
    name          TEXT    NOT NULL,
    company_id    INTEGER NOT NULL,
    project_id    INTEGER,
    resource_name TEXT    NOT NULL,
    event_type    TEXT    NOT NULL,
    create_time   INTEGER NOT NULL,
    PRIMARY KEY (hook_name, name)
);

INSERT INTO triggers_new (hook_name, name, company_id, project_id, resource_name, event_type, create_time)
SELECT t.hook_name, t.name, h.company_id, h.project_id, t.resource_name, t.event_type, t.create_time
FROM triggers AS t JOIN hooks AS h ON h.name = t.hook_name;

DROP TABLE triggers;

ALTER TABLE triggers_new RENAME TO triggers;

CREATE INDEX triggers_by_event ON triggers (company_id, project_id, resource_name, event_type);

-- Events. "serial" is the rowid; AUTOINCREMENT keeps a purged serial from ever being handed
-- out again. "id" is the ULID events are known by. An idempotency key is unique per
-- company; '' means none. related_resources is a JSON array of {"id": …, "name": …}.
CREATE TABLE events (
    serial                INTEGER PRIMARY KEY AUTOINCREMENT,
    id                    TEXT    NOT NULL UNIQUE,
    publish_time          INTEGER NOT NULL,
    timestamp             INTEGER NOT NULL,
    company_id            INTEGER NOT NULL,
    project_id            INTEGER,
    user_id               INTEGER NOT NULL,
    resource_name         TEXT    NOT NULL,
    resource_id           INTEGER NOT NULL,
    event_type            TEXT    NOT NULL,
    source_user_id        INTEGER,
    source_project_id     INTEGER,
    source_operation_id   INTEGER,
    source_company_id     INTEGER,
    source_application_id TEXT,
    related_resources     TEXT    NOT NULL,
    idempotency_key       TEXT    NOT NULL
);

CREATE UNIQUE INDEX events_by_idempotency_key ON events (company_id, idempotency_key) WHERE idempotency_key != '';
-- Purging takes old events in publish order.
CREATE INDEX events_by_publish_time ON events (publish_time);

-- Deliveries: one event sent to one hook. No foreign key to hooks: a delivery's history
-- outlives its hook. resource_name/resource_id/event_serial are the event's, copied so the
-- per-resource ordering check reads one index. lease_until is set while an attempt runs.
-- A name is "{hook_name}/deliveries/{event_id}", so the primary key already orders each
-- hook's deliveries by name in one range: listing needs no (hook_name, name) index, and
-- publishing, the hot path, maintains one index fewer.
CREATE TABLE deliveries (
    name               TEXT    NOT NULL PRIMARY KEY,
    hook_name          TEXT    NOT NULL,
    event_id           TEXT    NOT NULL,
    event_serial       INTEGER NOT NULL,
    resource_name      TEXT    NOT NULL,
    resource_id        INTEGER NOT NULL,
    status             TEXT    NOT NULL,
    attempt_count      INTEGER NOT NULL,
    create_time        INTEGER NOT NULL,
    update_time        INTEGER NOT NULL,
    next_attempt_time  INTEGER,
    first_attempt_time INTEGER,
    last_error         TEXT    NOT NULL,
    lease_until        INTEGER
);

-- Claiming walks pending rows in due order; finished rows leave the index.
CREATE INDEX deliveries_due ON deliveries (next_attempt_time, event_serial)
    WHERE status IN ('queued', 'retrying');
-- The head of a resource's queue (lowest pending serial) for PER_RESOURCE hooks, and a
-- hook's pending rows for discarding them.
CREATE INDEX deliveries_pending_by_resource ON deliveries (hook_name, resource_name, resource_id, event_serial)
    WHERE status IN ('queued', 'retrying');
-- The deliveries leased to attempts in flight (a handful), for the next wake-up time.
CREATE INDEX deliveries_leased ON deliveries (lease_until) WHERE lease_until IS NOT NULL;
-- Purging takes old deliveries in creation order.
CREATE INDEX deliveries_by_create_time ON deliveries (create_time);
-- Whether an event still has deliveries, before it is purged.
CREATE INDEX deliveries_by_event ON deliveries (event_serial);

-- Attempts: each HTTP POST of a delivery. Headers are JSON arrays of [name, value] pairs,
-- stored as given (secrets already masked). They go when their delivery is purged.
CREATE TABLE attempts (
    delivery_name    TEXT    NOT NULL REFERENCES deliveries (name) ON DELETE CASCADE,
    number           INTEGER NOT NULL,
    start_time       INTEGER NOT NULL,
    end_time         INTEGER NOT NULL,
    request_headers  TEXT    NOT NULL,
    response_status  INTEGER,
    response_headers TEXT    NOT NULL,
    response_body    BLOB    NOT NULL,
    error            TEXT    NOT NULL,
    PRIMARY KEY (delivery_name, number)
);
