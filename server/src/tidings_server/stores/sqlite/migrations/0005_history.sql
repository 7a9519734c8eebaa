-- Delivery history: deliveries carry their event's scope and type and their last response
-- status, so history is filtered and scoped without joining events; the body each delivery
-- was sent with; a log of changes for watchers; per-hook counters and health for overviews.

-- Copied from the event at publish time (a delivery's company and project are its hook's
-- too: fan-out only matches hooks of the event's company and project).
ALTER TABLE deliveries ADD COLUMN company_id INTEGER NOT NULL DEFAULT 0;
ALTER TABLE deliveries ADD COLUMN project_id INTEGER;
ALTER TABLE deliveries ADD COLUMN event_type TEXT NOT NULL DEFAULT '';
-- The HTTP status of the last attempt that moved the delivery; NULL when it had no answer.
ALTER TABLE deliveries ADD COLUMN last_response_status INTEGER;

-- Every delivery's event still exists (an event is purged only once no delivery refers to
-- it), and attempt_count is the number of the attempt that last moved the delivery.
UPDATE deliveries SET company_id = e.company_id, project_id = e.project_id, event_type = e.event_type
FROM events AS e WHERE e.serial = deliveries.event_serial;

UPDATE deliveries SET last_response_status = (
    SELECT a.response_status FROM attempts AS a
    WHERE a.delivery_name = deliveries.name AND a.number = deliveries.attempt_count)
WHERE attempt_count > 0;

-- History lists run newest first: descending (event_id, name). Under a hook the primary key
-- already orders deliveries that way (names are "{hook}/deliveries/{event id}"); a project
-- or a company needs its own index. Under a hook, a status and a resource id (alone or with
-- its resource name) get theirs; event ids are unique within a hook, so those end with
-- event_id alone. Every index is paid for by every publish (docs/performance.md has the
-- figures), so the less selective criteria (a resource name alone, an event type, times)
-- are checked on the rows a walk reads, within its scan budget.
CREATE INDEX deliveries_history_by_project ON deliveries (company_id, project_id, event_id, name);
CREATE INDEX deliveries_history_by_company ON deliveries (company_id, event_id, name);
CREATE INDEX deliveries_history_by_status ON deliveries (hook_name, status, event_id);
CREATE INDEX deliveries_history_by_resource_id ON deliveries (hook_name, resource_id, event_id);

-- The body a delivery was first sent with, apart from the deliveries so that history scans
-- read narrow rows. It goes when its delivery is purged.
CREATE TABLE delivery_bodies (
    delivery_name TEXT NOT NULL PRIMARY KEY REFERENCES deliveries (name) ON DELETE CASCADE,
    content_type  TEXT NOT NULL,
    body          BLOB NOT NULL
);

-- Every delivery created, attempted, discarded or queued again, with a copy of the delivery
-- right after it, so a watcher reads the log alone (the delivery may have changed again or
-- been purged since). AUTOINCREMENT: a seq is never handed out twice, even after a purge.
-- The store's statements write it; triggers would make SQLite keep a statement journal for
-- every row written, which made publishing 3 times slower.
CREATE TABLE changes (
    seq                  INTEGER PRIMARY KEY AUTOINCREMENT,
    time                 INTEGER NOT NULL,
    name                 TEXT    NOT NULL,
    hook_name            TEXT    NOT NULL,
    event_id             TEXT    NOT NULL,
    status               TEXT    NOT NULL,
    attempt_count        INTEGER NOT NULL,
    create_time          INTEGER NOT NULL,
    update_time          INTEGER NOT NULL,
    next_attempt_time    INTEGER,
    first_attempt_time   INTEGER,
    last_error           TEXT    NOT NULL,
    company_id           INTEGER NOT NULL,
    project_id           INTEGER,
    resource_name        TEXT    NOT NULL,
    resource_id          INTEGER NOT NULL,
    event_type           TEXT    NOT NULL,
    last_response_status INTEGER
);

-- A watcher reads the changes under its parent in seq order, whatever else changes.
CREATE INDEX changes_by_hook ON changes (hook_name, seq);
CREATE INDEX changes_by_project ON changes (company_id, project_id, seq);
CREATE INDEX changes_by_company ON changes (company_id, seq);

-- How many deliveries each hook has per status, kept by every statement that creates, moves or
-- purges deliveries, so an overview never counts a hook's deliveries.
CREATE TABLE delivery_counts (
    hook_name TEXT    NOT NULL,
    status    TEXT    NOT NULL,
    total     INTEGER NOT NULL,
    PRIMARY KEY (hook_name, status)
) WITHOUT ROWID;

INSERT INTO delivery_counts (hook_name, status, total)
SELECT hook_name, status, count(*) FROM deliveries GROUP BY hook_name, status;

-- Each hook's last success and failure, kept by record_attempts. Like deliveries, it
-- outlives its hook.
CREATE TABLE hook_health (
    hook_name            TEXT    NOT NULL PRIMARY KEY,
    last_success_time    INTEGER,
    last_failure_time    INTEGER,
    last_failure_reason  TEXT    NOT NULL,
    consecutive_failures INTEGER NOT NULL
) WITHOUT ROWID;

-- From the attempts already recorded: a success is an answer in 2xx, anything else a failure.
INSERT INTO hook_health (hook_name, last_success_time, last_failure_time, last_failure_reason, consecutive_failures)
WITH hook_attempts AS (
    SELECT d.hook_name, a.end_time, a.error, a.response_status BETWEEN 200 AND 299 AS ok
    FROM attempts AS a JOIN deliveries AS d ON d.name = a.delivery_name
),
last_success AS (
    SELECT hook_name, max(end_time) AS time FROM hook_attempts WHERE ok GROUP BY hook_name
),
last_failure AS (
    -- SQLite takes the bare column "error" from the row holding the max().
    SELECT hook_name, max(end_time) AS time, error FROM hook_attempts WHERE NOT coalesce(ok, 0) GROUP BY hook_name
)
SELECT h.hook_name, s.time, f.time, coalesce(f.error, ''),
       (SELECT count(*) FROM hook_attempts AS a
        WHERE a.hook_name = h.hook_name AND NOT coalesce(a.ok, 0) AND (s.time IS NULL OR a.end_time > s.time))
FROM (SELECT DISTINCT hook_name FROM hook_attempts) AS h
LEFT JOIN last_success AS s ON s.hook_name = h.hook_name
LEFT JOIN last_failure AS f ON f.hook_name = h.hook_name;
