-- Endpoint protection: a hook's send rate, why and since when tidings disabled it, and the
-- token bucket each rate-limited hook spends from at claim time, one row per hook locked by
-- every take (FOR UPDATE), so the limit holds across every node sharing the database.

-- 0 deliveries a second: no limit.
ALTER TABLE hooks ADD COLUMN rate_limit_per_second double precision NOT NULL DEFAULT 0;
ALTER TABLE hooks ADD COLUMN rate_limit_burst integer NOT NULL DEFAULT 0;
ALTER TABLE hooks ADD COLUMN disabled_reason text NOT NULL DEFAULT '';
ALTER TABLE hooks ADD COLUMN disable_time timestamptz;

-- Tokens left as of ``at``; ``limited_time``: the last time a send was held back.
CREATE TABLE send_buckets (
    hook_name    text COLLATE "C" PRIMARY KEY REFERENCES hooks (name) ON DELETE CASCADE,
    tokens       double precision NOT NULL,
    at           timestamptz NOT NULL,
    limited_time timestamptz
);
