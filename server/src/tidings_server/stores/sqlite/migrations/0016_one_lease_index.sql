-- The leased rows (one per attempt in flight) had three partial indexes of their own. One serves
-- every reader of them (a claim's per-hook count, the next wake-up time, the heartbeat and the
-- release of a node's leases: each reads all of the few leased rows, or one hook's), and every
-- claim and every recorded attempt then writes one index of leases instead of three.
DROP INDEX deliveries_leased;
DROP INDEX deliveries_leased_by_owner;
