-- Triggers: the (resource, event type) pairs each hook selects. "name" is the full trigger
-- name; the primary key orders a hook's triggers by it, and deleting a hook deletes them.
-- The (resource_name, event_type) index finds the triggers an incoming event fans out to.
CREATE TABLE triggers (
    hook_name     TEXT    NOT NULL REFERENCES hooks (name) ON DELETE CASCADE,
    name          TEXT    NOT NULL,
    resource_name TEXT    NOT NULL,
    event_type    TEXT    NOT NULL,
    create_time   INTEGER NOT NULL,
    PRIMARY KEY (hook_name, name)
);

CREATE INDEX triggers_by_event ON triggers (resource_name, event_type);
