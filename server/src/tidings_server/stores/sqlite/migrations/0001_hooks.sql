-- Hooks. Times are integer microseconds since the Unix epoch (UTC); status is HookStatus.value.
-- "parent" is the hook's collection ("companies/1" or "companies/1/projects/2") so a listing
-- under one parent is a single index range; company_id with a NULL-or-not project_id serves
-- the listing across every project of a company ("companies/1/projects/-").
CREATE TABLE hooks (
    name                 TEXT    NOT NULL PRIMARY KEY,
    parent               TEXT    NOT NULL,
    company_id           INTEGER NOT NULL,
    project_id           INTEGER,
    display_name         TEXT    NOT NULL,
    destination_url      TEXT    NOT NULL,
    authorization_header TEXT    NOT NULL,
    payload_format       TEXT    NOT NULL,
    status               TEXT    NOT NULL,
    create_time          INTEGER NOT NULL,
    update_time          INTEGER NOT NULL
);

CREATE INDEX hooks_by_parent ON hooks (parent, name);
CREATE INDEX hooks_by_company ON hooks (company_id, name);
