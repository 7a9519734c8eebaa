-- Claiming hook by hook: each active hook with free concurrency takes its earliest due
-- deliveries through this index, so a hook whose endpoint is slow (and whose backlog is
-- large) costs the others nothing, and a claim never walks a backlog it cannot take.
CREATE INDEX deliveries_due_by_hook ON deliveries (hook_name, next_attempt_time, event_serial)
    WHERE status IN ('queued', 'retrying');
