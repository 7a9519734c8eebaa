-- A cluster: several servers share this database. Each registers as a node and heartbeats
-- while it runs; a lease is owned by the node whose attempt holds it, so a heartbeat extends
-- exactly its own leases and a clean shutdown releases them. A hook's concurrency holds across
-- the cluster by counting its unexpired leases (deliveries_leased_by_hook).
CREATE TABLE nodes (
    node_id    text COLLATE "C" PRIMARY KEY,
    role       text NOT NULL,
    host       text NOT NULL,
    pid        integer NOT NULL,
    start_time timestamptz NOT NULL,
    last_seen  timestamptz NOT NULL,
    in_flight  integer NOT NULL
);

ALTER TABLE deliveries ADD COLUMN lease_owner text COLLATE "C";
CREATE INDEX deliveries_leased_by_owner ON deliveries (lease_owner) WHERE lease_owner IS NOT NULL;
CREATE INDEX deliveries_leased_by_hook ON deliveries (hook_name, lease_until) WHERE lease_until IS NOT NULL;
