-- Leases leave the deliveries. A claim used to update the delivery itself (its lease columns
-- are indexed, so no update of the row could be HOT: a new version of a wide row and an entry
-- in each of its fourteen indexes, about half the claim's cost in the database); it now writes
-- one narrow row here, and recording the attempt deletes it. A row stays after its lease ends
-- while the delivery is pending, because it also counts the claims since the last recorded
-- attempt (a claim that ends with no attempt recorded means its node died mid-attempt).
-- Nodes of the earlier schema read and write the old columns: stop every node before the first
-- node of this schema starts (docs/deployment.md).
CREATE TABLE leases (
    delivery_name        text COLLATE "C" PRIMARY KEY,
    delivery_create_time timestamptz NOT NULL,
    hook_name            text COLLATE "C" NOT NULL,
    owner                text COLLATE "C",
    lease_until          timestamptz,
    claims               integer NOT NULL
);
-- A hook's live leases (its room under max_concurrency) and a node's (its heartbeat). The
-- table holds a row per delivery in flight or claimed and not yet attempted, so retention's
-- delete of a dropped day's rows reads it whole rather than keep an index for it.
CREATE INDEX leases_by_hook ON leases (hook_name, lease_until) WHERE lease_until IS NOT NULL;
CREATE INDEX leases_by_owner ON leases (owner) WHERE owner IS NOT NULL;

INSERT INTO leases (delivery_name, delivery_create_time, hook_name, owner, lease_until, claims)
SELECT name, create_time, hook_name, lease_owner, lease_until, claims_since_attempt FROM deliveries
WHERE status IN ('queued', 'retrying') AND (lease_until IS NOT NULL OR claims_since_attempt > 0);

DROP INDEX deliveries_leased, deliveries_leased_by_owner, deliveries_leased_by_hook;
ALTER TABLE deliveries DROP COLUMN lease_until, DROP COLUMN lease_owner, DROP COLUMN claims_since_attempt;
