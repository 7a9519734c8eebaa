-- A hash of each keyed event as its publisher sent it ('' for none, and for events stored
-- before this step), so that a key reused for a different event is refused instead of
-- answering as a retry; the key lookup a publish already does reads it.
ALTER TABLE events ADD COLUMN idempotency_fingerprint TEXT NOT NULL DEFAULT '';
