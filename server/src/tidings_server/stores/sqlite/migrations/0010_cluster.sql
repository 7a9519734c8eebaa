-- A cluster of one: the server registers itself as a node, and every lease names its owner,
-- so the claim counts a hook's leases whoever holds them and a heartbeat extends only its own.

-- The node holding the lease; NULL exactly when lease_until is NULL.
ALTER TABLE deliveries ADD COLUMN lease_owner TEXT;

-- Leases granted before this step have no owner; they are cleared, as every start clears
-- the leases its previous process left.
UPDATE deliveries SET lease_until = NULL WHERE lease_until IS NOT NULL;

-- A hook's unexpired leases, counted by every claim: the leased rows (one per attempt in
-- flight) are the only ones in this index.
CREATE INDEX deliveries_leased_by_hook ON deliveries (hook_name, lease_until) WHERE lease_until IS NOT NULL;
-- A node's leases, extended by its heartbeat and cleared when it leaves.
CREATE INDEX deliveries_leased_by_owner ON deliveries (lease_owner, lease_until) WHERE lease_until IS NOT NULL;

-- The nodes sharing the store, as each last reported at its heartbeat (times in microseconds).
CREATE TABLE nodes (
    node_id    TEXT    NOT NULL PRIMARY KEY,
    role       TEXT    NOT NULL,
    host       TEXT    NOT NULL,
    pid        INTEGER NOT NULL,
    start_time INTEGER NOT NULL,
    last_seen  INTEGER NOT NULL,
    in_flight  INTEGER NOT NULL
);
