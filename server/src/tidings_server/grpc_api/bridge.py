"""Hands calls from grpc.aio handlers (an asyncio loop in its own thread) to the trio core.

Each call becomes a trio task in a nursery the adapter owns; the result travels back with
``call_soon_threadsafe``. Neither loop ever blocks on the other, no thread is held per open
stream, and a cancelled RPC cancels its trio task.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import outcome
import trio

from tidings_server.domain.errors import Unavailable

T = TypeVar("T")


class TrioBridge:
    """Runs trio coroutine functions on behalf of asyncio code in another thread."""

    def __init__(self, token: trio.lowlevel.TrioToken, nursery: trio.Nursery) -> None:
        self._token = token
        self._nursery = nursery

    async def call(self, fn: Callable[..., Awaitable[T]], *args: Any) -> T:
        """Await ``fn(*args)`` in trio from asyncio; asyncio cancellation cancels the trio task."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[outcome.Outcome[T]] = loop.create_future()
        scope = trio.CancelScope()

        def deliver(result: outcome.Outcome[T]) -> None:
            if not future.done():
                future.set_result(result)

        async def run() -> None:
            result: outcome.Outcome[T] = outcome.Error(Unavailable("the server is shutting down; retry"))
            try:
                with scope:  # cancelled by the asyncio side when the RPC is cancelled
                    try:
                        result = outcome.Value(await fn(*args))
                    except Exception as exc:  # the domain's error travels back to the handler
                        result = outcome.Error(exc)
            finally:  # also when trio cancels us: the handler must never wait forever
                with contextlib.suppress(RuntimeError):  # the asyncio loop may be gone at shutdown
                    loop.call_soon_threadsafe(deliver, result)

        def spawn() -> None:  # runs on the trio thread, where an exception would be fatal
            try:
                self._nursery.start_soon(run)
            except RuntimeError:  # the nursery has closed: shutting down
                with contextlib.suppress(RuntimeError):
                    loop.call_soon_threadsafe(deliver, outcome.Error(Unavailable("the server is shutting down; retry")))

        try:
            self._token.run_sync_soon(spawn)
        except trio.RunFinishedError:
            raise Unavailable("the server is shutting down; retry") from None
        try:
            return (await future).unwrap()
        except asyncio.CancelledError:
            with contextlib.suppress(trio.RunFinishedError):
                self._token.run_sync_soon(scope.cancel)
            raise
