"""The SQLite claim finds the hooks to probe by seeking through the due index, never by
reading every hook: idle hooks must cost a claim nothing (docs/performance.md, issue #12)."""

from __future__ import annotations

import sqlite3

from tidings_server.stores.sqlite import deliveries
from tidings_server.stores.sqlite.migrate import migrate


def test_the_hooks_a_claim_probes_come_from_seeks_in_the_due_index() -> None:
    conn = sqlite3.connect(":memory:", isolation_level=None)
    migrate(conn)
    plan = [row[3] for row in conn.execute("EXPLAIN QUERY PLAN " + deliveries._PENDING_ACTIVE_HOOKS)]
    assert "SEARCH d USING INDEX deliveries_due_by_hook (hook_name>?)" in plan
    assert "SEARCH h USING INDEX sqlite_autoindex_hooks_1 (name=?)" in plan
    assert not [step for step in plan if step.startswith("SCAN") and "pending" not in step and "CONSTANT" not in step]
