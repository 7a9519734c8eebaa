-- Principals: bearer tokens, each with a role and a scope ('all', 'companies/{c}' or
-- 'companies/{c}/projects/{p}'). Only the SHA-256 of a token's secret is kept (hex), unique,
-- since every authenticated call finds its token by it.
CREATE TABLE tokens (
    token_id       text COLLATE "C" PRIMARY KEY,
    display_name   text NOT NULL,
    role           text NOT NULL,
    scope          text NOT NULL,
    secret_hash    text NOT NULL UNIQUE,
    create_time    timestamptz NOT NULL,
    last_used_time timestamptz,
    revoke_time    timestamptz
);
