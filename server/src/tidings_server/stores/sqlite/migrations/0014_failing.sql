-- Since when each hook's endpoint has failed without a success (microseconds), written once per
-- failing run by the node that saw its first failure (Store.mark_failing), so deactivation counts
-- the period across restarts. A time at or before the hook's last success (hook_health) no
-- longer holds; disabling the hook deletes its row, and so does deleting the hook.
CREATE TABLE hook_failing (
    hook_name TEXT    NOT NULL PRIMARY KEY,
    since     INTEGER NOT NULL
) WITHOUT ROWID;
