"""What secrets at rest cost: claims through SealedStore against the bare SQLite store, opening
a hook without the cache, and scrubbing an attempt's response.

Claims are timed in CPU time of the process (the store's worker thread included), the two
stores alternating run by run on fresh files; the figure is the median of ``--runs``.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
import timeit
from datetime import UTC, datetime, timedelta
from pathlib import Path

import trio
from ulid import ULID

from tidings_server.delivery.scrub import scrub, secret_forms
from tidings_server.domain.model import Event, Hook, HookStatus, Trigger
from tidings_server.domain.names import trigger_name
from tidings_server.domain.ports import Store
from tidings_server.domain.sealing import Keyring, new_key, open_hook, seal_hook
from tidings_server.domain.signing import new_secret
from tidings_server.keys import KeySource
from tidings_server.stores.sealed import SealedStore
from tidings_server.stores.sqlite import SqliteBackend

T0 = datetime(2026, 11, 1, tzinfo=UTC)


def _hook(h: int) -> Hook:
    name = f"companies/1/projects/2/hooks/h{h}"
    return Hook(
        name, 1, 2, name, "https://receiver.example.com/", f"Bearer token-{h}-0123456789abcdef", "procore.v4",
        HookStatus.ACTIVE, T0, T0, max_concurrency=10_000, signing_secret=new_secret(),
        previous_signing_secret=new_secret(),
    )  # fmt: skip


async def claims_per_second(path: Path, *, sealed: bool, hooks: int, events: int, batch: int) -> float:
    async with SqliteBackend().open(f"sqlite:///{path}") as inner:
        store: Store = SealedStore(inner, KeySource(Keyring([new_key()]))) if sealed else inner
        for h in range(hooks):
            hook = _hook(h)
            await store.create_hook(hook)
            await store.add_triggers(
                hook.name, [Trigger(trigger_name(hook.name, "RFIs", "update"), "RFIs", "update", T0)]
            )
        evs = [Event(str(ULID()), 0, T0, 1, 2, 7, "RFIs", i, "update") for i in range(events)]
        for i in range(0, events, 500):
            await store.publish_events(evs[i : i + 500], T0)
        now = T0 + timedelta(seconds=1)
        claimed = 0
        start = time.process_time()
        while got := await store.claim_due(now, limit=batch, lease_until=now + timedelta(hours=1), owner="bench"):
            claimed += len(got)
        elapsed = time.process_time() - start
    return claimed / elapsed


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--hooks", type=int, default=8, help="hooks the deliveries fan out to (default 8)")
    parser.add_argument("--events", type=int, default=2000, help="events published per run (default 2000)")
    parser.add_argument("--batch", type=int, default=128, help="claim batch, as the engine's (default 128)")
    parser.add_argument("--runs", type=int, default=3, help="runs per store (default 3)")


def run(args: argparse.Namespace) -> int:
    bare: list[float] = []
    wrapped: list[float] = []
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(args.runs):
            for sealed, results in ((False, bare), (True, wrapped)):
                path = Path(tmp) / f"{i}-{sealed}.sqlite3"
                kwargs = {"sealed": sealed, "hooks": args.hooks, "events": args.events, "batch": args.batch}
                results.append(trio.run(lambda p=path, k=kwargs: claims_per_second(p, **k)))  # type: ignore[misc]
    b, w = statistics.median(bare), statistics.median(wrapped)
    print(f"claims/s, bare SQLite store:   {b:,.0f}  ({args.hooks} hooks, batches of {args.batch})")
    print(f"claims/s, through SealedStore: {w:,.0f}  ({(w - b) / b:+.1%}; {1e6 / w - 1e6 / b:+.2f} µs a claim)")

    keyring = Keyring([new_key()])
    hook = _hook(0)
    sealed_hook = seal_hook(keyring, hook)
    n = 20_000
    opening = timeit.timeit(lambda: open_hook(keyring, sealed_hook), number=n) / n * 1e6
    print(f"open one hook, uncached:   {opening:.1f} µs")
    print(f"seal one hook:             {timeit.timeit(lambda: seal_hook(keyring, hook), number=n) / n * 1e6:.1f} µs")
    forms = secret_forms(hook)
    for size in (11, 8192):
        body = (b'{"ok":true}' * 745)[:size]
        cut = size == 8192  # a body at the size bound is checked for a secret cut in two
        cost = timeit.timeit(lambda body=body, cut=cut: scrub(body, forms, cut=cut), number=n) / n * 1e6
        spellings = f"{len(forms.masked)} spellings, {len(forms.detect)} searched"
        print(f"scrub a {size:>5}-byte body:   {cost:.1f} µs ({spellings}{', cut' if cut else ''})")
    return 0
