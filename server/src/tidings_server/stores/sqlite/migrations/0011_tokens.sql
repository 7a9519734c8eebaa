-- Principals: bearer tokens, each with a role and a scope ('all', 'companies/{c}' or
-- 'companies/{c}/projects/{p}'). Only the SHA-256 of a token's secret is kept (hex), unique,
-- since every authenticated call finds its token by it. Times in microseconds.
CREATE TABLE tokens (
    token_id       TEXT    NOT NULL PRIMARY KEY,
    display_name   TEXT    NOT NULL,
    role           TEXT    NOT NULL,
    scope          TEXT    NOT NULL,
    secret_hash    TEXT    NOT NULL UNIQUE,
    create_time    INTEGER NOT NULL,
    last_used_time INTEGER,
    revoke_time    INTEGER
);
