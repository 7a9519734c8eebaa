-- Endpoint protection: a hook's send rate, why and since when tidings disabled it, and the
-- token bucket each rate-limited hook spends from at claim time (shared by every claimer).

-- 0 deliveries a second: no limit.
ALTER TABLE hooks ADD COLUMN rate_limit_per_second REAL NOT NULL DEFAULT 0;
ALTER TABLE hooks ADD COLUMN rate_limit_burst INTEGER NOT NULL DEFAULT 0;
ALTER TABLE hooks ADD COLUMN disabled_reason TEXT NOT NULL DEFAULT '';
ALTER TABLE hooks ADD COLUMN disable_time INTEGER;

-- Tokens left as of ``at`` (microseconds); ``limited_time``: the last time a send was held back.
CREATE TABLE send_buckets (
    hook_name    TEXT    NOT NULL PRIMARY KEY,
    tokens       REAL    NOT NULL,
    at           INTEGER NOT NULL,
    limited_time INTEGER
);
