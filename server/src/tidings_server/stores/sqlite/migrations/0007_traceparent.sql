-- The W3C traceparent an event was published under ('' for none), so that its delivery
-- attempts, on any node and however much later, continue the publisher's trace.
ALTER TABLE events ADD COLUMN traceparent TEXT NOT NULL DEFAULT '';
