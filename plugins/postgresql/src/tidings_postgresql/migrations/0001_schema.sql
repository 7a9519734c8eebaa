-- The whole schema as of the first release of the PostgreSQL backend.
-- Times are timestamptz (microsecond precision, as the domain's datetimes); durations are
-- bigint microseconds; names and the text compared with < and > are COLLATE "C", so string
-- order is code-point order, as the port and the history filter's evaluate() define it.
--
-- The big tables (events, deliveries, attempts, delivery_bodies, changes) are range-partitioned
-- by day on their time column; the store creates each day's partitions before it first
-- writes to that day, and retention drops whole days. A primary key of a partitioned table
-- must hold its partition key, so each one ends with its time column. Attempts and bodies are
-- partitioned on their delivery's create_time (copied into them): they go with their delivery.

CREATE TABLE hooks (
    name                        text COLLATE "C" PRIMARY KEY,
    parent                      text COLLATE "C" NOT NULL,
    company_id                  bigint NOT NULL,
    project_id                  bigint,
    display_name                text NOT NULL,
    destination_url             text NOT NULL,
    authorization_header        text NOT NULL,
    payload_format              text NOT NULL,
    status                      text NOT NULL,
    create_time                 timestamptz NOT NULL,
    update_time                 timestamptz NOT NULL,
    timeout_us                  bigint NOT NULL,
    retry_window_us             bigint NOT NULL,
    initial_backoff_us          bigint NOT NULL,
    max_backoff_us              bigint NOT NULL,
    retryable_statuses          integer[] NOT NULL,
    ordering                    text NOT NULL,
    max_concurrency             integer NOT NULL,
    signing_disabled            boolean NOT NULL,
    signing_secret              text NOT NULL,
    previous_signing_secret     text NOT NULL,
    previous_secret_expire_time timestamptz
);
CREATE INDEX hooks_by_parent ON hooks (parent, name);
CREATE INDEX hooks_by_company ON hooks (company_id, name);

-- A trigger copies its hook's company and project (fixed for the hook's life) so that fan-out
-- finds an event's hooks with one index range.
CREATE TABLE triggers (
    hook_name     text COLLATE "C" NOT NULL REFERENCES hooks (name) ON DELETE CASCADE,
    name          text COLLATE "C" NOT NULL,
    company_id    bigint NOT NULL,
    project_id    bigint,
    resource_name text NOT NULL,
    event_type    text NOT NULL,
    create_time   timestamptz NOT NULL,
    PRIMARY KEY (hook_name, name)
);
CREATE INDEX triggers_by_event ON triggers (company_id, project_id, resource_name, event_type);

-- Serials come from a sequence: never handed out twice, even after a purge.
CREATE SEQUENCE event_serials AS bigint;

CREATE TABLE events (
    serial                bigint NOT NULL,
    id                    text COLLATE "C" NOT NULL,
    publish_time          timestamptz NOT NULL,
    timestamp             timestamptz NOT NULL,
    company_id            bigint NOT NULL,
    project_id            bigint,
    user_id               bigint NOT NULL,
    resource_name         text NOT NULL,
    resource_id           bigint NOT NULL,
    event_type            text NOT NULL,
    source_user_id        bigint,
    source_project_id     bigint,
    source_operation_id   bigint,
    source_company_id     bigint,
    source_application_id text,
    related_resources     text NOT NULL,
    idempotency_key       text NOT NULL,
    PRIMARY KEY (serial, publish_time)
) PARTITION BY RANGE (publish_time);
-- An event id is unique across days; a partitioned table cannot hold a unique index without
-- its partition key, so publishing checks this index before it inserts.
CREATE INDEX events_by_id ON events (id);

-- An idempotency key is unique per company for as long as its event is kept. Unpartitioned,
-- so its primary key makes two servers publishing one key at once store one event; rows go
-- with their event when it is purged.
CREATE TABLE idempotency_keys (
    company_id      bigint NOT NULL,
    idempotency_key text NOT NULL,
    event_id        text NOT NULL,
    serial          bigint NOT NULL,
    publish_time    timestamptz NOT NULL,
    PRIMARY KEY (company_id, idempotency_key)
);
CREATE INDEX idempotency_keys_by_publish_time ON idempotency_keys (publish_time);

