-- The W3C traceparent an event was published under ('' for none), so that its delivery
-- attempts, on any server and however much later, continue the publisher's trace.
ALTER TABLE events ADD COLUMN traceparent text NOT NULL DEFAULT '';

-- The pending deliveries in due order across every hook, for the queue's depth and the age of
-- its oldest due delivery (what an operator graphs first), without walking hook by hook.
CREATE INDEX deliveries_due ON deliveries (next_attempt_time) WHERE status IN ('queued', 'retrying');
