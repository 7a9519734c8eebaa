"""Whether the store answers, for gRPC health: a server whose store is away serves nothing useful.

A load balancer or an orchestrator asks ``grpc.health.v1.Health/Check``; while the store does
not answer, the server says NOT_SERVING (so callers go to a node that can reach it, or wait),
and SERVING again as soon as a probe succeeds. The probe is a read every node makes anyway
(the node list: small, on every backend), bounded by a timeout so a store that hangs reads
as away rather than keeping the last answer.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

import trio

from tidings_server.domain.ports import Store

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class HealthSettings:
    """How often the store is probed and how long one probe may take; tests shorten both."""

    every: float = 2.0
    timeout: float = 5.0


async def probe(store: Store, within: float) -> str | None:
    """None when the store answered within ``within`` seconds, else why it did not."""
    with trio.move_on_after(within):
        try:
            await store.list_nodes()
        except Exception as exc:  # whatever the backend raises, the store is away
            return str(exc) or type(exc).__name__
        return None
    return f"no answer within {within:g} s"


async def watch_store(
    store: Store,
    set_serving: Callable[[bool], None],
    settings: HealthSettings,
    *,
    task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Probe until cancelled, telling ``set_serving`` each time the answer changes (the store
    is taken to be up at start: the server has just opened it)."""
    task_status.started()
    serving = True
    while True:
        await trio.sleep(settings.every)
        problem = await probe(store, settings.timeout)
        if (problem is None) == serving:
            continue
        serving = problem is None
        if serving:
            log.info("the store answers again: health SERVING")
        else:
            log.warning("the store does not answer: health NOT_SERVING", extra={"error": problem})
        set_serving(serving)