-- Deliveries: one event sent to one hook, created at its event's publish time (so a delivery
-- and its event share a day). No foreign key to hooks: history outlives its hook. lease_until
-- is set while an attempt runs.
CREATE TABLE deliveries (
    name                 text COLLATE "C" NOT NULL,
    hook_name            text COLLATE "C" NOT NULL,
    event_id             text COLLATE "C" NOT NULL,
    event_serial         bigint NOT NULL,
    resource_name        text COLLATE "C" NOT NULL,
    resource_id          bigint NOT NULL,
    status               text NOT NULL,
    attempt_count        integer NOT NULL,
    create_time          timestamptz NOT NULL,
    update_time          timestamptz NOT NULL,
    next_attempt_time    timestamptz,
    first_attempt_time   timestamptz,
    last_error           text NOT NULL,
    lease_until          timestamptz,
    company_id           bigint NOT NULL,
    project_id           bigint,
    event_type           text COLLATE "C" NOT NULL,
    last_response_status integer,
    PRIMARY KEY (name, create_time)
) PARTITION BY RANGE (create_time);
-- Claiming, hook by hook, in due order; finished rows leave the index.
CREATE INDEX deliveries_due_by_hook ON deliveries (hook_name, next_attempt_time, event_serial)
    WHERE status IN ('queued', 'retrying');
-- The head of a resource's queue for PER_RESOURCE hooks; a hook's pending rows for discarding.
CREATE INDEX deliveries_pending_by_resource ON deliveries (hook_name, resource_name, resource_id, event_serial)
    WHERE status IN ('queued', 'retrying');
-- The leases in flight (a handful), for the next wake-up.
CREATE INDEX deliveries_leased ON deliveries (lease_until) WHERE lease_until IS NOT NULL;
CREATE INDEX deliveries_by_create_time ON deliveries (create_time);
CREATE INDEX deliveries_by_event ON deliveries (event_serial);
-- History walks, newest first (see the SQLite schema's notes: the same walks, the same indexes).
CREATE INDEX deliveries_history_by_project ON deliveries (company_id, project_id, event_id, name);
CREATE INDEX deliveries_history_by_company ON deliveries (company_id, event_id, name);
CREATE INDEX deliveries_history_by_status ON deliveries (hook_name, status, event_id);
CREATE INDEX deliveries_history_by_resource_id ON deliveries (hook_name, resource_id, event_id);

CREATE TABLE attempts (
    delivery_name        text COLLATE "C" NOT NULL,
    delivery_create_time timestamptz NOT NULL,
    number               integer NOT NULL,
    start_time           timestamptz NOT NULL,
    end_time             timestamptz NOT NULL,
    request_headers      text NOT NULL,
    response_status      integer,
    response_headers     text NOT NULL,
    response_body        bytea NOT NULL,
    error                text NOT NULL,
    PRIMARY KEY (delivery_name, number, delivery_create_time)
) PARTITION BY RANGE (delivery_create_time);

CREATE TABLE delivery_bodies (
    delivery_name        text COLLATE "C" NOT NULL,
    delivery_create_time timestamptz NOT NULL,
    content_type         text NOT NULL,
    body                 bytea NOT NULL,
    PRIMARY KEY (delivery_name, delivery_create_time)
) PARTITION BY RANGE (delivery_create_time);

-- The change log for watchers: every delivery created, attempted, discarded or queued again,
-- as it was right after. Seqs are handed out from change_log_head under a transaction-level
-- advisory lock held to commit, so seq order is commit order (see the store's notes).
CREATE TABLE changes (
    seq                  bigint NOT NULL,
    time                 timestamptz NOT NULL,
    name                 text COLLATE "C" NOT NULL,
    hook_name            text COLLATE "C" NOT NULL,
    event_id             text COLLATE "C" NOT NULL,
    status               text NOT NULL,
    attempt_count        integer NOT NULL,
    create_time          timestamptz NOT NULL,
    update_time          timestamptz NOT NULL,
    next_attempt_time    timestamptz,
    first_attempt_time   timestamptz,
    last_error           text NOT NULL,
    company_id           bigint NOT NULL,
    project_id           bigint,
    resource_name        text COLLATE "C" NOT NULL,
    resource_id          bigint NOT NULL,
    event_type           text COLLATE "C" NOT NULL,
    last_response_status integer,
    PRIMARY KEY (seq, time)
) PARTITION BY RANGE (time);
CREATE INDEX changes_by_hook ON changes (hook_name, seq);
CREATE INDEX changes_by_project ON changes (company_id, project_id, seq);
CREATE INDEX changes_by_company ON changes (company_id, seq);

-- The newest seq handed out (committed with the changes it numbers), even once they are purged.
CREATE TABLE change_log_head (
    only_row boolean PRIMARY KEY DEFAULT true CHECK (only_row),
    seq      bigint NOT NULL
);
INSERT INTO change_log_head (seq) VALUES (0);

CREATE TABLE delivery_counts (
    hook_name text COLLATE "C" NOT NULL,
    status    text NOT NULL,
    total     bigint NOT NULL,
    PRIMARY KEY (hook_name, status)
);

CREATE TABLE hook_health (
    hook_name            text COLLATE "C" PRIMARY KEY,
    last_success_time    timestamptz,
    last_failure_time    timestamptz,
    last_failure_reason  text NOT NULL,
    consecutive_failures integer NOT NULL
);
