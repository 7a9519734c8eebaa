"""Fan-out of project events to company hooks: what publishing costs as unrelated hooks, projects
and limited company hooks pile up, in the memory, SQLite and PostgreSQL stores.

Every case publishes the same events (RFIs created, spread over ``--projects`` projects) to the
same one company hook on RFIs; what changes is what else the store holds:

- ``one project``: nothing else, every event in one project (a publish call then looks the
  hooks up once for its whole batch: shown for scale, not a baseline);
- ``baseline``: nothing else, the events spread over ``--projects`` projects (one look-up per
  event);
- ``unrelated``: plus ``--unrelated`` company hooks on other resources and as many project
  hooks in other projects;
- ``limited elsewhere``: plus ``--limited`` company hooks on RFIs listing only other projects,
  which the lookup does read (they select the event's resource) and then skips.

Each figure is CPU µs per published event (the process's CPU time, its store threads included;
PostgreSQL's own CPU is not in it), the median of ``--repeat`` runs, beside its ratio to the
baseline of the same run.
"""

from __future__ import annotations

import argparse
import secrets
import statistics
import tempfile
import time
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path

import psycopg
import trio
from psycopg import sql
from ulid import ULID

from tidings_postgresql.backend import PostgresBackend
from tidings_server.domain.model import Event, Hook, HookStatus, Trigger
from tidings_server.domain.names import trigger_name
from tidings_server.domain.ports import Store
from tidings_server.stores.memory import MemoryBackend
from tidings_server.stores.sqlite import SqliteBackend

T0 = datetime(2026, 12, 1, tzinfo=UTC)
CASES = ("one project", "baseline", "unrelated", "limited elsewhere")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--events", type=int, default=4000, help="events published per case")
    parser.add_argument("--batch", type=int, default=200, help="events per publish call")
    parser.add_argument("--projects", type=int, default=10_000)
    parser.add_argument("--unrelated", type=int, default=1000)
    parser.add_argument("--limited", type=int, default=100)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--stores", default="memory,sqlite,postgresql")
    parser.add_argument("--admin-url", default="postgresql://postgres@127.0.0.1:5432/test")


def _hook(name: str, company: int, project: int | None, projects: tuple[int, ...] = ()) -> Hook:
    return Hook(
        name, company, project, "", "https://r.example.com/", "", "procore.v4", HookStatus.ACTIVE, T0, T0,
        projects=projects,
    )  # fmt: skip


async def _add(store: Store, hook: Hook, *pairs: tuple[str, str]) -> None:
    await store.create_hook(hook)
    await store.add_triggers(hook.name, [Trigger(trigger_name(hook.name, r, e), r, e, T0) for r, e in pairs])


async def _case(store: Store, case: str, args: argparse.Namespace) -> float:
    """CPU µs per event of publishing ``args.events`` events into a store set up for ``case``."""
    await _add(store, _hook("companies/1/hooks/rfis", 1, None), ("RFIs", "create"))
    if case in ("unrelated", "limited elsewhere"):
        for i in range(args.unrelated):
            await _add(store, _hook(f"companies/1/hooks/other-{i}", 1, None), ("Submittals", "create"))
            project = args.projects + 1 + i
            await _add(store, _hook(f"companies/1/projects/{project}/hooks/p", 1, project), ("RFIs", "create"))
    if case == "limited elsewhere":
        for i in range(args.limited):
            elsewhere = (args.projects + 1 + i,)
            await _add(store, _hook(f"companies/1/hooks/limited-{i}", 1, None, elsewhere), ("RFIs", "create"))
    spread = 1 if case == "one project" else args.projects
    events = [
        Event(str(ULID()), 0, T0, 1, 1 + i % spread, 7, "RFIs", i, "create") for i in range(args.events)
    ]  # fmt: skip
    start = time.process_time()
    for i in range(0, len(events), args.batch):
        published = await store.publish_events(events[i : i + args.batch], T0)
        assert all(p.deliveries == 1 for p in published), "each event reaches the one company hook"
    return (time.process_time() - start) / len(events) * 1e6


def _opener(kind: str, args: argparse.Namespace, tmp: Path) -> Callable[[], AbstractAsyncContextManager[Store]]:
    @asynccontextmanager
    async def memory() -> AsyncIterator[Store]:
        async with MemoryBackend().open("memory:") as store:
            yield store

    @asynccontextmanager
    async def sqlite() -> AsyncIterator[Store]:
        path = tmp / f"{secrets.token_hex(4)}.sqlite3"
        async with SqliteBackend().open(f"sqlite:///{path}") as store:
            yield store

    @asynccontextmanager
    async def postgresql() -> AsyncIterator[Store]:
        name = f"tidings_bench_{secrets.token_hex(4)}"
        with psycopg.connect(args.admin_url, autocommit=True) as admin:
            admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        try:
            async with PostgresBackend().open(args.admin_url.rsplit("/", 1)[0] + "/" + name) as store:
                yield store
        finally:
            with psycopg.connect(args.admin_url, autocommit=True) as admin:
                admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))

    return {"memory": memory, "sqlite": sqlite, "postgresql": postgresql}[kind]


async def _run_once(kind: str, args: argparse.Namespace, tmp: Path) -> dict[str, float]:
    found = {}
    for case in CASES:  # a fresh store per case, so no case inherits another's hooks
        async with _opener(kind, args, tmp)() as store:
            found[case] = await _case(store, case, args)
    return found


def run(args: argparse.Namespace) -> int:
    print(
        f"{args.events} events of RFIs, one company hook receiving each; {args.projects} projects,"
        f" {args.unrelated} unrelated company + {args.unrelated} project hooks, {args.limited} limited elsewhere"
    )
    with tempfile.TemporaryDirectory() as tmp:
        for kind in args.stores.split(","):
            runs = [trio.run(_run_once, kind, args, Path(tmp)) for _ in range(args.repeat)]
            base = statistics.median(r["baseline"] for r in runs)
            for case in CASES:
                values = [r[case] for r in runs]
                median = statistics.median(values)
                shown = ", ".join(f"{v:.1f}" for v in values)
                print(f"{kind:10} {case:18} {median:8.1f} CPU µs/event  x{median / base:4.2f}   (runs: {shown})")
    return 0
