"""A watcher on one node sees every change the other nodes make, in the order of the store's
change log, and resumes on yet another node from its token."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import grpc
import psycopg

from tests.cluster.nodes import nodes, running_receiver
from tests.harness import Api
from tidings.v1 import deliveries_pb2, events_pb2, hooks_pb2

PROJECT = "companies/8/projects/6778"
PER_WRITER = 300
Change = tuple[str, str, int]  # delivery name, status, attempt count


def _event(resource_id: int) -> events_pb2.Event:
    return events_pb2.Event(
        company_id=8, project_id=6778, resource_name="RFIs", resource_id=resource_id, event_type="update", user_id=1
    )


def _change(message: deliveries_pb2.DeliveryChange) -> Change:
    status = deliveries_pb2.DeliveryStatus.Name(message.delivery.status).removeprefix("DELIVERY_STATUS_").lower()
    return (message.delivery.name, status, message.delivery.attempt_count)


class Watcher:
    """Follows WatchDeliveries on a thread, keeping every change and the last token."""

    def __init__(self, port: int, token: str = "") -> None:
        self.api = Api.connect(port)
        self.changes: list[Change] = []
        self.token = token
        self.error: grpc.RpcError | None = None
        self.lock = threading.Condition()
        self.call = self.api.deliveries.WatchDeliveries(
            deliveries_pb2.WatchDeliveriesRequest(parent=PROJECT, resume_token=token)
        )
        self.thread = threading.Thread(target=self._follow, daemon=True)
        self.thread.start()

    def _follow(self) -> None:
        stream: Iterator[deliveries_pb2.DeliveryChange] = self.call
        try:
            for message in stream:
                with self.lock:
                    self.changes.append(_change(message))
                    self.token = message.resume_token
                    self.lock.notify_all()
        except grpc.RpcError as exc:
            if exc.code() != grpc.StatusCode.CANCELLED:
                self.error = exc

    def wait_for(self, count: int, timeout: float) -> bool:
        with self.lock:
            return self.lock.wait_for(lambda: len(self.changes) >= count, timeout)

    def stop(self) -> tuple[list[Change], str]:
        self.call.cancel()
        self.thread.join(10)
        self.api.channel.close()
        assert self.error is None, f"the watch ended with {self.error}"
        with self.lock:
            return list(self.changes), self.token


def _log(url: str) -> list[Change]:
    with psycopg.connect(url) as conn:
        rows = conn.execute("SELECT name, status, attempt_count FROM changes ORDER BY seq").fetchall()
    return [(str(n), str(s), int(a)) for n, s, a in rows]


def _delivered(url: str) -> int:
    with psycopg.connect(url) as conn:
        row = conn.execute("SELECT count(*) FROM deliveries WHERE status = 'delivered'").fetchone()
    assert row is not None
    return int(row[0])


def test_a_watcher_sees_every_change_of_other_nodes_in_order_and_resumes_on_a_third(postgres_url: str) -> None:
    with running_receiver(0.001) as receiver, nodes(postgres_url, 3) as (watched, first_writer, second_writer):
        api = Api.connect(first_writer.port)
        for i in range(2):
            hook = api.hooks.CreateHook(
                hooks_pb2.CreateHookRequest(
                    parent=PROJECT,
                    hook=hooks_pb2.Hook(destination_url=receiver.url(f"h{i}"), payload_format="procore.v2"),
                )
            )
            trigger = hooks_pb2.Trigger(resource_name="RFIs", event_type="update")
            api.hooks.BatchCreateTriggers(hooks_pb2.BatchCreateTriggersRequest(parent=hook.name, triggers=[trigger]))
        # The watch follows changes from the moment it starts: a fence event marks that moment.
        watcher = Watcher(watched.port)
        deadline = time.monotonic() + 30
        while not watcher.wait_for(1, timeout=0.5):
            assert time.monotonic() < deadline, "the watch never saw the fence event"
            api.events.PublishEvents(events_pb2.PublishEventsRequest(events=[_event(999_999_999)]))
        api.channel.close()

        def write(port: int, base: int) -> None:
            writer = Api.connect(port)
            for start in range(0, PER_WRITER, 20):
                batch = [_event(base + start + i) for i in range(20)]
                writer.events.PublishEvents(events_pb2.PublishEventsRequest(events=batch))
            writer.channel.close()

        writers = [
            threading.Thread(target=write, args=(n.port, b)) for n, b in ((first_writer, 1), (second_writer, 10**6))
        ]
        for thread in writers:
            thread.start()
        assert watcher.wait_for(PER_WRITER, timeout=60)  # mid-burst: move to the third node
        seen, token = watcher.stop()
        resumed = Watcher(second_writer.port, token)
        for thread in writers:
            thread.join(60)
        deadline = time.monotonic() + 90
        while _delivered(postgres_url) < 2 * (2 * PER_WRITER) and time.monotonic() < deadline:
            time.sleep(0.2)
        log = _log(postgres_url)
        start = log.index(seen[0])
        expected = log[start:]
        assert resumed.wait_for(len(expected) - len(seen), timeout=30)
        # A closing fence: its changes come after every change above, so the first change the
        # watch shows past the expected ones must be the fence's, never a stray or a repeat.
        fence = Api.connect(first_writer.port)
        fence.events.PublishEvents(events_pb2.PublishEventsRequest(events=[_event(999_999_998)]))
        fence.channel.close()
        assert resumed.wait_for(len(expected) - len(seen) + 1, timeout=30)
        rest, _ = resumed.stop()
    watched_changes = seen + rest
    assert watched_changes[: len(expected)] == expected
    known = {name for name, _, _ in expected}
    assert watched_changes[len(expected)][0] not in known, "a change past the log's end was not the fence's"
    assert sum(1 for _, status, _ in expected if status == "delivered") >= 4 * PER_WRITER
