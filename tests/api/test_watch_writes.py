"""How WatchDeliveries writes a batch when the client leaves in the middle of it.

grpc fails a write to a call its client has just cancelled before it cancels the handler's
task; a stream served to a departing watcher must end as that cancellation would, not with an
error grpc logs (one per watcher that leaves mid-write, enough to fill a log pipe). The real
streams, drops and resumes are in test_deliveries.py; here a stand-in for grpc's context fails
the write exactly as grpc does, which a real client cannot time.
"""

from __future__ import annotations

import asyncio
from typing import cast

import grpc
import pytest

from tidings.v1 import deliveries_pb2
from tidings_server.domain.history import HistoryService, WatchCursor
from tidings_server.domain.model import Event
from tidings_server.domain.ports import Change
from tidings_server.grpc_api.bridge import TrioBridge
from tidings_server.grpc_api.deliveries import DeliveryServicer, WatchSettings
from tidings_server.grpc_api.servicers import Context


class _Servicer(DeliveryServicer):
    """Writes a fixed message per change: the conversion is not what is under test."""

    def _message(self, cursor: WatchCursor, change: Change, event: Event | None) -> deliveries_pb2.DeliveryChange:
        return deliveries_pb2.DeliveryChange(resume_token=f"after-{cast(int, change)}")


class _LeavingClient:
    """Takes ``accepted`` writes, then fails the next as grpc does once its client has gone."""

    def __init__(self, accepted: int) -> None:
        self.accepted = accepted
        self.written: list[str] = []

    async def write(self, message: deliveries_pb2.DeliveryChange) -> None:
        if len(self.written) == self.accepted:
            raise grpc.aio.InternalError('Failed "execute_batch": (SendMessageOperation,)')
        self.written.append(message.resume_token)

    async def abort(self, code: grpc.StatusCode, details: str) -> None:
        raise AssertionError(f"a departing client is not aborted: {code} {details}")


def _write(client: _LeavingClient, changes: int) -> str:
    servicer = _Servicer(cast(TrioBridge, None), cast(HistoryService, None), WatchSettings(stall_timeout=60.0))
    batch = [(cast(Change, n), None) for n in range(1, changes + 1)]
    cursor = cast(WatchCursor, None)
    return asyncio.run(servicer._write(cast(Context, client), cursor, batch, "start"))


def test_a_batch_written_whole_answers_the_token_after_its_last_change() -> None:
    client = _LeavingClient(accepted=5)
    assert _write(client, 3) == "after-3"
    assert client.written == ["after-1", "after-2", "after-3"]


def test_a_client_that_leaves_mid_batch_ends_the_stream_as_a_cancellation() -> None:
    client = _LeavingClient(accepted=2)
    with pytest.raises(asyncio.CancelledError):
        _write(client, 5)
    assert client.written == ["after-1", "after-2"]  # nothing written after the failed write
