"""Live pages: WatchDeliveries relayed to the browser as Server-Sent Events.

Each change becomes one small ``change`` event naming the delivery and its status; the page
then fetches its own live part again, so what it shows always honours its filters and paging.
``ready`` is sent only once the server has opened the watch (so "on" is never claimed while
the server is away, and the page's catch-up fetch can succeed); each failed reconnect is a
``problem`` event while the client's watch retries by itself. When it gives up the stream
ends, and the browser's EventSource reconnects (``retry``), which opens a fresh watch.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator

from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from tidings_client import AsyncClient, TidingsError

RECONNECT_MS = 2000
_END = ""


def _event(kind: str, data: dict[str, object]) -> str:
    return f"event: {kind}\ndata: {json.dumps(data)}\n\n"


def _problem(exc: TidingsError) -> str:
    return _event("problem", {"code": exc.code.name, "message": exc.message})


async def changes(client: AsyncClient, parent: str) -> AsyncIterator[str]:
    yield f"retry: {RECONNECT_MS}\n\n"
    # The watch reports its opening and its retries through callbacks, between changes, so
    # it runs as a task feeding one queue that this stream relays in order.
    events: asyncio.Queue[str] = asyncio.Queue()

    async def relay() -> None:
        watch = client.watch(
            parent,
            on_connected=lambda _retries: events.put_nowait(_event("ready", {})),
            on_retry=lambda exc, _attempt, _delay: events.put_nowait(_problem(exc)),
        )
        try:
            async for change in watch:
                delivery = change.delivery
                events.put_nowait(_event("change", {"name": delivery.name, "status": str(delivery.status)}))
        except TidingsError as exc:
            events.put_nowait(_problem(exc))
        finally:
            await watch.aclose()
            events.put_nowait(_END)

    task = asyncio.create_task(relay())
    try:
        while (event := await events.get()) != _END:
            yield event
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


def stream(client: AsyncClient, request: Request) -> Response:
    parent = request.query_params.get("parent", "")
    return StreamingResponse(
        changes(client, parent),
        media_type="text/event-stream",
        headers={"cache-control": "no-store", "x-accel-buffering": "no"},
    )
