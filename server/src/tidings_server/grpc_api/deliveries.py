"""DeliveryService: delivery history over gRPC, including the live WatchDeliveries stream.

The stream never buffers on a watcher's behalf: each round asks the core for the next batch
of changes (read from the store, at most a hundred) and writes them one by one. A write that
does not complete within ``stall_timeout`` means the watcher stopped reading; it is dropped
with RESOURCE_EXHAUSTED and the token to resume from, so server memory stays flat however many
watchers stall.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

import grpc

from tidings.v1 import deliveries_pb2, deliveries_pb2_grpc
from tidings_server.domain.history import HistoryService, WatchCursor
from tidings_server.domain.model import Event
from tidings_server.domain.ports import Change
from tidings_server.grpc_api import convert_history
from tidings_server.grpc_api.bridge import TrioBridge
from tidings_server.grpc_api.servicers import Context, Servicer, abort

WATCH_START_METADATA = "tidings-resume-token"
WATCH_MESSAGES: Final = 4096  # recent change messages kept for the other watchers of the same question


@dataclass(frozen=True, slots=True)
class WatchSettings:
    """How streams behave; tests shorten both."""

    poll: float = 15.0  # a quiet stream re-reads this often even without news of a change
    stall_timeout: float = 10.0  # a watcher that accepts no message for this long is dropped


class DeliveryServicer(Servicer, deliveries_pb2_grpc.DeliveryServiceServicer):
    def __init__(self, bridge: TrioBridge, history: HistoryService, watch: WatchSettings) -> None:
        super().__init__(bridge)
        self._history = history
        self._watch = watch
        self.active_watches = 0  # streams being served now; tests check cancelled ones end
        self.watches_started = 0  # streams that got past their checks and are now followed
        # Streams dropped for not reading. The stream ends for the client only once it has read
        # what was already sent, so a dropped stream can still count as active meanwhile.
        self.watches_dropped = 0
        # The watchers of one parent are sent the same messages (their tokens too): built once.
        self._messages: OrderedDict[tuple[tuple[str, ...], int], deliveries_pb2.DeliveryChange] = OrderedDict()

    def _message(self, cursor: WatchCursor, change: Change, event: Event | None) -> deliveries_pb2.DeliveryChange:
        key = (cursor.fingerprint, change.seq)
        message = self._messages.get(key)
        if message is None:
            message = self._messages[key] = convert_history.change(change, event, cursor.resume_token(change.seq))
            if len(self._messages) > WATCH_MESSAGES:
                self._messages.popitem(last=False)
        return message

    async def ListDeliveries(  # noqa: N802 - gRPC method names
        self, request: deliveries_pb2.ListDeliveriesRequest, context: Context
    ) -> deliveries_pb2.ListDeliveriesResponse:
        criteria = await self._decode(context, lambda: convert_history.criteria(request))
        full = await self._decode(
            context, lambda: convert_history.view("view", request.view, deliveries_pb2.DELIVERY_VIEW_BASIC)
        )
        page = await self._call(context, self._history.list_deliveries, criteria, request.page_size, request.page_token)
        items = [convert_history.delivery(d, e) for d, e in page.items]
        if full == deliveries_pb2.DELIVERY_VIEW_FULL:
            items = [
                convert_history.detail(await self._call(context, self._history.get_delivery, d.name), True)
                for d, _ in page.items
            ]
        return deliveries_pb2.ListDeliveriesResponse(deliveries=items, next_page_token=page.next_page_token)

    async def GetDelivery(  # noqa: N802
        self, request: deliveries_pb2.GetDeliveryRequest, context: Context
    ) -> deliveries_pb2.Delivery:
        view = await self._decode(
            context, lambda: convert_history.view("view", request.view, deliveries_pb2.DELIVERY_VIEW_FULL)
        )
        found = await self._call(context, self._history.get_delivery, request.name)
        return convert_history.detail(found, view == deliveries_pb2.DELIVERY_VIEW_FULL)

    async def GetHookOverview(  # noqa: N802
        self, request: deliveries_pb2.GetHookOverviewRequest, context: Context
    ) -> deliveries_pb2.HookOverview:
        project = request.project_id or None
        return convert_history.overview(await self._call(context, self._history.overview, request.name, project))

    async def WatchDeliveries(  # type: ignore[override]  # noqa: N802 - writes itself to time each write
        self, request: deliveries_pb2.WatchDeliveriesRequest, context: Context
    ) -> None:
        statuses = await self._decode(context, lambda: convert_history.statuses("statuses", request.statuses))
        cursor = await self._call(context, self._history.watch_start, request.parent, statuses, request.resume_token)
        resume_from = cursor.resume_token(cursor.after)
        # Where the stream starts, before any change: a client that loses a quiet stream
        # resumes from here, so the changes made while it reconnects are not missed.
        await context.send_initial_metadata(((WATCH_START_METADATA, resume_from),))
        self.active_watches += 1
        self.watches_started += 1
        try:
            while True:
                batch = await self._call(context, self._history.watch_next, cursor, self._watch.poll)
                if batch.changes:
                    resume_from = await self._write(context, cursor, batch.changes, resume_from)
                cursor = batch.cursor
        finally:
            self.active_watches -= 1

    async def _write(
        self, context: Context, cursor: WatchCursor, changes: Sequence[tuple[Change, Event | None]], resume_from: str
    ) -> str:
        """Write one batch; the token after its last change, or abort if one write stalls.

        One timeout for the batch, moved forward only when a write could otherwise be cut short:
        each write gets between ``stall_timeout`` and 1.1 × that. ``asyncio.wait_for`` would wrap
        every write in a task of its own (23 µs a write on this project's bench machine), and
        moving the timer before every write costs a timer handle each: both are paid per change
        per watcher.
        """
        loop = asyncio.get_running_loop()
        stall = self._watch.stall_timeout
        try:
            async with asyncio.timeout(None) as timeout:
                due = 0.0
                for change, event in changes:
                    message = self._message(cursor, change, event)
                    if (now := loop.time()) + stall > due:
                        due = now + stall * 1.1
                        timeout.reschedule(due)
                    try:
                        await context.write(message)
                    except grpc.aio.InternalError:
                        # The call is over (the client cancelled or went away); its cancellation
                        # reaches this task a moment later. End as that cancellation would, rather
                        # than raise an error grpc logs for every watcher that leaves mid-write.
                        raise asyncio.CancelledError from None
                    resume_from = message.resume_token
        except TimeoutError:
            self.watches_dropped += 1
            await abort(
                context,
                grpc.StatusCode.RESOURCE_EXHAUSTED,
                f"the watcher stopped reading for {self._watch.stall_timeout:g} s and was dropped;"
                f" resume with resume_token={resume_from}",
            )
        return resume_from

    async def RedeliverDeliveries(  # noqa: N802
        self, request: deliveries_pb2.RedeliverDeliveriesRequest, context: Context
    ) -> deliveries_pb2.RedeliverDeliveriesResponse:
        if bool(request.name) == bool(request.parent):
            await abort(
                context,
                grpc.StatusCode.INVALID_ARGUMENT,
                "name, parent: give exactly one: a delivery's name, or a parent (with a filter) to redeliver many",
            )
        if request.name:
            if request.filter or request.limit:
                await abort(
                    context, grpc.StatusCode.INVALID_ARGUMENT, "filter, limit: only apply with parent, not with name"
                )
            done = await self._call(context, self._history.redeliver_one, request.name)
        else:
            done = await self._call(
                context, self._history.redeliver_matching, request.parent, request.filter, request.limit
            )
        return deliveries_pb2.RedeliverDeliveriesResponse(
            queued_count=len(done.names), names=done.names, more=done.more
        )

    async def SendTestEvent(  # noqa: N802
        self, request: deliveries_pb2.SendTestEventRequest, context: Context
    ) -> deliveries_pb2.SendTestEventResponse:
        return convert_history.test_result(await self._call(context, self._history.send_test, request.name))
