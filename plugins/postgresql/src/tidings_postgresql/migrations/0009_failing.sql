-- Since when each hook's endpoint has failed without a success, written once per failing run by
-- the node that saw its first failure (Store.mark_failing), so deactivation counts the period
-- across restarts and nodes. A time at or before the hook's last success (hook_health) no longer
-- holds; disabling the hook deletes its row, and deleting the hook does (ON DELETE CASCADE).
CREATE TABLE hook_failing (
    hook_name text COLLATE "C" PRIMARY KEY REFERENCES hooks (name) ON DELETE CASCADE,
    since     timestamptz NOT NULL
);
