-- A hash of each keyed event as its publisher sent it ('' for none, and for events stored
-- before this step), so that a key reused for a different event is refused instead of
-- answering as a retry. The key table carries it too: the key lookup a publish does reads it.
ALTER TABLE events ADD COLUMN idempotency_fingerprint text NOT NULL DEFAULT '';
ALTER TABLE idempotency_keys ADD COLUMN fingerprint text NOT NULL DEFAULT '';
