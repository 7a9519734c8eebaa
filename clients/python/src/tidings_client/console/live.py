"""Live pages: WatchDeliveries relayed to the browser as Server-Sent Events.

Each change becomes one small ``change`` event naming the delivery and its status; the page
then fetches its own live part again, so what it shows always honours its filters and paging.
A watch that fails is reported as a ``problem`` event and the stream ends; the browser's
EventSource reconnects by itself (``retry``), which reopens the watch once the server is back.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from tidings_client import AsyncClient, TidingsError

RECONNECT_MS = 2000


def _event(kind: str, data: dict[str, object]) -> str:
    return f"event: {kind}\ndata: {json.dumps(data)}\n\n"


async def changes(client: AsyncClient, parent: str) -> AsyncIterator[str]:
    yield f"retry: {RECONNECT_MS}\n\n"
    # The page may be older than the watch: tell it to catch up once the stream is open.
    yield _event("ready", {})
    watch = client.watch(parent)
    try:
        async for change in watch:
            yield _event("change", {"name": change.delivery.name, "status": str(change.delivery.status)})
    except TidingsError as exc:
        yield _event("problem", {"code": exc.code.name, "message": exc.message})
    finally:
        await watch.aclose()


def stream(client: AsyncClient, request: Request) -> Response:
    parent = request.query_params.get("parent", "")
    return StreamingResponse(
        changes(client, parent),
        media_type="text/event-stream",
        headers={"cache-control": "no-store", "x-accel-buffering": "no"},
    )
